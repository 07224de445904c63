"""The objective, in PRODUCT.md's order, as one weighted sum (smaller is better).

The weights make each goal dominate the ones after it in any realistic scenario:
an unbooked review costs more than any number of extra trips a patient could make, a trip more
than any travel or continuity saving on it. docs/optimiser.md lists them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise

from ortools.sat.python import cp_model

from scheduler.daybook import AFTERNOON_STARTS_MINUTE, MORNING_ENDS_MINUTE, Booking
from scheduler.instance import Instance
from scheduler.model.variables import MasterVars
from scheduler.steps import Bundle

UNBOOKED_REVIEW = 100_000  # per review left unbooked: the count of reviews booked comes first
UNBOOKED_PRIORITY = 90  # x priority, per review left unbooked: equity among equal counts
VISIT = 1_000  # per trip, draw trips included
REVIEW_VISIT = 300  # per trip holding reviews: when trips tie, keep a patient's reviews together
PRIORITY_DAY = 10  # x priority, per day a review waits after its window opens
TRAVEL_MINUTE = 1  # x (1 + priority), per minute travelled (both ways)
CONTINUITY_MISS = 50  # per review not done by the named clinician the patient wants
WAIT_MINUTE = 1  # per minute the patient waits inside a visit
PREFERENCE_MISS = 20  # per visit outside the patient's preferred time of day
SESSION_USED = 5  # per clinician session (day, site) with bookings: fewer fragments
ROOM_CHANGE = 5  # clinician_room_per_session: soft, per move between rooms inside a roster session


def unbooked_weight(priority: int) -> int:
    """Cost of leaving one review of a patient with this priority unbooked.

    The count comes first (PRODUCT.md): the priority part (at most 3 x 90 = 270) is an equity
    tie-break, below one trip (1,000), so priority never buys a review at the price of another
    one unless more than 370 priority-3 reviews are traded at once (370 x 270 < 100,000)."""
    return UNBOOKED_REVIEW + UNBOOKED_PRIORITY * priority


@dataclass(frozen=True)
class Breakdown:
    unbooked: int
    visits: int
    review_visits: int
    priority_days: int
    travel: int
    continuity: int
    wait: int
    preference: int
    sessions: int
    room_changes: int = 0

    @property
    def total(self) -> int:
        return sum(self.__dict__.values())


def master_objective(inst: Instance, v: MasterVars, sessions: bool = True):
    """The parts of the objective the master sees; each is at most the plan's own (a bound).

    `sessions=False` leaves out the session term (the exact standalone floor adds it once)."""
    terms = []
    for (b, k), booked in v.booked.items():
        bundle = v.bundles[b]
        step = bundle.steps[k]
        if step.reviews:
            weight = unbooked_weight(bundle.priority) * step.reviews
            terms.append(weight - weight * booked)
    for (b, (_day, site)), visit in v.visit.items():
        bundle = v.bundles[b]
        travel = 2 * inst.travel.get((bundle.patient_id, site), 0) * (1 + bundle.priority)
        terms.append((VISIT + TRAVEL_MINUTE * travel) * visit)
    terms.extend(REVIEW_VISIT * rv for rv in v.review_visit.values())
    # Any booking at a (day, site) uses at least one clinician session there.
    if sessions:
        terms.extend(SESSION_USED * used for used in v.used.values())
    for (b, k, (day, site)), x in v.x.items():
        bundle = v.bundles[b]
        step = bundle.steps[k]
        if not step.reviews:
            continue
        cost = PRIORITY_DAY * bundle.priority * (day - step.first_day)
        named = inst.named_clinician(bundle.patient_id)
        can_keep = any(named in part for part in step.parts) and named in inst.on_shift.get(
            (day, site), []
        )
        if named and not can_keep:
            cost += CONTINUITY_MISS * step.reviews
        if cost:
            terms.append(cost * x)
    return sum(terms)


def evaluate(inst: Instance, bundles: list[Bundle], bookings: list[Booking]) -> Breakdown:
    """The full objective of a set of bookings."""
    by_bundle: dict[str, list[Booking]] = defaultdict(list)
    for bk in bookings:
        by_bundle[bk.bundle_id].append(bk)
    slot = inst.slot_minutes
    unbooked = visits = review_visits = priority_days = travel = continuity = wait = preference = 0
    for bundle in bundles:
        mine = by_bundle.get(bundle.id, [])
        booked = {bk.step.key for bk in mine}
        weight = unbooked_weight(bundle.priority)
        unbooked += sum(weight * s.reviews for s in bundle.steps if s.key not in booked)
        named = inst.named_clinician(bundle.patient_id)
        patient = inst.patients[bundle.patient_id]
        trips: dict[int, list[Booking]] = defaultdict(list)
        for bk in mine:
            trips[bk.visit_key].append(bk)
            if bk.step.reviews:
                priority_days += PRIORITY_DAY * bundle.priority * (bk.day - bk.step.first_day)
                if named and named not in bk.clinician_ids:
                    continuity += CONTINUITY_MISS * bk.step.reviews
        for trip in trips.values():
            trip.sort(key=lambda bk: bk.start)
            visits += VISIT
            review_visits += REVIEW_VISIT if any(bk.step.reviews for bk in trip) else 0
            travel += TRAVEL_MINUTE * 2 * inst.travel.get((bundle.patient_id, trip[0].site_id), 0) * (
                1 + bundle.priority
            )
            latest = trip[0].end
            for bk in trip[1:]:
                wait += WAIT_MINUTE * max(0, bk.start - latest) * slot
                latest = max(latest, bk.end)
            start_minute = trip[0].start * slot
            if (patient.preferred_time == "morning" and start_minute >= MORNING_ENDS_MINUTE) or (
                patient.preferred_time == "afternoon" and start_minute < AFTERNOON_STARTS_MINUTE
            ):
                preference += PREFERENCE_MISS
    sessions = SESSION_USED * len({(c, bk.day, bk.site_id) for bk in bookings for c in bk.clinician_ids})
    room_changes = ROOM_CHANGE * count_room_changes(inst, bookings) if (
        inst.scenario.visit_rules.clinician_room_per_session == "soft") else 0
    return Breakdown(unbooked, visits, review_visits, priority_days, travel, continuity, wait, preference, sessions,
                     room_changes)


def count_room_changes(inst: Instance, bookings: list[Booking]) -> int:
    """Moves between rooms inside a clinician's roster session: consecutive draws/reviews of one
    clinician in one session (by start) in different rooms. Joint sittings are left out (moving
    to the MDT room for one is the rule, not a change); as `metrics.room_changes`."""
    runs: dict[tuple, list[tuple[int, str]]] = defaultdict(list)
    for bk in bookings:
        if bk.step.kind == "joint_review":
            continue
        for c in bk.clinician_ids:
            for i, sh in enumerate(inst.shifts_at.get((c, bk.day, bk.site_id), ())):
                if sh.start <= bk.start and bk.end <= sh.end:
                    runs[(c, bk.day, bk.site_id, i)].append((bk.start, bk.room_id))
                    break
    changes = 0
    for items in runs.values():
        items.sort()
        changes += sum(1 for (_, r1), (_, r2) in pairwise(items) if r1 != r2)
    return changes


def add_objective(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    model.minimize(master_objective(inst, v))


def simple_bundle_floors(inst: Instance, v: MasterVars) -> list[int]:
    """Each bundle's best cost with the roster to itself, priced part by part, sessions aside: a
    lower bound on that bundle's own objective terms in every plan.

    Capacity shared with other patients can only add cost. It assumes, as the weights ensure
    for any horizon under a year, that booking a bookable review always beats leaving it out
    (100,000 per review against at most two trips and their priority days).
    """
    floors = []
    for b, bundle in enumerate(v.bundles):
        patient = inst.patients[bundle.patient_id]
        named = inst.named_clinician(bundle.patient_id)
        bookable = _bookable(v, b)
        weight = unbooked_weight(bundle.priority)
        total = sum(weight * s.reviews for k, s in enumerate(bundle.steps) if s.reviews and k not in bookable)
        if bookable:
            lagged = any(bundle.steps[k].lag_working_days and bundle.steps[k].needs_draw for k in bookable)
            trips = 2 if lagged else 1
            nearest = min(inst.travel.get((patient.id, r.site_id), 0) for r in patient.reachable_sites)
            total += trips * (VISIT + TRAVEL_MINUTE * 2 * nearest * (1 + bundle.priority)) + REVIEW_VISIT
            for k in bookable:
                step = bundle.steps[k]
                total += min(
                    PRIORITY_DAY * bundle.priority * (day - step.first_day)
                    + (CONTINUITY_MISS * step.reviews if named and not (
                        any(named in part for part in step.parts)
                        and named in inst.on_shift.get((day, site), [])) else 0)
                    for day, site in v.options[(b, k)]
                )
        floors.append(total)
    return floors


def _bookable(v: MasterVars, b: int) -> set[int]:
    """The review steps of bundle b that have somewhere to go, their draw too if they need it."""
    bundle = v.bundles[b]
    draw_possible = bundle.draw is not None and bool(v.options[(b, 0)])
    return {k for k, s in enumerate(bundle.steps)
            if s.reviews and v.options[(b, k)] and (draw_possible or not s.needs_draw)}


def anything_bookable(v: MasterVars) -> bool:
    """Whether some review step could be booked (then a plan books something, as the weights
    ensure, and holds at least one session)."""
    return any(_bookable(v, b) for b in range(len(v.bundles)))


def standalone_floor(inst: Instance, v: MasterVars, bundle_floors: list[int] | None = None) -> int:
    """Sum over bundles of `simple_bundle_floors` (pass them as `bundle_floors` when already
    computed), plus one session when anything is bookable: a valid lower bound on every plan
    (every objective term belongs to one bundle except sessions, at least one if anything is
    booked)."""
    floors = simple_bundle_floors(inst, v) if bundle_floors is None else bundle_floors
    return sum(floors) + (SESSION_USED if anything_bookable(v) else 0)
