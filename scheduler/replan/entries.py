"""Disruption entries checked against the scenario and plan they apply to, and applied: the
scenario's next version (docs/replan.md, "The disruptions file")."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace

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
    entry_location,
)
from scheduler.domain import (
    Closure,
    Patient,
    RosterSession,
    Scenario,
    Unavailability,
)
from scheduler.plan import Plan
from scheduler.problems import Problem, ScenarioError, did_you_mean
from scheduler.replan.standing import (
    PreviousPlan,
)
from scheduler.replan.window import (
    SOURCE,
    Prepared,
    as_aware,
    as_local,
    freeze_until,
)
from scheduler.scenario_io import scenario_from_dict


class _Entries:
    """Problems found in the entries, each named by entry and field."""

    def __init__(self, disruptions: list[Disruption]):
        self.disruptions = disruptions
        self.problems: list[Problem] = []

    def add(self, index: int, field_name: str | None, message: str) -> None:
        kind = self.disruptions[index].kind
        self.problems.append(Problem(SOURCE, entry_location(index, kind, (field_name,) if field_name else ()), message))


def check_entries(scenario: Scenario, previous: Plan, disruptions: list[Disruption],
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
                room_at_site = what == "site" and other_what == "room" and other in rooms and rooms[other].site_id == value
                if (same or site_of_room or room_at_site) and start < entry.end and entry.start < end:
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
            elif isinstance(entry, PatientDidNotAttend) and entry.date > as_local(as_of).date():
                found.add(index, "date", f"{entry.date} is after as_of ({as_local(as_of).isoformat(timespec='minutes')}): "
                          "a visit is missed only once its day has come")
            if isinstance(entry, ReviewRemoved) and not any(
                    d.review_type_id == entry.review_type for d in patients[entry.patient].due_reviews):
                found.add(index, "review_type", f"{entry.patient} has no due review of type '{entry.review_type}'")
        elif isinstance(entry, PatientAdded):
            if entry.patient.id in patients or entry.patient.id in added:
                found.add(index, "patient.id", f"patient '{entry.patient.id}' is already in the scenario")
            added.add(entry.patient.id)
            patients.setdefault(entry.patient.id, entry.patient)  # later entries may name them
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
                elif dt.datetime.combine(entry.date, entry.start) < as_local(as_of):
                    found.add(index, "start", f"{entry.date} {entry.start:%H:%M} is before as_of "
                              f"({as_local(as_of).isoformat(timespec='minutes')}): a booking cannot move into the past")
                if entry.clinician is not None:
                    unknown(index, "clinician", entry.clinician, clinicians, "clinician")
                if entry.room is not None:
                    unknown(index, "room", entry.room, rooms, "room")
    if as_local(as_of) >= after:
        found.problems.append(Problem(SOURCE, "as_of", f"{as_local(as_of).isoformat()} is after {horizon}: nothing "
                                      "could be booked"))
    return found.problems


def _same_session(a: RosterSession, b: RosterSession) -> bool:
    return (a.clinician_id, a.date, a.start, a.end, a.site_id) == (b.clinician_id, b.date, b.start, b.end, b.site_id)


def targets_of(previous: Plan, disruptions: list[Disruption], references: Mapping[str, str]) -> dict[int, list[str]]:
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
    The entries must have passed `check_entries`; the result is not yet validated. Raises
    DisruptionError for an entry that cannot be applied where it stands in the file (a session
    removed twice, or cut by an absence before its removal).
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
    unapplied: list[Problem] = []
    for index, entry in enumerate(disruptions):
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
            gone = next((i for i, s in enumerate(sessions) if _same_session(s, entry.session)), None)
            if gone is None:  # removed already, or cut by an absence earlier in the file
                unapplied.append(Problem(SOURCE, entry_location(index, entry.kind, ("session",)),
                                         "the session is no longer in the roster when this entry is applied "
                                         "(an earlier entry removed or cut it)"))
                continue
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
    if unapplied:
        raise DisruptionError(unapplied)
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
    as_of = as_aware(as_of)
    references = references or {}
    problems = check_entries(scenario, previous, disruptions, references, as_of)
    if problems:
        raise DisruptionError(problems)
    updated = apply_disruptions(scenario, previous, disruptions)
    try:
        updated = scenario_from_dict(updated.model_dump(mode="json"), SOURCE)
    except ScenarioError as exc:
        raise DisruptionError([_entry_problem(p, disruptions) for p in exc.problems]) from None
    prepared = Prepared(updated, list(disruptions), as_of, freeze_until(as_of),
                        targets_of(previous, disruptions, references))
    reading = PreviousPlan(prepared, previous)
    if reading.booking_problems:
        raise DisruptionError(reading.booking_problems)
    return replace(prepared, reading=reading)
