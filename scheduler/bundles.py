"""Consolidation bundles: a patient's due reviews turned into the steps of one visit.

A bundle is one combined blood draw (the union of all markers) followed by the fewest combined
reviews that cover the patient's due reviews: reviews one clinician can carry out together sit in
one sitting, where shared components (BP, weight, medicines reconciliation) are done once. A joint
MDT consultation puts every review in one sitting with several clinicians. A patient who opted out
of consolidation gets one bundle per review, each with its own draw: the old way, by choice; the
bookers put those bundles on different days, each its own trip (`sibling_bundle_ids`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from scheduler.daybook import empty_book, static_options
from scheduler.domain import Patient, ReviewType
from scheduler.instance import Instance
from scheduler.steps import Bundle, Step, separate_bundle_id

MAX_REVIEWS_FOR_EXACT_GROUPING = 7
PRESSURE_WEIGHT = 4  # a fully booked clinician group makes a sitting cost five times its minutes
SITTING_MINUTES = 10  # a further sitting in the visit costs as much as ten minutes of review
CONTINUITY_MINUTES = 10  # a sitting the named clinician could do is worth ten minutes


def combined_minutes(types: list[ReviewType], minutes_of: dict[str, int]) -> int:
    """Sum of durations less each shared component done more than once."""
    counts = Counter(c for t in types for c in t.shared_component_ids)
    savings = sum((k - 1) * minutes_of.get(c, 0) for c, k in counts.items() if k > 1)
    return sum(t.duration_minutes for t in types) - savings


def joint_minutes(types: list[ReviewType], extra_per_review: int) -> int:
    return max(t.duration_minutes for t in types) + extra_per_review * (len(types) - 1)


def set_partitions(items: list):
    """Every way to split `items` into non-empty blocks."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in set_partitions(rest):
        yield [[first], *partition]
        for i in range(len(partition)):
            yield partition[:i] + [[first, *partition[i]]] + partition[i + 1 :]


class BundleBuilder:
    """Builds bundles for every patient of an instance."""

    def __init__(self, instance: Instance, groupings: Mapping[str, Sequence[frozenset[str]]] | None = None):
        """`groupings`: patient id -> review ids per sitting, kept when each sitting is still
        possible (a re-plan keeps the sittings the previous plan booked, so that a change in
        clinician pressure elsewhere does not regroup a patient whose visit stands)."""
        self.inst = instance
        self.groupings = groupings or {}
        self.rules = instance.scenario.visit_rules
        self.minutes_of = {c.id: c.minutes for c in instance.scenario.shared_components}
        self.supply: dict[str, int] = defaultdict(int)  # rostered minutes per clinician
        for sh in instance.shifts:
            self.supply[sh.clinician_id] += (sh.end - sh.start) * instance.slot_minutes
        self.demand: dict[str, float] = defaultdict(float)
        self._eligible: dict[tuple, tuple[str, ...]] = {}
        self._days_at: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for clinician, places in instance.clinician_sites.items():
            for day, site in sorted(places):
                self._days_at[clinician][site].append(day)

    def eligible(self, patient: Patient, types: list[ReviewType], first: int, last: int) -> tuple[str, ...]:
        """Clinicians allowed every review type who work at a reachable site in the window."""
        sites = frozenset(r.site_id for r in patient.reachable_sites)
        key = (tuple(sorted(t.id for t in types)), first, last, sites)
        if key not in self._eligible:
            self._eligible[key] = tuple(
                c.id
                for c in self.inst.scenario.clinicians
                if all(c.role in t.roles and t.id in c.review_type_ids for t in types)
                and any(first <= day <= last for site in sites for day in self._days_at[c.id].get(site, ()))
            )
        return self._eligible[key]

    def bundles(self) -> list[Bundle]:
        result = []
        for patient in self.inst.scenario.patients:
            dues = [(patient.review_id(d), d) for d in patient.due_reviews]
            if patient.opt_out_consolidation:
                for review_id, due in dues:
                    result.append(self._bundle(patient, separate_bundle_id(patient.id, review_id), [(review_id, due)], True))
            else:
                result.append(self._bundle(patient, patient.id, dues, False))
        return result

    def _window(self, dues) -> tuple[int, int]:
        inst = self.inst
        first = max(max(d.window_start, inst.days[0]) for _, d in dues)
        last = min(min(d.window_end, inst.days[-1]) for _, d in dues)
        return (inst.day_of.get(first, 0), inst.day_of.get(last, -1)) if first <= last else (0, -1)

    def _bundle(self, patient: Patient, bundle_id: str, dues, separate: bool) -> Bundle:
        inst, factor = self.inst, patient.needs.extra_time_factor
        carer = 1 if patient.needs.carer_attending else 0
        access = {"wheelchair_access"} if patient.needs.wheelchair else set()
        forbidden: set[frozenset[str]] = set()
        while True:
            blocks, chosen = self._group(patient, dues, forbidden)
            steps = [self._review_step(patient, f"r{i}", block, carer, access) for i, block in enumerate(blocks)]
            stuck = {frozenset(s.review_ids) for s in steps
                     if s.reviews > 1 and not self._could_happen(patient, bundle_id, s, dues)}
            if not stuck:
                break
            forbidden |= stuck  # a sitting that can happen nowhere: split it, so its parts may
            cache = inst.cache.get("static_options", {})
            for key in [k for k in cache if k[0] == bundle_id]:
                del cache[key]  # step keys now name other sittings
        self._add_demand(chosen)
        if patient.joint_consultation and len(steps) > 1:
            joint = self._joint_step(patient, blocks, steps, carer, access)
            if joint is not None:
                steps = [joint]
        markers = sorted({m for _, d in dues for m in inst.review_types[d.review_type_id].blood_marker_ids})
        if markers:
            last = max(s.last_day for s in steps)
            reachable = {r.site_id for r in patient.reachable_sites}
            takers = tuple(
                c.id
                for c in inst.scenario.clinicians
                if c.takes_bloods
                and any(day <= last and site in reachable for day, site in inst.clinician_sites.get(c.id, ()))
            )
            draw = Step(
                key="draw",
                kind="blood_draw",
                review_ids=(),
                review_type_ids=(),
                marker_ids=tuple(markers),
                slots=inst.slots_up(self.rules.blood_draw_minutes * factor),
                parts=(takers,),
                capabilities=frozenset({"phlebotomy"} | access),
                people=2 + carer,
                first_day=0,
                last_day=last,
                fasting=any(inst.markers[m].fasting for m in markers),
            )
            steps = [draw, *steps]
        return Bundle(bundle_id, patient.id, separate, patient.priority, tuple(steps))

    def _review_step(self, patient, key, block, carer, access) -> Step:
        inst = self.inst
        types = [inst.review_types[d.review_type_id] for _, d in block]
        first, last = self._window(block)
        lag = max(
            (
                inst.markers[m].turnaround_working_days
                for t in types
                if t.results_before_review
                for m in t.blood_marker_ids
                if not inst.markers[m].point_of_care
            ),
            default=0,
        )
        return Step(
            key=key,
            kind="review",
            review_ids=tuple(r for r, _ in block),
            review_type_ids=tuple(t.id for t in types),
            marker_ids=(),
            slots=inst.slots_up(combined_minutes(types, self.minutes_of) * patient.needs.extra_time_factor),
            parts=(self.eligible(patient, types, first, last),),
            capabilities=frozenset({c for t in types for c in t.room_capabilities} | access),
            people=2 + carer,
            first_day=first,
            last_day=last,
            needs_draw=any(t.blood_marker_ids for t in types),
            lag_working_days=lag,
        )

    def _has_room(self, patient: Patient, capabilities: set[str], clinicians: int) -> bool:
        """Some room at a reachable site has the capabilities and holds everyone."""
        needs = set(capabilities) | ({"wheelchair_access"} if patient.needs.wheelchair else set())
        people = 1 + clinicians + (1 if patient.needs.carer_attending else 0)
        return any(
            needs <= set(room.capabilities) and room.capacity_people >= people
            for r in patient.reachable_sites
            for room in self.inst.rooms_at.get(r.site_id, [])
        )

    def _joint_step(self, patient, blocks, steps, carer, access) -> Step | None:
        """One sitting with every clinician, if an MDT room could host it; else back to back."""
        inst = self.inst
        all_dues = [d for block in blocks for d in block]
        first, last = self._window(all_dues)
        people = 1 + carer + len(steps)
        if first > last or any(not s.parts[0] for s in steps):
            return None
        types = [inst.review_types[d.review_type_id] for _, d in all_dues]
        minutes = joint_minutes(types, self.rules.joint_extra_minutes_per_review)
        joint = Step(
            key="joint",
            kind="joint_review",
            review_ids=tuple(r for r, _ in all_dues),
            review_type_ids=tuple(t.id for t in types),
            marker_ids=(),
            slots=inst.slots_up(minutes * patient.needs.extra_time_factor),
            parts=tuple(s.parts[0] for s in steps),
            capabilities=frozenset({"mdt"} | {c for s in steps for c in s.capabilities}),
            people=people,
            first_day=first,
            last_day=last,
            needs_draw=any(s.needs_draw for s in steps),
            lag_working_days=max(s.lag_working_days for s in steps),
        )
        probe = Bundle("joint-probe", patient.id, False, patient.priority, (joint,))
        return joint if empty_book(inst).possible_options(probe, joint) else None

    def _could_happen(self, patient: Patient, bundle_id: str, step: Step, dues) -> bool:
        """The sitting has a (day, site) on an empty roster, after the results turnaround when it
        needs results back. A combined sitting can be impossible where its reviews apart are not
        (too long for any session that day, or only the days after the draw are left)."""
        book = empty_book(self.inst)
        # Cached under the bundle's own id and the step's key, as the master will ask again.
        days = {day for day, _site in static_options(self.inst, Bundle(bundle_id, patient.id, False, 0, (step,)), step)}
        if not (days and step.needs_draw and step.lag_working_days):
            return bool(days)
        markers = sorted({m for _, d in dues for m in self.inst.review_types[d.review_type_id].blood_marker_ids})
        draw = Step(key="draw", kind="blood_draw", review_ids=(), review_type_ids=(), marker_ids=tuple(markers),
                    slots=self.inst.slots_up(self.rules.blood_draw_minutes * patient.needs.extra_time_factor),
                    parts=(tuple(c.id for c in self.inst.scenario.clinicians if c.takes_bloods),),
                    capabilities=frozenset({"phlebotomy"} | ({"wheelchair_access"} if patient.needs.wheelchair else set())),
                    people=2 + (1 if patient.needs.carer_attending else 0), first_day=0,
                    last_day=len(self.inst.days) - 1,
                    fasting=any(self.inst.markers[m].fasting for m in markers))
        draws = book.possible_options(Bundle(f"{bundle_id}#probe", patient.id, False, patient.priority, (draw,)), draw)
        if not draws:
            return False
        earliest = min(self.inst.ranks[day] for day, _site in draws) + step.lag_working_days
        return any(self.inst.ranks[day] >= earliest for day in days)

    def _add_demand(self, chosen) -> None:
        for _cost, minutes, who in chosen:
            supply = sum(self.supply.get(c, 0) for c in who)
            for c in who:
                self.demand[c] += minutes * self.supply.get(c, 0) / supply if supply else 0

    def _group(self, patient: Patient, dues, forbidden=frozenset()) -> tuple[list[list], list]:
        """Sittings that keep clinicians evenly loaded, then fewest sittings, then continuity.

        A GP may do almost every review, so "fewest sittings" alone would give the GP everything
        and leave nurses idle; each sitting is costed by its minutes times the pressure on the
        clinicians who could do it (booked so far over rostered), plus a fixed cost per sitting.
        """
        inst = self.inst
        named = inst.named_clinician(patient.id)

        memo: dict[frozenset, tuple | None] = {}

        def block_cost(block) -> tuple[float, int, tuple[str, ...]] | None:
            key = frozenset(r for r, _ in block)  # a block's cost does not depend on its order
            if key not in memo:
                memo[key] = price(block)
            return memo[key]

        def price(block) -> tuple[float, int, tuple[str, ...]] | None:
            types = [inst.review_types[d.review_type_id] for _, d in block]
            first, last = self._window(block)
            who = self.eligible(patient, types, first, last) if first <= last else ()
            if len(block) > 1 and (not who or frozenset(r for r, _ in block) in forbidden):
                return None
            factor = patient.needs.extra_time_factor
            minutes = combined_minutes(types, self.minutes_of) * factor
            if len(block) > 1 and (
                minutes > self.rules.max_visit_minutes - self.rules.blood_draw_minutes * factor
                or not self._has_room(patient, {c for t in types for c in t.room_capabilities}, 1)
            ):
                return None  # never fits in one visit, or no room could host it
            supply = sum(self.supply.get(c, 0) for c in who)
            pressure = (sum(self.demand[c] for c in who) + minutes) / supply if supply else 1.0
            cost = minutes * (1 + PRESSURE_WEIGHT * pressure) - CONTINUITY_MINUTES * (named in who)
            return cost, minutes, who

        kept = self._kept_grouping(patient, dues, block_cost, forbidden)
        if kept is not None:
            return kept
        if len(dues) > MAX_REVIEWS_FOR_EXACT_GROUPING:
            partitions = [self._group_greedy(dues, block_cost)]
        else:
            partitions = set_partitions(list(dues))
        best, best_cost, best_blocks = None, None, None
        for partition in partitions:
            costs = [block_cost(b) for b in partition]
            if any(c is None for c in costs):
                continue
            total = sum(c[0] for c in costs) + SITTING_MINUTES * (len(partition) - 1)
            if best_cost is None or total < best_cost - 1e-9:
                best, best_cost, best_blocks = partition, total, costs
        return best, best_blocks

    def _kept_grouping(self, patient: Patient, dues, block_cost, forbidden) -> tuple[list[list], list] | None:
        """The sittings `groupings` gives the patient, when they cover exactly these reviews and
        each multi-review sitting is still possible; else None."""
        wanted = self.groupings.get(patient.id)
        if not wanted or {r for r, _ in dues} != set().union(*wanted) or sum(map(len, wanted)) != len(dues):
            return None
        order = {r: i for i, (r, _) in enumerate(dues)}
        blocks = sorted(([due for due in dues if due[0] in block] for block in wanted),
                        key=lambda block: order[block[0][0]])
        costs = [block_cost(block) for block in blocks]
        if any(c is None for c in costs) or any(frozenset(r for r, _ in b) in forbidden for b in blocks):
            return None
        return blocks, costs

    @staticmethod
    def _group_greedy(dues, block_cost) -> list[list]:
        blocks: list[list] = []
        for due in dues:
            for block in blocks:
                if block_cost([*block, due]) is not None:
                    block.append(due)
                    break
            else:
                blocks.append([due])
        return blocks
