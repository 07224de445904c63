"""Plans: summary and before/after comparison, appointments by date, clinician, room, site or
patient, unbooked reviews with reasons, the whole document, and clinician lists as CSV;
re-planning a plan after disruptions, the difference between two plans, and discarding a draft."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import select

from api import reads
from api.deps import DB, CallerDep, bearer, require, services
from api.errors import ERROR_RESPONSES, ApiError
from api.models import (
    Job,
    PlanRecord,
    ScenarioRecord,
    ScenarioVersion,
)
from api.routes.jobs import job_out
from api.schemas import (
    AppointmentPage,
    IsoDate,
    JobOut,
    PlanList,
    PlanOut,
    ReplanRequest,
    UnbookedList,
)
from api.store import (
    add_version,
    booking_references,
    discard_plan,
    lock_scenario,
    plan_of,
    plan_record,
    plan_status,
    scenario_of,
)
from scheduler import replan as replanning
from scheduler.cli import appointments_csv
from scheduler.diff import PlanDiff, diff_plans
from scheduler.disruptions import as_data, disruptions_from_data
from scheduler.domain import SolverSettings
from scheduler.plan import AppointmentKind
from scheduler.problems import ScenarioError

router = APIRouter(prefix="/v1", tags=["plans"], responses=ERROR_RESPONSES)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def plan_out(session: DB, record: PlanRecord) -> PlanOut:
    plan = plan_of(record)
    version = session.get(ScenarioVersion, record.scenario_version_id)
    scenario = session.get(ScenarioRecord, record.scenario_id)
    return PlanOut(
        id=record.id, scenario_id=record.scenario_id, scenario_version=version.version, number=record.number,
        job_id=record.job_id, created_at=record.created_at, published_at=record.published_at,
        status=plan_status(record, scenario), previous_plan_id=plan.replan.previous_plan_id if plan.replan else None,
        scenario_name=plan.scenario_name, metrics=plan.metrics, baselines=plan.baselines,
        comparison=plan.comparison, solver=plan.solver, unbooked_count=len(plan.unbooked),
    )


@router.get("/plans", response_model=PlanList, summary="List plans, newest first")
def list_plans(session: DB, caller: CallerDep, scenario_id: str | None = None) -> PlanList:
    query = select(PlanRecord).where(PlanRecord.organisation_id == caller.organisation_id)
    if scenario_id:
        query = query.where(PlanRecord.scenario_id == scenario_id)
    records = session.scalars(query.order_by(PlanRecord.created_at.desc()).limit(500)).all()
    return PlanList(items=[plan_out(session, r) for r in records])


def summary_access(plan_id: str, request: Request, credentials: BearerCredentials) -> reads.PlanAccess:
    # The key, the plan (through `plan_record`, the organisation check every plan route shares)
    # and its publication state, in one session on one trip to the thread pool.
    return reads.plan_access(request, credentials, plan_id, plan_record, with_status=True)


def book_access(plan_id: str, request: Request, credentials: BearerCredentials) -> reads.PlanAccess:
    return reads.plan_access(request, credentials, plan_id, plan_record)


@router.get("/plans/{plan_id}", response_model=PlanOut, summary="Summary metrics and before/after comparison")
async def get_plan(plan_id: str, request: Request,
                   access: Annotated[reads.PlanAccess, Depends(summary_access)]) -> Response:
    # Answered from a per-process cache (api/reads.py): a plan never changes, except its
    # publication state, which `summary_access` has just read.
    return await reads.summary_response(request, access, plan_out)


@router.get("/plans/{plan_id}/document", response_model=dict[str, Any],
            summary="The whole plan as in docs/plan-format.md")
def get_plan_document(plan_id: str, session: DB, caller: CallerDep) -> dict[str, Any]:
    return plan_record(session, caller.organisation_id, plan_id).document


@router.get("/plans/{plan_id}/appointments", response_model=AppointmentPage,
            summary="Appointments, filtered and paged, in time order")
async def list_appointments(
    plan_id: str, request: Request, access: Annotated[reads.PlanAccess, Depends(book_access)],
    date_from: Annotated[IsoDate | None, Query(description="First day, YYYY-MM-DD.")] = None,
    date_to: Annotated[IsoDate | None, Query(description="Last day, YYYY-MM-DD.")] = None,
    clinician_id: str | None = None, room_id: str | None = None, site_id: str | None = None,
    patient_id: str | None = None, kind: AppointmentKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200, offset: Annotated[int, Query(ge=0, le=10**7)] = 0,
) -> Response:
    # Answered from the plan's cached appointment list (api/reads.py) once `book_access` has
    # checked the key and found the plan to be the caller's.
    return await reads.appointments_response(request, access, reads.AppointmentQuery(
        date_from, date_to, clinician_id, room_id, site_id, patient_id, kind, limit, offset))


@router.get("/plans/{plan_id}/unbooked", response_model=UnbookedList, summary="Reviews not booked, with reasons")
def list_unbooked(plan_id: str, session: DB, caller: CallerDep) -> UnbookedList:
    return UnbookedList(items=plan_of(plan_record(session, caller.organisation_id, plan_id)).unbooked)


@router.get("/plans/{plan_id}/clinician-lists.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "One row per appointment."}},
            summary="Clinician lists as CSV (all, or one clinician's)")
def clinician_lists(plan_id: str, session: DB, caller: CallerDep, clinician_id: str | None = None) -> Response:
    plan = plan_of(plan_record(session, caller.organisation_id, plan_id))
    if clinician_id:
        plan = plan.model_copy(update={"appointments": [a for a in plan.appointments if clinician_id in a.clinician_ids]})
    return Response(appointments_csv(plan), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="clinician-lists.csv"'})


def disruptions_error(exc: ScenarioError) -> ApiError:
    """Every problem with the disruptions, each naming its entry (1-based) and field; `field` is
    the first problem's place ("disruptions: entry 3 (booking_moved): start"), or `as_of`."""
    first = exc.problems[0] if exc.problems else None
    field = f"{first.source}: {first.location}" if first and first.location else (first.source if first else None)
    if first and first.location == "as_of":
        field = "as_of"
    return ApiError(422, "invalid_disruptions",
                    f"{len(exc.problems)} problem(s) in the disruptions; nothing was saved or started.",
                    field, exc.problems)


@dataclass(frozen=True)
class PreparedReplan:
    plan_id: str
    scenario_id: str
    prepared: replanning.Prepared
    settings: SolverSettings


def prepared_replan(plan_id: str, body: ReplanRequest, caller: CallerDep, request: Request) -> PreparedReplan:
    """The disruptions checked against the plan and applied to its scenario, before the request
    takes its turn to write (a dependency, run in the thread pool): applying them to a large plan
    takes a moment, and no write waits meanwhile. Raises ApiError 403 for a planner key, 404 for
    an unknown plan (or another organisation's), 422 `invalid_disruptions` listing every problem,
    and 422 `invalid_settings` when the settings cannot be used."""
    require(caller, "replan")
    try:
        disruptions = disruptions_from_data(body.disruptions, "disruptions")
    except ScenarioError as exc:
        raise disruptions_error(exc) from None
    with services(request).factory() as session:
        record = plan_record(session, caller.organisation_id, plan_id)
        previous = plan_of(record)
        scenario = scenario_of(session.get(ScenarioVersion, record.scenario_version_id))
        references = booking_references(session, record.scenario_id)
        scenario_id = record.scenario_id
    try:
        prepared = replanning.prepare(scenario, previous, disruptions, as_of=body.as_of, references=references)
    except ScenarioError as exc:  # DisruptionError, or a next version the validator refuses
        raise disruptions_error(exc) from None
    settings = body.settings(prepared.scenario.solver.model_dump(mode="json"), "The scenario's",
                             "override it in the request")
    return PreparedReplan(plan_id, scenario_id, prepared, settings)


@router.post("/plans/{plan_id}/replan", status_code=202, response_model=JobOut,
             summary="Re-plan a plan after disruptions: a new scenario version and a job (manager key)")
def replan_plan(plan_id: str, caller: CallerDep,
                ready: Annotated[PreparedReplan, Depends(prepared_replan)], session: DB) -> JobOut:
    """Apply the disruptions (docs/replan.md) to the plan's scenario version, store the result as
    the scenario's next version, and queue a job that re-plans the plan on it with the fewest
    changes. The plan and its version are never modified; the new plan is a draft until published."""
    lock_scenario(session, ready.scenario_id)  # a discard of the base plan waits, or went first
    record = plan_record(session, caller.organisation_id, ready.plan_id)
    scenario = session.get(ScenarioRecord, record.scenario_id)
    prepared = ready.prepared
    n = len(prepared.disruptions)
    version = add_version(session, scenario, prepared.scenario,
                          f"replan of plan {record.id}: {n} disruption{'' if n == 1 else 's'}")
    job = Job(organisation_id=caller.organisation_id, scenario_id=record.scenario_id, scenario_version_id=version.id,
              settings=ready.settings.model_dump(mode="json"), base_plan_id=record.id, as_of=prepared.as_of,
              disruptions=as_data(prepared.disruptions))
    session.add(job)
    session.flush()
    return job_out(session, job)


@router.get("/plans/{plan_id}/diff/{other_plan_id}", response_model=PlanDiff,
            summary="What changed from this plan to another, visit by visit, and why")
def plan_diff(plan_id: str, other_plan_id: str, session: DB, caller: CallerDep) -> PlanDiff:
    """`plan_id` is the old plan, `other_plan_id` the new one (usually its re-plan). Reasons name
    the disruption entries of the new plan's re-plan record when it re-planned the old one."""
    old = plan_of(plan_record(session, caller.organisation_id, plan_id))
    new = plan_of(plan_record(session, caller.organisation_id, other_plan_id))
    return diff_plans(old, new)


@router.delete("/plans/{plan_id}", status_code=204, response_class=Response,
               responses={204: {"description": "Discarded."}},
               summary="Discard a plan that was never published (manager key)")
def discard(plan_id: str, session: DB, caller: CallerDep) -> Response:
    """Deletes the plan and its appointments; the jobs that made it keep their id, with plan_id
    null and stage "discarded". 409 `plan_published` for a plan ever published, 409 `plan_in_use`
    while a job re-plans it."""
    require(caller, "discard")
    discard_plan(session, plan_record(session, caller.organisation_id, plan_id))
    return Response(status_code=204)
