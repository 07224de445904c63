"""Two ways of booking without the optimiser.

- The greedy consolidator: patients in priority order, each into the earliest single visit that
  fits (nearest site first), with a separate draw trip when results must be back first; split into
  as few visits as it can otherwise. Fast, always valid: it warm-starts the optimiser.
- The old way: every review its own appointment and its own blood draw, booked first fit — what
  the plan is compared against.
"""

from __future__ import annotations

from itertools import combinations

from scheduler.bundles import Bundle, BundleBuilder, Step
from scheduler.daybook import Booking, Daybook, reachable_options, static_options
from scheduler.instance import Instance


def options(inst: Instance, bundle: Bundle, steps: list[Step]) -> list[tuple[int, str]]:
    """(day, site) pairs inside every step's window at reachable sites, earliest then nearest."""
    patient = inst.patients[bundle.patient_id]
    first = max(s.first_day for s in steps)
    last = min(s.last_day for s in steps)
    sites = sorted(patient.reachable_sites, key=lambda r: (r.travel_minutes, r.site_id))
    result = []
    for day in range(first, last + 1):
        for r in sites:
            on_shift = set(inst.on_shift.get((day, r.site_id), ()))
            if all(any(c in on_shift for c in part) for s in steps for part in s.parts):
                result.append((day, r.site_id))
    return result


class GreedyBooker:
    """Places bundles one at a time into a day book."""

    def __init__(self, inst: Instance, book: Daybook | None = None, draw_in_visit: bool = True):
        self.inst = inst
        self.book = book or Daybook(inst)
        self.draw_in_visit = draw_in_visit

    def fit(self, bundle: Bundle, steps: list[Step], day: int, site: str) -> list[Booking] | None:
        patient = self.inst.patients[bundle.patient_id]
        return self.book.fit_visit(bundle, steps, day, site, self.inst.named_clinician(patient.id),
                                   patient.preferred_time)

    def place(self, bundle: Bundle, preferred: tuple[int, str] | None = None) -> None:
        """One visit if any (day, site) fits, `preferred` first; else the fewest visits."""
        draw, reviews = bundle.draw, list(bundle.review_steps)
        lagged = draw is not None and (not self.draw_in_visit or any(s.lag_working_days for s in reviews))
        visit_steps = reviews if lagged or draw is None else [draw, *reviews]
        candidates = self._named_first(bundle, options(self.inst, bundle, visit_steps))
        if preferred in candidates:
            candidates = [preferred, *(c for c in candidates if c != preferred)]
        for day, site in candidates:
            found = self.fit(bundle, visit_steps, day, site)
            if found is None:
                continue
            trip = self._draw_trip(bundle, draw, reviews, day) if lagged else None
            if lagged and trip is None:
                continue
            if trip:
                self.book.commit(trip)
            self.book.commit(found)
            return
        self._place_split(bundle, draw, reviews)

    def placements(self, bundle: Bundle, at: tuple[int, str] | None = None):
        """Every single-visit way to book the bundle now (with its draw trip when results must be
        back first), as lists of visits; the improvement pass prices each. `at`: only there."""
        draw, reviews = bundle.draw, list(bundle.review_steps)
        lagged = draw is not None and (not self.draw_in_visit or any(s.lag_working_days for s in reviews))
        visit_steps = reviews if lagged or draw is None else [draw, *reviews]
        candidates = self._named_first(bundle, options(self.inst, bundle, visit_steps))
        if at is not None:
            candidates = [at] if at in candidates else []
        for day, site in candidates:
            found = self.fit(bundle, visit_steps, day, site)
            if found is None:
                continue
            if not lagged:
                yield [found]
                continue
            trip = self._draw_trip(bundle, draw, reviews, day)
            if trip is not None:
                yield [trip, found]

    def two_visit_placements(self, bundle: Bundle, price):
        """For each way to split the reviews between the draw's visit (A, maybe none) and a later
        or other-day visit (B), the cheapest pair of visits that fit, by `price` of each visit.

        Results-first reviews are always in B, at least the turnaround after the draw."""
        draw, reviews = bundle.draw, list(bundle.review_steps)
        ranks = self.inst.ranks
        free = [s for s in reviews if not (s.needs_draw and s.lag_working_days)]
        for size in range(len(free) + 1):
            for first in combinations(free, size):
                second = [s for s in reviews if s not in first]
                head = ([draw] if draw is not None else []) + list(first)
                if not head or not second:
                    continue
                ones = self._fits(bundle, head, price)
                twos = self._fits(bundle, second, price)
                lag = max((s.lag_working_days for s in second if s.needs_draw), default=0)
                after_draw = draw is not None and any(s.needs_draw for s in second)
                best = None
                for p1, day1, v1 in ones:
                    for p2, day2, v2 in twos:
                        if day1 == day2 or (after_draw and (day2 < day1 or ranks[day2] < ranks[day1] + lag)):
                            continue
                        if best is None or p1 + p2 < best[0]:
                            best = (p1 + p2, [v1, v2])
                        break  # twos are sorted by price: the first compatible one is the best
                if best:
                    yield best[1]

    def _fits(self, bundle: Bundle, steps: list[Step], price) -> list[tuple[int, int, list[Booking]]]:
        found = []
        for day, site in options(self.inst, bundle, steps):
            visit = self.fit(bundle, steps, day, site)
            if visit is not None:
                found.append((price(visit), day, visit))
        found.sort(key=lambda f: (f[0], f[1]))
        return found

    def _named_first(self, bundle: Bundle, candidates: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Days the named clinician works there first, for patients who want continuity."""
        named = self.inst.named_clinician(bundle.patient_id)
        if not named or not any(named in part for s in bundle.review_steps for part in s.parts):
            return candidates
        return sorted(candidates, key=lambda o: named not in self.inst.on_shift.get(o, ()))

    def _draw_trip(self, bundle: Bundle, draw: Step, reviews: list[Step], review_day: int):
        """The latest draw that gets results back in time, at the nearest site first."""
        lag = max((s.lag_working_days for s in reviews), default=0)
        ranks = self.inst.ranks
        days = [d for d in range(draw.first_day, review_day)
                if ranks[review_day] >= ranks[d] + lag]
        patient = self.inst.patients[bundle.patient_id]
        for r in sorted(patient.reachable_sites, key=lambda r: (r.travel_minutes, r.site_id)):
            for day in reversed(days):
                found = self.fit(bundle, [draw], day, r.site_id)
                if found:
                    return found
        return None

    def _place_split(self, bundle: Bundle, draw: Step | None, reviews: list[Step]) -> None:
        """Fewest visits: the draw trip first, then the largest groups of reviews that fit."""
        draw_day = None
        if draw is not None:
            for day, site in options(self.inst, bundle, [draw]):
                found = self.fit(bundle, [draw], day, site)
                if found:
                    self.book.commit(found)
                    draw_day = day
                    break
        remaining = [s for s in reviews if not s.needs_draw or draw_day is not None]
        while remaining:
            placed = self._largest_group(bundle, remaining, draw_day)
            if placed is None:
                break
            self.book.commit(placed)
            keys = {b.step.key for b in placed}
            remaining = [s for s in remaining if s.key not in keys]
        booked = self.book.by_bundle.get(bundle.id, [])
        if draw_day is not None and not any(b.step.needs_draw for b in booked):
            self.book.release([b for b in booked if b.step.kind == "blood_draw"])

    def _largest_group(self, bundle, remaining, draw_day) -> list[Booking] | None:
        ranks = self.inst.ranks
        used_days = {b.day for b in self.book.by_bundle.get(bundle.id, [])}  # one trip a day
        for size in range(len(remaining), 0, -1):
            for group in combinations(remaining, size):
                lag = max((s.lag_working_days for s in group if s.needs_draw), default=0)
                for day, site in options(self.inst, bundle, list(group)):
                    if day in used_days:
                        continue
                    if draw_day is not None and any(s.needs_draw for s in group):
                        if day <= draw_day or ranks[day] < ranks[draw_day] + lag:
                            continue
                    found = self.fit(bundle, list(group), day, site)
                    if found:
                        return found
        return None


FLEXIBLE_OPTIONS = 5  # bundles with at least this many possible (day, site) pairs go by priority


def priority_order(inst: Instance, bundles: list[Bundle]) -> list[Bundle]:
    """The least flexible first (fewest possible days and sites), then highest priority.

    A patient who can only come on one day must get it before someone who could come on any;
    among patients with real choice, equity puts high priority first. Flexibility counts the
    days left once a results-first review's turnaround is taken into account: a review whose
    window looks like two weeks may have two days left after the draw.
    """
    def key(b: Bundle):
        flexibility = min((len(reachable_options(inst, b, s)) for s in b.review_steps), default=0)
        return (min(flexibility, FLEXIBLE_OPTIONS), -b.priority, -len(b.steps), b.id)

    return sorted(bundles, key=key)


def greedy_consolidate(inst: Instance, bundles: list[Bundle]) -> Daybook:
    booker = GreedyBooker(inst)
    for bundle in priority_order(inst, bundles):
        booker.place(bundle)
    return booker.book


def old_way_bundles(inst: Instance) -> list[Bundle]:
    """One bundle per review, as if every patient had opted out of consolidation."""
    scenario = inst.scenario.model_copy(
        update={"patients": [p.model_copy(update={"opt_out_consolidation": True})
                             for p in inst.scenario.patients]}
    )
    return BundleBuilder(Instance(scenario)).bundles()


def old_way(inst: Instance) -> tuple[Daybook, list[Bundle]]:
    """Every review and every draw its own trip, in list order, first fit."""
    bundles = old_way_bundles(inst)
    booker = GreedyBooker(inst, draw_in_visit=False)
    for bundle in bundles:
        booker.place(bundle)
    return booker.book, bundles
