"""Compacting visits: the same bookings, re-timed day by day so patients wait less.

The day book places visits one at a time, each at the earliest start that fits what is already
booked, so a patient often waits between the blood draw and the first review (up to
`max_wait_minutes`) although a later, or earlier, placement of someone else would have let the
steps run back to back. Once the bookings are chosen, each (day, site)'s timetable is re-solved
exactly with CP-SAT: every step keeps its day, site, visit, clinicians and room, and only its
start (and so the order of steps inside a visit) may change. Everything the objective prices
except waiting and the time of day (trips, travel, priority days, continuity, sessions, rooms)
is therefore unchanged by construction, and the room rule cannot be broken: each step stays
inside the same roster session of each of its clinicians, in the same room.

Time here is in slots (`visit_rules.slot_minutes`) unless a name says minutes.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from itertools import groupby, permutations

from ortools.sat.python import cp_model

from scheduler.daybook import AFTERNOON_STARTS_MINUTE, MORNING_ENDS_MINUTE, Booking, Daybook
from scheduler.instance import Instance, bits, run_starts
from scheduler.model.objective import PREFERENCE_MISS, WAIT_MINUTE, evaluate
from scheduler.rooms import session_index
from scheduler.steps import Bundle

Place = tuple[int, str]  # (day index, site id)
VisitKey = tuple[str, int]  # (bundle id, visit key)

MAX_ORDERS = 720  # orders of a visit's steps tried (six steps); a longer visit keeps its order
PATIENT_DETERMINISTIC_SECONDS = 5.0
"""CP-SAT deterministic time for a (day, site)'s waiting solve in `compact`: every day of the
sample practice and PCN months proves its least waiting well inside it. Deterministic time, so
the same figure in any process."""
IDLE_DETERMINISTIC_SECONDS = 0.25
"""The same for the clinician idle-time solve. It is second in importance (the objective does
not price idle time) and on a busy day could search for minutes: on the PCN month a limit of 1.0
took 136 s of 2-worker wall time over 72 days, most of it on six days."""


@dataclass(frozen=True)
class ExactWaiting:
    """Patient waiting of the exact per-(day, site) timetables of a fixed set of bookings.

    `wait_minutes`: total waiting (minutes) of the best timetables found; `bound_minutes`: CP-SAT's
    proven lower bound on it (equal to `wait_minutes` when every day was solved to optimality);
    `days_optimal` of `days_total` (day, site)s holding a visit of two or more steps (the only
    ones where a patient can wait) were proven optimal.
    """

    wait_minutes: int
    bound_minutes: int
    days_optimal: int
    days_total: int


@dataclass
class _DayModel:
    """One (day, site)'s timetable as a CP-SAT model, with what is needed to solve and read it."""

    model: cp_model.CpModel
    starts: dict[int, cp_model.IntVar]  # index into the bookings list -> start slot
    patient_cost: cp_model.LinearExprT  # objective units: 1 per minute waiting, 20 per preference miss
    wait: cp_model.LinearExprT  # patient waiting, slots, over the visits that may move
    idle: cp_model.LinearExprT  # clinician idle slots inside their sessions here
    current_wait: int  # `wait` of the timetable as it is, slots
    current_patient_cost: int  # `patient_cost` of the timetable as it is
    current_idle: int  # `idle` of the timetable as it is, slots
    has_multi_step_visit: bool
    # (variable, value) pairs of the present timetable; a list, as CP-SAT variables overload ==
    hints: list[tuple[cp_model.IntVar, int]] = field(default_factory=list)

    def hint(self) -> None:
        """Hint the present timetable: CP-SAT has a feasible solution at once."""
        for var, value in self.hints:
            self.model.add_hint(var, value)


def _allowed_starts(inst: Instance, book: Daybook, bundle: Bundle, bk: Booking) -> int:
    """Start slots (bitmask) where `bk` could start keeping its clinicians, room and sessions.

    `book` holds everything that stays put. The day book's own `step_starts` gives the slots
    where the patient is free (availability mask), each of the booking's own clinicians is on
    shift and free (and, under the `hard` room rule, their session room is free) and a fasting
    draw is early enough; on top of that the booking keeps its room (free, open, not held by
    another clinician's session) and, for each clinician, the roster session it is in now. The
    session is kept so that neither the room a session holds nor the room-per-session count can
    change; the checker files a booking under the earliest-starting session covering it, so
    starts an earlier session of the same clinician would also cover are left out.
    """
    step = replace(bk.step, parts=tuple((c,) for c in bk.clinician_ids))
    n = step.slots
    mask = book.step_starts(bundle, step, bk.day, bk.site_id)
    for c in bk.clinician_ids:
        shifts = inst.shifts_at.get((c, bk.day, bk.site_id), [])
        i = session_index(inst, c, bk.day, bk.site_id, bk.start, bk.end)
        if i is None:
            return 0
        mine = run_starts(shifts[i].mask, n)
        for earlier in shifts[:i]:
            mine &= ~run_starts(earlier.mask, n)
        mask &= mine
    return mask & run_starts(book.shared_room_free(bk.room_id, bk.site_id, bk.day, set(bk.clinician_ids)), n)


def _preferred_window(inst: Instance, preferred: str) -> tuple[int, int] | None:
    """Visit-start slots (first, last inclusive) inside the preferred part of the day, as
    `evaluate` counts it; None for no preference."""
    slot = inst.slot_minutes
    if preferred == "morning":
        return 0, math.ceil(MORNING_ENDS_MINUTE / slot) - 1
    if preferred == "afternoon":
        return math.ceil(AFTERNOON_STARTS_MINUTE / slot), inst.slots_per_day
    return None


def _build_day(inst: Instance, bundles: dict[str, Bundle], bookings: list[Booking], place: Place,
               movable: set[str] | None, *, exact: bool) -> _DayModel | None:
    """The CP-SAT model of one (day, site)'s timetable, objective left to the caller; None when
    nothing there may move.

    `bookings` is the whole current plan; those at `place` whose bundle is in `movable` (all,
    when None) may change their start, everything else on that day stays put and only takes
    clinicians', rooms' and patients' time. The model exposes patient waiting (slots), the
    patient cost (minutes waiting plus 20 per visit outside the preferred time of day, as
    `evaluate` weighs them) and clinician idle slots inside their sessions (`exact=False`
    only), each with its present value. A visit that starts inside the patient's preferred
    part of the day must stay inside it; with `exact=True` (the benchmark's waiting alone) one
    outside it gets no miss variable, as it is not priced there.
    """
    day, site = place
    rules = inst.scenario.visit_rules
    max_wait = rules.max_wait_minutes // inst.slot_minutes
    max_visit = rules.max_visit_minutes // inst.slot_minutes

    visits: dict[VisitKey, list[int]] = defaultdict(list)
    for i, bk in enumerate(bookings):
        if (bk.day, bk.site_id) == place and (movable is None or bk.bundle_id in movable):
            visits[(bk.bundle_id, bk.visit_key)].append(i)
    moving = {key: sorted(items, key=lambda i: (bookings[i].start, bookings[i].step.key))
              for key, items in sorted(visits.items())}

    # A visit whose present start falls outside what the rules allow (a plan made by other
    # means) is left where it is rather than guessed at; that can shrink others' slots, so
    # the domains are recomputed until none drops out.
    while True:
        book = Daybook(inst)
        placed = {i for items in moving.values() for i in items}
        for i, bk in enumerate(bookings):
            if bk.day == day and i not in placed:
                book.commit([bk])
        domains = {i: _allowed_starts(inst, book, bundles[bookings[i].bundle_id], bookings[i])
                   for items in moving.values() for i in items}
        stuck = [key for key, items in moving.items() if any(not domains[i] >> bookings[i].start & 1 for i in items)]
        if not stuck:
            break
        for key in stuck:
            del moving[key]
    if not moving:
        return None

    model = cp_model.CpModel()
    hints: list[tuple[cp_model.IntVar, int]] = []

    def var(lo: int, hi: int, name: str, now: int) -> cp_model.IntVar:
        made = model.new_int_var(lo, hi, name)
        hints.append((made, now))
        return made

    def flag(name: str, now: bool) -> cp_model.IntVar:
        made = model.new_bool_var(name)
        hints.append((made, int(now)))
        return made

    starts: dict[int, cp_model.IntVar] = {}
    intervals: dict[int, cp_model.IntervalVar] = {}
    for items in moving.values():
        for i in items:
            bk = bookings[i]
            starts[i] = model.new_int_var_from_domain(
                cp_model.Domain.from_values(list(bits(domains[i]))), f"start_{i}")
            hints.append((starts[i], bk.start))
            intervals[i] = model.new_fixed_size_interval_var(starts[i], bk.step.slots, f"step_{i}")

    def start_of(i: int) -> cp_model.LinearExprT:
        return starts.get(i, bookings[i].start)

    # Nobody and nothing in two places at once; what stays put is already out of the domains.
    users: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i in sorted(starts):
        bk = bookings[i]
        for c in bk.clinician_ids:
            users[("c", c)].append(i)
        users[("r", bk.room_id)].append(i)
        users[("p", bk.patient_id)].append(i)
    for key in sorted(users):
        if len(users[key]) > 1:
            model.add_no_overlap([intervals[i] for i in users[key]])

    waits, misses, current_wait, multi = [], [], 0, False
    for (bundle_id, visit_key), items in moving.items():
        name = f"{bundle_id}_{visit_key}"
        steps = [bookings[i] for i in items]  # in present order
        duration = sum(bk.step.slots for bk in steps)
        now_first, now_last = steps[0].start, max(bk.end for bk in steps)
        current_wait += now_last - now_first - duration
        first = var(0, inst.slots_per_day, f"first_{name}", now_first)
        if len(items) == 1:
            model.add(first == starts[items[0]])
        else:
            multi = True
            # One literal per order of the steps: under it the steps run in that order, each
            # starting at most max_wait after the one before ends, and the waiting is the span
            # less the steps. Much tighter than pairwise disjunctions, and visits have few steps.
            wait = var(0, max_visit, f"wait_{name}", now_last - now_first - duration)
            waits.append(wait)
            chosen = []
            for order in _orders(bookings, items):
                lit = flag(f"order_{name}_{'_'.join(map(str, order))}", list(order) == items)
                chosen.append(lit)
                for a, b in zip(order, order[1:]):
                    end_a = starts[a] + bookings[a].step.slots
                    model.add(starts[b] >= end_a).only_enforce_if(lit)
                    model.add(starts[b] <= end_a + max_wait).only_enforce_if(lit)
                end = starts[order[-1]] + bookings[order[-1]].step.slots
                model.add(first == starts[order[0]]).only_enforce_if(lit)
                model.add(end - first <= max_visit).only_enforce_if(lit)
                model.add(wait == end - first - duration).only_enforce_if(lit)
            model.add_exactly_one(chosen)
        window = _preferred_window(inst, inst.patients[steps[0].patient_id].preferred_time)
        if window is not None:
            lo, hi = window
            if lo <= now_first <= hi:
                model.add_linear_constraint(first, lo, hi)
            elif not exact:
                miss = flag(f"miss_{name}", True)
                model.add_linear_constraint(first, lo, hi).only_enforce_if(~miss)
                misses.append(miss)

    # Each clinician's bookings here by the roster session holding them: for idle time, and for
    # room changes under `soft`.
    sessions: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, bk in enumerate(bookings):
        if (bk.day, bk.site_id) != place:
            continue
        for c in bk.clinician_ids:
            s = session_index(inst, c, day, site, bk.start, bk.end)
            if s is not None:
                sessions[(c, s)].append(i)
    if rules.clinician_room_per_session == "soft":
        # A room change is a move between consecutive bookings of one session in different
        # rooms (joint sittings aside). Keeping the runs of bookings in one room in their order
        # (each run wholly before the next) keeps the count; inside a run any order will do.
        for key in sorted(sessions):
            own = sorted((i for i in sessions[key] if bookings[i].step.kind != "joint_review"),
                         key=lambda i: bookings[i].start)
            runs = [list(group) for _room, group in groupby(own, key=lambda i: bookings[i].room_id)]
            for before, after in zip(runs, runs[1:]):
                for a in before:
                    for b in after:
                        if a in starts or b in starts:
                            model.add(start_of(b) >= start_of(a) + bookings[a].step.slots)

    idles, current_idle = [], 0
    if not exact:
        for (c, s), items in sorted(sessions.items()):
            if len(items) < 2 or not any(i in starts for i in items):
                continue
            shift = inst.shifts_at[(c, day, site)][s]
            busy = sum(bookings[i].step.slots for i in items)
            now_lo, now_hi = min(bookings[i].start for i in items), max(bookings[i].end for i in items)
            lo = var(shift.start, shift.end, f"idle_lo_{c}_{s}", now_lo)
            hi = var(shift.start, shift.end, f"idle_hi_{c}_{s}", now_hi)
            idle = var(0, shift.end - shift.start, f"idle_{c}_{s}", now_hi - now_lo - busy)
            model.add_min_equality(lo, [start_of(i) for i in items])
            model.add_max_equality(hi, [start_of(i) + bookings[i].step.slots for i in items])
            model.add(idle == hi - lo - busy)
            idles.append(idle)
            current_idle += now_hi - now_lo - busy

    slot_wait = sum(waits)
    patient_cost = WAIT_MINUTE * inst.slot_minutes * slot_wait + PREFERENCE_MISS * sum(misses)
    current_cost = WAIT_MINUTE * inst.slot_minutes * current_wait + PREFERENCE_MISS * len(misses)
    day_model = _DayModel(model, starts, patient_cost, slot_wait, sum(idles), current_wait, current_cost,
                          current_idle, multi, hints)
    day_model.hint()
    return day_model


def _orders(bookings: list[Booking], items: list[int]) -> list[tuple[int, ...]]:
    """The orders a visit's steps may run in: the draw first (the visit's first step, as the
    day book places it and docs/optimiser.md's blood-draw policy states), the reviews in any
    order. The present order (`items`) alone when there would be more than MAX_ORDERS."""
    draws = [i for i in items if bookings[i].step.kind == "blood_draw"]
    if math.factorial(len(items)) > MAX_ORDERS:
        return [tuple(items)]
    return [order for order in permutations(items)
            if all(order.index(d) < order.index(r) for d in draws for r in items if r not in draws)]


def _solve(day_model: _DayModel, objective: cp_model.LinearExprT, *, workers: int, seed: int,
           seconds: float | None, deterministic_seconds: float | None = None,
           ) -> tuple[cp_model.CpSolver, int]:
    """Minimise `objective` on the model; the solver (to read values) and its status."""
    day_model.model.minimize(objective)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    if seconds is not None:
        solver.parameters.max_time_in_seconds = max(seconds, 0.001)
    if deterministic_seconds is not None:
        solver.parameters.max_deterministic_time = deterministic_seconds
    return solver, solver.solve(day_model.model)


def _places(bookings: list[Booking], movable: set[str] | None) -> list[Place]:
    return sorted({(bk.day, bk.site_id) for bk in bookings if movable is None or bk.bundle_id in movable})


def compact(inst: Instance, bundles: list[Bundle], bookings: list[Booking], *, workers: int, seed: int,
            deadline: float | None, movable: set[str] | None = None) -> list[Booking]:
    """The same bookings with each (day, site)'s start times re-solved so patients wait less.

    Returns a new list parallel to `bookings` (same length and order); each element is the same
    booking, possibly with another `start` (slots). Nothing else changes: the same steps on the
    same day at the same site in the same visit, with the same clinicians and rooms, each inside
    the same roster session of each clinician. Only the start times, and so the order of steps
    inside a visit, move.

    Two passes over the (day, site)s, in date then site order. The first minimises, per (day,
    site), patient waiting between consecutive steps of a visit plus 20 per visit outside the
    preferred time of day (the objective's own weights, in minutes). The second, keeping each
    day's patient cost, minimises clinician idle slots between bookings inside their sessions.
    Patients come first in the objective, so under a deadline every day gets the first pass
    before any gets the second. Each solve runs for at most PATIENT_DETERMINISTIC_SECONDS or
    IDLE_DETERMINISTIC_SECONDS of CP-SAT deterministic time. Every hard rule the day book keeps
    holds: rosters, clinicians, rooms and patients never double-booked, patient availability,
    site hours, rooms held by sessions, fasting draws early, the draw before reviews needing its
    markers, `max_wait_minutes` between steps and `max_visit_minutes` per visit; a visit
    starting inside the patient's preferred part of the day stays inside it.

    `movable`: ids of bundles whose visits may move (None: all); the rest keep their times and
    only occupy clinicians, rooms and patients (a re-plan compacts only what it moves anyway).
    A (day, site)'s new timetable is kept only if `evaluate` over the bundles there (and the
    sessions there) does not go up, so the plan never gets worse. `deadline` is a
    `time.monotonic()` moment: no solve starts after it, and one still running then keeps the
    best timetable found so far when that is no worse. `workers` and `seed` go to CP-SAT; with
    one worker and a deadline never reached the result is the same in any process.

    Raises KeyError when a booking's bundle is not in `bundles`.
    """
    by_id = {b.id: b for b in bundles}
    result = list(bookings)
    places = _places(bookings, movable)
    for idle_pass in (False, True):
        for place in places:
            if deadline is not None and time.monotonic() >= deadline:
                return result
            day_model = _build_day(inst, by_id, result, place, movable, exact=False)
            if day_model is None:
                continue
            if idle_pass:
                if not day_model.current_idle:
                    continue
                day_model.model.add(day_model.patient_cost <= day_model.current_patient_cost)
                objective, limit = day_model.idle, IDLE_DETERMINISTIC_SECONDS
            else:
                if not day_model.current_patient_cost:
                    continue
                objective, limit = day_model.patient_cost, PATIENT_DETERMINISTIC_SECONDS
            solver, status = _solve(day_model, objective, workers=workers, seed=seed, deterministic_seconds=limit,
                                    seconds=None if deadline is None else deadline - time.monotonic())
            if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                continue
            proposed = list(result)
            for i, var in day_model.starts.items():
                proposed[i] = replace(result[i], start=solver.value(var))
            if proposed == result:
                continue
            touched = {result[i].bundle_id for i in day_model.starts}
            # Those bundles' bookings (for their trips and waiting) and every booking at the place
            # (for sessions and room changes, which bundles share).
            scope = [i for i, bk in enumerate(result) if bk.bundle_id in touched or (bk.day, bk.site_id) == place]
            affected = [by_id[b] for b in sorted(touched)]
            if evaluate(inst, affected, [proposed[i] for i in scope]).total <= evaluate(
                    inst, affected, [result[i] for i in scope]).total:
                result = proposed
    return result


def exact_day_waiting(inst: Instance, bundles: list[Bundle], bookings: list[Booking], *, workers: int,
                      seed: int, time_limit_per_day_seconds: float) -> ExactWaiting:
    """The least patient waiting (minutes) any timetable of these bookings could have, per (day, site).

    The same model as `compact`, every visit free to move, minimising waiting alone (a visit
    inside its preferred part of the day stays inside), each (day, site) solved for up to
    `time_limit_per_day_seconds` of wall-clock time. For the benchmark: how close `compact`
    came to the exact timetable of the same bookings. A (day, site) stopped early adds its best
    waiting found to the total and CP-SAT's proven bound to the bound; one with no solution
    (none is expected: the present timetable is hinted) adds its present waiting and a bound 0.
    Only (day, site)s with a visit of two or more steps are solved and counted.
    """
    by_id = {b.id: b for b in bundles}
    slot = inst.slot_minutes
    total = bound = optimal = days = 0
    for place in _places(bookings, None):
        day_model = _build_day(inst, by_id, bookings, place, None, exact=True)
        if day_model is None or not day_model.has_multi_step_visit:
            continue
        days += 1
        solver, status = _solve(day_model, day_model.wait, workers=workers, seed=seed,
                                seconds=time_limit_per_day_seconds)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            total += round(solver.objective_value)
            bound += max(0, math.ceil(solver.best_objective_bound - 1e-6))
            optimal += status == cp_model.OPTIMAL
        else:
            total += day_model.current_wait
    return ExactWaiting(total * slot, bound * slot, optimal, days)
