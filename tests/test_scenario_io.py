"""Loading scenarios from YAML, JSON and CSV files: every failure is a readable ScenarioError."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from scheduler import domain
from scheduler.scenario_io import (
    DUE_REVIEWS_COLUMNS,
    SESSIONS_COLUMNS,
    Problem,
    ScenarioError,
    load_scenario,
    merge_csv,
    read_due_reviews_csv,
    read_sessions_csv,
    scenario_from_dict,
    scenario_from_text,
    scenario_json_schema,
)

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "sample_rosters" / "tutorial.yaml"
BAD = Path(__file__).resolve().parent / "data" / "bad"


def tutorial() -> dict[str, Any]:
    return yaml.safe_load(TUTORIAL.read_text())


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def write_yaml(tmp_path: Path, data: Any, name: str = "scenario.yaml") -> Path:
    return write(tmp_path, name, yaml.safe_dump(data, sort_keys=False))


def problems(path: Path, **csvs: Path) -> list[Problem]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, **csvs)
    return info.value.problems


def texts(path: Path, **csvs: Path) -> list[str]:
    return [str(problem) for problem in problems(path, **csvs)]


def only(found: list[str], starts: str, contains: str = "") -> str:
    matching = [text for text in found if text.startswith(starts)]
    assert len(matching) == 1, (starts, found)
    assert contains in matching[0], matching[0]
    return matching[0]


# --- loading good files -----------------------------------------------------------------------

def test_tutorial_loads_cleanly() -> None:
    scenario = load_scenario(TUTORIAL)
    assert scenario.name.startswith("Tutorial")
    assert len(scenario.sessions) == 30 and len(scenario.patients) == 8
    assert scenario.visit_rules.fasting_draw_latest_start == dt.time(10, 30)
    assert scenario.sessions[0].start == dt.time(8, 30)


def test_json_and_yaml_give_equal_scenarios(tmp_path: Path) -> None:
    as_json = write(tmp_path, "tutorial.json", json.dumps(tutorial(), default=str, indent=2))
    assert load_scenario(as_json) == load_scenario(TUTORIAL)


def test_yml_suffix_and_string_paths(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yml", TUTORIAL.read_text())
    assert load_scenario(str(path)) == load_scenario(TUTORIAL)


def test_scenario_from_text_and_dict_match_the_file() -> None:
    from_file = load_scenario(TUTORIAL)
    assert scenario_from_text(TUTORIAL.read_text(), "upload.yaml") == from_file
    assert scenario_from_dict(tutorial(), "api") == from_file


def test_unquoted_yaml_times_are_clock_times_not_base_60_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads 14:00 as 840; pydantic would then take that as 00:14:00.
    text = TUTORIAL.read_text().replace('start: "14:00", end: "18:00"', "start: 14:00, end: 18:00")
    assert "start: 14:00, end: 18:00" in text
    scenario = load_scenario(write(tmp_path, "t.yaml", text))
    assert scenario.sessions[2].start == dt.time(14, 0)
    assert scenario.sessions[2].end == dt.time(18, 0)


# --- whole-file failures ----------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path / "nowhere.yaml")
    assert problem.source == "nowhere.yaml"
    assert "cannot read the file" in problem.message


def test_directory_instead_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    (problem,) = problems(folder)
    assert str(problem).startswith("folder.yaml: cannot read the file")


def test_unknown_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "scenario.txt", TUTORIAL.read_text())
    assert "scenario.txt: unknown file type '.txt': use .yaml, .yml or .json" in texts(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: Caf\xe9\n".encode("latin-1"))
    (text,) = texts(path)
    assert text.startswith("latin.yaml: the file is not UTF-8 text (byte 0xe9")


def test_empty_file(tmp_path: Path) -> None:
    assert texts(write(tmp_path, "empty.yaml", "# nothing\n")) == ["empty.yaml: the file is empty"]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    (text,) = texts(write(tmp_path, "list.yaml", "- a\n- b\n"))
    assert text.startswith("list.yaml: the scenario must be a mapping of fields")


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = TUTORIAL.read_text().replace("horizon_end: 2027-04-02", "horizon_end: [2027-04-02")
    (problem,) = problems(write(tmp_path, "broken.yaml", text))
    assert problem.source == "broken.yaml"
    assert problem.message.startswith("YAML syntax error")
    assert re.fullmatch(r"line \d+, column \d+", problem.location)
    assert problem.line is not None and problem.line >= 9


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.json", '{\n  "name": "x",\n  "horizon_start": "2027-03-22"\n  "x": 1\n}')
    (problem,) = problems(path)
    assert str(problem) == "broken.json: line 4, column 3: JSON syntax error: Expecting ',' delimiter"


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = TUTORIAL.read_text().replace("  max_wait_minutes: 20\n", "  max_wait_minutes: 20\n  max_visit_minutes: 90\n")
    only(texts(write(tmp_path, "dup.yaml", text)),
         "dup.yaml: visit_rules.max_visit_minutes: key 'max_visit_minutes' appears twice",
         "(also on line 12; only the last is used) (line 14)")


def test_duplicate_json_key(tmp_path: Path) -> None:
    data = tutorial()
    text = json.dumps(data, default=str, indent=1).replace('"name": "Tutorial', '"name": "A",\n "name": "Tutorial', 1)
    only(texts(write(tmp_path, "dup.json", text)), "dup.json: name: key 'name' appears twice")


# --- field errors from pydantic, made readable ------------------------------------------------

@pytest.mark.parametrize("value", ["25:00", "12:75", "24:00"])
def test_times_outside_the_day(tmp_path: Path, value: str) -> None:
    data = tutorial()
    data["sessions"][4]["start"] = value
    only(texts(write_yaml(tmp_path, data, "t.yaml")),
         f"t.yaml: sessions[4].start: '{value}' is a time outside the day")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8:30", "'8:30': write times as HH:MM with two-digit hours, e.g. \"08:30\""),
        ("8am", "'8am' is not a time: write HH:MM"),
        (1400, "1400 is not a time: write HH:MM in quotes"),
        ("09:00+01:00", "'09:00+01:00': times are local (Europe/London); leave out the UTC offset"),
        (dt.datetime(2027, 3, 22, 9, 0), "2027-03-22 09:00:00 is a date, not a time"),
    ],
)
def test_malformed_times(tmp_path: Path, value: Any, message: str) -> None:
    data = tutorial()
    data["patients"][2]["unavailable"][0]["start"] = value
    only(texts(write_yaml(tmp_path, data, "t.yaml")),
         f"t.yaml: patients[P003].unavailable[0].start: {message}")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2027-02-30", "'2027-02-30' is not a real date"),
        ("22/03/2027", "'22/03/2027': write dates as YYYY-MM-DD, e.g. 2027-03-22"),
        ("next week", "'next week' is not a date: write YYYY-MM-DD"),
        (20270322, "20270322 is not a date"),
    ],
)
def test_malformed_dates(tmp_path: Path, value: Any, message: str) -> None:
    data = tutorial()
    data["leave"][0]["start_date"] = value
    only(texts(write_yaml(tmp_path, data, "t.yaml")), f"t.yaml: leave[0].start_date: {message}")


def test_unquoted_impossible_yaml_date_is_reported_not_crashed(tmp_path: Path) -> None:
    text = TUTORIAL.read_text().replace("horizon_start: 2027-03-22", "horizon_start: 2027-02-30")
    only(texts(write(tmp_path, "t.yaml", text)), "t.yaml: horizon_start: '2027-02-30' is not a real date",
         "(there is no day 30 in that month) (line 9)")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["patients"][3].update(wheelchar=True),
         "patients[P004].wheelchar: unknown field 'wheelchar'"),
        (lambda d: d["patients"][2]["due_reviews"][0].update(window_ned="2027-04-02"),
         "patients[P003].due_reviews[0].window_ned: unknown field 'window_ned'; did you mean 'window_end'?"),
        (lambda d: d["sites"][0].pop("address"), "sites[riverside].address: required field is missing"),
        (lambda d: d["clinicians"][2].update(role="hcaa"),
         "clinicians[hca-osei].role: 'hcaa' is not allowed; use one of: gp, "),
        (lambda d: d["patients"][0].update(named_clinician_id="pn ellis"),
         "patients[P001].named_clinician_id: 'pn ellis' is not a valid id"),
        (lambda d: d["review_types"][4].update(duration_minutes=2),
         "review_types[asthma].duration_minutes: must be at least 5 (got 2)"),
        (lambda d: d["patients"][1]["needs"].update(wheelchair="maybe"),
         "patients[P002].needs.wheelchair: 'maybe' is not true or false"),
        (lambda d: d["patients"][4].update(due_reviews=[]),
         "patients[P005].due_reviews: must list at least 1 item(s)"),
        (lambda d: d["patients"][3]["needs"].update(interpreter_language=False),
         "patients[P004].needs.interpreter_language: must be text, not false (YAML reads unquoted"),
        (lambda d: d.update(rooms="all of them"), "rooms: must be a list, not text 'all of them'"),
        (lambda d: d["patients"][2]["unavailable"][0].update(weekdays=["mon", "tues"]),
         "patients[P003].unavailable[0].weekdays[1]: 'tues' is not allowed; use one of: mon, tue"),
    ],
)
def test_field_errors_are_readable(tmp_path: Path, mutate: Any, expected: str) -> None:
    data = tutorial()
    mutate(data)
    only(texts(write_yaml(tmp_path, data, "t.yaml")), f"t.yaml: {expected}")


def test_locations_use_ids_and_fall_back_to_index_for_duplicates(tmp_path: Path) -> None:
    data = tutorial()
    data["patients"][2]["priority"] = 9
    data["patients"][5]["id"] = "P001"  # P001 now twice: shown by index
    data["patients"][5]["priority"] = -1
    found = texts(write_yaml(tmp_path, data, "t.yaml"))
    only(found, "t.yaml: patients[P003].priority: must be at most 3 (got 9)")
    only(found, "t.yaml: patients[5].priority: must be at least 0 (got -1)")


def test_yaml_problems_carry_the_line(tmp_path: Path) -> None:
    text = TUTORIAL.read_text().replace("role: hca,", "role: hcaa,")
    line = next(n for n, l in enumerate(text.splitlines(), 1) if "role: hcaa" in l)
    (problem,) = [p for p in problems(write(tmp_path, "t.yaml", text)) if p.location.endswith("role")]
    assert problem.line == line
    assert str(problem).endswith(f"(line {line})")


def test_several_mistakes_are_all_reported_at_once(tmp_path: Path) -> None:
    text = (
        TUTORIAL.read_text()
        .replace("role: hca,", "role: hcaa,")  # field error
        .replace('date: 2027-03-23, start: "08:30", end: "12:30", site_id: riverside}\n'
                 '  - {clinician_id: gp-khan, date: 2027-03-24, start: "14:00"',
                 'date: 2027-03-23, start: "25:00", end: "12:30", site_id: riverside}\n'
                 '  - {clinician_id: gp-khan, date: 2027-03-24, start: "14:00"')  # time
        .replace("{id: rs-consult1, site_id: riverside", "{id: rs-consult1, site_id: riversid")
        .replace("window_start: 2027-03-29, window_end: 2027-04-02}\n      - {review_type_id: smr",
                 "window_start: 2027-03-29, window_end: 2027-03-02}\n      - {review_type_id: smr")
        .replace("- id: P008", "- id: P007")  # duplicate patient
        .replace("start_date: 2027-03-31, end_date: 2027-03-31", "start_date: 2027-03-31, end_date: 2027-03-30")
    )
    found = texts(write(tmp_path, "many.yaml", text))
    assert len(found) == 6, found
    only(found, "many.yaml: clinicians[hca-osei].role: 'hcaa' is not allowed")
    only(found, "many.yaml: sessions[1].start: '25:00' is a time outside the day")
    only(found, "many.yaml: rooms[rs-consult1].site_id: unknown site 'riversid'; did you mean 'riverside'?")
    only(found, "many.yaml: patients[P006].due_reviews[0].window_end: window ends (2027-03-02) before "
                "it starts (2027-03-29)")
    only(found, "many.yaml: patients[7].id: duplicate patient id 'P007' (also patients[6])")
    only(found, "many.yaml: leave[0].end_date: leave ends (2027-03-30) before it starts (2027-03-31)")
    lines = [int(re.search(r"\(line (\d+)\)$", t)[1]) for t in found]
    assert lines == sorted(lines)  # reported in file order


def test_entries_with_field_errors_do_not_cause_false_unknown_id_problems(tmp_path: Path) -> None:
    data = tutorial()
    data["clinicians"][2]["role"] = "healthcare assistant"  # hca-osei is set aside...
    found = texts(write_yaml(tmp_path, data, "t.yaml"))
    assert len(found) == 1, found  # ...so her 8 sessions are not "unknown clinician"
    assert found[0].startswith("t.yaml: clinicians[hca-osei].role:")


def test_scenario_error_lists_one_problem_per_line(tmp_path: Path) -> None:
    data = tutorial()
    data["horizon_end"] = dt.date(2027, 1, 1)
    data["sites"][0]["closes"] = "07:00"
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_yaml(tmp_path, data, "t.yaml"))
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems) >= 2
    assert lines == [str(p) for p in info.value.problems]


def test_problem_text_format() -> None:
    problem = Problem("tutorial.yaml", "patients[P003].due_reviews[1].window_end",
                      "window ends (2027-03-01) before it starts (2027-03-22)")
    assert str(problem) == ("tutorial.yaml: patients[P003].due_reviews[1].window_end: "
                            "window ends (2027-03-01) before it starts (2027-03-22)")
    assert str(Problem("a.yaml", "x", "bad", 7)) == "a.yaml: x: bad (line 7)"
    assert str(Problem("a.yaml", "", "the file is empty")) == "a.yaml: the file is empty"


def test_scenario_from_dict_reports_problems_and_leaves_data_alone() -> None:
    data = tutorial()
    data["sessions"][0]["site_id"] = "nowhere"
    before = copy.deepcopy(data)
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(data, "api-request")
    assert [str(p) for p in info.value.problems] == [
        "api-request: sessions[0].site_id: unknown site 'nowhere'"
        + "; known sites: riverside"
    ]
    assert data == before


# --- CSV imports ------------------------------------------------------------------------------

SESSIONS_CSV = """clinician_id,date,start,end,site_id,on_bank_holiday
gp-khan,05/04/2027,08:30,12:30,riverside,
dsn-patel,2027-03-23,9:00,12:00,riverside,no
gp-khan,29/03/2027,08:30,12:30,riverside,yes
"""


def _horizon_to_april(tmp_path: Path) -> Path:
    data = tutorial()
    data["horizon_end"] = dt.date(2027, 4, 9)
    return write_yaml(tmp_path, data, "practice.yaml")


@pytest.mark.hazard("HAZ-010")
def test_sessions_csv_rows_are_appended(tmp_path: Path) -> None:
    scenario = load_scenario(_horizon_to_april(tmp_path), sessions_csv=write(tmp_path, "rota.csv", SESSIONS_CSV))
    added = scenario.sessions[30:]
    assert [(s.clinician_id, s.date, s.start, s.end, s.on_bank_holiday) for s in added] == [
        ("gp-khan", dt.date(2027, 4, 5), dt.time(8, 30), dt.time(12, 30), False),
        ("dsn-patel", dt.date(2027, 3, 23), dt.time(9, 0), dt.time(12, 0), False),
        ("gp-khan", dt.date(2027, 3, 29), dt.time(8, 30), dt.time(12, 30), True),
    ]


DUE_CSV = """patient_id,review_type_id,window_start,window_end,named_clinician_id,priority,reachable_sites,extra_time_factor,wheelchair,carer_attending,interpreter_language,opt_out_consolidation,joint_consultation
P001,af,22/03/2027,02/04/2027,,,,,,,,,
P009,diabetes,2027-03-22,2027-04-02,pn-ellis,2,riverside:15,1.5,yes,y,Urdu,no,false
P009,ckd,2027-03-22,2027-04-02,,2,,,,,,,
P010,asthma,2027-03-29,2027-04-02,,,riverside:5;riverside2:30,,,,,,
"""


@pytest.mark.hazard("HAZ-010")
def test_due_reviews_csv_adds_reviews_and_creates_patients(tmp_path: Path) -> None:
    data = tutorial()
    data["sites"].append({"id": "riverside2", "name": "Branch", "address": "1 High St"})
    scenario = load_scenario(write_yaml(tmp_path, data, "practice.yaml"),
                             due_reviews_csv=write(tmp_path, "recall.csv", DUE_CSV))
    by_id = {p.id: p for p in scenario.patients}
    assert [d.review_type_id for d in by_id["P001"].due_reviews] == ["diabetes", "hypertension", "ckd", "af"]
    assert by_id["P001"].due_reviews[3].window_start == dt.date(2027, 3, 22)
    p9 = by_id["P009"]
    assert [d.review_type_id for d in p9.due_reviews] == ["diabetes", "ckd"]
    assert (p9.named_clinician_id, p9.priority, p9.opt_out_consolidation, p9.joint_consultation) == (
        "pn-ellis", 2, False, False)
    assert (p9.needs.extra_time_factor, p9.needs.wheelchair, p9.needs.carer_attending,
            p9.needs.interpreter_language) == (1.5, True, True, "Urdu")
    assert [(r.site_id, r.travel_minutes) for r in p9.reachable_sites] == [("riverside", 15)]
    p10 = by_id["P010"]
    assert [(r.site_id, r.travel_minutes) for r in p10.reachable_sites] == [("riverside", 5), ("riverside2", 30)]
    assert p10.priority == 0 and p10.needs.wheelchair is False  # defaults for empty cells
    assert list(by_id)[-2:] == ["P009", "P010"]


def test_csv_fills_a_field_the_scenario_left_out(tmp_path: Path) -> None:
    csv_text = "patient_id,review_type_id,window_start,window_end,priority\nP001,af,2027-03-22,2027-04-02,3\n"
    scenario = load_scenario(TUTORIAL, due_reviews_csv=write(tmp_path, "r.csv", csv_text))
    assert scenario.patients[0].priority == 3


def test_csv_header_is_forgiving_about_case_spaces_and_bom(tmp_path: Path) -> None:
    csv_text = "\ufeffClinician ID, Date ,Start,End,Site-ID\ngp-khan,2027-03-30,13:00,17:00,riverside\n"
    scenario = load_scenario(TUTORIAL, sessions_csv=write(tmp_path, "rota.csv", csv_text))
    assert scenario.sessions[-1].start == dt.time(13, 0)


def test_windows_1252_csv_from_excel(tmp_path: Path) -> None:
    path = tmp_path / "recall.csv"
    path.write_bytes("patient_id,review_type_id,window_start,window_end,interpreter_language\n"
                     "P020,asthma,2027-03-22,2027-04-02,Fran\xe7ais\n".encode("cp1252"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(TUTORIAL, due_reviews_csv=path)
    # The text was read (the only problem is the missing reachable site of the new patient).
    assert [str(p) for p in info.value.problems] == [
        "recall.csv: row 2, column 'reachable_sites': patient 'P020' has no reachable site: "
        "list at least one site with its travel minutes"
    ]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("gp-khan,2027-02-30,08:30,12:30,riverside", "row 2, column 'date': '2027-02-30' is not a real date"),
        ("gp-khan,30-03-2027,08:30,12:30,riverside", "row 2, column 'date': '30-03-2027' is not a date: write YYYY-MM-DD or DD/MM/YYYY"),
        ("gp-khan,30/03/27,08:30,12:30,riverside", "row 2, column 'date': '30/03/27': write the year with four digits"),
        ("gp-khan,2027-03-30,25:00,12:30,riverside", "row 2, column 'start': '25:00' is a time outside the day"),
        ("gp-khan,2027-03-30,08:30,12:75,riverside", "row 2, column 'end': '12:75' is a time outside the day"),
        ("gp-khan,2027-03-30,half eight,12:30,riverside", "row 2, column 'start': 'half eight' is not a time"),
        ("gp-khan,2027-03-30,08:30,12:30,riverside,perhaps", "row 2, column 'on_bank_holiday': 'perhaps' is not a yes/no value"),
        (",2027-03-30,08:30,12:30,riverside", "row 2, column 'clinician_id': empty: a value is required"),
        ("gp-khan,2027-03-30,08:30,12:30,riverside,no,extra", "row 2: row has 7 cells but the header has 6 columns"),
        ("gp-khan,2027-03-30,08:30,12:30,river side", "row 2, column 'site_id': 'river side' is not a valid id"),
        ("gp-khan,2027-03-30,08:30,12:30,hub", "row 2, column 'site_id': unknown site 'hub'"),
        ("gp-khan,2027-03-30,12:30,08:30,riverside", "row 2, column 'end': session ends (08:30) at or before it starts (12:30)"),
        ("gp-khan,2027-03-30,12:00,13:00,riverside", "row 2: overlaps another session of 'gp-khan' on 2027-03-30: sessions[16] (08:30-12:30 at riverside)"),
    ],
)
@pytest.mark.hazard("HAZ-010")
def test_malformed_session_rows_name_file_row_and_column(tmp_path: Path, row: str, expected: str) -> None:
    rota = write(tmp_path, "rota.csv", "clinician_id,date,start,end,site_id,on_bank_holiday\n" + row + "\n")
    only(texts(TUTORIAL, sessions_csv=rota), f"rota.csv: {expected}")


def test_missing_and_unknown_session_columns(tmp_path: Path) -> None:
    rota = write(tmp_path, "rota.csv", "clinician,date,start,site_id\ngp-khan,2027-03-30,08:30,riverside\n")
    found = texts(TUTORIAL, sessions_csv=rota)
    assert found == [
        "rota.csv: row 1, column 1: unknown column 'clinician'; did you mean 'clinician_id'?",
        "rota.csv: row 1: missing column 'clinician_id'",
        "rota.csv: row 1: missing column 'end'",
    ]


def test_semicolon_separated_csv(tmp_path: Path) -> None:
    rota = write(tmp_path, "rota.csv", "clinician_id;date;start;end;site_id\n")
    assert texts(TUTORIAL, sessions_csv=rota) == [
        "rota.csv: row 1: columns must be separated by commas, not semicolons"]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("P020,asthma,2027-03-22,2027-04-02,riverside:ten,,", "row 2, column 'reachable_sites': 'riverside:ten': travel minutes 'ten' is not a whole number"),
        ("P020,asthma,2027-03-22,2027-04-02,riverside,,", "row 2, column 'reachable_sites': 'riverside': write each reachable site as site:minutes"),
        ("P020,asthma,2027-03-22,2027-04-02,riverside:10,high,", "row 2, column 'priority': 'high' is not a whole number"),
        ("P020,asthma,2027-03-22,2027-04-02,riverside:10,7,", "row 2, column 'priority': must be at most 3 (got 7)"),
        ("P020,asthma,2027-03-22,2027-04-02,riverside:10,,1,5", "row 2: row has 8 cells but the header has 7 columns"),
        ("P020,asthma,2027-03-22,2027-04-02,riverside:10,,\"1,5\"", "row 2, column 'extra_time_factor': '1,5' is not a number: use a decimal point"),
        ("P020,asthma,2027-04-02,2027-03-22,riverside:10,,", "row 2, column 'window_end': window ends (2027-03-22) before it starts (2027-04-02)"),
        ("P020,asthmaa,2027-03-22,2027-04-02,riverside:10,,", "row 2, column 'review_type_id': unknown review type 'asthmaa'; did you mean 'asthma'?"),
        ("P020,asthma,2027-03-22,2027-04-02,elsewhere:10,,", "row 2, column 'reachable_sites': unknown site 'elsewhere'"),
        ("P020,asthma,2027-03-22,,riverside:10,,", "row 2, column 'window_end': empty: a value is required"),
        ("P 20,asthma,2027-03-22,2027-04-02,riverside:10,,", "row 2, column 'patient_id': 'P 20' is not a valid id"),
        ("P020,asthma,2027-03-22,2027-04-02,,,", "row 2, column 'reachable_sites': patient 'P020' has no reachable site"),
    ],
)
@pytest.mark.hazard("HAZ-010")
def test_malformed_due_review_rows_name_file_row_and_column(tmp_path: Path, row: str, expected: str) -> None:
    header = "patient_id,review_type_id,window_start,window_end,reachable_sites,priority,extra_time_factor\n"
    recall = write(tmp_path, "recall.csv", header + row + "\n")
    only(texts(TUTORIAL, due_reviews_csv=recall), f"recall.csv: {expected}")


def test_patient_columns_must_agree_across_rows(tmp_path: Path) -> None:
    recall = write(tmp_path, "recall.csv",
                   "patient_id,review_type_id,window_start,window_end,reachable_sites,wheelchair\n"
                   "P020,asthma,2027-03-22,2027-04-02,riverside:10,yes\n"
                   "\n"
                   "P020,copd,2027-03-22,2027-04-02,,no\n")
    assert texts(TUTORIAL, due_reviews_csv=recall) == [
        "recall.csv: row 4, column 'wheelchair': patient 'P020' has 'yes' on row 2 but 'no' here; "
        "every row of one patient must agree (or leave the cell empty)"
    ]


def test_patient_columns_must_agree_with_the_scenario(tmp_path: Path) -> None:
    recall = write(tmp_path, "recall.csv",
                   "patient_id,review_type_id,window_start,window_end,reachable_sites,priority\n"
                   "P002,smr,2027-03-22,2027-04-02,riverside:25,2\n"
                   "P002,ckd,2027-03-22,2027-04-02,riverside:40,\n")
    assert texts(TUTORIAL, due_reviews_csv=recall) == [
        "recall.csv: row 3, column 'reachable_sites': patient 'P002' already has reachable_sites = "
        "'riverside:25' in the scenario, not 'riverside:40'; leave the cell empty or make them agree"
    ]


def test_unknown_boolean_and_missing_columns_in_due_reviews(tmp_path: Path) -> None:
    recall = write(tmp_path, "recall.csv",
                   "patient_id,review_type_id,window_start,wheelchair,nhs_number\n"
                   "P020,asthma,2027-03-22,maybe,4857773456\n")
    assert texts(TUTORIAL, due_reviews_csv=recall) == [
        "recall.csv: row 1, column 5: unknown column 'nhs_number'; known columns: "
        + ", ".join(sorted(DUE_REVIEWS_COLUMNS)[:12]) + ", ...",
        "recall.csv: row 1: missing column 'window_end'",
    ]
    recall = write(tmp_path, "recall2.csv",
                   "patient_id,review_type_id,window_start,window_end,wheelchair\n"
                   "P020,asthma,2027-03-22,2027-04-02,maybe\n")
    assert texts(TUTORIAL, due_reviews_csv=recall) == [
        "recall2.csv: row 2, column 'wheelchair': 'maybe' is not a yes/no value: use true/false, "
        "yes/no, y/n or 1/0"
    ]


def test_problems_in_every_file_are_reported_together(tmp_path: Path) -> None:
    scenario_text = TUTORIAL.read_text().replace("role: hca,", "role: hcaa,")
    main = write(tmp_path, "practice.yaml", scenario_text)
    rota = write(tmp_path, "rota.csv", "clinician_id,date,start,end,site_id\n"
                 "gp-khan,2027-03-30,13:00,17:00,riverside\n"
                 "gp-khan,2027-03-31,13:00,7:60,riverside\n")
    recall = write(tmp_path, "recall.csv", "patient_id,review_type_id,window_start,window_end\n"
                   "P001,asthma,2027-03-22,2027-13-01\n")
    found = texts(main, sessions_csv=rota, due_reviews_csv=recall)
    assert [t.split(":")[0] for t in found] == ["practice.yaml", "rota.csv", "recall.csv"]
    assert found[1] == "rota.csv: row 3, column 'end': '7:60' is a time outside the day: use 00:00 to 23:59"
    assert found[2] == ("recall.csv: row 2, column 'window_end': '2027-13-01' is not a real date "
                        "(there is no month 13)")


def test_missing_csv_file(tmp_path: Path) -> None:
    assert texts(TUTORIAL, sessions_csv=tmp_path / "rota.csv") == [
        "rota.csv: cannot read the file: No such file or directory"]


def test_csv_files_are_read_even_when_the_scenario_cannot_be(tmp_path: Path) -> None:
    rota = write(tmp_path, "rota.csv", "clinician_id,date,start,end,site_id\nx,2027-03-30,8,9,s\n")
    found = texts(tmp_path / "missing.yaml", sessions_csv=rota)
    assert found[0].startswith("missing.yaml: cannot read the file")
    assert "rota.csv: row 2, column 'start': '8' is not a time: write HH:MM, e.g. 08:30" in found


def test_merge_csv_works_on_text_and_does_not_modify_its_input() -> None:
    data = tutorial()
    before = copy.deepcopy(data)
    merged = merge_csv(data, SESSIONS_CSV, None, sessions_source="upload.csv")
    assert data == before
    assert merged.problems == []
    assert len(merged.data["sessions"]) == 33
    assert merged.data["sessions"][30] == {
        "clinician_id": "gp-khan", "date": dt.date(2027, 4, 5), "start": dt.time(8, 30),
        "end": dt.time(12, 30), "site_id": "riverside"}
    assert merged.origins[("sessions", 30)].row == 2
    assert merged.origins[("sessions", 30)].source == "upload.csv"


def test_csv_readers_on_their_own() -> None:
    rows, found = read_sessions_csv(SESSIONS_CSV + "gp-khan,2027-04-05,08:30,noon,riverside,\n", "r.csv")
    assert [row.row for row in rows] == [2, 3, 4]
    assert [str(p) for p in found] == ["r.csv: row 5, column 'end': 'noon' is not a time: write HH:MM, e.g. 08:30"]
    rows, found = read_due_reviews_csv(DUE_CSV, "d.csv")
    assert found == [] and rows[1].values["reachable_sites"] == [{"site_id": "riverside", "travel_minutes": 15}]
    assert rows[1].values["wheelchair"] is True and rows[1].values["extra_time_factor"] == 1.5


def test_scenario_from_text_with_uploaded_csv() -> None:
    scenario = scenario_from_text(
        TUTORIAL.read_text(), "upload.yaml",
        sessions_csv_text="clinician_id,date,start,end,site_id\ngp-khan,30/03/2027,13:00,17:00,riverside\n",
    )
    assert scenario.sessions[-1].date == dt.date(2027, 3, 30)
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(tutorial(), "api", due_reviews_csv_text="patient_id\n", due_reviews_source="web.csv")
    assert "web.csv: row 1: missing column 'review_type_id'" in str(info.value)


def test_csv_header_row_only_and_empty_csv(tmp_path: Path) -> None:
    assert len(load_scenario(TUTORIAL, sessions_csv=write(tmp_path, "h.csv", ",".join(SESSIONS_COLUMNS) + "\n")).sessions) == 30
    assert texts(TUTORIAL, sessions_csv=write(tmp_path, "e.csv", "")) == [
        "e.csv: row 1: no header row: the first row must be clinician_id,date,start,end,site_id"]


# --- fixture files on disk --------------------------------------------------------------------

def test_bad_fixture_files() -> None:
    found = texts(BAD / "clinic.yaml", sessions_csv=BAD / "rota.csv", due_reviews_csv=BAD / "recall.csv")
    expected = (BAD / "expected.txt").read_text().splitlines()
    assert found == expected


# --- schema and docs --------------------------------------------------------------------------

def test_json_schema() -> None:
    schema = scenario_json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"sites", "patients", "horizon_start"} <= set(schema["properties"])
    assert set(schema["required"]) >= {"name", "horizon_start", "horizon_end", "sites"}
    assert "Patient" in schema["$defs"]
    json.dumps(schema)  # serialisable


def _models() -> list[type[BaseModel]]:
    return [v for v in vars(domain).values()
            if isinstance(v, type) and issubclass(v, BaseModel) and v not in (BaseModel, domain.Strict)]


def test_docs_describe_every_field_and_csv_column() -> None:
    doc = (ROOT / "docs" / "scenario-format.md").read_text()
    for model in _models():
        assert f"### {model.__name__}" in doc, model.__name__
        section = doc.split(f"### {model.__name__}", 1)[1].split("\n### ", 1)[0]
        for name in model.model_fields:
            assert f"| `{name}` |" in section, f"{model.__name__}.{name}"
    for column in (*SESSIONS_COLUMNS, *DUE_REVIEWS_COLUMNS):
        assert f"`{column}`" in doc, column
    for role in get_args(domain.Role):
        assert role in doc, role


# --- robustness: never a traceback ------------------------------------------------------------

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["25:00", "08:30", "2027-02-30", "22/03/2027", "riverside", "gp"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            found += _paths(item, (*prefix, index))
    return found


TUTORIAL_PATHS = [p for p in _paths(tutorial()) if p]


def _step(container: Any, key: Any) -> tuple[bool, Any]:
    """(found, child) for one step of a path, whatever shape an earlier mutation left behind.

    A path is taken from the untouched tutorial, but an earlier mutation may have turned a
    mapping into a list, a list into a mapping, or either into a scalar. A string key into a list
    or an index into a mapping simply finds nothing (comparing them crashed this helper).
    """
    if isinstance(container, dict):
        return key in container, container.get(key)
    if isinstance(container, list) and isinstance(key, int) and not isinstance(key, bool):
        return (0 <= key < len(container), container[key] if 0 <= key < len(container) else None)
    return False, None


def _mutate(data: Any, path: tuple, value: Any, delete: bool) -> None:
    """Set (or, in a mapping, delete) the item at `path` if the path still leads somewhere."""
    target = data
    for key in path[:-1]:
        found, target = _step(target, key)
        if not found:
            return
    key = path[-1]
    if isinstance(target, dict):
        if delete:
            target.pop(key, None)
        else:
            target[key] = value
    elif _step(target, key)[0]:  # an index inside a list
        target[key] = value


def test_mutation_helper_copes_with_any_shape() -> None:
    # The shapes a mutation can leave behind: the path then leads nowhere, and nothing changes.
    for shape in ([1, 2], {"0": 1}, "text", 3, None, [], {}):
        data = {"solver": shape}
        _mutate(data, ("solver", "seed"), 7, False)
        _mutate(data, ("solver", 0, "seed"), 7, True)
        _mutate(data, ("solver", 5), 7, False)
        _mutate(data, ("solver", "seed", "inner"), 7, False)  # a name into a list mid-path
        assert data == {"solver": shape}
    data = {"patients": [{"id": "P1"}]}
    _mutate(data, ("patients", 0, "id"), "P2", False)
    _mutate(data, ("patients", 1), "nobody", False)  # past the end: no-op, never an append
    assert data == {"patients": [{"id": "P2"}]}
    _mutate(data, ("patients", 0, "id"), None, True)
    assert data == {"patients": [{}]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(TUTORIAL_PATHS), JUNK, st.booleans()), min_size=1, max_size=4))
# The case that made this test flaky: a patient (a mapping) becomes a list, then a later
# mutation walks through it by field name (the old helper compared 'due_reviews' < 2).
@example([(("patients", 0), [1, 2], False), (("patients", 0, "due_reviews", 0), "x", False)])
def test_any_mutation_gives_problems_not_a_traceback(mutations: list) -> None:
    data = tutorial()
    for path, value, delete in mutations:
        _mutate(data, path, value, delete)
    try:
        scenario_from_dict(data, "fuzz.yaml")
    except ScenarioError as error:
        assert error.problems and all(isinstance(p, Problem) for p in error.problems)


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:,-{}[]\n #'\"\t0129/&*!|>")), max_size=60))
def test_any_text_gives_problems_not_a_traceback(text: str) -> None:
    for source in ("fuzz.yaml", "fuzz.json"):
        with pytest.raises(ScenarioError):
            scenario_from_text(text, source)
    merge_csv({}, text, text)


def _worked_example() -> str:
    doc = (ROOT / "docs" / "scenario-format.md").read_text()
    section = doc.split("## Worked example", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_documented_worked_example_loads_and_fails_as_documented(tmp_path: Path) -> None:
    text = _worked_example()
    scenario = load_scenario(write(tmp_path, "example.yaml", text))
    assert [p.id for p in scenario.patients] == ["P001", "P002"]
    lines = text.rstrip("\n").split("\n")
    lines[-1] = lines[-1].replace("window_end: 2027-03-26", "window_end: 2027-03-12")
    broken = "\n".join(lines) + "\n"
    recall = write(tmp_path, "recall.csv",
                   "patient_id,review_type_id,window_start,window_end\nP003,copd,22/03/2027,26/03/2027\n")
    found = texts(write(tmp_path, "example.yaml", broken), due_reviews_csv=recall)
    doc = (ROOT / "docs" / "scenario-format.md").read_text()
    assert len(found) == 2
    for line in found:
        assert line in doc, line
