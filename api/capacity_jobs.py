"""Capacity studies off the request path (issue 15).

As for solve jobs (api/jobs.py): a dispatcher thread in the service process claims queued
studies and runs each in its own spawned process, at most one study at a time per service (a
study itself solves `processes` variants at once, in a process pool of its own:
ONEVISIT_STUDY_PROCESSES, default 2). The worker writes progress (solves done of the total, the
variant solved last) to the study row at most twice a second, runs `run_study`, writes the report
(`scheduler.capacity.report.write_report`) into a temporary folder and stores every file of it,
with the study's "finished", in one transaction: a killed or failed study leaves no half-written
report. On start-up, studies a previous service process left "running" are marked failed
(`interrupted`), as for jobs.

The study process is the leader of its own process group, so cancelling a study (or stopping
the service) stops its pool of solver processes with it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api import audit
from api.db import make_engine, make_sessionmaker, transaction
from api.models import CapacityStudy, CapacityStudyFile, ScenarioVersion, utcnow
from api.store import label, scenario_of
from scheduler.capacity.study import StudyError, study_from_data

log = logging.getLogger("onevisit.capacity")
ACTIVE = ("queued", "running")
PROGRESS_EVERY_SECONDS = 0.5
INTERRUPTED = "The service stopped while this study was running; start the study again."
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".png": "image/png",
}


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def _finish(factory: sessionmaker[Session], study_id: str, status: str, code: str | None = None,
            message: str | None = None, only_if: tuple[str, ...] = ACTIVE) -> bool:
    """Move a study to a final state unless it already got there (first writer wins)."""
    with transaction(factory) as session:
        result = session.execute(
            update(CapacityStudy).where(CapacityStudy.id == study_id, CapacityStudy.status.in_(only_if)).values(
                status=status, error_code=code, error_message=message, finished_at=utcnow(), updated_at=utcnow()))
        return result.rowcount == 1


def keep_report(factory: sessionmaker[Session], study_id: str, folder: Path, done: int, total: int) -> None:
    """Store every file of the report in `folder` and mark the study finished, in one
    transaction; a study cancelled (or asked to be) meanwhile keeps nothing."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    with transaction(factory) as session:
        study = session.get(CapacityStudy, study_id, with_for_update=True, populate_existing=True)
        if study is None or study.status != "running":
            return
        if study.cancel_requested:
            study.status, study.error_code, study.error_message = "cancelled", "cancelled", "Cancelled on request."
            study.finished_at = study.updated_at = utcnow()
            return
        for path in files:
            content = path.read_bytes()
            session.add(CapacityStudyFile(study_id=study_id, name=path.name, media_type=media_type(path.name),
                                          content=content, size=len(content)))
        study.status = "finished"
        study.progress_done, study.progress_total = done, total
        study.finished_at = study.updated_at = utcnow()


def run_capacity_study(study_id: str, database_url: str, processes: int) -> None:
    """Entry point of a study process: run the study, write and keep its report, or record the
    failure on the study. Its writes are audited as the study's (api/audit.py)."""
    with audit.begin("job", study_id, "job", "capacity study"):
        _run_capacity_study(study_id, database_url, processes)


def _run_capacity_study(study_id: str, database_url: str, processes: int) -> None:
    if hasattr(os, "setpgid"):
        os.setpgid(0, 0)  # a group of our own: the solver pool is stopped with us
    # Here, not at the top: the service process never needs matplotlib or the study runner.
    from scheduler.capacity.outcome import run_study
    from scheduler.capacity.report import write_report

    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    try:
        with factory() as session:
            row = session.get(CapacityStudy, study_id)
            if row is None or row.status != "running":
                return
            base = scenario_of(session.get(ScenarioVersion, row.scenario_version_id))
            study = study_from_data(row.document, "study")
            limit = row.time_limit_seconds
        last = {"at": 0.0, "done": 0, "total": 0}

        def on_progress(done: int, total: int, name: str) -> None:
            last.update(done=done, total=total)
            now = time.monotonic()
            if done < total and now - last["at"] < PROGRESS_EVERY_SECONDS:
                return
            last["at"] = now
            with transaction(factory) as session:
                session.execute(update(CapacityStudy).where(
                    CapacityStudy.id == study_id, CapacityStudy.status == "running").values(
                    progress_done=done, progress_total=total, progress_variant=label(name), updated_at=utcnow()))

        outcome = run_study(study, base, time_limit_seconds=limit, processes=processes, on_progress=on_progress)
        with tempfile.TemporaryDirectory(prefix="onevisit-study-") as folder:
            write_report(outcome, Path(folder))
            keep_report(factory, study_id, Path(folder), last["done"], last["total"])
    except StudyError as exc:  # validated when asked for; a study stored before today's rules
        _finish(factory, study_id, "failed", "invalid_study", "The study cannot be run:\n" + "\n".join(
            f"{p.location}: {p.message}" for p in exc.problems))
    except Exception as exc:
        log.exception("capacity study %s failed", study_id)
        _finish(factory, study_id, "failed", "study_failed", f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()


def recover_interrupted_studies(factory: sessionmaker[Session]) -> int:
    """Studies a previous service process left running can never finish: say so."""
    with transaction(factory) as session:
        result = session.execute(update(CapacityStudy).where(CapacityStudy.status == "running").values(
            status="failed", error_code="interrupted", error_message=INTERRUPTED,
            finished_at=utcnow(), updated_at=utcnow()))
        return result.rowcount


def _stop(process: BaseProcess, grace: float) -> None:
    """SIGTERM to the study's process group (the study and its solver pool), SIGKILL after
    `grace` seconds if the study process is still alive."""

    def signal_group(sig: int) -> None:
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError, AttributeError, OSError):
            pass  # not (yet) a group leader, or gone: the process itself still gets the signal
        try:
            os.kill(process.pid, sig)
        except (ProcessLookupError, OSError):
            pass

    if process.pid is None:
        return
    signal_group(signal.SIGTERM)
    process.join(timeout=grace)
    if process.is_alive():
        signal_group(signal.SIGKILL)
        process.join(timeout=grace)
    else:  # the pool's processes may outlive the study process by a moment: end them too
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError, OSError):
            pass


class StudyDispatcher:
    """Starts queued studies, one at a time, in their own processes; reaps them and carries out
    cancellations (as api.jobs.Dispatcher does for solves)."""

    STOP_GRACE_SECONDS = 5.0

    def __init__(self, database_url: str, factory: sessionmaker[Session], processes: int, poll_seconds: float):
        self.database_url, self.factory = database_url, factory
        self.processes, self.poll_seconds = processes, poll_seconds
        self.running: dict[str, BaseProcess] = {}
        self._context = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="onevisit-study-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching and end the running study, marking it failed (`interrupted`);
        queued studies stay queued for the next start."""
        self._stop.set()
        self._thread.join(timeout=10)
        stopping = list(self.running.items())
        for study_id, process in stopping:
            _stop(process, self.STOP_GRACE_SECONDS)
            try:
                _finish(self.factory, study_id, "failed", "interrupted", INTERRUPTED, ("running",))
            except Exception:  # the database is gone too: the next start's recovery records it
                log.exception("could not mark study %s interrupted", study_id)
        self.running.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("study dispatcher tick failed")
            self._stop.wait(self.poll_seconds)

    def tick(self) -> None:
        self._reap()
        self._cancel()
        self._start_queued()

    def _reap(self) -> None:
        for study_id, process in list(self.running.items()):
            if process.is_alive():
                continue
            process.join()
            if process.exitcode != 0:
                try:  # no solver process outlives its crashed study (the group exists while one does)
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError, AttributeError, OSError):
                    pass
                _finish(self.factory, study_id, "failed", "worker_crashed",
                        f"The study process stopped unexpectedly (exit code {process.exitcode}).", ("running",))
            del self.running[study_id]

    def _cancel(self) -> None:
        with self.factory() as session:
            wanted = session.scalars(select(CapacityStudy.id).where(
                CapacityStudy.status == "running", CapacityStudy.cancel_requested)).all()
        for study_id in wanted:
            process = self.running.pop(study_id, None)
            if process is not None:
                _stop(process, self.STOP_GRACE_SECONDS)
            _finish(self.factory, study_id, "cancelled", "cancelled", "Cancelled on request.", ("running",))

    def _start_queued(self) -> None:
        if self.running:
            return  # one study at a time: each already solves `processes` variants at once
        with self.factory() as session:
            queued = session.scalars(select(CapacityStudy.id).where(CapacityStudy.status == "queued")
                                     .order_by(CapacityStudy.created_at).limit(1)).all()
        for study_id in queued:
            with transaction(self.factory) as session:
                claimed = session.execute(update(CapacityStudy).where(
                    CapacityStudy.id == study_id, CapacityStudy.status == "queued").values(
                    status="running", started_at=utcnow(), updated_at=utcnow())).rowcount
            if claimed != 1:
                continue
            # Not a daemon: a daemonic process may not start the study's pool of solver processes.
            process = self._context.Process(target=run_capacity_study,
                                            args=(study_id, self.database_url, self.processes),
                                            name=f"onevisit-study-{study_id[:8]}", daemon=False)
            try:
                process.start()
            except Exception as exc:
                log.exception("could not start study %s", study_id)
                _finish(self.factory, study_id, "failed", "worker_start_failed",
                        f"The study process could not start ({type(exc).__name__}: {exc}); try again.", ("running",))
                continue
            self.running[study_id] = process
