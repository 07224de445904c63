"""The objective, in PRODUCT.md's order, as one weighted sum (smaller is better).

The weights make each goal dominate the ones after it in any realistic scenario:
an unbooked review costs more than any number of extra trips a patient could make, a trip more
than any travel or continuity saving on it. docs/optimiser.md lists them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ortools.sat.python import cp_model

from scheduler.bundles import Bundle
from scheduler.daybook import Booking
from scheduler.instance import Instance
from scheduler.model.variables import MasterVars

UNBOOKED_REVIEW = 100_000  # x (1 + priority), per review
VISIT = 1_000  # per trip, draw trips included
PRIORITY_DAY = 10  # x priority, per day a review waits after its window opens
TRAVEL_MINUTE = 1  # x (1 + priority), per minute travelled (both ways)
CONTINUITY_MISS = 50  # per review not done by the named clinician the patient wants
WAIT_MINUTE = 1  # per minute the patient waits inside a visit
PREFERENCE_MISS = 20  # per visit outside the patient's preferred time of day
SESSION_USED = 5  # per clinician session (day, site) with bookings: fewer fragments


@dataclass(frozen=True)
class Breakdown:
    unbooked: int
    visits: int
    priority_days: int
    travel: int
    continuity: int
    wait: int
    preference: int
    sessions: int

    @property
    def total(self) -> int:
        return sum(self.__dict__.values())


def _named(inst: Instance, bundle: Bundle) -> str | None:
    patient = inst.patients[bundle.patient_id]
    return patient.named_clinician_id if patient.wants_continuity else None


def master_objective(model: cp_model.CpModel, inst: Instance, v: MasterVars):
    """The parts of the objective the master sees; each is at most the plan's own (a bound)."""
    terms = []
    for (b, k), booked in v.booked.items():
        bundle = v.bundles[b]
        step = bundle.steps[k]
        if step.reviews:
            weight = UNBOOKED_REVIEW * (1 + bundle.priority) * step.reviews
            terms.append(weight - weight * booked)
    for (b, (day, site)), visit in v.visit.items():
        bundle = v.bundles[b]
        travel = 2 * inst.travel.get((bundle.patient_id, site), 0) * (1 + bundle.priority)
        terms.append((VISIT + TRAVEL_MINUTE * travel) * visit)
    for option, members in v.at_option.items():
        # Any booking at a (day, site) uses at least one clinician session there.
        used = model.new_bool_var(f"used_{option[0]}_{option[1]}")
        for b, k in members:
            model.add_implication(v.x[(b, k, option)], used)
        terms.append(SESSION_USED * used)
    for (b, k, (day, site)), x in v.x.items():
        bundle = v.bundles[b]
        step = bundle.steps[k]
        if not step.reviews:
            continue
        cost = PRIORITY_DAY * bundle.priority * (day - step.first_day)
        named = _named(inst, bundle)
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
    unbooked = visits = priority_days = travel = continuity = wait = preference = 0
    for bundle in bundles:
        mine = by_bundle.get(bundle.id, [])
        booked = {bk.step.key for bk in mine}
        weight = UNBOOKED_REVIEW * (1 + bundle.priority)
        unbooked += sum(weight * s.reviews for s in bundle.steps if s.key not in booked)
        named = _named(inst, bundle)
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
            travel += TRAVEL_MINUTE * 2 * inst.travel.get((bundle.patient_id, trip[0].site_id), 0) * (
                1 + bundle.priority
            )
            latest = trip[0].end
            for bk in trip[1:]:
                wait += WAIT_MINUTE * max(0, bk.start - latest) * slot
                latest = max(latest, bk.end)
            start_minute = trip[0].start * slot
            if (patient.preferred_time == "morning" and start_minute >= 12 * 60 + 30) or (
                patient.preferred_time == "afternoon" and start_minute < 13 * 60
            ):
                preference += PREFERENCE_MISS
    sessions = SESSION_USED * len({(c, bk.day, bk.site_id) for bk in bookings for c in bk.clinician_ids})
    return Breakdown(unbooked, visits, priority_days, travel, continuity, wait, preference, sessions)


def add_objective(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    model.minimize(master_objective(model, inst, v))
