"""Which visits of the previous plan still stand in the scenario's next version, and the
manager's pins and moves checked against them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from scheduler.assemble import (
    appointments_and_visits,
    stable_id,
    unbooked_entries,
)
from scheduler.bundles import BundleBuilder
from scheduler.check import check_plan
from scheduler.daybook import Booking, Daybook
from scheduler.disruptions import (
    BookingMoved,
    BookingPinned,
    entry_location,
)
from scheduler.domain import (
    Scenario,
)
from scheduler.instance import Instance, span_mask
from scheduler.metrics import compute_metrics
from scheduler.plan import Plan, SolverStats
from scheduler.problems import Problem
from scheduler.replan.window import (
    SOURCE,
    Prepared,
    as_local,
)
from scheduler.rooms import room_fits, session_index, session_rooms
from scheduler.steps import Bundle

IGNORED_CODES = frozenset({"metrics_mismatch", "review_not_accounted"})
"""Checker codes about the plan as a whole, not about a booking checked on its own."""

Visit = list[Booking]


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


def room_pins(scenario: Scenario, previous: Plan) -> Scenario:
    """Under the hard room rule, each roster session that held a room in `previous` is given
    that room, so kept visits and new ones agree on it (a room closed meanwhile is not given:
    `scheduler.rooms.allocate` skips it)."""
    if scenario.visit_rules.clinician_room_per_session != "hard":
        return scenario
    local = {}
    for a in previous.appointments:
        if a.kind == "joint_review":
            continue
        start, end = as_local(a.start), as_local(a.end)
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


def groupings(previous: Plan) -> dict[str, list[frozenset[str]]]:
    """Patient -> review ids of each review appointment, for patients without a joint sitting."""
    result: dict[str, list[frozenset[str]]] = defaultdict(list)
    joint = {a.patient_id for a in previous.appointments if a.kind == "joint_review"}
    for a in previous.appointments:
        if a.kind == "review" and a.patient_id not in joint:
            result[a.patient_id].append(frozenset(a.review_ids))
    return dict(result)


def signature(visit: Visit) -> frozenset:
    return frozenset((bk.step.kind, bk.step.review_ids, bk.day, bk.start, bk.site_id, bk.room_id, bk.clinician_ids)
                     for bk in visit)


class PreviousPlan:
    """The previous plan read into the new scenario version: which visits stand, which must
    stay, which bundles are placed again; and the manager's moves checked."""

    def __init__(self, prepared: Prepared, previous: Plan):
        self.prepared, self.previous = prepared, previous
        self.scenario = room_pins(prepared.scenario, previous)
        self.inst = Instance(self.scenario)
        self.bundles = BundleBuilder(self.inst, groupings(previous)).bundles()
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
                start = as_local(a.start)
                bookings.append(Booking(bundle.id, bundle.patient_id, 0, step, day, a.site_id,
                                        (start.hour * 60 + start.minute) // slot, tuple(a.clinician_ids), a.room_id))
            self.old[v.id] = bookings
            if bookings:
                self.old_bundle[v.id] = bookings[0].bundle_id
        self.visit_of_appointment = {a_id: v.id for v in previous.visits for a_id in v.appointment_ids}
        self.frozen_before = as_local(prepared.freeze_until)
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
                           and as_local(next(v.start for v in self.previous.visits if v.id == v_id)) >= self.frozen_before)
            if (bookings[0].bundle_id in draw_fell and all(bk.step.kind != "blood_draw" for bk in bookings)
                    and needing and not replaceable):
                del self.standing[v_id]
                self.fallen[v_id] = ("marker_not_drawn", "the blood draw it needs could not stand")
                for visit in visits_of(book, bookings[0].bundle_id):
                    if signature(visit) == signature(bookings):
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



def visits_of(book: Daybook, bundle_id: str) -> list[Visit]:
    grouped: dict[int, Visit] = defaultdict(list)
    for bk in book.by_bundle.get(bundle_id, []):
        grouped[bk.visit_key].append(bk)
    return [grouped[k] for k in sorted(grouped)]
