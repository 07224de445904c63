"""Cross-reference and sense checks (scheduler.validate), run through real files on disk."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

import scheduler.validate as validate_module
from scheduler.domain import Scenario
from scheduler.scenario_io import ScenarioError, load_scenario
from scheduler.validate import CHECKS, Checker, clock_change, validate

TUTORIAL = Path(__file__).resolve().parents[1] / "sample_rosters" / "tutorial.yaml"


def tutorial() -> dict[str, Any]:
    return yaml.safe_load(TUTORIAL.read_text())


def problems_of(tmp_path: Path, data: dict[str, Any], name: str = "tutorial.yaml") -> list[str]:
    """Write data as YAML, load it, and return every problem as text (it must fail)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [str(problem) for problem in info.value.problems]


def one_problem(tmp_path: Path, data: dict[str, Any], starts: str, contains: str = "") -> str:
    """Exactly one reported problem starts with `starts` (and contains `contains`)."""
    found = [text for text in problems_of(tmp_path, data) if text.startswith(starts)]
    assert len(found) == 1, found
    assert contains in found[0], found[0]
    return found[0]


def patient(data: dict[str, Any], ident: str) -> dict[str, Any]:
    return next(p for p in data["patients"] if p["id"] == ident)


def test_tutorial_has_no_problems() -> None:
    scenario = Scenario.model_validate(tutorial())
    assert validate(scenario, "tutorial.yaml") == []


def broken_everywhere() -> Scenario:
    """The tutorial with one mistake for each check (the ones the tests below use one by one)."""
    data = tutorial()
    data["blood_markers"].append(copy.deepcopy(data["blood_markers"][0]))  # duplicate_ids
    patient(data, "P001")["due_reviews"].append(dict(patient(data, "P001")["due_reviews"][0]))
    patient(data, "P001")["reachable_sites"].append({"site_id": "riverside", "travel_minutes": 30})
    data["rooms"][0]["site_id"] = "riversde"
    data["sessions"][0]["clinician_id"] = "gp-kahn"
    data["leave"][0]["clinician_id"] = "nobody"
    data["clinicians"][1]["review_type_ids"][4] = "asthmaa"
    data["review_types"][1]["shared_component_ids"][0] = "pulse"
    asthma = next(t for t in data["review_types"] if t["id"] == "asthma")
    asthma.update(duration_minutes=5, shared_component_ids=["smoking", "bp", "smoking"])
    patient(data, "P001")["named_clinician_id"] = "pn-elis"
    data["horizon_end"] = dt.date(2027, 3, 1)
    data["sites"][0].update(opens="18:00", closes="08:00")
    data["sessions"][3]["end"] = "08:30"
    data["sessions"][5]["room_id"] = "rs-nurze"  # session_rooms: no such room
    data["sessions"].append({"clinician_id": "hca-osei", "date": dt.date(2027, 3, 28),
                             "start": "00:30", "end": "03:00", "site_id": "riverside"})
    data["sessions"].append({"clinician_id": "gp-khan", "date": dt.date(2027, 3, 23),  # sessions[1]
                             "start": "12:00", "end": "14:00", "site_id": "riverside"})
    data["leave"].append({"clinician_id": "gp-khan", "start_date": dt.date(2027, 3, 31),
                          "end_date": dt.date(2027, 3, 30)})
    patient(data, "P003")["due_reviews"][1]["window_end"] = dt.date(2027, 3, 1)
    patient(data, "P003")["unavailable"][0].update(start="12:00", end="09:00")
    patient(data, "P004")["reachable_sites"] = []
    data["patients"].append({**copy.deepcopy(patient(data, "P002")), "id": "9434765919"})  # an NHS number
    data["clinicians"][0]["review_type_ids"].remove("frailty")
    data["clinicians"][3]["review_type_ids"].append("asthma")
    for clinician in data["clinicians"]:
        clinician.pop("takes_bloods", None)
    data["closures"] = [{"room_id": "rs-nowhere", "start": dt.datetime(2027, 3, 24, 9), "end": dt.datetime(2027, 3, 24, 12)}]
    return Scenario.model_validate(data)


def test_every_check_is_a_named_function_and_validate_runs_them_all() -> None:
    # Every check_* function in the module is registered, once.
    names = [check.__name__ for check in CHECKS]
    defined = {name for name, value in vars(validate_module).items()
               if name.startswith("check_") and callable(value)}
    assert len(set(names)) == len(names) == len(defined) >= 20
    assert set(names) == defined
    # On a scenario where every check finds something, validate returns exactly what each check
    # finds, in order: a check left out of the loop (or the loop stopping early after the first
    # problems) loses that check's problems and fails here.
    scenario = broken_everywhere()
    checker = Checker(scenario, "t.yaml", None)
    found = {check.__name__: list(check(checker)) for check in CHECKS}
    assert [name for name, problems in found.items() if not problems] == []
    everything = validate(scenario, "t.yaml")
    assert everything == [problem for problems in found.values() for problem in problems]


# --- duplicate ids ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("list_name", "noun"),
    [
        ("sites", "site"),
        ("rooms", "room"),
        ("clinicians", "clinician"),
        ("blood_markers", "blood marker"),
        ("shared_components", "shared component"),
        ("review_types", "review type"),
        ("patients", "patient"),
    ],
)
def test_duplicate_ids(tmp_path: Path, list_name: str, noun: str) -> None:
    data = tutorial()
    duplicate = copy.deepcopy(data[list_name][0])
    data[list_name].append(duplicate)
    last = len(data[list_name]) - 1
    one_problem(
        tmp_path,
        data,
        f"tutorial.yaml: {list_name}[{last}].id: duplicate {noun} id '{duplicate['id']}'",
        f"(also {list_name}[0])",
    )


def test_duplicate_due_review_ids(tmp_path: Path) -> None:
    data = tutorial()
    p1 = patient(data, "P001")
    p1["due_reviews"].append(dict(p1["due_reviews"][0]))  # diabetes twice: both 'P001-diabetes'
    one_problem(
        tmp_path,
        data,
        "tutorial.yaml: patients[P001].due_reviews[3]: duplicate due review id 'P001-diabetes'",
        "give each an explicit id",
    )


def test_duplicate_explicit_due_review_ids_across_patients(tmp_path: Path) -> None:
    data = tutorial()
    patient(data, "P001")["due_reviews"][0]["id"] = "R1"
    patient(data, "P002")["due_reviews"][0]["id"] = "R1"
    one_problem(
        tmp_path,
        data,
        "tutorial.yaml: patients[P002].due_reviews[R1].id: duplicate due review id 'R1'",
        "also patient 'P001'",
    )


def test_duplicate_reachable_site(tmp_path: Path) -> None:
    data = tutorial()
    patient(data, "P001")["reachable_sites"].append({"site_id": "riverside", "travel_minutes": 30})
    one_problem(
        tmp_path,
        data,
        "tutorial.yaml: patients[P001].reachable_sites[1].site_id: site 'riverside' is listed twice",
    )


# --- unknown ids ------------------------------------------------------------------------------

def _set(path: tuple[Any, ...], value: Any):
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "location", "message"),
    [
        (_set(("rooms", 0, "site_id"), "riversde"), "rooms[rs-treatment].site_id",
         "unknown site 'riversde'; did you mean 'riverside'?"),
        (_set(("sessions", 0, "clinician_id"), "gp-kahn"), "sessions[0].clinician_id",
         "unknown clinician 'gp-kahn'; did you mean 'gp-khan'?"),
        (_set(("sessions", 2, "site_id"), "hub"), "sessions[2].site_id", "unknown site 'hub'"),
        (_set(("leave", 0, "clinician_id"), "nobody"), "leave[0].clinician_id",
         "unknown clinician 'nobody'"),
        (_set(("clinicians", 1, "review_type_ids", 4), "asthmaa"),
         "clinicians[pn-ellis].review_type_ids[4]", "unknown review type 'asthmaa'"),
        (_set(("review_types", 0, "blood_marker_ids", 0), "hba1"),
         "review_types[diabetes].blood_marker_ids[0]",
         "unknown blood marker 'hba1'; did you mean 'hba1c'?"),
        (_set(("review_types", 1, "shared_component_ids", 0), "pulse"),
         "review_types[hypertension].shared_component_ids[0]", "unknown shared component 'pulse'"),
        (_set(("patients", 0, "named_clinician_id"), "pn-elis"),
         "patients[P001].named_clinician_id", "unknown clinician 'pn-elis'"),
        (_set(("patients", 1, "reachable_sites", 0, "site_id"), "elsewhere"),
         "patients[P002].reachable_sites[0].site_id", "unknown site 'elsewhere'"),
        (_set(("patients", 2, "due_reviews", 1, "review_type_id"), "hypertensoin"),
         "patients[P003].due_reviews[1].review_type_id",
         "unknown review type 'hypertensoin'; did you mean 'hypertension'?"),
    ],
)
def test_unknown_ids(tmp_path: Path, mutate: Any, location: str, message: str) -> None:
    data = tutorial()
    mutate(data)
    one_problem(tmp_path, data, f"tutorial.yaml: {location}: {message}")


def test_unknown_id_lists_known_ids_when_nothing_is_close(tmp_path: Path) -> None:
    data = tutorial()
    data["sessions"][0]["site_id"] = "zzz"
    one_problem(tmp_path, data, "tutorial.yaml: sessions[0].site_id: unknown site 'zzz'",
                "known sites: riverside")


# --- dates and times --------------------------------------------------------------------------

def test_horizon_end_before_start(tmp_path: Path) -> None:
    data = tutorial()
    data["horizon_end"] = dt.date(2027, 3, 1)
    one_problem(
        tmp_path, data,
        "tutorial.yaml: horizon_end: horizon ends (2027-03-01) before it starts (2027-03-22)",
    )


def test_session_end_not_after_start(tmp_path: Path) -> None:
    data = tutorial()
    data["sessions"][3]["end"] = "08:30"  # starts 08:30
    one_problem(tmp_path, data,
                "tutorial.yaml: sessions[3].end: session ends (08:30) at or before it starts (08:30)")


def test_session_crossing_midnight_is_impossible(tmp_path: Path) -> None:
    data = tutorial()
    data["sessions"][3].update(start="22:00", end="02:00")
    one_problem(tmp_path, data,
                "tutorial.yaml: sessions[3].end: session ends (02:00) at or before it starts (22:00)",
                "crossing midnight must be split into two")


def test_clock_change_dates() -> None:
    assert clock_change(dt.date(2027, 3, 28)) == "forward"
    assert clock_change(dt.date(2027, 10, 31)) == "back"
    assert clock_change(dt.date(2026, 10, 25)) == "back"
    assert clock_change(dt.date(2027, 3, 21)) is None  # a Sunday, not the last of March
    assert clock_change(dt.date(2027, 3, 29)) is None


@pytest.mark.hazard("HAZ-004")
def test_session_in_the_missing_hour_in_march(tmp_path: Path) -> None:
    data = tutorial()
    data["sessions"].append({"clinician_id": "gp-khan", "date": dt.date(2027, 3, 28),
                             "start": "00:30", "end": "03:00", "site_id": "riverside"})
    one_problem(tmp_path, data, "tutorial.yaml: sessions[30]: session 00:30-03:00 on Sunday "
                "2027-03-28 overlaps 01:00-02:00, when the clocks go forward",
                "that hour does not exist")


@pytest.mark.hazard("HAZ-004")
def test_session_in_the_repeated_hour_in_october(tmp_path: Path) -> None:
    data = tutorial()
    data["horizon_end"] = dt.date(2027, 11, 5)
    data["sessions"].append({"clinician_id": "gp-khan", "date": dt.date(2027, 10, 31),
                             "start": "01:30", "end": "04:00", "site_id": "riverside"})
    one_problem(tmp_path, data, "tutorial.yaml: sessions[30]: session 01:30-04:00 on Sunday "
                "2027-10-31 overlaps 01:00-02:00, when the clocks go back", "happens twice")


def test_sessions_clear_of_the_clock_change_hour_are_fine(tmp_path: Path) -> None:
    data = tutorial()
    data["sessions"].append({"clinician_id": "gp-khan", "date": dt.date(2027, 3, 28),
                             "start": "02:00", "end": "04:00", "site_id": "riverside"})
    data["sessions"].append({"clinician_id": "gp-khan", "date": dt.date(2027, 3, 21),
                             "start": "00:30", "end": "03:00", "site_id": "riverside"})
    assert validate(Scenario.model_validate(data), "t.yaml") == []


def test_overlapping_sessions_name_both(tmp_path: Path) -> None:
    data = tutorial()
    # gp-khan works 08:30-12:30 on 2027-03-22 (sessions[0]).
    data["sessions"].append({"clinician_id": "gp-khan", "date": dt.date(2027, 3, 22),
                             "start": "12:00", "end": "14:00", "site_id": "riverside"})
    one_problem(tmp_path, data,
                "tutorial.yaml: sessions[30]: overlaps another session of 'gp-khan' on "
                "2027-03-22: sessions[0] (08:30-12:30 at riverside)")


def test_back_to_back_sessions_and_other_clinicians_do_not_overlap() -> None:
    data = tutorial()
    data["sessions"].append({"clinician_id": "gp-khan", "date": dt.date(2027, 3, 22),
                             "start": "12:30", "end": "14:00", "site_id": "riverside"})
    assert validate(Scenario.model_validate(data), "t.yaml") == []


def test_leave_end_before_start(tmp_path: Path) -> None:
    data = tutorial()
    data["leave"][0]["end_date"] = dt.date(2027, 3, 30)
    one_problem(tmp_path, data, "tutorial.yaml: leave[0].end_date: leave ends (2027-03-30) "
                "before it starts (2027-03-31)")


def test_site_closes_not_after_opens(tmp_path: Path) -> None:
    data = tutorial()
    data["sites"][0].update(opens="18:00", closes="08:00")
    one_problem(tmp_path, data, "tutorial.yaml: sites[riverside].closes: site closes (08:00) "
                "at or before it opens (18:00)")


def test_window_ends_before_it_starts(tmp_path: Path) -> None:
    data = tutorial()
    patient(data, "P003")["due_reviews"][1]["window_end"] = dt.date(2027, 3, 1)
    text = one_problem(tmp_path, data, "tutorial.yaml: patients[P003].due_reviews[1].window_end:")
    assert text.startswith(
        "tutorial.yaml: patients[P003].due_reviews[1].window_end: "
        "window ends (2027-03-01) before it starts (2027-03-22)"
    )


def test_window_entirely_outside_horizon(tmp_path: Path) -> None:
    data = tutorial()
    due = patient(data, "P005")["due_reviews"][0]
    due.update(window_start=dt.date(2027, 5, 1), window_end=dt.date(2027, 5, 31))
    one_problem(tmp_path, data, "tutorial.yaml: patients[P005].due_reviews[0]: due window "
                "2027-05-01 to 2027-05-31 lies entirely outside the horizon 2027-03-22 to 2027-04-02")


def test_window_partly_inside_horizon_is_fine() -> None:
    data = tutorial()
    due = patient(data, "P005")["due_reviews"][0]
    due.update(window_start=dt.date(2027, 4, 2), window_end=dt.date(2027, 5, 31))
    assert validate(Scenario.model_validate(data), "t.yaml") == []


def test_unavailability_end_not_after_start(tmp_path: Path) -> None:
    data = tutorial()
    patient(data, "P003")["unavailable"][0].update(start="12:00", end="09:00")
    one_problem(tmp_path, data, "tutorial.yaml: patients[P003].unavailable[0].end: "
                "unavailability ends (09:00) at or before it starts (12:00)")


def test_unavailability_without_weekdays_or_date(tmp_path: Path) -> None:
    data = tutorial()
    patient(data, "P003")["unavailable"][0]["weekdays"] = []
    one_problem(tmp_path, data, "tutorial.yaml: patients[P003].unavailable[0]: "
                "unavailability has neither weekdays nor a date")


# --- who can do what --------------------------------------------------------------------------

def test_patient_with_no_reachable_site(tmp_path: Path) -> None:
    data = tutorial()
    patient(data, "P004")["reachable_sites"] = []
    one_problem(tmp_path, data, "tutorial.yaml: patients[P004].reachable_sites: "
                "patient 'P004' has no reachable site")


def test_review_type_no_clinician_may_carry_out(tmp_path: Path) -> None:
    data = tutorial()
    data["clinicians"][0]["review_type_ids"].remove("frailty")  # only gp-khan did frailty
    one_problem(tmp_path, data, "tutorial.yaml: review_types[frailty]: no clinician may carry "
                "out review type 'frailty'", "no clinician lists it in review_type_ids")


@pytest.mark.hazard("HAZ-008")
def test_clinician_listing_a_type_their_role_may_not_do(tmp_path: Path) -> None:
    data = tutorial()
    data["clinicians"][3]["review_type_ids"].append("asthma")  # ph-wright is a pharmacist
    one_problem(tmp_path, data,
                "tutorial.yaml: clinicians[ph-wright].review_type_ids[3]: clinician 'ph-wright' "
                "has role 'pharmacist', which review type 'asthma' does not allow "
                "(its roles: practice_nurse)")


def test_role_mismatch_alone_does_not_make_a_type_doable(tmp_path: Path) -> None:
    data = tutorial()
    data["clinicians"][0]["review_type_ids"].remove("frailty")
    data["clinicians"][3]["review_type_ids"].append("frailty")  # a pharmacist cannot do it
    texts = problems_of(tmp_path, data)
    assert any("clinicians[ph-wright].review_type_ids[3]: clinician 'ph-wright' has role "
               "'pharmacist'" in t for t in texts), texts
    assert any(t.startswith("tutorial.yaml: review_types[frailty]: no clinician may carry out")
               and "clinicians listing it (ph-wright) have no allowed role" in t for t in texts)


def test_blood_draws_needed_but_nobody_takes_bloods(tmp_path: Path) -> None:
    data = tutorial()
    for clinician in data["clinicians"]:
        clinician.pop("takes_bloods", None)
    one_problem(tmp_path, data, "tutorial.yaml: clinicians: due reviews need a blood draw",
                "no clinician has takes_bloods: true")


def test_blood_draws_needed_but_no_phlebotomy_room(tmp_path: Path) -> None:
    data = tutorial()
    for room in data["rooms"]:
        room["capabilities"] = [c for c in room["capabilities"] if c != "phlebotomy"]
    one_problem(tmp_path, data, "tutorial.yaml: rooms: due reviews need a blood draw",
                "no room has the capability 'phlebotomy'")


def test_no_blood_draw_needed_no_phlebotomy_problem() -> None:
    data = tutorial()
    for room in data["rooms"]:
        room["capabilities"] = []
    for clinician in data["clinicians"]:
        clinician.pop("takes_bloods", None)
    for review_type in data["review_types"]:
        review_type["blood_marker_ids"] = []
        review_type["room_capabilities"] = []
    assert validate(Scenario.model_validate(data), "t.yaml") == []


# --- validate on its own ----------------------------------------------------------------------

def test_validate_names_the_source_and_returns_every_problem() -> None:
    data = tutorial()
    data["sessions"][0]["clinician_id"] = "ghost"
    data["leave"][0]["end_date"] = dt.date(2027, 3, 1)
    problems = validate(Scenario.model_validate(data), "mine.yaml")
    assert [(p.source, p.location) for p in problems] == [
        ("mine.yaml", "sessions[0].clinician_id"),
        ("mine.yaml", "leave[0].end_date"),
    ]
    assert problems[0].path == ("sessions", 0, "clinician_id")


def test_set_aside_ids_are_not_reported_as_unknown() -> None:
    data = tutorial()
    data["clinicians"] = [c for c in data["clinicians"] if c["id"] != "hca-osei"]
    scenario = Scenario.model_validate(data)
    unknown = [p for p in validate(scenario, "t.yaml") if "unknown clinician 'hca-osei'" in p.message]
    assert len(unknown) == 8  # hca-osei's sessions
    assert validate(scenario, "t.yaml", set_aside={"clinicians": ["hca-osei"]}) == []


def test_shared_components_must_fit_inside_the_review_once_each():
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "sample_rosters/tutorial.yaml").read_text())
    bad = copy.deepcopy(data)
    asthma = next(t for t in bad["review_types"] if t["id"] == "asthma")
    asthma["duration_minutes"] = 5
    asthma["shared_component_ids"] = ["smoking", "bp", "smoking"]
    messages = [str(p) for p in validate(Scenario.model_validate(bad), "t.yaml")]
    assert any("shared_component_ids[2]" in m and "listed twice" in m for m in messages)
    assert any("asthma" in m and "7 min, more than the review's 5 min" in m for m in messages)
    assert validate(Scenario.model_validate(data), "t.yaml") == []


# --- closures ---------------------------------------------------------------------------------

def test_closures_name_a_room_or_site_that_exists_end_after_they_start_and_never_overlap() -> None:
    data = tutorial()
    day = dt.datetime(2027, 3, 24)
    data["closures"] = [
        {"room_id": "rs-nurse", "start": day.replace(hour=9), "end": day.replace(hour=12)},
        {"room_id": "rs-nurse", "start": day.replace(hour=11), "end": day.replace(hour=13)},  # closed twice
        {"site_id": "riversid", "start": day, "end": day.replace(hour=23)},
        {"room_id": "rs-mdt", "site_id": "riverside", "start": day, "end": day.replace(hour=1)},
        {"room_id": "rs-mdt", "start": day.replace(hour=10), "end": day.replace(hour=9)},
    ]
    problems = {(p.location, p.message) for p in validate(Scenario.model_validate(data), "t.yaml")}
    said = {location: message for location, message in problems}
    assert "already closed then by closures[0]" in said["closures[1].start"]
    assert "unknown site 'riversid'" in said["closures[2].site_id"]
    assert said["closures[3]"] == "give exactly one of room_id and site_id"
    assert "ends (2027-03-24T09:00:00) at or before it starts" in said["closures[4].end"]
    assert len(problems) == 4
