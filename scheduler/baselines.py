"""Two ways of booking without the optimiser.

- The greedy consolidator: patients in priority order, each into the earliest single visit that
  fits (nearest site first), with a separate draw trip when results must be back first; split into
  as few visits as it can otherwise. Fast, always valid: it warm-starts the optimiser.
- The old way: every review its own appointment and its own blood draw, booked first fit — what
  the plan is compared against. Each of a patient's appointments gets a day of its own, so its
  count of one trip per appointment is true (a visit is one patient, one date, one site).

Both keep `visit_rules.blood_draw_policy` (docs/optimiser.md) through `GreedyBooker`; the old
way is the counterfactual practice (every draw a trip of its own), not a plan, so it does not.
"""

from __future__ import annotations

from itertools import combinations

from scheduler.bundles import BundleBuilder
from scheduler.daybook import Booking, Daybook, reachable_options
from scheduler.instance import Instance
from scheduler.steps import Bundle, Step, sibling_bundle_ids


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

    def __init__(self, inst: Instance, book: Daybook | None = None, own_draw_trip: bool = False):
        """`own_draw_trip`: every draw on a trip of its own before its review (the old way).
        Otherwise `visit_rules.blood_draw_policy` decides: under `draw_in_visit` a draw-only
        trip is made only for a review that needs its results back first; under
        `earlier_draw_trip_allowed` the draw may also go on an earlier trip of its own when the
        reviews cannot all be in one visit with it."""
        self.inst = inst
        self.book = book or Daybook(inst)
        self.own_draw_trip = own_draw_trip
        self.draw_trip_allowed = own_draw_trip or (
            inst.scenario.visit_rules.blood_draw_policy == "earlier_draw_trip_allowed")

    def _draw_apart(self, draw: Step | None, reviews: list[Step]) -> bool:
        """The draw must be a trip of its own before the visit: always the old way; otherwise
        when a review needs its laboratory results back first."""
        return draw is not None and (self.own_draw_trip or any(s.needs_draw and s.lag_working_days for s in reviews))

    def sibling_days(self, bundle: Bundle) -> set[int]:
        """Days the patient's other separate bundles use. An opted-out patient's reviews go on
        different days, each its own trip, as the old way books them: a visit is one patient,
        one date, one site, so two on one day would be one trip counted as two."""
        if not bundle.separate:
            return set()
        patient = self.inst.patients[bundle.patient_id]
        return {bk.day for other in sibling_bundle_ids(patient) if other != bundle.id
                for bk in self.book.by_bundle.get(other, ())}

    def fit(self, bundle: Bundle, steps: list[Step], day: int, site: str) -> list[Booking] | None:
        """The visit's steps fitted into the day book at (day, site), or None. Every way of
        booking goes through here, so the day rule for opted-out patients holds everywhere."""
        if bundle.separate and day in self.sibling_days(bundle):
            return None
        patient = self.inst.patients[bundle.patient_id]
        return self.book.fit_visit(bundle, steps, day, site, self.inst.named_clinician(patient.id),
                                   patient.preferred_time)

    def place(self, bundle: Bundle, preferred: tuple[int, str] | None = None) -> None:
        """One visit if any (day, site) fits, `preferred` first; else the fewest visits."""
        draw, reviews = bundle.draw, list(bundle.review_steps)
        lagged = self._draw_apart(draw, reviews)
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
        lagged = self._draw_apart(draw, reviews)
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
                if not first and draw is not None and not self.draw_trip_allowed and not any(
                        s.needs_draw and s.lag_working_days for s in second):
                    continue  # draw_in_visit: a draw-only trip only when results are needed first
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
        """Fewest visits when one is impossible.

        When the draw may be a trip of its own (results needed first, the old way, or the
        `earlier_draw_trip_allowed` policy) it goes first, on the earliest day it fits, then the
        largest groups of reviews that fit. Under `draw_in_visit`, if that trip ends up serving
        no review that needs results first, it is undone and the draw goes inside the visit of
        the largest group of reviews it fits with, serving the later visits (one blood test).
        """
        if draw is not None and (self.draw_trip_allowed or self._draw_apart(draw, reviews)):
            self._split_after_draw_trip(bundle, draw, reviews)
            booked = self.book.by_bundle.get(bundle.id, [])
            if self.draw_trip_allowed or any(b.step.needs_draw and b.step.lag_working_days for b in booked):
                return
            self.book.release_bundle(bundle.id)
        self._split_draw_in_visit(bundle, draw, reviews)

    def _split_after_draw_trip(self, bundle: Bundle, draw: Step, reviews: list[Step]) -> None:
        """The draw trip first, then the largest groups of reviews that fit."""
        draw_day = None
        for day, site in options(self.inst, bundle, [draw]):
            found = self.fit(bundle, [draw], day, site)
            if found:
                self.book.commit(found)
                draw_day = day
                break
        self._book_groups(bundle, [s for s in reviews if not s.needs_draw or draw_day is not None], draw_day)

    def _split_draw_in_visit(self, bundle: Bundle, draw: Step | None, reviews: list[Step]) -> None:
        """The draw with the largest group of reviews it fits with, then the other groups."""
        draw_day, remaining = None, list(reviews)
        if draw is not None:
            placed = self._largest_group(bundle, remaining, None, with_draw=draw)
            if placed is not None:
                self.book.commit(placed)
                draw_day = placed[0].day
                keys = {b.step.key for b in placed}
                remaining = [s for s in remaining if s.key not in keys]
        self._book_groups(bundle, [s for s in remaining if not s.needs_draw or draw_day is not None], draw_day)

    def _book_groups(self, bundle: Bundle, remaining: list[Step], draw_day: int | None) -> None:
        """The largest groups of `remaining` that fit, one visit each; a draw nothing needs is
        taken back."""
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

    def _largest_group(self, bundle, remaining, draw_day, with_draw: Step | None = None) -> list[Booking] | None:
        """The largest group of reviews that fits in one visit on a day the bundle does not use
        yet (after the draw by its turnaround when they need it); with `with_draw`, the draw
        first in the same visit (groups of reviews that need it tried first)."""
        ranks = self.inst.ranks
        used_days = {b.day for b in self.book.by_bundle.get(bundle.id, [])}  # one trip a day
        for size in range(len(remaining), 0, -1):
            groups = list(combinations(remaining, size))
            if with_draw is not None:
                # Results-first reviews cannot be on the draw's day; reviews the draw serves go
                # with it first (a stable sort keeps the fixed order otherwise).
                groups = [g for g in groups if not any(s.needs_draw and s.lag_working_days for s in g)]
                groups.sort(key=lambda g: -sum(s.needs_draw for s in g))
            for group in groups:
                steps = [with_draw, *group] if with_draw is not None else list(group)
                lag = max((s.lag_working_days for s in group if s.needs_draw), default=0)
                for day, site in options(self.inst, bundle, steps):
                    if day in used_days:
                        continue
                    if draw_day is not None and any(s.needs_draw for s in group):
                        if day <= draw_day or ranks[day] < ranks[draw_day] + lag:
                            continue
                    found = self.fit(bundle, steps, day, site)
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
    booker = GreedyBooker(inst, own_draw_trip=True)
    for bundle in bundles:
        booker.place(bundle)
    return booker.book, bundles
