"""Plan metrics (definitions in docs/plan-format.md) and the comparison with the old way."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from zoneinfo import ZoneInfo

from scheduler.domain import Scenario
from scheduler.instance import Instance
from scheduler.plan import Appointment, Comparison, Metrics, UnbookedReview, Visit
from scheduler.timegrid import TIMEZONE, minute_of_day

_LONDON = ZoneInfo(TIMEZONE)


def _minutes(a) -> float:
    return (a.end - a.start).total_seconds() / 60


def _clock_minutes(start, end) -> int:
    return minute_of_day(end) - minute_of_day(start)


def room_figures(inst: Instance, appointments: list[Appointment]) -> tuple[int, int, float]:
    """(clinician sessions, room changes, mean rooms per session) as docs/plan-format.md defines
    them: over clinician sessions (a clinician's valid roster session) holding at least one of
    their `blood_draw`/`review` appointments; a change is two of those appointments, one after
    the other by start, in different rooms. Joint reviews are left out: joining a joint MDT
    sitting in the MDT room is not a change."""
    sessions: dict[tuple[str, object], list] = defaultdict(list)
    for x in inst.valid_sessions:
        sessions[(x.clinician_id, x.date)].append(x)
    held: dict[tuple, list[tuple]] = defaultdict(list)
    for a in appointments:
        if a.kind == "joint_review":
            continue
        start = a.start.astimezone(_LONDON)
        end = a.end.astimezone(_LONDON)
        for cid in a.clinician_ids:
            covering = [x for x in sessions.get((cid, start.date()), ())
                        if x.site_id == a.site_id and x.start <= start.time() and end.time() <= x.end]
            if covering:
                x = min(covering, key=lambda x: x.start)
                held[(cid, x.date, x.site_id, x.start)].append((start, end, a.id, a.room_id))
    changes = rooms = 0
    for items in held.values():
        items.sort()
        changes += sum(1 for first, then in pairwise(items) if first[3] != then[3])
        rooms += len({item[3] for item in items})
    return len(held), changes, rooms / len(held) if held else 0.0


def compute_metrics(
    inst: Instance, appointments: list[Appointment], visits: list[Visit], unbooked: list[UnbookedReview]
) -> Metrics:
    scenario = inst.scenario
    patients = scenario.patients
    reviews = sum(len(p.due_reviews) for p in patients)
    unbooked_patients = {u.patient_id for u in unbooked}
    by_id = {a.id: a for a in appointments}

    review_visits: dict[str, set[str]] = defaultdict(set)
    for a in appointments:
        if a.review_ids:
            review_visits[a.patient_id].add(a.visit_id)
    consolidating = [p for p in patients if not p.opt_out_consolidation]
    single = sum(
        1 for p in consolidating if p.id not in unbooked_patients and len(review_visits[p.id]) == 1
    )
    # "One trip in all" counts the draw trip too, so it never seems to contradict visits_per_patient.
    trips: dict[str, int] = defaultdict(int)
    for v in visits:
        trips[v.patient_id] += 1
    one_trip = sum(1 for p in consolidating if p.id not in unbooked_patients and trips[p.id] == 1)

    named = {p.id: p.named_clinician_id for p in patients if p.named_clinician_id and p.wants_continuity}
    continuity_total = continuity_kept = 0
    for a in appointments:
        if a.patient_id in named and a.review_ids:
            continuity_total += len(a.review_ids)
            if named[a.patient_id] in a.clinician_ids:
                continuity_kept += len(a.review_ids)

    hours = wait = 0.0
    multi_step = sum(1 for v in visits if len(v.appointment_ids) > 1)
    for v in visits:
        steps = sorted((by_id[i] for i in v.appointment_ids), key=lambda a: a.start)
        hours += 2 * inst.travel.get((v.patient_id, v.site_id), 0) + _minutes(v)
        latest = steps[0].end
        for a in steps[1:]:
            wait += max(0.0, (a.start - latest).total_seconds() / 60)
            latest = max(latest, a.end)

    clinician_minutes = sum(_minutes(a) * len(a.clinician_ids) for a in appointments)
    rostered = sum(_clock_minutes(x.start, x.end) for x in inst.valid_sessions)
    open_days: dict[str, set] = defaultdict(set)
    for x in inst.valid_sessions:
        open_days[x.site_id].add(x.date)
    room_capacity = sum(
        len(inst.rooms_at.get(site, [])) * _clock_minutes(inst.sites[site].opens, inst.sites[site].closes) * len(days)
        for site, days in open_days.items()
    )
    patients_with_visit = len({v.patient_id for v in visits})
    clinician_sessions, room_changes, rooms_per_session = room_figures(inst, appointments)
    return Metrics(
        patients=len(patients),
        patients_fully_booked=len(patients) - len(unbooked_patients),
        reviews=reviews,
        reviews_booked=reviews - len(unbooked),
        appointments=len(appointments),
        visits=len(visits),
        blood_draws=sum(1 for a in appointments if a.kind == "blood_draw"),
        draw_trips=sum(1 for v in visits if v.purpose == "blood_draw_trip"),
        visits_per_patient=len(visits) / patients_with_visit if patients_with_visit else 0.0,
        single_visit_share=single / len(consolidating) if consolidating else 0.0,
        one_trip_share=one_trip / len(consolidating) if consolidating else 0.0,
        continuity_rate=continuity_kept / continuity_total if continuity_total else 1.0,
        patient_hours=hours / 60,
        patient_wait_minutes=round(wait),
        multi_step_visits=multi_step,
        wait_minutes_per_multi_step_visit=round(wait) / multi_step if multi_step else 0.0,
        clinician_minutes=round(clinician_minutes),
        clinician_utilisation=clinician_minutes / rostered if rostered else 0.0,
        room_utilisation=sum(_minutes(a) for a in appointments) / room_capacity if room_capacity else 0.0,
        clinician_sessions=clinician_sessions,
        room_changes=room_changes,
        rooms_per_session_mean=rooms_per_session,
        **messages_by_channel(scenario, visits),
    )


def messages_by_channel(scenario: Scenario, visits: list[Visit]) -> dict[str, int]:
    """Messages publishing sends, as Metrics fields: one per visit for each channel in the
    patient's contact_preference (an invite, an SMS, a letter). Fewer visits, fewer messages."""
    channels = {p.id: p.contact_preference for p in scenario.patients}
    counts = dict.fromkeys(("calendar", "sms", "letter"), 0)
    for v in visits:
        for channel in channels.get(v.patient_id, ()):
            counts[channel] += 1
    return {f"messages_{channel}": n for channel, n in counts.items()}


def compare(plan: Metrics, old_way: Metrics, shared_minutes_saved: int) -> Comparison:
    """What consolidation saved against the old way on the same patients and roster."""
    return Comparison(
        appointments_saved=old_way.appointments - plan.appointments,
        trips_saved=old_way.visits - plan.visits,
        blood_draws_saved=old_way.blood_draws - plan.blood_draws,
        patient_hours_saved=round(old_way.patient_hours - plan.patient_hours, 2),
        clinician_minutes_saved=shared_minutes_saved,
    )
