"""What changed between two plans, and why: the independent plan diff (issue 14).

A re-plan makes a new plan version from a previous one after disruptions (docs/replan.md). This
module compares the two plan documents visit by visit and says, for each patient, which visits
were moved, cancelled or newly booked, what about them changed, and which disruption entry
caused it. It reads ONLY the two `Plan` documents (and the new plan's `replan` record); it
never asks the solver, so it can verify a re-plan the way `scheduler.check` verifies a plan.

Matching visits, in order:
1. equal visit ids (a visit id is stable: the same bundle and appointments give the same id
   whatever the time), for the same patient;
2. per patient, the remaining visits by the most shared review ids (ties: earlier old start,
   then earlier new start, then ids);
3. per patient, a remaining draw-only visit (no reviews) with a remaining draw-only visit, in
   order of start.
An old visit left over is "cancelled", a new one "newly_booked". A matched pair is "unchanged"
when every appointment (paired by appointment id, else by kind and review ids) keeps its start,
end, site, room and clinicians; otherwise it is "moved" and `what_changed` says what differs.

Times: plan times are aware (ISO 8601 with offset); disruption times are naive Europe/London
wall-clock times and are made aware with zoneinfo "Europe/London" before comparing instants.
Intervals are half-open (touching is not overlapping). Dates and clock times shown are local
Europe/London.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from scheduler.disruptions import (
    BookingMoved,
    ClinicianAbsence,
    Disruption,
    PatientAdded,
    PatientCancelled,
    PatientDidNotAttend,
    ReviewRemoved,
    RoomClosure,
    SessionRemoved,
    SiteClosure,
    disruptions_from_data,
)
from scheduler.plan import Appointment, Plan, PlanModel, ReplanRecord, UnbookedReview, Visit

LONDON = ZoneInfo("Europe/London")

ChangeKind = Literal["moved", "cancelled", "newly_booked", "unchanged"]
WhatChanged = Literal["date", "time", "site", "room", "clinician", "reviews"]

SERIOUSNESS: tuple[ChangeKind, ...] = ("cancelled", "moved", "newly_booked", "unchanged")
"""A patient's status is the first of these among their visit changes."""

WHAT_CHANGED_ORDER: tuple[WhatChanged, ...] = ("date", "time", "site", "room", "clinician", "reviews")

COUNT_KEYS: tuple[str, ...] = (
    "moved", "cancelled", "newly_booked", "unchanged",
    "patients_moved", "patients_cancelled", "patients_newly_booked", "patients_unchanged",
)
"""Every key of `PlanDiff.counts`, always present (0 when none)."""

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ChangeReason(PlanModel):
    """Why a visit changed.

    `code` is the disruption kind that caused it (e.g. "clinician_absence"), or one of:
    "made_room" (no disruption touched the visit: it moved, was regrouped or was dropped so other
    changes fit), "freed_capacity" (a review the previous plan could not book is now booked),
    "unbooked" (a cancelled visit's review is now unbooked, or no longer in the plan at all),
    "not_recorded" (the new plan has no re-plan record for this step, so the cause is unknown),
    "freeze_window" (an extra reason: the old visit started inside the freeze window).
    """

    code: str
    entry: int | None = Field(description="The 1-based disruption entry number, or None.")
    message: str = Field(description="A sentence a practice manager understands.")


class VisitChange(PlanModel):
    """One visit of the old plan, the new plan, or both (matched), and how it changed.

    Times are aware datetimes (as in the plans); room and clinician ids are the distinct ids of
    the visit's appointments, sorted; `review_ids` is the union of both sides' review ids, sorted.
    """

    patient_id: str
    change: ChangeKind
    old_visit_id: str | None
    new_visit_id: str | None
    old_start: dt.datetime | None
    old_end: dt.datetime | None
    new_start: dt.datetime | None
    new_end: dt.datetime | None
    old_site_id: str | None
    new_site_id: str | None
    old_room_ids: list[str]
    new_room_ids: list[str]
    old_clinician_ids: list[str]
    new_clinician_ids: list[str]
    review_ids: list[str]
    what_changed: list[WhatChanged] = Field(
        description="For a moved visit, in this order: date (local date), time (local clock "
        "times), site, room, clinician, reviews (the review ids differ, or an appointment has no "
        "counterpart: a draw added or dropped, sittings regrouped). Empty otherwise.")
    reasons: list[ChangeReason] = Field(description="Empty for an unchanged visit.")


class PatientChange(PlanModel):
    """One patient's visits. `status` is the most serious of their visit changes, in the order
    cancelled > moved > newly_booked > unchanged (a patient with one visit cancelled and another
    newly booked is "cancelled")."""

    patient_id: str
    status: ChangeKind
    visits: list[VisitChange] = Field(description="Every visit of the patient, changed or not, "
                                      "sorted by old start, then new start.")


class PlanDiff(PlanModel):
    """The difference between two plans.

    `counts`: visits by change (`moved`, `cancelled`, `newly_booked`, `unchanged`) and patients
    by status (`patients_moved`, ...), over every patient with a visit in either plan; every key
    of COUNT_KEYS is present. `patients` lists only patients whose status is not "unchanged",
    sorted by patient id.
    """

    old_plan_id: str | None
    new_plan_id: str | None
    counts: dict[str, int]
    patients: list[PatientChange]


# ---------------------------------------------------------------------------------------------
# Small helpers


def _local(moment: dt.datetime) -> dt.datetime:
    """An aware instant as Europe/London wall-clock time (still aware)."""
    return moment.astimezone(LONDON)


def _aware(naive: dt.datetime) -> dt.datetime:
    """A naive Europe/London wall-clock time as an aware instant."""
    return naive.replace(tzinfo=LONDON)


def _text(naive: dt.datetime) -> str:
    return naive.strftime("%Y-%m-%d %H:%M")


def _listed(ids: list[str]) -> str:
    return ", ".join(ids)


def _verb(ids: list[str], one: str, many: str) -> str:
    """'is' for one id, 'are' for several."""
    return one if len(ids) == 1 else many


def _overlaps(a: Appointment, start: dt.datetime, end: dt.datetime) -> bool:
    """Half-open overlap of the appointment with start..end (aware instants)."""
    return a.start < end and start < a.end


def _appointments_by_visit(plan: Plan) -> dict[str, list[Appointment]]:
    """Visit id -> its appointments (those of its `appointment_ids` the plan holds), by start."""
    by_id = {a.id: a for a in plan.appointments}
    result: dict[str, list[Appointment]] = {}
    for v in plan.visits:
        items = [by_id[i] for i in v.appointment_ids if i in by_id]
        result[v.id] = sorted(items, key=lambda a: (a.start, a.end, a.id))
    return result


def _review_ids(appointments: list[Appointment]) -> set[str]:
    return {r for a in appointments for r in a.review_ids}


def _plan_id(plan: Plan) -> str | None:
    return plan.stored.plan_id if plan.stored is not None else None


def _record_for(old: Plan, new: Plan) -> ReplanRecord | None:
    """The new plan's re-plan record when it describes re-planning `old`: its previous_plan_id
    equals old's stored plan id, or either is unknown. Otherwise None (causes not recorded)."""
    record = new.replan
    if record is None:
        return None
    old_id = _plan_id(old)
    if record.previous_plan_id is not None and old_id is not None and record.previous_plan_id != old_id:
        return None
    return record


# ---------------------------------------------------------------------------------------------
# Matching


def _match_visits(
    old: Plan, new: Plan, old_appts: dict[str, list[Appointment]], new_appts: dict[str, list[Appointment]]
) -> list[tuple[Visit | None, Visit | None]]:
    """Pairs (old visit, new visit); None on one side for an unmatched visit."""
    pairs: list[tuple[Visit | None, Visit | None]] = []
    new_by_id = {w.id: w for w in new.visits}
    used_new: set[str] = set()
    old_left: list[Visit] = []
    for v in old.visits:
        w = new_by_id.get(v.id)
        if w is not None and w.id not in used_new and w.patient_id == v.patient_id:
            pairs.append((v, w))
            used_new.add(w.id)
        else:
            old_left.append(v)
    new_left = [w for w in new.visits if w.id not in used_new]

    old_by_patient: dict[str, list[Visit]] = defaultdict(list)
    new_by_patient: dict[str, list[Visit]] = defaultdict(list)
    for v in old_left:
        old_by_patient[v.patient_id].append(v)
    for w in new_left:
        new_by_patient[w.patient_id].append(w)

    used_old: set[str] = set()
    for patient_id, olds in old_by_patient.items():
        news = new_by_patient.get(patient_id, [])
        # Most shared review ids first.
        candidates: list[tuple[int, dt.datetime, dt.datetime, str, str]] = []
        for v in olds:
            for w in news:
                shared = len(_review_ids(old_appts[v.id]) & _review_ids(new_appts[w.id]))
                if shared > 0:
                    candidates.append((-shared, v.start, w.start, v.id, w.id))
        candidates.sort()
        olds_by_id = {v.id: v for v in olds}
        news_by_id = {w.id: w for w in news}
        for _, _, _, v_id, w_id in candidates:
            if v_id in used_old or w_id in used_new:
                continue
            pairs.append((olds_by_id[v_id], news_by_id[w_id]))
            used_old.add(v_id)
            used_new.add(w_id)
        # Draw-only visits with draw-only visits, in order of start.
        old_draws = sorted((v for v in olds if v.id not in used_old and not _review_ids(old_appts[v.id])),
                           key=lambda v: (v.start, v.id))
        new_draws = sorted((w for w in news if w.id not in used_new and not _review_ids(new_appts[w.id])),
                           key=lambda w: (w.start, w.id))
        for v, w in zip(old_draws, new_draws, strict=False):
            pairs.append((v, w))
            used_old.add(v.id)
            used_new.add(w.id)

    for v in old_left:
        if v.id not in used_old:
            pairs.append((v, None))
    for w in new_left:
        if w.id not in used_new:
            pairs.append((None, w))
    return pairs


def _pair_appointments(
    olds: list[Appointment], news: list[Appointment]
) -> tuple[list[tuple[Appointment, Appointment]], int]:
    """Appointment pairs (by id, else by kind and review ids) and how many had no counterpart."""
    pairs: list[tuple[Appointment, Appointment]] = []
    news_left = list(news)
    olds_left: list[Appointment] = []
    for a in olds:
        b = next((b for b in news_left if b.id == a.id), None)
        if b is None:
            olds_left.append(a)
        else:
            pairs.append((a, b))
            news_left.remove(b)
    unmatched = 0
    for a in olds_left:
        key = (a.kind, sorted(a.review_ids))
        b = next((b for b in news_left if (b.kind, sorted(b.review_ids)) == key), None)
        if b is None:
            unmatched += 1
        else:
            pairs.append((a, b))
            news_left.remove(b)
    return pairs, unmatched + len(news_left)


def _what_changed(v: Visit, w: Visit, olds: list[Appointment], news: list[Appointment]) -> list[WhatChanged]:
    """What differs between a matched pair of visits (empty: unchanged)."""
    found: set[str] = set()
    pairs, unmatched = _pair_appointments(olds, news)
    moments = [(v.start, w.start), (v.end, w.end)]
    moments += [(a.start, b.start) for a, b in pairs] + [(a.end, b.end) for a, b in pairs]
    for x, y in moments:
        if _local(x).date() != _local(y).date():
            found.add("date")
        if _local(x).time() != _local(y).time():
            found.add("time")
    if v.site_id != w.site_id or any(a.site_id != b.site_id for a, b in pairs):
        found.add("site")
    if any(a.room_id != b.room_id for a, b in pairs):
        found.add("room")
    if any(sorted(a.clinician_ids) != sorted(b.clinician_ids) for a, b in pairs):
        found.add("clinician")
    if unmatched or _review_ids(olds) != _review_ids(news):
        found.add("reviews")
    return [name for name in WHAT_CHANGED_ORDER if name in found]


# ---------------------------------------------------------------------------------------------
# Reasons


def _describe(entry: Disruption) -> str:
    """What a disruption entry says, in plain words (times local)."""
    if isinstance(entry, ClinicianAbsence):
        text = f"{entry.clinician} is absent {_text(entry.start)} to {_text(entry.end)}"
    elif isinstance(entry, RoomClosure):
        text = f"room {entry.room} is closed {_text(entry.start)} to {_text(entry.end)}"
    elif isinstance(entry, SiteClosure):
        text = f"site {entry.site} is closed {_text(entry.start)} to {_text(entry.end)}"
    elif isinstance(entry, SessionRemoved):
        s = entry.session
        text = (f"{s.clinician_id}'s session at {s.site_id} on {s.date.isoformat()} "
                f"{s.start:%H:%M}-{s.end:%H:%M} was taken off the roster")
    elif isinstance(entry, PatientCancelled):
        text = (f"{entry.patient} cancelled and is booked again on other days" if entry.rebook
                else f"{entry.patient} cancelled; their reviews are taken out of this period")
    elif isinstance(entry, PatientDidNotAttend):
        text = f"{entry.patient} did not attend on {entry.date.isoformat()} and is booked again"
    elif isinstance(entry, PatientAdded):
        text = f"{entry.patient.id} was added to the plan"
    elif isinstance(entry, ReviewRemoved):
        text = f"{entry.patient}'s {entry.review_type} review is no longer needed"
    elif isinstance(entry, BookingMoved):
        text = f"moved by the practice manager to {entry.date.isoformat()} {entry.start:%H:%M}"
        if entry.clinician is not None:
            text += f" with {entry.clinician}"
        if entry.room is not None:
            text += f" in room {entry.room}"
    else:  # session_added, booking_pinned: never a reason for a change
        return entry.kind
    if isinstance(entry, ClinicianAbsence | RoomClosure | SiteClosure | PatientCancelled) and entry.reason:
        text += f" ({entry.reason})"
    return text


def _entry_reason(number: int, entry: Disruption) -> ChangeReason:
    return ChangeReason(code=entry.kind, entry=number,
                        message=f"entry {number} ({entry.kind}): {_describe(entry)}")


def _touches_old_visit(
    number: int, entry: Disruption, visit: Visit, appts: list[Appointment], targets: dict[str, list[str]]
) -> bool:
    """Whether disruption entry `number` (1-based) touches this visit of the old plan."""
    if isinstance(entry, ClinicianAbsence):
        start, end = _aware(entry.start), _aware(entry.end)
        return any(entry.clinician in a.clinician_ids and _overlaps(a, start, end) for a in appts)
    if isinstance(entry, RoomClosure):
        start, end = _aware(entry.start), _aware(entry.end)
        return any(a.room_id == entry.room and _overlaps(a, start, end) for a in appts)
    if isinstance(entry, SiteClosure):
        start, end = _aware(entry.start), _aware(entry.end)
        return any(a.site_id == entry.site and _overlaps(a, start, end) for a in appts)
    if isinstance(entry, SessionRemoved):
        s = entry.session
        start = dt.datetime.combine(s.date, s.start, tzinfo=LONDON)
        end = dt.datetime.combine(s.date, s.end, tzinfo=LONDON)
        return any(s.clinician_id in a.clinician_ids and a.site_id == s.site_id
                   and _overlaps(a, start, end) for a in appts)
    if isinstance(entry, PatientCancelled):
        return entry.patient == visit.patient_id
    if isinstance(entry, PatientDidNotAttend):
        return entry.patient == visit.patient_id and _local(visit.start).date() == entry.date
    if isinstance(entry, ReviewRemoved):
        return entry.patient == visit.patient_id and any(entry.review_type in a.review_type_ids for a in appts)
    if isinstance(entry, BookingMoved):
        named = set(targets.get(str(number), []))
        return any(a.id in named for a in appts)
    return False


def _names_new_visit(entry: Disruption, visit: Visit) -> bool:
    """Whether a disruption entry explains a newly booked visit of this patient."""
    if isinstance(entry, PatientAdded):
        return entry.patient.id == visit.patient_id
    if isinstance(entry, PatientDidNotAttend):
        return entry.patient == visit.patient_id
    if isinstance(entry, PatientCancelled):
        return entry.patient == visit.patient_id and entry.rebook
    return False


def _freeze_reason(record: ReplanRecord, verb: str) -> ChangeReason:
    until = _local(record.freeze_until)
    return ChangeReason(code="freeze_window", entry=None,
                        message=f"inside the freeze window until {until:%H:%M} {until.date().isoformat()}: "
                        f"{verb} only because it could not stand")


def _not_recorded() -> ChangeReason:
    return ChangeReason(code="not_recorded", entry=None,
                        message="the new plan has no re-plan record for this step, so the cause is not known")


def _old_side_reasons(
    change: ChangeKind, visit: Visit, appts: list[Appointment], record: ReplanRecord | None,
    entries: list[Disruption], unbooked_now: dict[str, UnbookedReview], new_booked: dict[str, Visit],
) -> list[ChangeReason]:
    """Reasons for a moved or cancelled visit, judged on the OLD visit's appointments.

    `unbooked_now`: the new plan's unbooked entries by review id; `new_booked`: the new plan's
    visit holding each booked review id."""
    if record is None:
        return [_not_recorded()]
    reasons = [_entry_reason(n, e) for n, e in enumerate(entries, start=1)
               if _touches_old_visit(n, e, visit, appts, record.targets)]
    if not reasons and change == "moved":
        reasons.append(ChangeReason(code="made_room", entry=None,
                                    message="no disruption touched this visit; it moved to make room "
                                    "for other changes"))
    if not reasons and change == "cancelled":
        elsewhere: list[str] = []
        gone: list[str] = []
        for review_id in sorted(_review_ids(appts)):
            if review_id in unbooked_now:
                u = unbooked_now[review_id]
                reasons.append(ChangeReason(code="unbooked", entry=None,
                                            message=f"{review_id} is now unbooked ({u.reason}): {u.detail}"))
            elif review_id in new_booked:
                elsewhere.append(review_id)
            else:
                gone.append(review_id)
        if elsewhere:
            dates = sorted({_local(new_booked[r].start).date().isoformat() for r in elsewhere})
            reasons.append(ChangeReason(code="made_room", entry=None,
                                        message=f"no disruption touched this visit; {_listed(elsewhere)} "
                                        f"{_verb(elsewhere, 'is', 'are')} now booked in another visit "
                                        f"({', '.join(dates)})"))
        if gone:
            reasons.append(ChangeReason(code="unbooked", entry=None,
                                        message=f"{_listed(gone)} {_verb(gone, 'is', 'are')} no longer "
                                        "in the new plan (neither booked nor listed as unbooked)"))
        if not _review_ids(appts):
            reasons.append(ChangeReason(code="made_room", entry=None,
                                        message="no disruption touched this blood-draw trip; it is no "
                                        "longer needed as a trip of its own"))
    manager = any(r.code == "booking_moved" for r in reasons)  # the manager's own choice, not forced
    if visit.start < record.freeze_until and not manager:
        reasons.append(_freeze_reason(record, change))
    return reasons


def _new_side_reasons(
    visit: Visit, appts: list[Appointment], record: ReplanRecord | None, entries: list[Disruption],
    unbooked_before: set[str], old_booked: dict[str, Visit], old_appts: dict[str, list[Appointment]],
) -> list[ChangeReason]:
    """Reasons for a newly booked visit. `unbooked_before`: review ids the old plan left
    unbooked; `old_booked`: the old plan's visit holding each booked review id; `old_appts`: the
    old plan's appointments by visit id. A visit holding reviews of an old visit a disruption
    touched (a visit split in two) gets that disruption's reasons."""
    reasons = [_entry_reason(n, e) for n, e in enumerate(entries, start=1) if _names_new_visit(e, visit)]
    if reasons:
        return reasons
    freed = sorted(r for r in _review_ids(appts) if r in unbooked_before)
    if freed:
        return [ChangeReason(code="freed_capacity", entry=None,
                             message=f"{_listed(freed)} could not be booked in the previous plan "
                             f"and {_verb(freed, 'is', 'are')} booked now")]
    if record is None:
        return [_not_recorded()]
    regrouped = sorted(r for r in _review_ids(appts) if r in old_booked)
    split = [_entry_reason(n, e) for n, e in enumerate(entries, start=1)
             if any(_touches_old_visit(n, e, v, old_appts[v.id], record.targets)
                    for v in {old_booked[r].id: old_booked[r] for r in regrouped}.values())]
    if split:  # part of a visit a disruption touched, now a visit of its own
        return split
    if regrouped:
        return [ChangeReason(code="made_room", entry=None,
                             message=f"no disruption named this patient; {_listed(regrouped)} "
                             f"{_verb(regrouped, 'was', 'were')} in another visit of the previous plan, "
                             "regrouped to make room for other changes")]
    return [ChangeReason(code="made_room", entry=None,
                         message="no disruption named this patient; booked to make room for other changes")]


# ---------------------------------------------------------------------------------------------
# The diff


def _room_ids(appts: list[Appointment]) -> list[str]:
    return sorted({a.room_id for a in appts})


def _clinician_ids(appts: list[Appointment]) -> list[str]:
    return sorted({c for a in appts for c in a.clinician_ids})


def _visit_sort_key(change: VisitChange) -> tuple:
    if change.old_start is not None:
        second = change.new_start if change.new_start is not None else change.old_start
        return (0, change.old_start, second, change.old_visit_id or "", change.new_visit_id or "")
    assert change.new_start is not None
    return (1, change.new_start, change.new_start, "", change.new_visit_id or "")


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    """Compare two plans visit by visit: what moved, was cancelled or newly booked, and why.

    Computed only from the two documents. Reasons come from the new plan's `replan` record when
    it re-planned `old` (its previous_plan_id equals `old.stored.plan_id`, or either is unknown);
    without one every moved or cancelled visit has the reason "not_recorded".

    Returns a PlanDiff (see its docstring for the shape of `counts` and `patients`).
    Raises scheduler.disruptions.DisruptionError when the record holds an entry that is not a
    valid disruption.
    """
    record = _record_for(old, new)
    entries: list[Disruption] = (
        disruptions_from_data(record.disruptions, "replan.disruptions") if record is not None else [])
    old_appts = _appointments_by_visit(old)
    new_appts = _appointments_by_visit(new)
    old_booked = {r: v for v in old.visits for r in _review_ids(old_appts[v.id])}
    new_booked = {r: w for w in new.visits for r in _review_ids(new_appts[w.id])}
    unbooked_before = {u.review_id for u in old.unbooked}
    unbooked_now = {u.review_id: u for u in new.unbooked}

    changes: list[VisitChange] = []
    for v, w in _match_visits(old, new, old_appts, new_appts):
        olds = old_appts[v.id] if v is not None else []
        news = new_appts[w.id] if w is not None else []
        what: list[WhatChanged] = []
        if v is not None and w is not None:
            what = _what_changed(v, w, olds, news)
            change: ChangeKind = "moved" if what else "unchanged"
        elif v is not None:
            change = "cancelled"
        else:
            change = "newly_booked"

        reasons: list[ChangeReason] = []
        if change in ("moved", "cancelled"):
            assert v is not None
            reasons = _old_side_reasons(change, v, olds, record, entries, unbooked_now, new_booked)
        elif change == "newly_booked":
            assert w is not None
            reasons = _new_side_reasons(w, news, record, entries, unbooked_before, old_booked, old_appts)

        either = v if v is not None else w
        assert either is not None
        changes.append(VisitChange(
            patient_id=either.patient_id,
            change=change,
            old_visit_id=v.id if v is not None else None,
            new_visit_id=w.id if w is not None else None,
            old_start=v.start if v is not None else None,
            old_end=v.end if v is not None else None,
            new_start=w.start if w is not None else None,
            new_end=w.end if w is not None else None,
            old_site_id=v.site_id if v is not None else None,
            new_site_id=w.site_id if w is not None else None,
            old_room_ids=_room_ids(olds),
            new_room_ids=_room_ids(news),
            old_clinician_ids=_clinician_ids(olds),
            new_clinician_ids=_clinician_ids(news),
            review_ids=sorted(_review_ids(olds) | _review_ids(news)),
            what_changed=what,
            reasons=reasons,
        ))

    counts = {key: 0 for key in COUNT_KEYS}
    by_patient: dict[str, list[VisitChange]] = defaultdict(list)
    for c in changes:
        counts[c.change] += 1
        by_patient[c.patient_id].append(c)

    patients: list[PatientChange] = []
    for patient_id in sorted(by_patient):
        visits = sorted(by_patient[patient_id], key=_visit_sort_key)
        kinds = {c.change for c in visits}
        status = next(kind for kind in SERIOUSNESS if kind in kinds)
        counts[f"patients_{status}"] += 1
        if status != "unchanged":
            patients.append(PatientChange(patient_id=patient_id, status=status, visits=visits))

    return PlanDiff(old_plan_id=_plan_id(old), new_plan_id=_plan_id(new), counts=counts, patients=patients)


# ---------------------------------------------------------------------------------------------
# Text for a terminal


def _when(moment: dt.datetime) -> str:
    """'Tue 23 Mar 09:00', local Europe/London (locale-independent)."""
    local = _local(moment)
    return f"{_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local:%H:%M}"


def _details(c: VisitChange) -> str:
    """'(site a -> b; clinician x -> y)' for what changed beyond date and time."""
    parts: list[str] = []
    if "site" in c.what_changed:
        parts.append(f"site {c.old_site_id} -> {c.new_site_id}")
    if "room" in c.what_changed:
        parts.append(f"room {', '.join(c.old_room_ids)} -> {', '.join(c.new_room_ids)}")
    if "clinician" in c.what_changed:
        parts.append(f"clinician {', '.join(c.old_clinician_ids)} -> {', '.join(c.new_clinician_ids)}")
    if "reviews" in c.what_changed:
        parts.append("reviews regrouped")
    return f" ({'; '.join(parts)})" if parts else ""


def _visit_line(c: VisitChange) -> str:
    if c.change == "moved":
        assert c.old_start is not None and c.new_start is not None
        when = f"{_when(c.old_start)} -> {_when(c.new_start)}{_details(c)}"
    elif c.change == "cancelled":
        assert c.old_start is not None
        when = f"was {_when(c.old_start)} at {c.old_site_id}"
    elif c.change == "newly_booked":
        assert c.new_start is not None
        when = f"now {_when(c.new_start)} at {c.new_site_id}"
    else:
        assert c.old_start is not None
        when = f"{_when(c.old_start)} at {c.old_site_id}"
    line = f"{c.patient_id}  {c.change.replace('_', ' '):<12}  {when}"
    if c.reasons:
        line += "  because " + "; ".join(r.message for r in c.reasons)
    return line


def format_diff(diff: PlanDiff) -> str:
    """The diff as plain text for a terminal (no colours): a counts line, then one line per visit
    of each changed patient. Returns the text without a trailing newline."""
    n = diff.counts
    lines = [
        f"Plan {diff.old_plan_id or '(old)'} -> {diff.new_plan_id or '(new)'}",
        (f"Visits: {n['moved']} moved, {n['cancelled']} cancelled, {n['newly_booked']} newly booked, "
         f"{n['unchanged']} unchanged. Patients: {n['patients_moved']} moved, "
         f"{n['patients_cancelled']} cancelled, {n['patients_newly_booked']} newly booked, "
         f"{n['patients_unchanged']} unchanged."),
    ]
    if not diff.patients:
        lines.append("No visit changed.")
    for patient in diff.patients:
        for c in patient.visits:
            lines.append(_visit_line(c))
    return "\n".join(lines)
