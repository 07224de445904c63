"""`onevisit replan`, `diff`, and PLAN given as a file or a stored id, as a user runs them: real
processes, real files, a real SQLite database (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from scheduler.check import check_plan, format_report
from scheduler.diff import PlanDiff
from scheduler.plan import Plan
from scheduler.scenario_io import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "sample_rosters" / "tutorial.yaml"
DISRUPTIONS = ROOT / "sample_rosters" / "tutorial-disruptions.yaml"
AS_OF = "2027-03-22T08:00"


def run(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin",
                                            "DATABASE_URL": f"sqlite:///{tmp / 'onevisit.db'}"})


def planned(tmp: Path) -> Path:
    out = tmp / "v1"
    result = run(tmp, "plan", str(TUTORIAL), "--out", str(out), "--time-limit", "3", "--workers", "1", "--seed", "2")
    assert result.returncode == 0, result.stderr
    return out


def test_replan_writes_a_checked_plan_its_scenario_and_the_diff(tmp_path):
    v1 = planned(tmp_path)
    first = Plan.model_validate_json((v1 / "plan.json").read_text())
    assert first.stored is not None and first.stored.scenario_version == 1
    assert load_scenario(v1 / "scenario.yaml") == load_scenario(TUTORIAL)  # the plan leads back to its scenario

    v2 = tmp_path / "v2"
    result = run(tmp_path, "replan", str(v1 / "plan.json"), "--disruptions", str(DISRUPTIONS), "--out", str(v2),
                 "--as-of", AS_OF, "--time-limit", "5", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in v2.iterdir()} == {"plan.json", "scenario.yaml", "diff.json", "appointments.csv"}
    scenario = load_scenario(v2 / "scenario.yaml")
    plan = Plan.model_validate_json((v2 / "plan.json").read_text())
    report = check_plan(scenario, plan)
    assert report.ok, format_report(report)
    # the disruptions are in the scenario's next version, and the plan belongs to it
    assert scenario.closures[0].room_id == "rs-consult1" and "P009" in {p.id for p in scenario.patients}
    assert plan.stored.scenario_id == first.stored.scenario_id and plan.stored.scenario_version == 2
    assert plan.replan.previous_plan_id == first.stored.plan_id and len(plan.replan.disruptions) == 4
    diff = PlanDiff.model_validate_json((v2 / "diff.json").read_text())
    assert diff.old_plan_id == first.stored.plan_id and diff.new_plan_id == plan.stored.plan_id
    statuses = {p.patient_id: p.status for p in diff.patients}
    assert statuses["P009"] == "newly_booked"
    ellis_thu_fri = {a.patient_id for a in first.appointments
                     if "pn-ellis" in a.clinician_ids and a.date.isoformat() in ("2027-03-25", "2027-03-26")}
    assert ellis_thu_fri <= {p for p, s in statuses.items() if s in ("moved", "cancelled")}
    assert "P009" in result.stdout and "clinician_absence" in result.stdout

    # a PLAN is a file, its folder or a stored id, for every command that takes one
    assert run(tmp_path, "check", str(v2)).returncode == 0
    assert run(tmp_path, "check", plan.stored.plan_id).returncode == 0
    again = run(tmp_path, "diff", first.stored.plan_id, str(v2 / "plan.json"), "--out", str(tmp_path / "d.json"))
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "d.json").read_text()) == json.loads((v2 / "diff.json").read_text())
    published = run(tmp_path, "publish", str(v2))
    assert published.returncode == 0 and plan.stored.plan_id in published.stdout

    # re-plans chain: the stored id of the re-plan, re-planned again, makes version 3
    v3 = tmp_path / "v3"
    absent = tmp_path / "gp.yaml"
    absent.write_text(yaml.safe_dump([{"kind": "clinician_absence", "clinician": "gp-khan",
                                       "start": "2027-03-31T00:00:00", "end": "2027-04-01T00:00:00"}]))
    chained = run(tmp_path, "replan", plan.stored.plan_id, "--disruptions", str(absent), "--out", str(v3),
                  "--as-of", AS_OF, "--time-limit", "5", "--workers", "1")
    assert chained.returncode == 0, chained.stderr
    third = Plan.model_validate_json((v3 / "plan.json").read_text())
    assert third.stored.scenario_version == 3 and third.replan.previous_plan_id == plan.stored.plan_id
    assert check_plan(load_scenario(v3 / "scenario.yaml"), third).ok
    assert "P009" in {v.patient_id for v in third.visits}  # version 2's added patient is still there


def test_bad_disruptions_exit_2_naming_the_entry_and_write_nothing(tmp_path):
    v1 = planned(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump([
        {"kind": "clinician_absence", "clinician": "pn-elis", "start": "2027-03-23T00:00:00", "end": "2027-03-24T00:00:00"},
        {"kind": "room_closure", "room": "rs-nurse", "start": "2027-05-01T00:00:00", "end": "2027-05-02T00:00:00"},
    ]))
    out = tmp_path / "v2"
    result = run(tmp_path, "replan", str(v1), "--disruptions", str(bad), "--out", str(out), "--as-of", AS_OF)
    assert result.returncode == 2
    assert "entry 1 (clinician_absence): clinician: unknown clinician 'pn-elis'" in result.stderr
    assert "entry 2 (room_closure): start" in result.stderr and "outside the plan's horizon" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()

    for args, says in ((["--as-of", "next tuesday"], "--as-of"),
                       (["--disruptions", str(tmp_path / "missing.yaml")], "missing.yaml")):
        base = {"--as-of": AS_OF, "--disruptions": str(DISRUPTIONS)}
        base.update(dict(zip(args[::2], args[1::2])))
        flat = [x for pair in base.items() for x in pair]
        result = run(tmp_path, "replan", str(v1), *flat, "--out", str(out))
        assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr
        assert not out.exists()
    unknown = run(tmp_path, "replan", "0123456789abcdef0123456789abcdef", "--disruptions", str(DISRUPTIONS),
                  "--out", str(out))
    assert unknown.returncode == 2 and "neither a plan file nor a plan stored" in unknown.stderr
