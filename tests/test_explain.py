"""Why this visit (scheduler/explain, docs/explain.md): hand-built scenarios whose answer is
known, the API route on both databases with organisation isolation, and the command line."""

from __future__ import annotations

import copy
import datetime as dt
import json

from typer.testing import CliRunner

from scheduler.domain import Room, Scenario
from scheduler.explain import ExplainError, explain_patient
from scheduler.generate.files import scenario_yaml
from tests.api_support import auth, make_keys, running_service, solve, tutorial
from tests.builders import BASE, patient, scenario, session, solve_checked

D = dt.date.fromisoformat


def visits_of(plan, pid: str) -> list:
    return [v for v in plan.visits if v.patient_id == pid]


def test_only_day_names_the_window_and_the_roster():
    # Asthma due 22-24 March; the nurse works on the 23rd and the 30th, the GP (not allowed to
    # do asthma) on the 22nd: the 23rd is the only day.
    s = scenario([session("nurse", "2027-03-23"), session("nurse", "2027-03-30"), session("gp", "2027-03-22")],
                 [patient("P1", "asthma", first="2027-03-22", last="2027-03-24")])
    plan = solve_checked(s)
    e = explain_patient(s, plan, "P1")
    assert e.status == "one_visit" and [v.date for v in e.visits] == [D("2027-03-23")]
    codes = {r.code: r for r in e.rules}
    assert codes["due_window"].options_ruled_out == 1  # the 30th
    assert codes["roster"].options_ruled_out == 1  # the 22nd: no nurse
    assert "22 Mar" in codes["due_window"].text and "24 Mar" in codes["due_window"].text
    assert "practice nurse" in codes["roster"].text
    assert e.alternatives == []
    assert {(r.date, r.code) for r in e.ruled_out} == {(D("2027-03-22"), "roster"), (D("2027-03-30"), "due_window")}
    visit = e.visits[0]
    assert visit.clinician_ids == ["nurse"] and "only clinician" in visit.appointments[0].why_clinician
    assert "only day and site" in visit.why[0]
    assert e.change is None and e.seconds < 5


def two_sites(**changes) -> Scenario:
    data = copy.deepcopy(BASE)
    data["sites"].append({"id": "hub", "name": "Hub", "address": "2 Hub Rd, Town, AB1 3CD"})
    data["rooms"].append({"id": "hub-room", "site_id": "hub", "capabilities": ["spirometry", "phlebotomy"]})
    data["sessions"] = [session("nurse", "2027-03-23"), {**session("nurse", "2027-03-24"), "site_id": "hub"}]
    data["patients"] = [patient("P1", "asthma", reachable_sites=[{"site_id": "surgery", "travel_minutes": 10},
                                                                 {"site_id": "hub", "travel_minutes": 40}])]
    data.update(changes)
    return Scenario.model_validate(data)


def test_next_best_is_the_other_site_with_its_extra_travel():
    s = two_sites()
    plan = solve_checked(s)
    e = explain_patient(s, plan, "P1")
    assert [(v.date, v.site_id) for v in e.visits] == [(D("2027-03-23"), "surgery")]
    best = e.alternatives[0]
    assert [(v.date, v.site_id) for v in best.visits] == [(D("2027-03-24"), "hub")]
    assert best.travel_minutes_delta == 2 * (40 - 10)  # both ways, as the objective counts travel
    assert best.delta_by_term == {"travel": 60} and best.cost_delta == 60 and best.trips_delta == 0
    assert "60 more minutes of travel, both ways (30 each way)" in best.summary
    assert any("10 minutes from the patient" in line and "hub (40 min)" in line for line in e.visits[0].why)


def split_scenario(extra_sessions: list[dict] = ()) -> Scenario:
    # Frailty needs the GP (Mondays and Wednesdays), COPD the nurse (Tuesdays and Thursdays).
    sessions = [session("gp", "2027-03-22"), session("gp", "2027-03-24"),
                session("nurse", "2027-03-23"), session("nurse", "2027-03-25"), *extra_sessions]
    return scenario(sessions, [patient("P1", "frailty", "copd")])


def test_split_patient_gets_one_more_session_and_it_really_gives_one_visit():
    s = split_scenario()
    plan = solve_checked(s)
    assert len(visits_of(plan, "P1")) == 2
    e = explain_patient(s, plan, "P1")
    assert e.status == "split" and len(e.visits) == 2
    assert e.change is not None and e.change.kind == "add_session" and e.change.gives_one_visit
    added = e.change.session
    assert added["role"] in ("gp", "practice_nurse") and added["site_id"] == "surgery"
    assert len([v for v in e.change.visits if v.review_ids]) == 1
    assert e.change.delta_by_term.get("visits") == -1000 and e.change.cost_delta < 0
    # Re-plan with the change: one visit, checked.
    again = solve_checked(split_scenario([session(added["clinician_id"], added["date"], added["start"], added["end"])]))
    assert len(visits_of(again, "P1")) == 1
    assert not again.unbooked


def test_unbooked_patient_needs_a_room_with_the_capability():
    rooms = [r for r in BASE["rooms"] if "spirometry" not in r["capabilities"]]
    s = scenario([session("nurse", "2027-03-23")], [patient("P1", "copd")], rooms=rooms)
    plan = solve_checked(s)
    assert [u.reason for u in plan.unbooked] == ["no_room_with_capability"]
    e = explain_patient(s, plan, "P1")
    assert e.status == "unbooked" and e.visits == []
    assert "room_capability" in {r.code for r in e.rules}
    assert e.change is not None and e.change.kind == "add_room" and e.change.gives_one_visit
    assert "spirometry" in e.change.room["capabilities"] and e.change.room["site_id"] == "surgery"
    again = solve_checked(s.model_copy(update={"rooms": [*s.rooms, Room(**e.change.room)]}))
    assert not again.unbooked and len(visits_of(again, "P1")) == 1


def test_a_visit_too_long_for_the_maximum_needs_a_longer_maximum_visit():
    # Frailty (GP, 30 min) and COPD (nurse, 20 min) on the same mornings, but visits of at most
    # 45 minutes: two trips. A 60-minute maximum (50 rounded up to 15) gives one.
    sessions = [session(c, d) for c in ("gp", "nurse") for d in ("2027-03-22", "2027-03-23")]
    rules = {"max_visit_minutes": 45}
    s = scenario(sessions, [patient("P1", "frailty", "copd")], visit_rules=rules)
    plan = solve_checked(s)
    assert len(visits_of(plan, "P1")) == 2
    e = explain_patient(s, plan, "P1")
    assert e.status == "split" and "max_visit_length" in {r.code for r in e.rules}
    assert e.change is not None and e.change.kind == "longer_max_visit" and e.change.max_visit_minutes == 60
    assert all(c.kind == "add_session" and not c.gives_one_visit for c in e.changes_tried[:-1])
    again = solve_checked(scenario(sessions, [patient("P1", "frailty", "copd")], visit_rules={"max_visit_minutes": 60}))
    assert len(visits_of(again, "P1")) == 1


def test_bad_questions_are_refused():
    s = split_scenario()
    plan = solve_checked(s)
    for pid in ("nobody",):
        try:
            explain_patient(s, plan, pid)
        except ExplainError as exc:
            assert "nobody" in str(exc)
        else:
            raise AssertionError("an unknown patient was explained")
    other = scenario([session("nurse", "2027-03-30")], [patient("P1", "asthma")])
    try:
        explain_patient(other, plan, "P1")  # another scenario's plan
    except ExplainError as exc:
        assert "does not match" in str(exc) or "does not read" in str(exc)
    else:
        raise AssertionError("a plan of another scenario was explained")


def test_api_explanation_with_organisation_isolation(database_url):
    keys = make_keys(database_url)
    with running_service(database_url) as client:
        created = client.post("/v1/scenarios", json=tutorial(), headers=auth(keys["manager"]))
        assert created.status_code == 201, created.text
        plan_id = solve(client, keys["manager"], created.json()["id"])
        url = f"/v1/plans/{plan_id}/patients/P002/explanation"
        for role in ("manager", "planner"):
            got = client.get(url, headers=auth(keys[role]))
            assert got.status_code == 200, got.text
            body = got.json()
            assert body["patient_id"] == "P002" and body["visits"] and body["seconds"] < 5
            assert body["rules"] and body["summary"].startswith("P002")
        assert client.get(url, headers=auth(keys["other"])).status_code == 404
        assert client.get(url).status_code == 401
        missing = client.get(f"/v1/plans/{plan_id}/patients/nobody/explanation", headers=auth(keys["manager"]))
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_cli_explains_a_plan_file(tmp_path):
    from api.cli import app

    s = two_sites()
    plan = solve_checked(s)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "plan.json").write_text(plan.model_dump_json(), encoding="utf-8")
    (tmp_path / "scenario.yaml").write_text(scenario_yaml(s), encoding="utf-8")
    runner = CliRunner()
    got = runner.invoke(app, ["explain", str(folder / "plan.json"), "P1", "--scenario",
                              str(tmp_path / "scenario.yaml"), "--json"])
    assert got.exit_code == 0, got.output
    body = json.loads(got.stdout)
    assert body["alternatives"][0]["travel_minutes_delta"] == 60
    (folder / "scenario.yaml").write_text(scenario_yaml(s), encoding="utf-8")  # found beside the plan
    got = runner.invoke(app, ["explain", str(folder), "P1"])
    assert got.exit_code == 0, got.output
    assert "P1" in got.stdout and "Alternatives" in got.stdout and "hub" in got.stdout
    for args, words in ((["explain", str(folder), "nobody"], "nobody"),
                        (["explain", str(tmp_path / "missing.json"), "P1"], "not a plan file"),
                        (["explain", str(folder), "P1", "--scenario", str(tmp_path / "none.yaml")], "none.yaml")):
        got = runner.invoke(app, args)
        assert got.exit_code == 2, (args, got.output)
        assert words in got.output and "Traceback" not in got.output
        assert not isinstance(got.exception, Exception) or isinstance(got.exception, SystemExit)
