"""Jobs: status and progress of solves, cancellation, and progress as server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.deps import DB, CallerDep, services
from api.errors import ERROR_RESPONSES, ApiError, not_found
from api.models import Job, ScenarioVersion, utcnow
from api.schemas import JobError, JobList, JobOut

router = APIRouter(prefix="/v1", tags=["jobs"], responses=ERROR_RESPONSES)
FINAL = ("finished", "failed", "cancelled")
SSE_POLL_SECONDS = 0.5
SSE_KEEPALIVE_SECONDS = 15.0


def job_out(session: Session, job: Job) -> JobOut:
    version = session.get(ScenarioVersion, job.scenario_version_id)
    gap = None
    if job.objective and job.bound is not None:
        gap = max(0.0, (job.objective - job.bound) / job.objective)
    return JobOut(
        id=job.id, scenario_id=job.scenario_id, scenario_version=version.version, status=job.status,
        stage=job.stage, cancel_requested=job.cancel_requested, elapsed_seconds=job.elapsed_seconds,
        time_limit_seconds=job.settings["time_limit_seconds"], objective=job.objective, bound=job.bound,
        gap=gap, reviews_booked=job.reviews_booked, reviews_total=version.reviews,
        patients_booked=job.patients_booked, patients_total=version.patients, plan_id=job.plan_id,
        base_plan_id=job.base_plan_id,
        error=JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
    )


def _job(session: Session, organisation_id: str, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.organisation_id != organisation_id:
        raise not_found("job")
    return job


@router.get("/jobs", response_model=JobList, summary="List jobs, newest first")
def list_jobs(session: DB, caller: CallerDep, scenario_id: str | None = None,
              status: Literal["queued", "running", "finished", "failed", "cancelled"] | None = None) -> JobList:
    query = select(Job).where(Job.organisation_id == caller.organisation_id)
    if scenario_id:
        query = query.where(Job.scenario_id == scenario_id)
    if status:
        query = query.where(Job.status == status)
    jobs = session.scalars(query.order_by(Job.created_at.desc()).limit(500)).all()
    return JobList(items=[job_out(session, j) for j in jobs])


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A job's status and progress")
def get_job(job_id: str, session: DB, caller: CallerDep) -> JobOut:
    return job_out(session, _job(session, caller.organisation_id, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a queued or running job")
def cancel_job(job_id: str, session: DB, caller: CallerDep) -> JobOut:
    job = _job(session, caller.organisation_id, job_id)
    if job.status in FINAL:
        raise ApiError(409, "job_finished", f"The job is already {job.status}.", "job_id")
    # A queued job is cancelled at once; a running one is stopped by the dispatcher within a moment.
    session.execute(update(Job).where(Job.id == job.id, Job.status == "queued").values(
        status="cancelled", stage="cancelled", error_code="cancelled", error_message="Cancelled on request.",
        finished_at=utcnow(), updated_at=utcnow()))
    session.execute(update(Job).where(Job.id == job.id, Job.status == "running").values(cancel_requested=True))
    session.flush()
    session.refresh(job)
    return job_out(session, job)


@router.get("/jobs/{job_id}/events", summary="Progress as server-sent events",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`progress` events (JobOut as JSON) until an `end` event."}})
def job_events(job_id: str, request: Request, session: DB, caller: CallerDep) -> StreamingResponse:
    _job(session, caller.organisation_id, job_id)  # 404 before the stream starts
    factory = services(request).factory
    organisation_id = caller.organisation_id

    def snapshot() -> JobOut:
        with factory() as s:
            return job_out(s, _job(s, organisation_id, job_id))

    async def stream() -> AsyncIterator[str]:
        last, quiet = None, 0.0
        while True:
            job = await asyncio.to_thread(snapshot)
            text = job.model_dump_json()
            if text != last:
                yield f"event: progress\nid: {job.id}-{job.elapsed_seconds}\ndata: {text}\n\n"
                last, quiet = text, 0.0
            if job.status in FINAL:
                yield f"event: end\ndata: {json.dumps({'status': job.status, 'plan_id': job.plan_id})}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(SSE_POLL_SECONDS)
            quiet += SSE_POLL_SECONDS
            if quiet >= SSE_KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                quiet = 0.0

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
