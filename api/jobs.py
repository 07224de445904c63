"""Solve jobs off the request path.

The dispatcher (a thread in the service process) claims queued jobs and runs each in its own
spawned process, at most `workers` at once, so the API stays responsive and a cancelled solve
can be stopped outright. The worker writes progress to the job row at most twice a second and
writes the finished plan, with every appointment, in one transaction: a killed or failed solve
leaves no half-written plan. One service process owns solving (further instances run with
ONEVISIT_RUN_JOBS=0 and only serve); on start-up it marks jobs left "running" by a previous
process as failed (`interrupted`).

A re-plan job (one with `base_plan_id`, made by POST /v1/plans/{id}/replan) solves differently:
the request already applied the disruptions and stored the result as the job's scenario version;
the worker applies them again to the base plan (same entries, same `as_of`, same booking
references), checks that this gives exactly that version, and re-plans from the base plan
(`scheduler.replan`). Its plan is gated and stored like any other.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api import audit
from api.db import make_engine, make_sessionmaker, transaction
from api.models import Job, PlanRecord, ScenarioVersion, utcnow
from api.store import add_plan, booking_references, plan_of, scenario_of
from scheduler import plan_gate
from scheduler import replan as replanning
from scheduler.disruptions import disruptions_from_data
from scheduler.domain import Scenario, SolverSettings
from scheduler.plan import Plan
from scheduler.planner import PlanningProgress, make_plan
from scheduler.problems import ScenarioError

log = logging.getLogger("onevisit.jobs")
ACTIVE = ("queued", "running")
PROGRESS_EVERY_SECONDS = 0.5


def _finish(factory: sessionmaker[Session], job_id: str, status: str, code: str | None = None,
            message: str | None = None, only_if: tuple[str, ...] = ACTIVE) -> bool:
    """Move a job to a final state unless it already got there (first writer wins)."""
    with transaction(factory) as session:
        result = session.execute(
            update(Job).where(Job.id == job_id, Job.status.in_(only_if)).values(
                status=status, error_code=code, error_message=message, stage=status,
                finished_at=utcnow(), updated_at=utcnow()))
        return result.rowcount == 1


def keep_checked_plan(factory: sessionmaker[Session], job_id: str, scenario: Scenario, plan: Plan) -> None:
    """The job's post-solve step: gate the plan, then store it on the job in one transaction.

    `scenario` is the job's scenario version as solved; `job_id` a job in status "running".
    A plan that fails the independent check (`scheduler.plan_gate.gate_plan`) ends the job
    "failed" with code `plan_failed_check` and the checker's report as its message, and nothing
    is stored. A job cancelled meanwhile keeps nothing either. Database errors propagate.
    """
    try:
        plan_gate.gate_plan(scenario, plan)
    except plan_gate.PlanRejected as rejected:
        _finish(factory, job_id, "failed", "plan_failed_check",
                "The plan failed the independent check and was not saved:\n" + rejected.details())
        return
    with transaction(factory) as session:
        job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
        if job is None or job.status != "running":
            return  # cancelled while solving: keep nothing
        if job.cancel_requested:  # asked while the plan was being checked: cancel wins
            job.status, job.stage, job.error_code = "cancelled", "cancelled", "cancelled"
            job.error_message = "Cancelled on request."
            job.finished_at = job.updated_at = utcnow()
            return
        version = session.get(ScenarioVersion, job.scenario_version_id)
        record = add_plan(session, version, job.organisation_id, plan, job_id=job.id)
        job.status, job.stage, job.plan_id = "finished", "done", record.id
        job.objective, job.bound = plan.solver.objective, plan.solver.best_bound
        job.elapsed_seconds = plan.solver.wall_seconds
        job.reviews_booked = plan.metrics.reviews_booked
        job.patients_booked = plan.metrics.patients_fully_booked
        job.finished_at = job.updated_at = utcnow()


class ReplanUnusable(Exception):
    """A re-plan job whose inputs no longer hold; `code` and the message go on the job."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ReplanInputs:
    """What a re-plan job re-plans: the base plan, its scenario version, the entries and when."""

    previous: Plan
    base_scenario: Scenario
    disruptions: list
    as_of: dt.datetime
    references: dict[str, str]


def replan_inputs(session: Session, job: Job) -> ReplanInputs:
    """Read a re-plan job's inputs; ReplanUnusable when the base plan was discarded meanwhile."""
    base = session.get(PlanRecord, job.base_plan_id)
    if base is None or base.organisation_id != job.organisation_id:
        raise ReplanUnusable("base_plan_missing", f"The plan re-planned ({job.base_plan_id}) no longer exists; "
                             "nothing was planned.")
    return ReplanInputs(
        previous=plan_of(base), base_scenario=scenario_of(session.get(ScenarioVersion, base.scenario_version_id)),
        disruptions=disruptions_from_data(job.disruptions or [], "disruptions"), as_of=job.as_of,
        references=booking_references(session, job.scenario_id))


def no_longer_apply(exc: ScenarioError) -> ReplanUnusable:
    return ReplanUnusable("invalid_disruptions", "The disruptions no longer apply to the plan:\n" + "\n".join(
        f"{p.location}: {p.message}" for p in exc.problems))


def prepare_again(inputs: ReplanInputs, scenario: Scenario) -> replanning.Prepared:
    """The request's `prepare`, done again in the worker with the same entries, moment and
    references; it must give exactly the scenario version the request stored (`scenario`)."""
    try:
        prepared = replanning.prepare(inputs.base_scenario, inputs.previous, inputs.disruptions,
                                      as_of=inputs.as_of, references=inputs.references)
    except ScenarioError as exc:  # bookings re-published meanwhile, so a reference names another visit
        raise no_longer_apply(exc) from None
    if prepared.scenario.model_dump(mode="json") != scenario.model_dump(mode="json"):
        raise ReplanUnusable("replan_changed", "Applying the disruptions again gave a different scenario "
                             "from the version stored when the re-plan was asked for; ask again.")
    return replace(prepared, scenario=scenario)


def run_job(job_id: str, database_url: str) -> None:
    """Entry point of a worker process: solve (or, for a job with a base plan, re-plan it), then
    gate and store the plan (`keep_checked_plan`), or record the failure on the job. Its writes
    are audited as the job's (api/audit.py); the request that queued it is audited too."""
    with audit.begin("job", job_id, "job", "solve job"):
        _run_job(job_id, database_url)


def _run_job(job_id: str, database_url: str) -> None:
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    try:
        with factory() as session:
            job = session.get(Job, job_id)
            if job is None or job.status != "running":
                return
            version = session.get(ScenarioVersion, job.scenario_version_id)
            scenario = scenario_of(version)
            settings = SolverSettings.model_validate(job.settings)
            base_plan_id = job.base_plan_id
            inputs = replan_inputs(session, job) if base_plan_id else None
        last = {"at": 0.0, "stage": ""}

        def on_progress(p: PlanningProgress) -> None:
            now = time.monotonic()
            if p.stage == last["stage"] and now - last["at"] < PROGRESS_EVERY_SECONDS:
                return
            last.update(at=now, stage=p.stage)
            with transaction(factory) as session:
                session.execute(update(Job).where(Job.id == job_id, Job.status == "running").values(
                    stage=p.stage, elapsed_seconds=round(p.elapsed_seconds, 2), objective=p.objective,
                    bound=p.bound, reviews_booked=p.reviews_booked, patients_booked=p.patients_booked,
                    updated_at=utcnow()))

        if inputs is None:
            plan = make_plan(scenario, settings, on_progress=on_progress)
        else:
            prepared = prepare_again(inputs, scenario)
            try:
                plan = replanning.replan(prepared, inputs.previous, settings, previous_plan_id=base_plan_id,
                                         on_progress=on_progress)
            except ScenarioError as exc:  # a pinned or moved booking that no longer holds
                raise no_longer_apply(exc) from None
        keep_checked_plan(factory, job_id, scenario, plan)
    except ReplanUnusable as exc:
        _finish(factory, job_id, "failed", exc.code, str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        _finish(factory, job_id, "failed", "solve_failed", f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()


def recover_interrupted(factory: sessionmaker[Session]) -> int:
    """Jobs a previous service process left running can never finish: say so."""
    with transaction(factory) as session:
        result = session.execute(update(Job).where(Job.status == "running").values(
            status="failed", stage="failed", error_code="interrupted",
            error_message="The service stopped while this plan was solving; start the plan again.",
            finished_at=utcnow(), updated_at=utcnow()))
        return result.rowcount


class Dispatcher:
    """Starts queued jobs in worker processes, reaps them and carries out cancellations."""

    STOP_GRACE_SECONDS = 5.0  # a worker's time to exit after SIGTERM at shutdown, before SIGKILL

    def __init__(self, database_url: str, factory: sessionmaker[Session], workers: int, poll_seconds: float):
        self.database_url, self.factory = database_url, factory
        self.workers, self.poll_seconds = workers, poll_seconds
        self.running: dict[str, BaseProcess] = {}
        self._context = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="onevisit-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching and end every running solve, as at service shutdown (SIGTERM).

        Each worker gets SIGTERM, all at once, and SIGKILL if it is still alive after
        STOP_GRACE_SECONDS; each of their jobs still "running" becomes "failed" with code
        `interrupted`, as `recover_interrupted` would record at the next start. Queued jobs stay
        queued for the next start. Returns within about 10 + 2 x STOP_GRACE_SECONDS seconds.
        """
        self._stop.set()
        self._thread.join(timeout=10)
        stopping = list(self.running.items())
        for _, process in stopping:
            process.terminate()
        deadline = time.monotonic() + self.STOP_GRACE_SECONDS
        for _, process in stopping:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for _, process in stopping:
            if process.is_alive():  # ignoring SIGTERM (stuck in native code): shutdown must not wait
                process.kill()
                process.join(timeout=self.STOP_GRACE_SECONDS)
        for job_id, _ in stopping:
            try:
                _finish(self.factory, job_id, "failed", "interrupted",
                        "The service stopped while this plan was solving; start the plan again.", ("running",))
            except Exception:  # the database is gone too: the next start's recovery records it
                log.exception("could not mark job %s interrupted", job_id)
        self.running.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("dispatcher tick failed")
            self._stop.wait(self.poll_seconds)

    def tick(self) -> None:
        self._reap()
        self._cancel()
        self._start_queued()

    def _reap(self) -> None:
        for job_id, process in list(self.running.items()):
            if process.is_alive():
                continue
            process.join()
            if process.exitcode != 0:
                _finish(self.factory, job_id, "failed", "worker_crashed",
                        f"The solver process stopped unexpectedly (exit code {process.exitcode}).", ("running",))
            del self.running[job_id]  # only once recorded: a database hiccup retries on the next tick

    def _cancel(self) -> None:
        with self.factory() as session:
            wanted = session.scalars(select(Job.id).where(Job.status == "running", Job.cancel_requested)).all()
        for job_id in wanted:
            process = self.running.pop(job_id, None)
            if process is not None:
                process.terminate()
                process.join(timeout=10)
            _finish(self.factory, job_id, "cancelled", "cancelled", "Cancelled on request.", ("running",))

    def _start_queued(self) -> None:
        free = self.workers - len(self.running)
        if free <= 0:
            return
        with self.factory() as session:
            queued = session.scalars(select(Job.id).where(Job.status == "queued")
                                     .order_by(Job.created_at).limit(free)).all()
        for job_id in queued:
            with transaction(self.factory) as session:
                claimed = session.execute(update(Job).where(Job.id == job_id, Job.status == "queued").values(
                    status="running", stage="starting", started_at=utcnow(), updated_at=utcnow())).rowcount
            if claimed != 1:
                continue
            process = self._context.Process(target=run_job, args=(job_id, self.database_url),
                                            name=f"onevisit-job-{job_id[:8]}", daemon=True)
            try:
                process.start()
            except Exception as exc:  # out of processes or memory: say so on the job
                log.exception("could not start job %s", job_id)
                _finish(self.factory, job_id, "failed", "worker_start_failed",
                        f"The solver process could not start ({type(exc).__name__}: {exc}); try again.", ("running",))
                continue
            self.running[job_id] = process
