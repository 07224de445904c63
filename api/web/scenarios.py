"""Scenario pages: the list, uploads with their problems named by file, row and field, a
scenario's versions, plans and feed links, starting a plan, and a job's live progress.

Every action calls the API's own route functions with the session's caller, so the
organisation and role rules are the API's, unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select

from api.deps import DB, ServicesDep
from api.errors import ApiError
from api.models import CalendarToken, PlanRecord
from api.routes import calendar as calendar_routes
from api.routes import jobs as job_routes
from api.routes import scenarios as scenario_routes
from api.schemas import PlanRequest
from api.store import plan_status, scenario_of, scenario_record, scenario_version
from api.web.routing import Posted, SignedIn, WebRoute, render
from api.web.sessions import WebCaller
from scheduler.domain import Scenario

router = APIRouter(include_in_schema=False, route_class=WebRoute)


def _file(upload: UploadFile | None) -> UploadFile | None:
    """A file input left empty arrives as a part with no file name: treat it as absent."""
    return upload if upload is not None and upload.filename else None


def uploaded(
    scenario: Annotated[UploadFile | None, File()] = None,
    sessions_csv: Annotated[UploadFile | None, File()] = None,
    due_reviews_csv: Annotated[UploadFile | None, File()] = None,
) -> tuple[Scenario, str] | ApiError:
    """The uploaded files validated as one scenario (as the API's upload does), or the ApiError
    listing every problem. A dependency: it runs before the request takes its turn to write."""
    main = _file(scenario)
    if main is None:
        return ApiError(422, "invalid_scenario", "Choose a scenario file (.yaml, .yml or .json) to upload.",
                        "scenario")
    try:
        return scenario_routes.parsed_upload(main, _file(sessions_csv), _file(due_reviews_csv))
    except ApiError as exc:
        return exc


def _scenario_list(session: DB, web: WebCaller) -> list[Any]:
    return scenario_routes.list_scenarios(session, web.caller).items


@router.get("/scenarios")
def scenarios_page(request: Request, web: SignedIn, session: DB) -> Response:
    return render(request, "scenarios.html", scenarios=_scenario_list(session, web))


@router.post("/scenarios/upload")
def upload(request: Request, web: Posted, parsed: Annotated[tuple[Scenario, str] | ApiError, Depends(uploaded)],
           session: DB) -> Response:
    if isinstance(parsed, ApiError):
        return render(request, "scenarios.html", status_code=parsed.status,
                      scenarios=_scenario_list(session, web),
                      error=parsed.message, problems=parsed.problems)
    created = scenario_routes.upload_scenario(web.caller, parsed, session)
    return RedirectResponse(f"/scenarios/{created.id}", status_code=303)


@router.get("/scenarios/{scenario_id}")
def scenario_page(request: Request, scenario_id: str, web: SignedIn, session: DB, services: ServicesDep,
                  feed: str | None = None) -> Response:
    out = scenario_routes.get_scenario(scenario_id, session, web.caller)
    record = scenario_record(session, web.caller.organisation_id, scenario_id)
    scenario = scenario_of(scenario_version(session, record))
    plans = session.scalars(select(PlanRecord).where(PlanRecord.scenario_id == record.id)
                            .order_by(PlanRecord.number.desc())).all()
    jobs = job_routes.list_jobs(session, web.caller, scenario_id=record.id).items[:20]
    feeds = []
    if web.may("calendar_tokens"):
        tokens = session.scalars(select(CalendarToken).where(
            CalendarToken.scenario_id == record.id, CalendarToken.kind.in_(("clinician", "room")),
            CalendarToken.revoked_at.is_(None)).order_by(CalendarToken.created_at)).all()
        feeds = [calendar_routes._token_out(t, services.settings.public_url) for t in tokens]
    return render(request, "scenario.html", scenario_out=out, scenario=scenario, jobs=jobs, feeds=feeds,
                  plans=[(p, plan_status(p, record)) for p in plans], new_feed=feed,
                  default_time_limit=scenario.solver.time_limit_seconds)


@router.post("/scenarios/{scenario_id}/plans")
def start_plan(request: Request, scenario_id: str, web: Posted, session: DB,
               time_limit_seconds: Annotated[str, Form(max_length=20)] = "",
               version: Annotated[str, Form(max_length=10)] = "") -> Response:
    try:
        body = PlanRequest(time_limit_seconds=float(time_limit_seconds) if time_limit_seconds.strip() else None,
                           version=int(version) if version.strip() else None)
    except (ValueError, ValidationError):
        raise ApiError(422, "invalid_request", "The time limit must be a number of seconds from 1 to 3600, and "
                       "the version a whole number.", "time_limit_seconds") from None
    job = scenario_routes.start_plan(scenario_id, session, web.caller, body)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/scenarios/{scenario_id}/feed-links")
def create_feed(request: Request, scenario_id: str, web: Posted, session: DB, services: ServicesDep,
                kind: Annotated[str, Form(max_length=20)] = "",
                subject_id: Annotated[str, Form(max_length=100)] = "") -> Response:
    if kind not in ("clinician", "room"):
        raise ApiError(422, "invalid_request", "Choose a clinician or a room.", "kind")
    token = calendar_routes.create_token(scenario_id, calendar_routes.TokenRequest(kind=kind, subject_id=subject_id), session,
                                         web.caller, services)
    return RedirectResponse(f"/scenarios/{scenario_id}?feed={token.id}#feeds", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, web: SignedIn, session: DB) -> Response:
    job = job_routes.get_job(job_id, session, web.caller)
    return render(request, "job.html", job=job)


@router.get("/jobs/{job_id}/events")
def job_events(request: Request, job_id: str, web: SignedIn, session: DB) -> StreamingResponse:
    """The API's progress stream (server-sent events), for the signed-in browser."""
    return job_routes.job_events(job_id, request, session, web.caller)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: str, web: Posted, session: DB) -> Response:
    job_routes.cancel_job(job_id, session, web.caller)
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)

