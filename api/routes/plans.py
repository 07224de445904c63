"""Plans: summary and before/after comparison, appointments by date, clinician, room, site or
patient, unbooked reviews with reasons, the whole document, and clinician lists as CSV."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import pendulum
from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import func, select

from api.deps import DB, CallerDep
from api.errors import ERROR_RESPONSES, ApiError
from api.models import AppointmentClinician, AppointmentRecord, PlanRecord, ScenarioVersion
from api.schemas import AppointmentOut, AppointmentPage, IsoDate, PlanList, PlanOut, UnbookedList
from api.store import plan_of, plan_record
from scheduler.cli import appointments_csv
from scheduler.plan import AppointmentKind

router = APIRouter(prefix="/v1", tags=["plans"], responses=ERROR_RESPONSES)
LONDON = pendulum.timezone("Europe/London")


def plan_out(session: DB, record: PlanRecord) -> PlanOut:
    plan = plan_of(record)
    version = session.get(ScenarioVersion, record.scenario_version_id)
    return PlanOut(
        id=record.id, scenario_id=record.scenario_id, scenario_version=version.version, number=record.number,
        job_id=record.job_id, created_at=record.created_at, published_at=record.published_at,
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


@router.get("/plans/{plan_id}", response_model=PlanOut, summary="Summary metrics and before/after comparison")
def get_plan(plan_id: str, session: DB, caller: CallerDep) -> PlanOut:
    return plan_out(session, plan_record(session, caller.organisation_id, plan_id))


@router.get("/plans/{plan_id}/document", response_model=dict[str, Any],
            summary="The whole plan as in docs/plan-format.md")
def get_plan_document(plan_id: str, session: DB, caller: CallerDep) -> dict[str, Any]:
    return plan_record(session, caller.organisation_id, plan_id).document


def _local(value: dt.datetime) -> dt.datetime:
    return value.astimezone(LONDON)


@router.get("/plans/{plan_id}/appointments", response_model=AppointmentPage,
            summary="Appointments, filtered and paged, in time order")
def list_appointments(
    plan_id: str, session: DB, caller: CallerDep,
    date_from: Annotated[IsoDate | None, Query(description="First day, YYYY-MM-DD.")] = None,
    date_to: Annotated[IsoDate | None, Query(description="Last day, YYYY-MM-DD.")] = None,
    clinician_id: str | None = None, room_id: str | None = None, site_id: str | None = None,
    patient_id: str | None = None, kind: AppointmentKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200, offset: Annotated[int, Query(ge=0, le=10**7)] = 0,
) -> AppointmentPage:
    record = plan_record(session, caller.organisation_id, plan_id)
    if date_from and date_to and date_to < date_from:
        raise ApiError(422, "invalid_request", "date_to is before date_from.", "date_to")
    query = select(AppointmentRecord).where(AppointmentRecord.plan_id == record.id)
    if clinician_id:
        query = query.join(AppointmentClinician, (AppointmentClinician.plan_id == AppointmentRecord.plan_id)
                           & (AppointmentClinician.appointment_id == AppointmentRecord.id)).where(
            AppointmentClinician.clinician_id == clinician_id)
    for column, value in ((AppointmentRecord.room_id, room_id), (AppointmentRecord.site_id, site_id),
                          (AppointmentRecord.patient_id, patient_id), (AppointmentRecord.kind, kind)):
        if value:
            query = query.where(column == value)
    if date_from:
        query = query.where(AppointmentRecord.date >= date_from)
    if date_to:
        query = query.where(AppointmentRecord.date <= date_to)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(AppointmentRecord.start, AppointmentRecord.id).limit(limit).offset(offset)).all()
    items = [AppointmentOut(
        id=r.id, patient_id=r.patient_id, visit_id=r.visit_id, kind=r.kind, date=r.date, start=_local(r.start),
        end=_local(r.end), site_id=r.site_id, room_id=r.room_id, clinician_ids=r.clinician_ids,
        review_ids=r.review_ids, review_type_ids=r.review_type_ids, blood_marker_ids=r.blood_marker_ids,
    ) for r in rows]
    return AppointmentPage(total=total, offset=offset, limit=limit, items=items)


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
