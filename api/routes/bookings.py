"""Bookings: the desk looks a visit up by the booking reference the patient reads out
(docs/calendars.md: staff see only the reference in feeds and invites)."""

from __future__ import annotations

from typing import Annotated

import pendulum
from fastapi import APIRouter, Path
from sqlalchemy import select

from api.deps import DB, CallerDep
from api.errors import ERROR_RESPONSES, not_found
from api.models import CalendarEvent, PlanRecord, ScenarioRecord
from api.schemas import AppointmentOut, BookingOut, VisitOut
from api.store import plan_of

router = APIRouter(prefix="/v1", tags=["bookings"], responses=ERROR_RESPONSES)
LONDON = pendulum.timezone("Europe/London")
REFERENCE = r"^[Oo][Vv]-[A-Za-z0-9]{6}$"


@router.get("/bookings/{reference}", response_model=BookingOut,
            summary="A booking by its reference: status and the visit as booked (any key)")
def get_booking(
    reference: Annotated[str, Path(pattern=REFERENCE, description="Booking reference, e.g. OV-7K3P9Q "
                                   "(letters in either case).")],
    session: DB, caller: CallerDep,
) -> BookingOut:
    """The visit a booking reference stands for, read from the plan its current booking is in
    (or, once cancelled, the plan it was last in), with every appointment in local time. Another
    organisation's reference is not found, as is one never issued. Sensitive visits are shown:
    staff need the booking even when the patient was sent no invite."""
    event = session.scalar(select(CalendarEvent).where(
        CalendarEvent.reference == reference.upper(), CalendarEvent.organisation_id == caller.organisation_id))
    if event is None:
        raise not_found("booking")
    plan = plan_of(session.get(PlanRecord, event.plan_id))
    scenario = session.get(ScenarioRecord, event.scenario_id)
    visit = next(v for v in plan.visits if v.id == event.visit_id)
    by_id = {a.id: a for a in plan.appointments}
    appointments = sorted((by_id[i] for i in visit.appointment_ids), key=lambda a: (a.start, a.id))
    return BookingOut(
        reference=event.reference, status=event.status, sequence=event.sequence, sensitive=event.sensitive,
        calendar_invites=event.calendar_invites,
        patient_id=event.patient_id, scenario_id=event.scenario_id, plan_id=event.plan_id,
        published_plan_id=scenario.published_plan_id, updated_at=event.updated_at,
        visit=VisitOut(
            id=visit.id, patient_id=visit.patient_id, date=visit.date, site_id=visit.site_id, purpose=visit.purpose,
            start=visit.start.astimezone(LONDON), end=visit.end.astimezone(LONDON),
            appointments=[AppointmentOut(
                id=a.id, patient_id=a.patient_id, visit_id=a.visit_id, kind=a.kind, date=a.date,
                start=a.start.astimezone(LONDON), end=a.end.astimezone(LONDON), site_id=a.site_id,
                room_id=a.room_id, clinician_ids=a.clinician_ids, review_ids=a.review_ids,
                review_type_ids=a.review_type_ids, blood_marker_ids=a.blood_marker_ids) for a in appointments]),
    )
