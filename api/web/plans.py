"""Plan pages: the before/after figures, metrics and unbooked reviews; the appointment book
(by clinician or room, a day or a week) and its data; a patient's visits; the printable
clinician day list; publishing and what it sent; reception's booking look-up; and the
difference between two plans.

Actions call the API's own route functions with the session's caller, so the organisation and
role rules are the API's, unchanged (a planner cannot publish here either).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated

import anyio
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import bindparam, select

from api.deps import DB, ServicesDep, services
from api.errors import ApiError, not_found
from api.models import CalendarEvent, PlanRecord, ScenarioRecord, ScenarioVersion
from api.reads import BoundedLru
from api.routes import bookings as booking_routes
from api.routes import calendar as calendar_routes
from api.routes import plans as plan_routes
from api.routes.explain import patient_explanation
from api.store import plan_of, plan_record, plan_status, scenario_of
from api.web.book import ROWS, book_data, clinician_day, local, plan_index, step_text, visit_colour
from api.web.routing import Posted, SignedIn, WebRoute, caller_in, render
from scheduler.domain import Scenario
from scheduler.plan import Plan

router = APIRouter(include_in_schema=False, route_class=WebRoute)
# The book's JSON by (plan, publish count, query); at most 64 MB and 4,096 bodies per process.
_book_bodies: BoundedLru[tuple, bytes] = BoundedLru(64 * 1024 * 1024, 4096)
# What book.json checks on every request: the plan's organisation and its scenario's publish count.
_PLAN_STATE = (select(PlanRecord.organisation_id, ScenarioRecord.publish_count)
               .join(ScenarioRecord, ScenarioRecord.id == PlanRecord.scenario_id)
               .where(PlanRecord.id == bindparam("plan_id")))
REFERENCE = re.compile(r"^[Oo][Vv]-[A-Za-z0-9]{6}$")
# Figures of the before/after table: (metric, words).
FIGURES = (
    ("visits", "Visits (trips to a clinic)"),
    ("appointments", "Appointments"),
    ("blood_draws", "Blood draws"),
    ("visits_per_patient", "Visits per patient"),
    ("patient_hours", "Patient hours (travel and time in clinic)"),
    ("clinician_minutes", "Clinician minutes"),
    ("reviews_booked", "Reviews booked"),
    ("patients_fully_booked", "Patients with every review booked"),
)


def references_of(session: DB, plan_id: str) -> dict[str, str]:
    """Visit id -> booking reference for the visits of a plan whose invites are current (empty
    for a plan never published)."""
    rows = session.execute(select(CalendarEvent.visit_id, CalendarEvent.reference).where(
        CalendarEvent.plan_id == plan_id, CalendarEvent.status == "active"))
    return {visit_id: reference for visit_id, reference in rows}


def loaded(session: DB, organisation_id: str, plan_id: str) -> tuple[PlanRecord, Plan, Scenario]:
    record = plan_record(session, organisation_id, plan_id)
    scenario = scenario_of(session.get(ScenarioVersion, record.scenario_version_id))
    return record, plan_of(record), scenario


def _day(text: str | None, default: dt.date) -> dt.date:
    if not text:
        return default
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_request", f"'{text}' is not a date (YYYY-MM-DD).", "date") from None


def _first_day(plan: Plan, scenario: Scenario) -> dt.date:
    return min((local(a.start).date() for a in plan.appointments), default=scenario.horizon_start)


@router.get("/plans/{plan_id}")
def plan_page(request: Request, plan_id: str, web: SignedIn, session: DB) -> Response:
    record, plan, scenario = loaded(session, web.caller.organisation_id, plan_id)
    out = plan_routes.plan_out(session, record)
    old = plan.baselines.get("old_way")
    figures = [(words, getattr(old, name) if old else None, getattr(plan.metrics, name)) for name, words in FIGURES]
    names = {t.id: t.name for t in scenario.review_types}
    index = plan_index(record.id, plan)
    patients = sorted({a.patient_id for a in plan.appointments} | {u.patient_id for u in plan.unbooked})
    visits_by_patient: dict[str, int] = {}
    for visit in plan.visits:
        visits_by_patient[visit.patient_id] = visits_by_patient.get(visit.patient_id, 0) + 1
    unbooked_by_patient = {u.patient_id for u in plan.unbooked}
    later = session.scalars(select(PlanRecord).where(PlanRecord.scenario_id == record.scenario_id,
                                                     PlanRecord.number > record.number)
                            .order_by(PlanRecord.number)).all()
    return render(request, "plan.html", plan_out=out, plan=plan, scenario=scenario, figures=figures,
                  review_names=names, patients=patients, visits_by_patient=visits_by_patient,
                  unbooked_by_patient=unbooked_by_patient, first_day=_first_day(plan, scenario),
                  later_plans=later, days=sorted(index.by_date),
                  latest_version=session.get(ScenarioRecord, record.scenario_id).latest_version)


@router.post("/plans/{plan_id}/publish")
def publish(request: Request, plan_id: str, web: Posted, session: DB,
            confirm_scenario_version: Annotated[int | None, Form(ge=1)] = None) -> Response:
    calendar_routes.publish_plan(plan_id, session, web.caller, confirm_scenario_version)
    return RedirectResponse(f"/plans/{plan_id}/invites", status_code=303)


@router.get("/plans/{plan_id}/invites")
def invites_page(request: Request, plan_id: str, web: SignedIn, session: DB, services: ServicesDep) -> Response:
    changes = calendar_routes.invite_changes(plan_id, session, web.caller, services)
    record = plan_record(session, web.caller.organisation_id, plan_id)
    counts: dict[str, int] = {}
    for item in changes.items:
        counts[item.action] = counts.get(item.action, 0) + 1
    return render(request, "invites.html", record=record, changes=changes.items, counts=counts)


@router.get("/plans/{plan_id}/book")
def book_page(request: Request, plan_id: str, web: SignedIn, session: DB,
              date: str | None = None, view: str = "day", rows: str = "clinician",
              site: str | None = None, role: str | None = None) -> Response:
    record, plan, scenario = loaded(session, web.caller.organisation_id, plan_id)
    day = _day(date, _first_day(plan, scenario))
    view = view if view in ("day", "week") else "day"
    rows = rows if rows in ROWS else "clinician"
    if view == "week":
        day -= dt.timedelta(days=day.weekday())
    step = dt.timedelta(days=7 if view == "week" else 1)
    roles = sorted({c.role for c in scenario.clinicians})
    data_url = request.url_for("book_json", plan_id=record.id).include_query_params(
        date=day.isoformat(), days=7 if view == "week" else 1, rows=rows,
        **{k: v for k, v in (("site", site), ("role", role)) if v})
    return render(request, "book.html", record=record, scenario=scenario, day=day, view=view, rows=rows,
                  site=site or "", role=role or "", roles=roles, previous=(day - step).isoformat(),
                  next=(day + step).isoformat(), data_url=str(data_url.path) + "?" + data_url.query,
                  clinicians=scenario.clinicians)


@router.get("/plans/{plan_id}/book.json", name="book_json")
def book_json(request: Request, plan_id: str,
              date: Annotated[str | None, Query(max_length=10)] = None,
              days: Annotated[int, Query(ge=1, le=7)] = 1, rows: Annotated[str, Query(max_length=10)] = "clinician",
              site: Annotated[str | None, Query(max_length=64)] = None,
              role: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    """The book's rows and blocks (api.web.book.book_data) as JSON.

    Served from a per-process cache of ready-made JSON: a plan never changes once stored, and
    its booking references change only when its scenario publishes, which bumps the scenario's
    publish_count, part of the key. The session, the plan's organisation and the count are read
    on every request, so a discarded plan or another organisation's is a 404 whatever is cached.
    One pooled connection and two indexed lookups of plain columns do it (no dependencies, no
    ORM objects): the book's read is the hot path, and each dependency would be another hop
    through the thread pool.
    """
    if rows not in ROWS:
        raise ApiError(422, "invalid_request", "rows must be clinician or room.", "rows")
    found = services(request)
    with found.engine.connect() as connection:
        web = caller_in(request, connection)
        plan_row = connection.execute(_PLAN_STATE, {"plan_id": plan_id}).first()
    if plan_row is None or plan_row.organisation_id != web.caller.organisation_id:
        raise not_found("plan")
    key = (plan_id, plan_row.publish_count, date, days, rows, site, role)
    body = _book_bodies.get(key)
    if body is None:
        with found.factory() as session:
            record, plan, scenario = loaded(session, web.caller.organisation_id, plan_id)
            data = book_data(record.id, plan, scenario, references_of(session, record.id),
                             first=_day(date, _first_day(plan, scenario)), days=days, rows=rows, site_id=site,
                             role=role)
        body = json.dumps(data).encode()
        _book_bodies.put(key, body, len(body))
    return Response(body, media_type="application/json")


@router.get("/plans/{plan_id}/patients/{patient_id}")
def patient_page(request: Request, plan_id: str, patient_id: str, web: SignedIn, session: DB) -> Response:
    record, plan, scenario = loaded(session, web.caller.organisation_id, plan_id)
    index = plan_index(record.id, plan)
    visits = sorted((v for v in plan.visits if v.patient_id == patient_id), key=lambda v: v.start)
    unbooked = [u for u in plan.unbooked if u.patient_id == patient_id]
    if not visits and not unbooked:
        raise not_found("patient in this plan")
    references = references_of(session, record.id)
    rooms = {r.id: r.name or r.id for r in scenario.rooms}
    sites = {s.id: s.name for s in scenario.sites}
    clinicians = {c.id: f"{c.name or c.id} ({c.role})" for c in scenario.clinicians}
    rows = [(v, references.get(v.id, ""), visit_colour(v.id),
             [(a, step_text(scenario, a)) for a in index.steps.get(v.id, [])]) for v in visits]
    names = {t.id: t.name for t in scenario.review_types}
    return render(request, "patient.html", record=record, patient_id=patient_id, visits=rows, unbooked=unbooked,
                  rooms=rooms, sites=sites, clinicians=clinicians, review_names=names)


@router.get("/plans/{plan_id}/patients/{patient_id}/why")
def why_page(request: Request, plan_id: str, patient_id: str, web: SignedIn, session: DB) -> Response:
    """Why this visit (docs/explain.md): the API's explanation of one patient, as a page a
    manager can read to the patient on the phone."""
    explanation = anyio.from_thread.run(patient_explanation, plan_id, patient_id, session, web.caller)
    record, _, scenario = loaded(session, web.caller.organisation_id, plan_id)
    sites = {s.id: s.name for s in scenario.sites}
    return render(request, "why.html", record=record, patient_id=patient_id, why=explanation, sites=sites)


@router.get("/plans/{plan_id}/day-list")
def day_list(request: Request, plan_id: str, web: SignedIn, session: DB, clinician: str = "",
             date: str | None = None) -> Response:
    """One clinician's day, to print: times, rooms, patient ids, references and what each visit
    needs (fasting, interpreter, wheelchair, carer, extra time)."""
    record, plan, scenario = loaded(session, web.caller.organisation_id, plan_id)
    found = next((c for c in scenario.clinicians if c.id == clinician), None)
    if found is None:
        raise ApiError(422, "invalid_request", "Choose a clinician of this plan's scenario.", "clinician")
    day = _day(date, _first_day(plan, scenario))
    entries = clinician_day(record.id, plan, scenario, references_of(session, record.id), found.id, day)
    return render(request, "day_list.html", record=record, clinician=found, day=day, entries=entries,
                  scenario=scenario)


@router.get("/reception")
def reception(request: Request, web: SignedIn, session: DB, reference: str = "") -> Response:
    """Look a visit up by its booking reference (any role, as the API's GET /v1/bookings)."""
    booking, error = None, None
    reference = reference.strip()
    if reference:
        if not REFERENCE.match(reference):
            error = "A booking reference looks like OV-7K3P9Q."
        else:
            try:
                booking = booking_routes.get_booking(reference, session, web.caller)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                error = f"No booking {reference.upper()} in this organisation."
    names: dict[str, str] = {}
    if booking is not None:
        scenario = scenario_of(session.get(ScenarioVersion, session.get(PlanRecord, booking.plan_id)
                                           .scenario_version_id))
        names = {t.id: t.name for t in scenario.review_types}
    return render(request, "reception.html", reference=reference, booking=booking, error=error,
                  review_names=names, status_code=200 if booking or not reference else 404)


@router.get("/plans/{plan_id}/diff/{other_plan_id}")
def diff_page(request: Request, plan_id: str, other_plan_id: str, web: SignedIn, session: DB) -> Response:
    diff = plan_routes.plan_diff(plan_id, other_plan_id, session, web.caller)
    new = plan_record(session, web.caller.organisation_id, other_plan_id)
    scenario = session.get(ScenarioRecord, new.scenario_id)
    return render(request, "diff.html", diff=diff, new=new, new_status=plan_status(new, scenario),
                  old_id=plan_id)
