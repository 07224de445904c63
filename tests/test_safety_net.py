"""The safety net, proven: a plan that fails the independent checker is never stored or written.

Both paths that keep a plan end in one post-solve step that calls the one gate,
`scheduler.plan_gate.gate_plan`, before anything is kept:
- the service's job: `api.jobs.run_job` -> `api.jobs.keep_checked_plan`;
- the command line: `onevisit plan` and `onevisit replan` (api.cli) -> `api.cli.write_and_keep`
  -> `scheduler.cli.gate_or_exit`, then the database, then `scheduler.cli.write_files`
  (`python -m scheduler.cli plan` reaches the same two through `write_checked`).
The tests feed those post-solve steps a real solved plan, tampered so that the checker rejects it,
and show that the job fails with a reason and stores nothing and the command line exits 1 and
writes nothing. Separate tests run the real paths (real CP-SAT solve, real database, real files)
with spies that record and call through, showing both reach the same gate before anything is kept.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select, update
from typer.testing import CliRunner

import api.cli
import api.jobs
import scheduler.cli
from api.db import make_engine, make_sessionmaker, transaction
from api.models import AppointmentClinician, AppointmentRecord, Job, PlanRecord, ScenarioVersion
from api.store import plan_of, scenario_of
from scheduler import plan_gate
from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario
from scheduler.plan import Plan
from scheduler.planner import make_plan
from tests.api_support import auth, make_keys, running_service, tutorial

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL_FILE = ROOT / "sample_rosters" / "tutorial.yaml"
TIME_LIMIT = 2.0  # the tutorial solves to proven optimality well inside this on one worker


@functools.cache
def _solved() -> tuple[Scenario, Plan]:
    """The tutorial (2 s, one worker, seed 1) solved for real once, and checked clean first."""
    scenario = Scenario.model_validate(tutorial(time_limit=TIME_LIMIT))
    plan = make_plan(scenario)
    report = check_plan(scenario, plan)
    assert report.ok, format_report(report)
    return scenario, plan


def _double_book(plan: Plan) -> str:
    """Put the second review on the first review's clinician and time: a hard rule broken."""
    first, second = [a for a in plan.appointments if a.kind == "review"][:2]
    second.clinician_ids = list(first.clinician_ids)
    second.start, second.end, second.date = first.start, first.end, first.date
    return "clinician_double_booked"


def _flip_a_saving(plan: Plan) -> str:
    """Only the before/after figures are wrong: the gate covers the comparison too."""
    assert plan.comparison is not None and plan.comparison.blood_draws_saved > 0
    plan.comparison.blood_draws_saved = -plan.comparison.blood_draws_saved
    return "comparison.blood_draws_saved"


TAMPERINGS = [pytest.param(_double_book, id="double-booked"), pytest.param(_flip_a_saving, id="comparison-sign")]


def _tampered(tamper: Callable[[Plan], str]) -> tuple[Scenario, Plan, Plan, str]:
    """(scenario, good plan, tampered copy, text the checker's report must contain)."""
    scenario, good = _solved()
    bad = good.model_copy(deep=True)
    says = tamper(bad)
    report = check_plan(scenario, bad)
    assert not report.ok and says in format_report(report), format_report(report)
    return scenario, good, bad, says


def _spy(monkeypatch, owner, name: str, before: Callable[[], object] | None = None) -> list[dict]:
    """Replace owner.name by a wrapper that records each call (and `before()` at that moment)
    and then calls the real function; returns the list of recorded calls."""
    real = getattr(owner, name)
    calls: list[dict] = []

    def spy(*args, **kwargs):
        calls.append({"args": args, "before": before() if before else None})
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def _counts(database_url: str) -> dict[str, int]:
    """Rows of every table a stored plan writes to."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                    for model in (PlanRecord, AppointmentRecord, AppointmentClinician)}
    finally:
        engine.dispose()


def _running_job(client, key: str, database_url: str) -> str:
    """A tutorial scenario and a job for it, claimed as a worker would (status running)."""
    scenario_id = client.post("/v1/scenarios", json=tutorial(time_limit=TIME_LIMIT), headers=auth(key)).json()["id"]
    job_id = client.post(f"/v1/scenarios/{scenario_id}/plans", json={}, headers=auth(key)).json()["id"]
    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="running"))
    engine.dispose()
    return job_id


def _job_scenario(factory, job_id: str) -> Scenario:
    with factory() as session:
        return scenario_of(session.get(ScenarioVersion, session.get(Job, job_id).scenario_version_id))


# --------------------------------------------------------------------------------------------
# The service's job


@pytest.mark.parametrize("tamper", TAMPERINGS)
@pytest.mark.hazard("HAZ-015")
def test_the_job_fails_a_plan_that_fails_the_check_and_stores_nothing(database_url, tamper):
    _, good, bad, says = _tampered(tamper)
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        rejected_job, accepted_job = _running_job(client, key, database_url), _running_job(client, key, database_url)
        engine = make_engine(database_url)
        factory = make_sessionmaker(engine)
        scenario = _job_scenario(factory, rejected_job)

        api.jobs.keep_checked_plan(factory, rejected_job, scenario, bad)
        job = client.get(f"/v1/jobs/{rejected_job}", headers=auth(key)).json()
        assert (job["status"], job["plan_id"]) == ("failed", None), job
        assert job["error"]["code"] == "plan_failed_check"
        assert "not saved" in job["error"]["message"] and says in job["error"]["message"]
        assert _counts(database_url) == {"plans": 0, "appointments": 0, "appointment_clinicians": 0}
        assert client.get("/v1/plans", headers=auth(key)).json()["items"] == []

        # The same step keeps the untampered plan, every appointment of it: the counts above
        # would have seen a stored plan.
        api.jobs.keep_checked_plan(factory, accepted_job, scenario, good)
        job = client.get(f"/v1/jobs/{accepted_job}", headers=auth(key)).json()
        assert job["status"] == "finished" and job["plan_id"], job
        assert _counts(database_url) == {
            "plans": 1, "appointments": len(good.appointments),
            "appointment_clinicians": sum(len(a.clinician_ids) for a in good.appointments)}
        engine.dispose()


@pytest.mark.hazard("HAZ-015")
def test_the_job_worker_gates_the_plan_before_storing_it(database_url, monkeypatch):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        job_id = _running_job(client, key, database_url)
    kept = _spy(monkeypatch, api.jobs, "keep_checked_plan")
    gated = _spy(monkeypatch, plan_gate, "gate_plan", before=lambda: _counts(database_url)["plans"])

    api.jobs.run_job(job_id, database_url)  # the worker's entry point, in this process: a real solve

    assert len(kept) == 1 and len(gated) == 1
    scenario, plan = gated[0]["args"]
    assert gated[0]["before"] == 0  # nothing was stored yet when the gate ran
    assert kept[0]["args"][2:] == (scenario, plan) and kept[0]["args"][3] is plan  # the step gated its own plan
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        job = session.get(Job, job_id)
        assert job.status == "finished", (job.error_code, job.error_message)
        stored = plan_of(session.get(PlanRecord, job.plan_id))
        assert stored.model_copy(update={"stored": None}) == plan  # what was stored is what was gated,
        assert stored.stored.plan_id == job.plan_id  # plus where it is kept
    engine.dispose()


# --------------------------------------------------------------------------------------------
# The command line


def _written(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())} if out.exists() else {}


@pytest.mark.parametrize("tamper", TAMPERINGS)
@pytest.mark.hazard("HAZ-015")
def test_the_command_line_refuses_a_plan_that_fails_the_check_and_writes_nothing(
        database_url, tamper, tmp_path, capsys):
    scenario, good, bad, says = _tampered(tamper)
    kept = tmp_path / "kept"
    api.cli.write_and_keep(scenario, good, kept, database_url, "tutorial.yaml")  # the untampered plan is kept
    before_files, before_rows = _written(kept), _counts(database_url)
    assert set(before_files) == {"plan.json", "appointments.csv", "scenario.yaml"} and before_rows["plans"] == 1
    capsys.readouterr()

    for out in (tmp_path / "fresh", kept):  # a new folder, and one holding an earlier plan
        with pytest.raises(typer.Exit) as stopped:
            api.cli.write_and_keep(scenario, bad, out, database_url, "tutorial.yaml")
        assert stopped.value.exit_code == scheduler.cli.EXIT_INVALID_PLAN == 1
        err = capsys.readouterr().err
        assert "failed the independent check; nothing was written" in err and says in err
    assert not (tmp_path / "fresh").exists()
    assert _written(kept) == before_files  # the earlier plan's files are untouched
    assert _counts(database_url) == before_rows  # and the database holds only the earlier plan


@pytest.mark.hazard("HAZ-015")
def test_both_plan_commands_gate_the_plan_before_writing_or_keeping_it(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'onevisit.db'}"
    out = tmp_path / "out"

    def state() -> tuple[dict[str, bytes], int]:  # files in the current `out`, plans in the database
        return _written(out), _counts(url)["plans"] if (tmp_path / "onevisit.db").exists() else 0

    kept = _spy(monkeypatch, api.cli, "write_and_keep")
    written = _spy(monkeypatch, scheduler.cli, "write_files")
    gated = _spy(monkeypatch, plan_gate, "gate_plan", before=state)
    runner = CliRunner()
    args = [str(TUTORIAL_FILE), "--time-limit", str(TIME_LIMIT), "--workers", "1"]

    result = runner.invoke(api.cli.app, ["plan", *args, "--out", str(out), "--database-url", url])  # `onevisit plan`
    assert result.exit_code == 0, result.output
    assert len(kept) == len(written) == len(gated) == 1
    scenario, plan = gated[0]["args"]
    assert gated[0]["before"] == ({}, 0)  # nothing written, nothing kept when the gate ran
    assert kept[0]["args"][1] is plan and kept[0]["args"][0] is scenario
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        (record,) = session.scalars(select(PlanRecord)).all()
        stored = plan_of(record)  # the gated plan, naming where it is kept
    engine.dispose()
    assert stored.model_copy(update={"stored": None}) == plan and stored.stored.plan_id == record.id
    assert written[0]["args"][1] == stored  # the files are written once it is kept, and say so
    assert Plan.model_validate_json((out / "plan.json").read_text()) == stored

    out = tmp_path / "engine-only"
    result = runner.invoke(scheduler.cli.app, ["plan", *args, "--out", str(out)])  # `python -m scheduler.cli plan`
    assert result.exit_code == 0, result.output
    assert len(written) == len(gated) == 2 and gated[1]["before"][0] == {}
    assert written[1]["args"][1] is gated[1]["args"][1]
    assert json.loads((out / "plan.json").read_text()) == json.loads(gated[1]["args"][1].model_dump_json())

