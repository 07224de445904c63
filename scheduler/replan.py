"""Re-planning a week that went wrong, with the fewest changes (docs/replan.md).

`prepare` checks a list of disruptions against the scenario and plan they apply to and turns
them into the scenario's next version (absences cut roster sessions, closures are recorded,
patients cancelled, added or due again); every problem names the entry and field, and a
manager's move that breaks a rule is refused with the rule. `replan` then books that version
starting from the previous plan:

1. Every visit of the previous plan is re-read as bookings of the new version and checked
   against it (`why_not`): a visit stands when every appointment still fits: clinician rostered
   and free, room open and free (and, under the hard room rule, their session's room), patient
   available, inside the due window.
2. Visits that stand are kept exactly, unless their patient is re-placed and a better visit for
   them is found. Visits that are pinned, moved by the manager, in the past or inside the freeze
   window (the next FREEZE_WORKING_DAYS working days after `as_of`) are always kept.
3. The patients whose visits cannot stand, patients added, due again or still waiting for a
   review the previous plan could not book are placed again around the kept visits, each in
   its cheapest placement by the plan's objective plus a stability cost per visit moved
   (MOVED_VISIT, more when it leaves its day: the same clinician and site first). Nothing new is
   booked before the end of the freeze window.
4. The re-placed visits alone are compacted (`scheduler.compact`), and the plan is assembled as
   `scheduler.planner.make_plan` does.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from ortools.sat.python import cp_model

from scheduler.assemble import (
    appointments_and_visits,
    booked_review_ids,
    stable_id,
    unbooked_entries,
)
from scheduler.baselines import GreedyBooker, greedy_consolidate, old_way, options, priority_order
from scheduler.budget import Budget
from scheduler.bundles import BundleBuilder
from scheduler.check import check_plan
from scheduler.compact import compact
from scheduler.daybook import Booking, Daybook
from scheduler.disruptions import (
    BookingMoved,
    BookingPinned,
    ClinicianAbsence,
    Disruption,
    DisruptionError,
    PatientAdded,
    PatientCancelled,
    PatientDidNotAttend,
    ReviewRemoved,
    RoomClosure,
    SessionAdded,
    SessionRemoved,
    SiteClosure,
    as_data,
    entry_location,
)
from scheduler.domain import (
    Closure,
    Patient,
    RosterSession,
    Scenario,
    SolverSettings,
    Unavailability,
)
from scheduler.instance import Instance, span_mask
from scheduler.metrics import compare, compute_metrics
from scheduler.model.objective import SESSION_USED, evaluate, standalone_floor
from scheduler.model.variables import build_variables
from scheduler.plan import Metrics, Plan, ReplanRecord, SolverStats
from scheduler.planner import PlanningProgress, bound_scope, shared_minutes_saved
from scheduler.problems import Problem, ScenarioError, did_you_mean
from scheduler.reasons import unbooked_reasons
from scheduler.rooms import room_fits, session_index, session_rooms
from scheduler.scenario_io import scenario_from_dict
from scheduler.steps import Bundle
from scheduler.timegrid import add_working_days

LONDON = ZoneInfo("Europe/London")
SOURCE = "disruptions"
FREEZE_WORKING_DAYS = 2
"""The freeze window: the rest of `as_of`'s day and the next 2 working days. Lists for those days
are printed and patients reminded; only what cannot stand moves inside it."""
MOVED_VISIT = 400
"""Stability cost of a visit of the previous plan not kept exactly (a message to the patient, a
change to a clinician's list): more than the objective gains a move for waiting or travel
alone is usually worth, far less than a review booked (UNBOOKED_REVIEW, 100,000)."""
OTHER_DAY_SAME_PLACE = 100
"""Added when a moved visit leaves its day but keeps a clinician and the site."""
OTHER_DAY_ELSEWHERE = 200
"""Added when a moved visit leaves its day and its clinicians or site."""
EJECTION_PLACES = 3
"""Places tried for a patient still missing reviews: their cheapest single visits on an empty roster."""
EJECTION_BLOCKERS = 8
"""Patients in the way tried at each place."""
IGNORED_CODES = frozenset({"metrics_mismatch", "review_not_accounted"})
"""Checker codes about the plan as a whole, not about a booking checked on its own."""

Visit = list[Booking]


@dataclass(frozen=True)
class Prepared:
    """Disruptions checked and applied: the scenario's next version and what the re-plan needs.

    `as_of` and `freeze_until` are aware datetimes; `targets` maps the index (0-based) of each
    booking_pinned / booking_moved entry to the appointment ids of the previous plan it names.
    """

    scenario: Scenario
    disruptions: list[Disruption]
    as_of: dt.datetime
    freeze_until: dt.datetime
    targets: dict[int, list[str]] = field(default_factory=dict)


def freeze_until(as_of: dt.datetime, working_days: int = FREEZE_WORKING_DAYS) -> dt.datetime:
    """Midnight (Europe/London) after the `working_days`-th working day after `as_of`'s date:
    Monday 09:00 gives Thursday 00:00. Working days are Monday to Friday, England bank holidays
    aside (scheduler.timegrid)."""
    local = as_of.astimezone(LONDON)
    last = add_working_days(local.date(), working_days)
    return dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0, 0), tzinfo=LONDON)


def _aware(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    return value.replace(tzinfo=LONDON) if value.tzinfo is None else value


def _local(value: dt.datetime) -> dt.datetime:
    """An aware instant as naive Europe/London wall-clock time."""
    return value.astimezone(LONDON).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# Checking and applying the disruptions


class _Entries:
    """Problems found in the entries, each named by entry and field."""

    def __init__(self, disruptions: list[Disruption]):
        self.disruptions = disruptions
        self.problems: list[Problem] = []

    def add(self, index: int, field_name: str | None, message: str) -> None:
        kind = self.disruptions[index].kind
        self.problems.append(Problem(SOURCE, entry_location(index, kind, (field_name,) if field_name else ()), message))


def _check_entries(scenario: Scenario, previous: Plan, disruptions: list[Disruption],
                   references: Mapping[str, str], as_of: dt.datetime) -> list[Problem]:
    """Every entry against the scenario and plan: ids that exist, ranges inside the horizon, a
    room or site not closed twice, sessions that exist, bookings that are in the plan."""
    found = _Entries(disruptions)
    clinicians = {c.id for c in scenario.clinicians}
    rooms = {r.id: r for r in scenario.rooms}
    sites = {s.id for s in scenario.sites}
    patients = {p.id: p for p in scenario.patients}
    appointments = {a.id for a in previous.appointments}
    visits = {v.id: v for v in previous.visits}
    first = dt.datetime.combine(scenario.horizon_start, dt.time(0, 0))
    after = dt.datetime.combine(scenario.horizon_end + dt.timedelta(days=1), dt.time(0, 0))
    horizon = f"the plan's horizon, {scenario.horizon_start} to {scenario.horizon_end}"
    closed: list[tuple[str, str, dt.datetime, dt.datetime, str]] = [
        ("room" if c.room_id else "site", c.room_id or c.site_id or "", c.start, c.end, "the scenario")
        for c in scenario.closures]
    added: set[str] = set()
    named_bookings: dict[str, int] = {}

    def unknown(index: int, field_name: str, value: str, known, noun: str) -> bool:
        if value in known:
            return False
        found.add(index, field_name, f"unknown {noun} '{value}'" + did_you_mean(value, sorted(known), noun + "s"))
        return True

    for index, entry in enumerate(disruptions):
        if isinstance(entry, ClinicianAbsence | RoomClosure | SiteClosure):
            if entry.start < first or entry.start >= after:
                found.add(index, "start", f"{entry.start.isoformat()} is outside {horizon}")
            if entry.end > after or entry.end <= first:
                found.add(index, "end", f"{entry.end.isoformat()} is outside {horizon} (the end is "
                          f"exclusive: at most {after.isoformat()})")
        if isinstance(entry, ClinicianAbsence):
            unknown(index, "clinician", entry.clinician, clinicians, "clinician")
        elif isinstance(entry, RoomClosure | SiteClosure):
            what, value = ("room", entry.room) if isinstance(entry, RoomClosure) else ("site", entry.site)
            if unknown(index, what, value, rooms if what == "room" else sites, what):
                continue
            for other_what, other, start, end, where in closed:
                same = other == value and other_what == what
                site_of_room = what == "room" and other_what == "site" and rooms[value].site_id == other
                if (same or site_of_room) and start < entry.end and entry.start < end:
                    found.add(index, what, f"{what} '{value}' is already closed then ({other_what} '{other}', "
                              f"{start.isoformat()} to {end.isoformat()}, in {where})")
                    break
            closed.append((what, value, entry.start, entry.end, f"entry {index + 1}"))
        elif isinstance(entry, SessionAdded | SessionRemoved):
            session = entry.session
            if unknown(index, "session.clinician_id", session.clinician_id, clinicians, "clinician"):
                continue
            if unknown(index, "session.site_id", session.site_id, sites, "site"):
                continue
            if not scenario.horizon_start <= session.date <= scenario.horizon_end:
                found.add(index, "session.date", f"{session.date} is outside {horizon}")
            if session.end <= session.start:
                found.add(index, "session.end", "the session ends at or before it starts")
            same_day = [s for s in scenario.sessions if s.clinician_id == session.clinician_id and s.date == session.date]
            if isinstance(entry, SessionAdded):
                if session.room_id is not None and (session.room_id not in rooms
                                                    or rooms[session.room_id].site_id != session.site_id):
                    found.add(index, "session.room_id", f"'{session.room_id}' is not a room at {session.site_id}")
                clash = next((s for s in same_day if s.start < session.end and session.start < s.end), None)
                if clash is not None:
                    found.add(index, "session.start", f"overlaps {session.clinician_id}'s session on {session.date} "
                              f"{clash.start:%H:%M}-{clash.end:%H:%M} at {clash.site_id}")
            elif not any(_same_session(s, session) for s in same_day):
                found.add(index, "session", f"the scenario has no session of {session.clinician_id} on {session.date} "
                          f"{session.start:%H:%M}-{session.end:%H:%M} at {session.site_id}")
        elif isinstance(entry, PatientCancelled | PatientDidNotAttend | ReviewRemoved):
            if unknown(index, "patient", entry.patient, patients, "patient"):
                continue
            if isinstance(entry, PatientDidNotAttend) and not any(
                    v.patient_id == entry.patient and v.date == entry.date for v in previous.visits):
                found.add(index, "date", f"{entry.patient} has no visit on {entry.date} in the plan")
            elif isinstance(entry, PatientDidNotAttend) and entry.date > _local(as_of).date():
                found.add(index, "date", f"{entry.date} is after as_of ({_local(as_of).isoformat(timespec='minutes')}): "
                          "a visit is missed only once its day has come")
            if isinstance(entry, ReviewRemoved) and not any(
                    d.review_type_id == entry.review_type for d in patients[entry.patient].due_reviews):
                found.add(index, "review_type", f"{entry.patient} has no due review of type '{entry.review_type}'")
        elif isinstance(entry, PatientAdded):
            if entry.patient.id in patients or entry.patient.id in added:
                found.add(index, "patient.id", f"patient '{entry.patient.id}' is already in the scenario")
            added.add(entry.patient.id)
        elif isinstance(entry, BookingPinned | BookingMoved):
            if entry.reference is not None:
                visit_id = references.get(entry.reference)
                if visit_id is None or visit_id not in visits:
                    found.add(index, "reference", f"{entry.reference} is not a booking reference of this plan "
                              "(references are given when a plan is published)")
                    continue
                key = visit_id
            else:
                if entry.appointment not in appointments:
                    found.add(index, "appointment", f"'{entry.appointment}' is not an appointment of this plan")
                    continue
                key = entry.appointment
            if key in named_bookings:
                found.add(index, "reference" if entry.reference else "appointment",
                          f"the same booking is already named by entry {named_bookings[key] + 1}")
            named_bookings[key] = index
            if isinstance(entry, BookingMoved):
                if not scenario.horizon_start <= entry.date <= scenario.horizon_end:
                    found.add(index, "date", f"{entry.date} is outside {horizon}")
                if entry.clinician is not None:
                    unknown(index, "clinician", entry.clinician, clinicians, "clinician")
                if entry.room is not None:
                    unknown(index, "room", entry.room, rooms, "room")
    if _local(as_of) >= after:
        found.problems.append(Problem(SOURCE, "as_of", f"{_local(as_of).isoformat()} is after {horizon}: nothing "
                                      "could be booked"))
    return found.problems


def _same_session(a: RosterSession, b: RosterSession) -> bool:
    return (a.clinician_id, a.date, a.start, a.end, a.site_id) == (b.clinician_id, b.date, b.start, b.end, b.site_id)


def _targets(previous: Plan, disruptions: list[Disruption], references: Mapping[str, str]) -> dict[int, list[str]]:
    by_visit = {v.id: v.appointment_ids for v in previous.visits}
    targets = {}
    for index, entry in enumerate(disruptions):
        if isinstance(entry, BookingPinned | BookingMoved):
            targets[index] = list(by_visit[references[entry.reference]]) if entry.reference else [entry.appointment]
    return targets


def _cut(session: RosterSession, start: dt.datetime, end: dt.datetime) -> list[RosterSession]:
    """The session less the time from `start` to `end` (local): none, one or two pieces."""
    begins = dt.datetime.combine(session.date, session.start)
    ends = dt.datetime.combine(session.date, session.end)
    if end <= begins or ends <= start:
        return [session]
    pieces = []
    if begins < start:
        pieces.append(session.model_copy(update={"end": start.time()}))
    if end < ends:
        pieces.append(session.model_copy(update={"start": end.time()}))
    return pieces


def apply_disruptions(scenario: Scenario, previous: Plan, disruptions: list[Disruption]) -> Scenario:
    """The scenario's next version with the disruptions applied, in file order.

    - clinician_absence: each of the clinician's roster sessions loses the absent time (a
      session partly inside keeps the part outside).
    - room_closure / site_closure: recorded in `closures`.
    - session_added / session_removed: the roster gains or loses the session.
    - patient_cancelled: without `rebook`, the patient leaves this period; with it, the patient
      cannot come on the dates of their visits in `previous` and is booked again.
    - patient_did_not_attend: the patient's priority rises by one (at most 3), they cannot come
      on that date, and the reviews of that visit stay due to the horizon's end.
    - patient_added: the patient joins; review_removed: the due review goes (and the patient,
      when it was their last).
    - booking_pinned / booking_moved change the plan, not the scenario.
    The entries must have passed `_check_entries`; the result is not yet validated.
    """
    sessions = list(scenario.sessions)
    closures = list(scenario.closures)
    patients: dict[str, Patient] = {p.id: p for p in scenario.patients}
    visit_reviews: dict[tuple[str, dt.date], set[str]] = defaultdict(set)
    visit_dates: dict[str, set[dt.date]] = defaultdict(set)
    appointments = {a.id: a for a in previous.appointments}
    for v in previous.visits:
        visit_dates[v.patient_id].add(v.date)
        for a_id in v.appointment_ids:
            visit_reviews[(v.patient_id, v.date)].update(appointments[a_id].review_ids)
    for entry in disruptions:
        if isinstance(entry, ClinicianAbsence):
            sessions = [piece for s in sessions for piece in
                        (_cut(s, entry.start, entry.end) if s.clinician_id == entry.clinician else [s])]
        elif isinstance(entry, RoomClosure):
            closures.append(Closure(room_id=entry.room, start=entry.start, end=entry.end, reason=entry.reason))
        elif isinstance(entry, SiteClosure):
            closures.append(Closure(site_id=entry.site, start=entry.start, end=entry.end, reason=entry.reason))
        elif isinstance(entry, SessionAdded):
            sessions.append(entry.session)
        elif isinstance(entry, SessionRemoved):
            gone = next(i for i, s in enumerate(sessions) if _same_session(s, entry.session))
            sessions.pop(gone)
        elif isinstance(entry, PatientCancelled):
            patient = patients.get(entry.patient)
            if patient is None:
                continue
            if not entry.rebook:
                del patients[entry.patient]
                continue
            away = [Unavailability(date=day, reason=entry.reason or "cancelled this visit")
                    for day in sorted(visit_dates[entry.patient])]
            patients[entry.patient] = patient.model_copy(update={"unavailable": [*patient.unavailable, *away]})
        elif isinstance(entry, PatientDidNotAttend):
            patient = patients.get(entry.patient)
            if patient is None:
                continue
            missed = visit_reviews[(entry.patient, entry.date)]
            dues = [d.model_copy(update={"window_end": max(d.window_end, scenario.horizon_end)})
                    if patient.review_id(d) in missed else d for d in patient.due_reviews]
            patients[entry.patient] = patient.model_copy(update={
                "priority": min(3, patient.priority + 1), "due_reviews": dues,
                "unavailable": [*patient.unavailable, Unavailability(date=entry.date, reason="did not attend")]})
        elif isinstance(entry, PatientAdded):
            patients[entry.patient.id] = entry.patient
        elif isinstance(entry, ReviewRemoved):
            patient = patients.get(entry.patient)
            if patient is None:
                continue
            dues = [d for d in patient.due_reviews if d.review_type_id != entry.review_type]
            if dues:
                patients[entry.patient] = patient.model_copy(update={"due_reviews": dues})
            else:
                del patients[entry.patient]
    return scenario.model_copy(update={"sessions": sessions, "closures": closures, "patients": list(patients.values())})


def _entry_problem(problem: Problem, disruptions: list[Disruption]) -> Problem:
    """A problem the scenario validator found once the entries were applied, named by the
    patient_added entry it comes from when it is about that patient."""
    for index, entry in enumerate(disruptions):
        if isinstance(entry, PatientAdded):
            prefix = f"patients[{entry.patient.id}]"
            if problem.location == prefix or problem.location.startswith((prefix + ".", prefix + "[")):
                rest = problem.location[len(prefix):].lstrip(".")
                where = entry_location(index, entry.kind, ("patient",)) + (f".{rest}" if rest else "")
                return Problem(SOURCE, where, problem.message)
    return Problem(SOURCE, problem.location, f"once the disruptions are applied: {problem.message}")


def prepare(scenario: Scenario, previous: Plan, disruptions: list[Disruption], *,
            as_of: dt.datetime | None = None, references: Mapping[str, str] | None = None) -> Prepared:
    """Check the disruptions against `scenario` and `previous` (its plan) and apply them.

    `as_of` (default now; naive means Europe/London) is the moment re-planned from;
    `references` maps booking references to visit ids of `previous`, for entries that name a
    booking by reference. Raises DisruptionError listing every problem, each naming the entry
    (1-based) and field: unknown ids, ranges outside the horizon, a room or site closed twice,
    a session that does not exist, a booking not in the plan, a pinned booking that cannot
    stand, a manager's move that breaks a rule (named by its checker code), and anything the
    scenario validator finds in the result.
    """
    as_of = _aware(as_of)
    references = references or {}
    problems = _check_entries(scenario, previous, disruptions, references, as_of)
    if problems:
        raise DisruptionError(problems)
    updated = apply_disruptions(scenario, previous, disruptions)
    try:
        updated = scenario_from_dict(updated.model_dump(mode="json"), SOURCE)
    except ScenarioError as exc:
        raise DisruptionError([_entry_problem(p, disruptions) for p in exc.problems]) from None
    prepared = Prepared(updated, list(disruptions), as_of, freeze_until(as_of),
                        _targets(previous, disruptions, references))
    problems = _Replanning(prepared, previous).booking_problems
    if problems:
        raise DisruptionError(problems)
    return prepared


# ---------------------------------------------------------------------------------------------
# Which visits stand


def why_not(inst: Instance, book: Daybook, bundle: Bundle, bk: Booking) -> tuple[str, str] | None:
    """Why the booking cannot stand in `book` as it is, as (checker code, words), or None.

    Checks, in this order: the day in the horizon and the step's window; each clinician allowed
    the step, rostered at the site for the whole of it (inside one session) and free; the room
    at the site, able to host the step, open (site hours, closures), free and, under the hard
    room rule, the clinician's session room (or for a joint sitting, not held by another's
    session); the patient available and free; a fasting draw early enough.
    """
    scenario = inst.scenario
    step = bk.step
    if not 0 <= bk.day < len(inst.days):
        return "outside_horizon", "the day is outside the horizon"
    date = inst.days[bk.day]
    if not step.first_day <= bk.day <= step.last_day:
        return "outside_due_window", f"{date} is outside the due window of {', '.join(step.review_ids)}"
    need = span_mask(bk.start, step.slots)
    clock = f"{_hm(inst, bk.start)}-{_hm(inst, bk.end)} on {date}"
    for c in bk.clinician_ids:
        clinician = inst.clinicians.get(c)
        if clinician is None or not any(c in part for part in step.parts) and not _may_do(inst, c, step):
            return "role_not_allowed", f"{c} may not carry out this {step.kind.replace('_', ' ')}"
        index = session_index(inst, c, bk.day, bk.site_id, bk.start, bk.end)
        if index is None:
            return "clinician_not_rostered", f"{c} has no session at {bk.site_id} covering {clock}"
        if not book.clinician_free(c, bk.day, bk.site_id)[index] & need == need:
            return "clinician_double_booked", f"{c} is already booked during {clock}"
    room = next((r for r in scenario.rooms if r.id == bk.room_id), None)
    if room is None or room.site_id != bk.site_id:
        return "room_wrong_site", f"{bk.room_id} is not a room at {bk.site_id}"
    if not room_fits(room, step.capabilities, 0):
        return "room_capability_missing", f"{bk.room_id} lacks {', '.join(sorted(step.capabilities - set(room.capabilities)))}"
    if room.capacity_people < step.people:
        return "room_over_capacity", f"{bk.room_id} holds {room.capacity_people}, the step needs {step.people}"
    if inst.open_mask(bk.site_id) & ~inst.closed_mask(bk.room_id, bk.day) & need != need:
        return "room_closed", f"{bk.room_id} is closed during part of {clock}"
    if book.room_free(bk.room_id, bk.site_id, bk.day) & need != need:
        return "room_double_booked", f"{bk.room_id} is already booked during {clock}"
    rule = scenario.visit_rules.clinician_room_per_session
    if rule == "hard":
        if step.kind == "joint_review":
            if book.held(bk.room_id, bk.day, set(bk.clinician_ids)) & need:
                return "room_double_booked", f"{bk.room_id} is held by another clinician's session during {clock}"
        else:
            for c in bk.clinician_ids:
                index = session_index(inst, c, bk.day, bk.site_id, bk.start, bk.end)
                _mask, held = session_rooms(inst)[(c, bk.day, bk.site_id)][index]
                if held != bk.room_id:
                    return "clinician_changed_room", (f"{c}'s session holds {held or 'no room'}, not {bk.room_id}"
                                                      f" (one room per clinician session)")
    if book.patient_free(bk.patient_id, bk.day) & need != need:
        if inst.patient_mask(bk.patient_id, bk.day) & need != need:
            return "patient_unavailable", f"{bk.patient_id} cannot come during {clock}"
        return "patient_double_booked", f"{bk.patient_id} is already booked during {clock}"
    if step.fasting and bk.start > inst.to_slot_floor(scenario.visit_rules.fasting_draw_latest_start):
        return "fasting_draw_too_late", "a fasting draw must start by " + f"{scenario.visit_rules.fasting_draw_latest_start:%H:%M}"
    return None


def _may_do(inst: Instance, clinician_id: str, step) -> bool:
    clinician = inst.clinicians[clinician_id]
    if step.kind == "blood_draw":
        return clinician.takes_bloods
    return all(clinician.role in inst.review_types[t].roles and t in clinician.review_type_ids
               for t in step.review_type_ids)


def _hm(inst: Instance, slot: int) -> str:
    minutes = slot * inst.slot_minutes
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _room_pins(scenario: Scenario, previous: Plan) -> Scenario:
    """Under the hard room rule, each roster session that held a room in `previous` is given
    that room, so kept visits and new ones agree on it (a room closed meanwhile is not given:
    `scheduler.rooms.allocate` skips it)."""
    if scenario.visit_rules.clinician_room_per_session != "hard":
        return scenario
    local = {}
    for a in previous.appointments:
        if a.kind == "joint_review":
            continue
        start, end = _local(a.start), _local(a.end)
        for c in a.clinician_ids:
            local.setdefault((c, a.date, a.site_id), []).append((start.time(), end.time(), a.room_id))
    sessions = []
    for s in scenario.sessions:
        rooms = {room for start, end, room in local.get((s.clinician_id, s.date, s.site_id), ())
                 if s.start <= start and end <= s.end}
        if s.room_id is None and len(rooms) == 1:
            s = s.model_copy(update={"room_id": rooms.pop()})
        sessions.append(s)
    return scenario.model_copy(update={"sessions": sessions})


def _groupings(previous: Plan) -> dict[str, list[frozenset[str]]]:
    """Patient -> review ids of each review appointment, for patients without a joint sitting."""
    result: dict[str, list[frozenset[str]]] = defaultdict(list)
    joint = {a.patient_id for a in previous.appointments if a.kind == "joint_review"}
    for a in previous.appointments:
        if a.kind == "review" and a.patient_id not in joint:
            result[a.patient_id].append(frozenset(a.review_ids))
    return dict(result)


def _signature(visit: Visit) -> frozenset:
    return frozenset((bk.step.kind, bk.step.review_ids, bk.day, bk.start, bk.site_id, bk.room_id, bk.clinician_ids)
                     for bk in visit)


class _Replanning:
    """The previous plan read into the new scenario version: which visits stand, which must
    stay, which bundles are placed again; and the manager's moves checked."""

    def __init__(self, prepared: Prepared, previous: Plan):
        self.prepared, self.previous = prepared, previous
        self.scenario = _room_pins(prepared.scenario, previous)
        self.inst = Instance(self.scenario)
        self.bundles = BundleBuilder(self.inst, _groupings(previous)).bundles()
        self.by_id = {b.id: b for b in self.bundles}
        step_of = {stable_id("ap", b.id, s.kind, *(s.review_ids or ("draw",))): (b, s)
                   for b in self.bundles for s in b.steps}
        slot = self.inst.slot_minutes
        appointments = {a.id: a for a in previous.appointments}
        self.old: dict[str, Visit | None] = {}  # previous visit id -> its bookings now (None: no longer a visit here)
        self.old_bundle: dict[str, str] = {}
        for v in previous.visits:
            bookings: Visit = []
            for a_id in v.appointment_ids:
                a = appointments[a_id]
                found = step_of.get(a_id)
                day = self.inst.day_of.get(a.date)
                if found is None or day is None:
                    bookings = None
                    break
                bundle, step = found
                start = _local(a.start)
                bookings.append(Booking(bundle.id, bundle.patient_id, 0, step, day, a.site_id,
                                        (start.hour * 60 + start.minute) // slot, tuple(a.clinician_ids), a.room_id))
            self.old[v.id] = bookings
            if bookings:
                self.old_bundle[v.id] = bookings[0].bundle_id
        self.visit_of_appointment = {a_id: v.id for v in previous.visits for a_id in v.appointment_ids}
        self.frozen_before = _local(prepared.freeze_until)
        self.booking_problems: list[Problem] = []
        self.moves: dict[str, Visit] = {}  # previous visit id -> where the manager moved it
        self.pinned: set[str] = set()
        self._stand()

    def _stand(self) -> None:
        """Check each previous visit against the new version, in time order, committing those
        that stand; then the manager's moves and pins."""
        book = Daybook(self.inst)
        self.standing: dict[str, Visit] = {}
        self.fallen: dict[str, tuple[str, str]] = {}
        moved_ids = {self.visit_of_appointment[a] for i, ids in self.prepared.targets.items()
                     if isinstance(self.prepared.disruptions[i], BookingMoved) for a in ids}
        order = sorted(self.previous.visits, key=lambda v: (v.start, v.id))
        for v in order:
            bookings = self.old[v.id]
            if bookings is None:
                self.fallen[v.id] = ("review_removed", "the visit's reviews are no longer due as booked")
                continue
            bundle = self.by_id[bookings[0].bundle_id]
            why = next((w for bk in bookings if (w := why_not(self.inst, book, bundle, bk))), None)
            if why is not None:
                self.fallen[v.id] = why
                continue
            self.standing[v.id] = bookings
            if v.id not in moved_ids:
                book.commit(bookings)
        self._fall_with_draws(book)
        for index, appointment_ids in sorted(self.prepared.targets.items()):
            entry = self.prepared.disruptions[index]
            visit_id = self.visit_of_appointment[appointment_ids[0]]
            field_name = "reference" if entry.reference else "appointment"
            if isinstance(entry, BookingPinned):
                if visit_id not in self.standing:
                    code, words = self.fallen[visit_id]
                    self.booking_problems.append(Problem(SOURCE, entry_location(index, entry.kind, (field_name,)),
                                                         f"the pinned booking cannot stand: {code}: {words}"))
                self.pinned.add(visit_id)
                continue
            self._move(book, index, entry, visit_id, appointment_ids)

    def _fall_with_draws(self, book: Daybook) -> None:
        """A standing visit whose reviews need the bundle's draw falls when the draw's visit
        fell: its results would not exist."""
        draw_fell = {self.old_bundle[v_id] for v_id in self.fallen if v_id in self.old_bundle
                     and any(bk.step.kind == "blood_draw" for bk in self.old[v_id])}
        for v_id, bookings in list(self.standing.items()):
            needing = [bk for bk in bookings if bk.step.needs_draw]
            # A review waiting for results may keep its place while a new draw goes before it,
            # unless it is inside the freeze window, where nothing new can go before it.
            replaceable = (all(bk.step.lag_working_days for bk in needing)
                           and _local(next(v.start for v in self.previous.visits if v.id == v_id)) >= self.frozen_before)
            if (bookings[0].bundle_id in draw_fell and all(bk.step.kind != "blood_draw" for bk in bookings)
                    and needing and not replaceable):
                del self.standing[v_id]
                self.fallen[v_id] = ("marker_not_drawn", "the blood draw it needs could not stand")
                for visit in _visits(book, bookings[0].bundle_id):
                    if _signature(visit) == _signature(bookings):
                        book.release(visit)

    def _move(self, book: Daybook, index: int, entry: BookingMoved, visit_id: str, appointment_ids: list[str]) -> None:
        """The manager's move: the visit (or one appointment) to the given date and start, other
        steps keeping their offsets; checked booking by booking, then by the plan checker."""
        old = self.old[visit_id]
        where = entry_location(index, entry.kind, ())
        if old is None:
            self.booking_problems.append(Problem(SOURCE, where, "the booking's reviews are no longer due as booked"))
            return
        moving = [bk for bk in old if stable_id("ap", bk.bundle_id, bk.step.kind, *(bk.step.review_ids or ("draw",)))
                  in appointment_ids]
        day = self.inst.day_of[entry.date]
        target = (entry.start.hour * 60 + entry.start.minute) // self.inst.slot_minutes
        shift = target - min(bk.start for bk in moving)
        moved = []
        for bk in moving:
            clinicians = bk.clinician_ids
            if entry.clinician is not None:
                if len(clinicians) != 1:
                    self.booking_problems.append(Problem(SOURCE, entry_location(index, entry.kind, ("clinician",)),
                                                         "a joint consultation's clinicians cannot be changed here"))
                    return
                clinicians = (entry.clinician,)
            moved.append(replace(bk, day=day, start=bk.start + shift, clinician_ids=clinicians,
                                 room_id=entry.room or bk.room_id))
        bundle = self.by_id[old[0].bundle_id]
        fields = {"clinician": "clinician", "role": "clinician", "room": "room", "patient": "start",
                  "outside": "date", "fasting": "start"}
        for bk in moved:
            why = why_not(self.inst, book, bundle, bk)
            if why is not None:
                code, words = why
                name = next((f for prefix, f in fields.items() if code.startswith(prefix)), "start")
                self.booking_problems.append(Problem(SOURCE, entry_location(index, entry.kind, (name,)),
                                                     f"refused: it breaks {code}: {words}"))
                return
        whole = [bk for bk in old if bk not in moving] + moved if len(moving) < len(old) else moved
        visits = [b for v_id, b in self.standing.items() if v_id != visit_id and b and b[0].bundle_id == bundle.id]
        trial = self._plan_of([*visits, whole], [bundle])
        moved_ids = {a.id for a in trial.appointments if a.id in appointment_ids}
        broken = [v for v in check_plan(self.prepared.scenario, trial).violations
                  if v.code not in IGNORED_CODES and (v.appointment_id in moved_ids or v.appointment_id is None)]
        if broken:
            self.booking_problems.append(Problem(SOURCE, entry_location(index, entry.kind, ("date",)),
                                                 f"refused: it breaks {broken[0].code}: {broken[0].message}"))
            return
        book.commit(whole)
        self.moves[visit_id] = whole

    def _plan_of(self, visits: list[Visit], bundles: list[Bundle]) -> Plan:
        bookings = [replace(bk, visit_key=i) for i, v in enumerate(visits) for bk in v]
        appointments, plan_visits = appointments_and_visits(self.inst, bundles, bookings)
        unbooked = unbooked_entries(self.inst, bookings, {})
        metrics = compute_metrics(self.inst, appointments, plan_visits, unbooked)
        return Plan(scenario_name=self.scenario.name, appointments=appointments, visits=plan_visits,
                    unbooked=[], metrics=metrics,
                    solver=SolverStats(status="FEASIBLE", method="trial", objective=0, best_bound=0, gap=0,
                                       wall_seconds=0, time_limit_seconds=1, workers=1, seed=0))


# ---------------------------------------------------------------------------------------------
# Re-planning


def _freeze_scenario(scenario: Scenario, patients: set[str], before: dt.datetime) -> Scenario:
    """The scenario with `patients` unable to come before `before` (local), so that nothing new
    for them lands in the past or the freeze window."""
    if before.date() <= scenario.horizon_start:
        return scenario
    last = min(before.date() - dt.timedelta(days=1), scenario.horizon_end)
    days = [scenario.horizon_start + dt.timedelta(days=i) for i in range((last - scenario.horizon_start).days + 1)]
    result = []
    for p in scenario.patients:
        if p.id in patients:
            p = p.model_copy(update={"unavailable": [*p.unavailable, *(Unavailability(date=d) for d in days)]})
        result.append(p)
    return scenario.model_copy(update={"patients": result})


def replan(prepared: Prepared, previous: Plan, settings: SolverSettings | None = None, *,
           previous_plan_id: str | None = None,
           on_progress: Callable[[PlanningProgress], None] | None = None) -> Plan:
    """The next plan version: `previous` changed only where the disruptions make it.

    `prepared` comes from `prepare` on the scenario `previous` was made from. `settings`
    (default the scenario's) bound the time: the work is greedy and exact per patient, and the
    compaction of re-placed visits stops at its deadline. The result's `replan` field records
    what was applied; the caller gates it against `prepared.scenario` before writing or storing
    it (`scheduler.plan_gate`). Raises DisruptionError when a pinned booking or a manager's
    move no longer holds (as `prepare` would).
    """
    settings = settings or prepared.scenario.solver
    budget = Budget(settings.time_limit_seconds)
    started = budget.started
    stage_seconds: dict[str, float] = {}
    lap_at = [started]

    def lap(name: str) -> None:
        now = time.monotonic()
        stage_seconds[name] = round(stage_seconds.get(name, 0.0) + now - lap_at[0], 3)
        lap_at[0] = now

    def report(stage: str, objective=None) -> None:
        if on_progress:
            on_progress(PlanningProgress(stage, time.monotonic() - started, settings.time_limit_seconds, objective))

    report("replanning")
    r = _Replanning(prepared, previous)
    if r.booking_problems:
        raise DisruptionError(r.booking_problems)
    bundles = r.bundles
    must: dict[str, list[Visit]] = defaultdict(list)  # bundle -> visits that stay whatever happens
    keep: dict[str, list[Visit]] = defaultdict(list)  # bundle -> visits that stand and may stay
    lost: dict[str, int] = defaultdict(int)
    for v in previous.visits:
        bundle_id = r.old_bundle.get(v.id)
        if v.id in r.moves:
            must[bundle_id].append(r.moves[v.id])
        elif v.id in r.standing:
            if v.id in r.pinned or _local(v.start) < r.frozen_before:
                must[bundle_id].append(r.standing[v.id])
            else:
                keep[bundle_id].append(r.standing[v.id])
        else:
            lost[bundle_id or v.patient_id] += 1
    booked = {rid for visits in (*must.values(), *keep.values()) for v in visits for bk in v for rid in bk.step.review_ids}
    free = [b for b in bundles if lost.get(b.id) or any(rid not in booked for s in b.review_steps for rid in s.review_ids)]
    old_visits: dict[str, list[Visit]] = defaultdict(list)
    for v_id, bookings in r.old.items():
        if bookings:
            old_visits[bookings[0].bundle_id].append(bookings)
    lap("reading")

    inst = Instance(_freeze_scenario(r.scenario, {b.patient_id for b in free}, r.frozen_before))
    book = Daybook(inst)
    for b in bundles:
        for visit in must.get(b.id, []) + keep.get(b.id, []):
            book.commit(visit)  # a free bundle's standing visits too: no one else may take them
    booker = GreedyBooker(inst, book)
    sessions: dict[tuple, int] = defaultdict(int)  # bookings per clinician session, for SESSION_USED
    for bk in book.bookings:
        for c in bk.clinician_ids:
            sessions[(c, bk.day, bk.site_id)] += 1

    def stability(bundle: Bundle, visits: list[Visit]) -> int:
        new = {_signature(v) for v in visits}
        days = {bk.day for v in visits for bk in v}
        cost = 0
        for old in old_visits.get(bundle.id, []):
            if _signature(old) in new:
                continue
            cost += MOVED_VISIT
            if old[0].day not in days:
                same_place = any(bk.site_id == old[0].site_id and set(bk.clinician_ids) & set(o.clinician_ids)
                                 for v in visits for bk in v for o in old)
                cost += OTHER_DAY_SAME_PLACE if same_place else OTHER_DAY_ELSEWHERE
        return cost

    def price(bundle: Bundle, visits: list[Visit]) -> int:
        flat = [replace(bk, visit_key=i) for i, v in enumerate(visits) for bk in v]
        own = evaluate(inst, [bundle], flat)
        opened = {(c, bk.day, bk.site_id) for bk in flat for c in bk.clinician_ids if sessions[(c, bk.day, bk.site_id)] <= 0}
        return own.total - own.sessions + SESSION_USED * len(opened) + stability(bundle, visits)

    def put(visits: list[Visit]) -> None:
        for v in visits:
            book.commit(v)
            for bk in v:
                for c in bk.clinician_ids:
                    sessions[(c, bk.day, bk.site_id)] += 1

    def refits(bundle: Bundle, stay: list[Visit]):
        """One more visit for the steps `stay` leaves out, on a day of its own after any draw
        it needs (the draw's turnaround counted)."""
        covered = {bk.step.key for v in stay for bk in v}
        missing = [s for s in bundle.steps if s.key not in covered]
        if not missing:
            return
        draw_days = [bk.day for v in stay for bk in v if bk.step.kind == "blood_draw"]
        kept_need_draw = any(bk.step.needs_draw for v in stay for bk in v)
        taken = {bk.day for v in stay for bk in v}
        if bundle.draw is not None and bundle.draw in missing and kept_need_draw:
            # The kept reviews wait for results: a new draw-only trip the turnaround before them.
            waiting = [bk for v in stay for bk in v if bk.step.needs_draw]
            if missing != [bundle.draw] or not all(bk.step.lag_working_days for bk in waiting):
                return
            for day, site in options(inst, bundle, missing):
                if day in taken or any(inst.ranks[bk.day] < inst.ranks[day] + bk.step.lag_working_days
                                       for bk in waiting):
                    continue
                found = booker.fit(bundle, missing, day, site)
                if found is not None:
                    yield [*stay, found]
            return
        lag = max((s.lag_working_days for s in missing if s.needs_draw), default=0)
        for day, site in options(inst, bundle, missing):
            if day in taken:
                continue
            if draw_days and any(s.needs_draw for s in missing) and inst.ranks[day] < inst.ranks[max(draw_days)] + lag:
                continue
            found = booker.fit(bundle, missing, day, site)
            if found is not None:
                yield [*stay, found]

    order = sorted(priority_order(inst, free), key=lambda b: -bool(lost.get(b.id)))
    report("replanning")
    for bundle in order:
        stay = list(must.get(bundle.id, []))
        standing = keep.get(bundle.id, [])
        candidates: list[list[Visit]] = [stay + standing]
        candidates += list(refits(bundle, stay + standing))
        for visit in _visits(book, bundle.id):  # from here on the standing visits may move
            if _signature(visit) in {_signature(v) for v in standing}:
                book.release(visit)
                for bk in visit:
                    for c in bk.clinician_ids:
                        sessions[(c, bk.day, bk.site_id)] -= 1
        if standing:
            candidates += list(refits(bundle, stay))
        if not stay:
            candidates += [list(p) for p in booker.placements(bundle)]
            candidates += [list(p) for p in booker.two_visit_placements(
                bundle, lambda visit, bundle=bundle: price(bundle, [visit]))]
            before = set(book.by_bundle.get(bundle.id, []))
            booker.place(bundle)
            placed: dict[int, Visit] = defaultdict(list)
            for bk in book.by_bundle.get(bundle.id, []):
                if bk not in before:
                    placed[bk.visit_key].append(bk)
            book.release_bundle(bundle.id)
            if placed:
                candidates.append([placed[k] for k in sorted(placed)])
        best = min((c for c in candidates if _consistent(inst, bundle, c)), key=lambda c: price(bundle, c),
                   default=stay)
        put(best[len(stay):])  # every candidate starts with `stay`, in the book already
    lap("placing")

    def take(bundle: Bundle) -> list[Visit]:
        visits = _visits(book, bundle.id)
        for v in visits:
            book.release(v)
            for bk in v:
                for c in bk.clinician_ids:
                    sessions[(c, bk.day, bk.site_id)] -= 1
        return visits

    def after_freeze(visits: list[Visit]) -> bool:
        return all(inst.days[bk.day] >= r.frozen_before.date() for v in visits for bk in v)

    # Ejection: a re-placed patient still missing reviews may take the place of one visit that
    # stands, when that visit's patient can be booked elsewhere (after the freeze) and the two
    # together, with the stability cost of the move, cost less. Only what is needed to book
    # someone moves; patients who must stay (pinned, moved by the manager, frozen) never do.
    empty = GreedyBooker(inst, Daybook(inst))
    movable = {b.id for b in bundles if not must.get(b.id)}
    for target in order:
        if Budget.passed(budget.improve_deadline):
            break
        booked_now = {rid for bk in book.by_bundle.get(target.id, []) for rid in bk.step.review_ids}
        if target.id not in movable or all(rid in booked_now for s in target.review_steps for rid in s.review_ids):
            continue
        wanted = sorted(empty.placements(target), key=lambda p: (price(target, p), p[-1][0].day, p[-1][0].site_id))
        done = False
        for placement in wanted[:EJECTION_PLACES]:
            day, site = placement[-1][0].day, placement[-1][0].site_id
            needed = {c for bk in placement[-1] for part in bk.step.parts for c in part}
            blockers = sorted({bk.bundle_id for bk in book.bookings if bk.day == day and bk.site_id == site
                               and bk.bundle_id != target.id and bk.bundle_id in movable
                               and needed & set(bk.clinician_ids)})[:EJECTION_BLOCKERS]
            for blocker_id in blockers:
                blocker = r.by_id[blocker_id]
                target_was, blocker_was = _visits(book, target.id), _visits(book, blocker.id)
                if not after_freeze(blocker_was):
                    continue
                before = price(target, target_was) + price(blocker, blocker_was)
                take(target)
                take(blocker)
                fits = next((p for p in booker.placements(target, at=(day, site)) if _consistent(inst, target, p)), None)
                if fits is not None:
                    put(fits)
                    tries = [list(p) for p in booker.placements(blocker)]
                    tries += [list(p) for p in booker.two_visit_placements(
                        blocker, lambda visit, blocker=blocker: price(blocker, [visit]))]
                    tries = [t for t in tries if after_freeze(t) and _consistent(inst, blocker, t)]
                    again = min(tries, key=lambda t: price(blocker, t), default=None)
                    if again is not None and price(target, fits) + price(blocker, again) < before:
                        put(again)
                        done = True
                        break
                    take(target)
                put(blocker_was)
                put(target_was)
            if done:
                break
    lap("ejection")

    chosen = book.bookings
    moved = {b.id for b in bundles if not must.get(b.id)
             and {_signature(v) for v in _visits(book, b.id)} != {_signature(v) for v in old_visits.get(b.id, [])}}
    report("compacting", evaluate(inst, bundles, chosen).total)
    chosen = compact(inst, bundles, chosen, workers=settings.workers, seed=settings.seed,
                     deadline=budget.compact_deadline, movable=moved)
    lap("compaction")
    plan = _assemble(prepared, r, inst, bundles, chosen, settings, previous_plan_id, stage_seconds, started,
                     len(free), lap)
    report("done", plan.solver.objective)
    return plan


def _consistent(inst: Instance, bundle: Bundle, visits: list[Visit]) -> bool:
    """Every review needing the draw has it the same visit or the turnaround before, and a
    draw-only trip serves some review."""
    draws = [bk for v in visits for bk in v if bk.step.kind == "blood_draw"]
    needing = [bk for v in visits for bk in v if bk.step.needs_draw]
    if draws and not needing and any(all(bk.step.kind == "blood_draw" for bk in v) for v in visits):
        return False
    for bk in needing:
        lag = bk.step.lag_working_days
        if not any(d.day == bk.day and d.end <= bk.start and not lag
                   or d.day < bk.day and inst.ranks[bk.day] >= inst.ranks[d.day] + lag for d in draws):
            return False
    return True


def _visits(book: Daybook, bundle_id: str) -> list[Visit]:
    grouped: dict[int, Visit] = defaultdict(list)
    for bk in book.by_bundle.get(bundle_id, []):
        grouped[bk.visit_key].append(bk)
    return [grouped[k] for k in sorted(grouped)]


def _assemble(prepared: Prepared, r: _Replanning, inst: Instance, bundles: list[Bundle], chosen: list[Booking],
              settings: SolverSettings, previous_plan_id: str | None, stage_seconds: dict[str, float],
              started: float, placed: int, lap: Callable[[str], None]) -> Plan:
    """The plan document, as `make_plan` assembles one: appointments and visits, unbooked
    reviews with reasons, metrics, the old-way and greedy baselines, and an honest bound."""
    real = r.inst  # the version's own instance: reasons and baselines without the freeze
    old_book, old_bundles = old_way(real)
    greedy = greedy_consolidate(real, bundles).bookings
    appointments, visits = appointments_and_visits(inst, bundles, chosen)
    reasons = unbooked_reasons(real, bundles, booked_review_ids(chosen))
    unbooked = unbooked_entries(real, chosen, reasons)
    metrics = compute_metrics(real, appointments, visits, unbooked)

    def metrics_of(bks: list[Booking], bs: list[Bundle]) -> Metrics:
        a, v = appointments_and_visits(real, bs, bks)
        return compute_metrics(real, a, v, unbooked_entries(real, bks, {}))

    old_metrics = metrics_of(old_book.bookings, old_bundles)
    objective = evaluate(inst, bundles, chosen).total
    model = cp_model.CpModel()
    bound = standalone_floor(real, build_variables(model, real, bundles))
    lap("assembly")
    gap = (objective - bound) / objective if objective else 0.0
    return Plan(
        scenario_name=prepared.scenario.name,
        replan=ReplanRecord(
            previous_plan_id=previous_plan_id, as_of=prepared.as_of, freeze_until=prepared.freeze_until,
            disruptions=as_data(prepared.disruptions),
            targets={str(i + 1): ids for i, ids in prepared.targets.items()}),
        appointments=appointments, visits=visits, unbooked=unbooked, metrics=metrics,
        baselines={"greedy": metrics_of(greedy, bundles), "old_way": old_metrics},
        comparison=compare(metrics, old_metrics, shared_minutes_saved(real, chosen)),
        solver=SolverStats(
            status="OPTIMAL" if gap == 0 else "FEASIBLE",
            method=f"re-plan: visits that stand kept, {placed} patient(s) placed again around them",
            objective=objective, best_bound=bound, bound_source="simple_standalone_floor",
            bound_sources={"simple_standalone_floor": bound}, bound_scope=bound_scope(prepared.scenario),
            gap=gap, wall_seconds=round(sum(stage_seconds.values()), 3), stage_seconds=stage_seconds,
            time_limit_seconds=settings.time_limit_seconds, workers=settings.workers, seed=settings.seed),
    )
