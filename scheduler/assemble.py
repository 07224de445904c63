"""Turning day-book bookings into the plan's appointments and visits, with stable ids."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from scheduler.daybook import Booking
from scheduler.instance import Instance
from scheduler.plan import Appointment, UnbookedReview, Visit
from scheduler.steps import Bundle
from scheduler.timegrid import local_instant


def stable_id(prefix: str, *parts: str) -> str:
    """Same booking, same id: plans can be compared and re-planned appointment by appointment."""
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]
    return f"{prefix}-{digest}"


def appointments_and_visits(
    inst: Instance, bundles: list[Bundle], bookings: list[Booking]
) -> tuple[list[Appointment], list[Visit]]:
    by_id = {b.id: b for b in bundles}
    slot = inst.slot_minutes
    visits: dict[tuple[str, int], list[Appointment]] = defaultdict(list)
    for b in sorted(bookings, key=lambda b: (b.day, b.start, b.patient_id, b.step.key)):
        step, day = b.step, inst.days[b.day]
        appointment = Appointment(
            id=stable_id("ap", b.bundle_id, step.kind, *(step.review_ids or ("draw",))),
            patient_id=b.patient_id,
            visit_id="",
            kind=step.kind,
            date=day,
            start=local_instant(day, b.start * slot),
            end=local_instant(day, b.end * slot),
            site_id=b.site_id,
            room_id=b.room_id,
            clinician_ids=list(b.clinician_ids),
            review_ids=list(step.review_ids),
            review_type_ids=list(step.review_type_ids),
            blood_marker_ids=list(step.marker_ids),
        )
        visits[(b.bundle_id, b.visit_key)].append(appointment)

    appointments, result = [], []
    for (bundle_id, _), items in visits.items():
        first = items[0]
        visit_id = stable_id("vi", bundle_id, *(a.id for a in items))
        if all(a.kind == "blood_draw" for a in items):
            purpose = "blood_draw_trip"
        else:
            purpose = "separate" if by_id[bundle_id].separate else "consolidated"
        for a in items:
            a.visit_id = visit_id
            appointments.append(a)
        result.append(
            Visit(
                id=visit_id,
                patient_id=first.patient_id,
                date=first.date,
                site_id=first.site_id,
                purpose=purpose,
                start=min(a.start for a in items),
                end=max(a.end for a in items),
                appointment_ids=[a.id for a in items],
            )
        )
    appointments.sort(key=lambda a: (a.start, a.patient_id, a.id))
    result.sort(key=lambda v: (v.start, v.patient_id, v.id))
    return appointments, result


def booked_review_ids(bookings: list[Booking]) -> set[str]:
    return {r for b in bookings for r in b.step.review_ids}


def unbooked_entries(
    inst: Instance, bookings: list[Booking], reasons: dict[str, tuple[str, str]]
) -> list[UnbookedReview]:
    booked = booked_review_ids(bookings)
    result = []
    for patient in inst.scenario.patients:
        for due in patient.due_reviews:
            review_id = patient.review_id(due)
            if review_id not in booked:
                reason, detail = reasons.get(review_id, ("capacity_used_up", "No room left in the roster."))
                result.append(
                    UnbookedReview(
                        patient_id=patient.id,
                        review_id=review_id,
                        review_type_id=due.review_type_id,
                        reason=reason,
                        detail=detail,
                    )
                )
    return result
