"""The command line as a user runs it: a real process, real files, exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario
from scheduler.plan import Plan
from scheduler.scenario_io import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "sample_rosters" / "tutorial.yaml"


DATABASE = Path(tempfile.mkdtemp(prefix="onevisit-cli-")) / "onevisit.db"


def onevisit(*args: str) -> subprocess.CompletedProcess:
    """The `onevisit` console script (api.cli), as a real process, on a throwaway SQLite file.

    Plans solve with one worker unless a test says otherwise: the machine running the tests has
    two cores, shared with whatever else runs."""
    if args[:1] == ("plan",) and "--workers" not in args:
        args = (*args, "--workers", "1")
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{DATABASE}"},
    )


def checked_plan_file(plan_json: Path, scenario: Path, **csvs: Path) -> Plan:
    """The plan a run wrote, after the independent checker (in this process) found nothing wrong."""
    plan = Plan.model_validate_json(plan_json.read_text())
    report = check_plan(load_scenario(scenario, **csvs), plan)
    assert report.ok, format_report(report)
    return plan


def test_plan_writes_a_checked_plan_and_prints_the_before_and_after(tmp_path):
    result = onevisit("plan", str(TUTORIAL), "--out", str(tmp_path), "--time-limit", "5", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "Saved against the old way" in result.stdout and "Every due review is booked" in result.stdout
    plan = checked_plan_file(tmp_path / "plan.json", TUTORIAL)
    rows = (tmp_path / "appointments.csv").read_text().splitlines()
    assert rows[0].startswith("date,start,end,site_id,room_id,clinician_ids")
    assert len(rows) == 1 + len(plan.appointments)

    checked = onevisit("check", str(TUTORIAL), str(tmp_path / "plan.json"))
    assert checked.returncode == 0 and "no violations" in checked.stdout


def test_check_rejects_a_tampered_plan(tmp_path):
    assert onevisit("plan", str(TUTORIAL), "--out", str(tmp_path), "--time-limit", "5", "--workers", "1").returncode == 0
    # The untampered plan passes, in this process and through `onevisit check`: otherwise the
    # rejection below could be of the plan as written, not of the tampering.
    checked_plan_file(tmp_path / "plan.json", TUTORIAL)
    untampered = onevisit("check", str(TUTORIAL), str(tmp_path / "plan.json"))
    assert untampered.returncode == 0 and "no violations" in untampered.stdout, untampered.stdout
    data = json.loads((tmp_path / "plan.json").read_text())
    first, second = [a for a in data["appointments"] if a["kind"] == "review"][:2]
    assert set(first["clinician_ids"]) != set(second["clinician_ids"]) or first["start"] != second["start"]
    second["clinician_ids"] = first["clinician_ids"]
    second["start"], second["end"], second["date"] = first["start"], first["end"], first["date"]
    (tmp_path / "broken.json").write_text(json.dumps(data))
    result = onevisit("check", str(TUTORIAL), str(tmp_path / "broken.json"))
    assert result.returncode == 1
    assert "clinician_double_booked" in result.stdout
    assert first["id"] in result.stdout or second["id"] in result.stdout


def test_bad_input_lists_every_problem_exits_2_and_writes_nothing(tmp_path):
    data = yaml.safe_load(TUTORIAL.read_text())
    data["patients"][0]["due_reviews"][0]["window_end"] = "2027-03-01"  # before it starts
    data["patients"][1]["named_clinician_id"] = "dr-nobody"
    data["sessions"][0]["start"] = "25:00"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    result = onevisit("plan", str(bad), "--out", str(out))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "bad.yaml" in result.stderr and "dr-nobody" in result.stderr
    assert "window_end" in result.stderr and "sessions[0].start" in result.stderr
    assert not out.exists()


def test_missing_file_is_a_clear_error(tmp_path):
    result = onevisit("plan", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "nope.yaml" in result.stderr and "Traceback" not in result.stderr


def test_sessions_csv_adds_roster_sessions(tmp_path):
    csv = tmp_path / "extra.csv"
    csv.write_text("clinician_id,date,start,end,site_id\ndsn-patel,2027-04-01,14:00,18:00,riverside\n")
    result = onevisit("plan", str(TUTORIAL), "--out", str(tmp_path / "out"), "--sessions-csv", str(csv),
                      "--time-limit", "5", "--workers", "1")
    assert result.returncode == 0, result.stderr
    checked_plan_file(tmp_path / "out" / "plan.json", TUTORIAL, sessions_csv=csv)
    bad = tmp_path / "bad.csv"
    bad.write_text("clinician_id,date,start,end,site_id\ndsn-patel,2027-04-01,2pm,18:00,riverside\n")
    result = onevisit("plan", str(TUTORIAL), "--out", str(tmp_path / "out2"), "--sessions-csv", str(bad))
    assert result.returncode == 2 and "bad.csv" in result.stderr and "row 2" in result.stderr


def test_bad_solver_options_are_refused_before_planning(tmp_path):
    result = onevisit("plan", str(TUTORIAL), "--out", str(tmp_path / "out"), "--workers", "0", "--time-limit", "-1")
    assert result.returncode == 2 and "--workers" in result.stderr and "--time-limit" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_check_reads_the_same_csv_imports_as_plan(tmp_path):
    due = tmp_path / "due.csv"
    due.write_text("patient_id,review_type_id,window_start,window_end,reachable_sites\n"
                   "P900,asthma,2027-03-22,2027-04-02,riverside:7\n")
    out = tmp_path / "out"
    assert onevisit("plan", str(TUTORIAL), "--out", str(out), "--due-csv", str(due), "--time-limit", "5",
                    "--workers", "1").returncode == 0
    assert "P900" in (out / "plan.json").read_text()
    checked_plan_file(out / "plan.json", TUTORIAL, due_reviews_csv=due)
    assert onevisit("check", str(TUTORIAL), str(out / "plan.json"), "--due-csv", str(due)).returncode == 0
    assert onevisit("check", str(TUTORIAL), str(out / "plan.json")).returncode == 1


def test_schema_is_the_scenario_json_schema():
    result = onevisit("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"patients", "sessions", "review_types"} <= set(schema["properties"])


def test_generate_writes_a_loadable_scenario(tmp_path):
    out = tmp_path / "gen.yaml"
    result = onevisit("generate", "practice", "--seed", "4", "--start", "2027-05-03", "--weeks", "2",
                      "--patients", "30", "--out", str(out))
    assert result.returncode == 0, result.stderr
    scenario = load_scenario(out)
    assert isinstance(scenario, Scenario) and len(scenario.patients) == 30
    assert onevisit("generate", "clinic", "--out", str(out)).returncode == 2


def test_plan_is_kept_in_the_database_and_served_to_a_key_of_the_local_organisation(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.config import Settings

    url = f"sqlite:///{tmp_path / 'kept.db'}"
    result = onevisit("plan", str(TUTORIAL), "--out", str(tmp_path / "out"), "--time-limit", "3",
                      "--database-url", url)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "Saved in" in said and "plan 1 of this scenario" in said
    checked_plan_file(tmp_path / "out" / "plan.json", TUTORIAL)
    again = onevisit("plan", str(TUTORIAL), "--out", str(tmp_path / "out"), "--time-limit", "3", "--database-url", url)
    said = " ".join(again.stdout.split())
    assert "version 1," in said and "plan 2 of this scenario" in said  # same scenario, so no new version
    key = onevisit("keys", "create", "--role", "planner", "--database-url", url)
    assert key.returncode == 0 and key.stdout.startswith("ov_")
    written = checked_plan_file(tmp_path / "out" / "plan.json", TUTORIAL)
    with TestClient(create_app(Settings(database_url=url), run_jobs=False)) as client:
        headers = {"Authorization": f"Bearer {key.stdout.strip()}"}
        plans = client.get("/v1/plans", headers=headers).json()["items"]
        assert [p["number"] for p in plans] == [2, 1]
        stored = client.get(f"/v1/plans/{plans[0]['id']}/document", headers=headers).json()
        assert Plan.model_validate(stored) == written
    assert onevisit("keys", "create", "--role", "boss", "--database-url", url).returncode == 2


def test_publish_and_ics_write_calendar_files_for_the_newest_plan(tmp_path):
    import icalendar

    url = f"sqlite:///{tmp_path / 'cal.db'}"
    assert onevisit("ics", "--database-url", url).returncode == 2  # nothing planned yet
    assert onevisit("plan", str(TUTORIAL), "--out", str(tmp_path / "out"), "--time-limit", "3",
                    "--database-url", url).returncode == 0
    unpublished = onevisit("ics", "--database-url", url, "--out", str(tmp_path / "cal"))
    assert unpublished.returncode == 2 and "onevisit publish" in unpublished.stdout
    published = onevisit("publish", "--database-url", url)
    assert published.returncode == 0 and "new" in published.stdout
    written = onevisit("ics", "--database-url", url, "--out", str(tmp_path / "cal"))
    assert written.returncode == 0, written.stderr
    plan = checked_plan_file(tmp_path / "out" / "plan.json", TUTORIAL)
    invites = sorted((tmp_path / "cal" / "invites").glob("*.ics"))
    assert len(invites) == len(plan.visits)
    starts = set()
    for path in invites:
        cal = icalendar.Calendar.from_ical(path.read_bytes())
        assert str(cal["METHOD"]) == "REQUEST"
        (event,) = cal.walk("VEVENT")
        starts.add(event.decoded("DTSTART"))
    assert starts == {v.start for v in plan.visits}
    scenario = load_scenario(TUTORIAL)
    assert {p.stem for p in (tmp_path / "cal" / "rooms").glob("*.ics")} == {r.id for r in scenario.rooms}
    assert onevisit("publish", "--database-url", url).returncode == 2  # already the published plan


def _saved_plan_id(result: subprocess.CompletedProcess) -> str:
    import re

    assert result.returncode == 0, result.stderr
    return re.search(r"plan ([0-9a-f]{32})", " ".join(result.stdout.split()))[1]


def test_ics_after_publishing_an_earlier_plan_again_uses_that_publication(tmp_path):
    import icalendar

    url = f"sqlite:///{tmp_path / 'again.db'}"
    fewer = yaml.safe_load(TUTORIAL.read_text())
    fewer["patients"] = fewer["patients"][1:]  # the same scenario (same name), one patient fewer
    (tmp_path / "fewer.yaml").write_text(yaml.safe_dump(fewer))
    plan_a = _saved_plan_id(onevisit("plan", str(TUTORIAL), "--out", str(tmp_path / "a"), "--time-limit", "3",
                                     "--database-url", url))
    plan_b = _saved_plan_id(onevisit("plan", str(tmp_path / "fewer.yaml"), "--out", str(tmp_path / "b"),
                                     "--time-limit", "3", "--database-url", url))
    assert onevisit("publish", plan_a, "--database-url", url).returncode == 2  # version 1 of 2: confirm first
    for plan_id in (plan_a, plan_b, plan_a):
        confirm = ["--confirm-scenario-version", "1"] if plan_id == plan_a else []
        assert onevisit("publish", plan_id, *confirm, "--database-url", url).returncode == 0
    written = onevisit("ics", plan_a, "--database-url", url, "--out", str(tmp_path / "cal"))
    assert written.returncode == 0, written.stderr
    plan = checked_plan_file(tmp_path / "a" / "plan.json", TUTORIAL)
    checked_plan_file(tmp_path / "b" / "plan.json", tmp_path / "fewer.yaml")
    invites = {}
    for path in (tmp_path / "cal" / "invites").glob("*.ics"):
        (event,) = icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT")
        invites[str(event["UID"])] = int(event["SEQUENCE"])
    assert len(invites) == len(plan.visits)  # the latest publication's events only
    for path in (tmp_path / "cal" / "rooms").glob("*.ics"):
        for event in icalendar.Calendar.from_ical(path.read_bytes()).walk("VEVENT"):
            assert invites.get(str(event["UID"])) == int(event["SEQUENCE"])  # never a cancelled event


def test_a_long_scenario_name_is_still_found_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'long.db'}"
    scenario = yaml.safe_load(TUTORIAL.read_text())
    scenario["name"] = "Elmfield Surgery long-term conditions month " + "x" * 250
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(scenario))
    for number in (1, 2):
        result = onevisit("plan", str(tmp_path / "long.yaml"), "--out", str(tmp_path / "out"), "--time-limit", "2",
                          "--database-url", url)
        said = " ".join(result.stdout.split())
        assert result.returncode == 0 and "version 1," in said and f"plan {number} of this scenario" in said, said
        checked_plan_file(tmp_path / "out" / "plan.json", tmp_path / "long.yaml")
