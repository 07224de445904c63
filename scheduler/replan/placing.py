"""Booking the next version around the visits that stand: the patients whose visits cannot
stand, and those added, due again or waiting, placed with a stability cost (docs/replan.md)."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

from ortools.sat.python import cp_model

from scheduler.assemble import (
    appointments_and_visits,
    booked_review_ids,
    unbooked_entries,
)
from scheduler.baselines import GreedyBooker, greedy_consolidate, old_way, options, priority_order
from scheduler.budget import Budget, StageClock
from scheduler.compact import compact
from scheduler.daybook import Booking, Daybook, empty_book
from scheduler.disruptions import (
    DisruptionError,
    as_data,
)
from scheduler.domain import (
    Scenario,
    SolverSettings,
    Unavailability,
)
from scheduler.instance import Instance
from scheduler.metrics import compare, compute_metrics
from scheduler.model.objective import SESSION_USED, evaluate, standalone_floor
from scheduler.model.variables import build_variables
from scheduler.plan import Metrics, Plan, ReplanRecord, SolverStats
from scheduler.planner import PlanningProgress, bound_scope, shared_minutes_saved
from scheduler.reasons import unbooked_reasons
from scheduler.replan.standing import (
    PreviousPlan,
    Visit,
    signature,
    visits_of,
)
from scheduler.replan.window import (
    Prepared,
    as_local,
)
from scheduler.steps import Bundle

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


class _Placer:
    """The next version's day book, holding the visits that stay, and the price of placing one
    patient's visits in it: their objective terms, the clinician sessions they open, and the
    stability cost of each visit of the previous plan not kept exactly."""

    def __init__(self, inst: Instance, bundles: list[Bundle], stays: dict[str, list[Visit]],
                 old_visits: dict[str, list[Visit]], frozen_before: dt.datetime, fixed: set[frozenset]):
        """`stays`: per bundle, the visits put in the book now; `fixed`: signatures of visits
        that never move (pinned, or moved by the manager)."""
        self.inst, self.old_visits, self.frozen_before, self.fixed = inst, old_visits, frozen_before, fixed
        self.book = Daybook(inst)
        self.booker = GreedyBooker(inst, self.book)
        self.sessions: dict[tuple, int] = defaultdict(int)  # bookings per clinician session, for SESSION_USED
        for b in bundles:
            self.put(stays.get(b.id, []))

    def stability(self, bundle: Bundle, visits: list[Visit]) -> int:
        """MOVED_VISIT per previous visit not among `visits`, plus OTHER_DAY_* when it leaves its day."""
        new = {signature(v) for v in visits}
        days = {bk.day for v in visits for bk in v}
        cost = 0
        for old in self.old_visits.get(bundle.id, []):
            if signature(old) in new:
                continue
            cost += MOVED_VISIT
            if old[0].day not in days:
                same_place = any(bk.site_id == old[0].site_id and set(bk.clinician_ids) & set(o.clinician_ids)
                                 for v in visits for bk in v for o in old)
                cost += OTHER_DAY_SAME_PLACE if same_place else OTHER_DAY_ELSEWHERE
        return cost

    def price(self, bundle: Bundle, visits: list[Visit]) -> int:
        """The bundle's objective terms in `visits` (sessions aside), SESSION_USED per session
        they would open, and their stability cost."""
        flat = [replace(bk, visit_key=i) for i, v in enumerate(visits) for bk in v]
        own = evaluate(self.inst, [bundle], flat)
        opened = {(c, bk.day, bk.site_id) for bk in flat for c in bk.clinician_ids
                  if self.sessions[(c, bk.day, bk.site_id)] <= 0}
        return own.total - own.sessions + SESSION_USED * len(opened) + self.stability(bundle, visits)

    def put(self, visits: list[Visit]) -> None:
        for v in visits:
            self.book.commit(v)
            self._count(v, 1)

    def release(self, bundle: Bundle, which: set | None = None) -> list[Visit]:
        """Take the bundle's visits (those whose signature is in `which`, or all) out of the book."""
        taken = [v for v in visits_of(self.book, bundle.id) if which is None or signature(v) in which]
        for v in taken:
            self.book.release(v)
            self._count(v, -1)
        return taken

    def _count(self, visit: Visit, step: int) -> None:
        for bk in visit:
            for c in bk.clinician_ids:
                self.sessions[(c, bk.day, bk.site_id)] += step

    def after_freeze(self, visits: list[Visit]) -> bool:
        return all(self.inst.days[bk.day] >= self.frozen_before.date() for v in visits for bk in v)

    def refits(self, bundle: Bundle, stay: list[Visit]):
        """`stay` plus one more visit for the steps it leaves out, on a day of its own after any
        draw it needs (the turnaround counted); or, when the reviews kept wait for results of a
        draw that is missing, a new draw-only trip the turnaround before them."""
        inst = self.inst
        covered = {bk.step.key for v in stay for bk in v}
        missing = [s for s in bundle.steps if s.key not in covered]
        if not missing:
            return
        taken = {bk.day for v in stay for bk in v}
        waiting = [bk for v in stay for bk in v if bk.step.needs_draw]
        if bundle.draw is not None and bundle.draw in missing and waiting:
            if missing != [bundle.draw] or not all(bk.step.lag_working_days for bk in waiting):
                return
            days = [(day, site) for day, site in options(inst, bundle, missing) if day not in taken and all(
                inst.ranks[bk.day] >= inst.ranks[day] + bk.step.lag_working_days for bk in waiting)]
        else:
            draw_days = [bk.day for v in stay for bk in v if bk.step.kind == "blood_draw"]
            lag = max((s.lag_working_days for s in missing if s.needs_draw), default=0)
            needs = draw_days and any(s.needs_draw for s in missing)
            days = [(day, site) for day, site in options(inst, bundle, missing) if day not in taken
                    and not (needs and inst.ranks[day] < inst.ranks[max(draw_days)] + lag)]
        for day, site in days:
            found = self.booker.fit(bundle, missing, day, site)
            if found is not None:
                yield [*stay, found]

    def placements(self, bundle: Bundle) -> list[list[Visit]]:
        """Every way the booker has to book the whole bundle now: single visits, two-visit
        splits, and its own fallback (which may book only some reviews)."""
        found = [list(p) for p in self.booker.placements(bundle)]
        found += [list(p) for p in self.booker.two_visit_placements(
            bundle, lambda visit: self.price(bundle, [visit]))]
        before = set(self.book.by_bundle.get(bundle.id, []))
        self.booker.place(bundle)
        placed: dict[int, Visit] = defaultdict(list)
        for bk in [bk for bk in self.book.by_bundle.get(bundle.id, []) if bk not in before]:
            placed[bk.visit_key].append(bk)
        for visit in placed.values():
            self.book.release(visit)
        if placed:
            found.append([placed[k] for k in sorted(placed)])
        return found

    def place(self, bundle: Bundle, stay: list[Visit], standing: list[Visit]) -> None:
        """Book the bundle at its cheapest consistent candidate: its standing visits kept (with
        one more visit for what they leave out), or moved, or the whole bundle placed again.
        `stay` (in the book already) is part of every candidate."""
        candidates: list[list[Visit]] = [stay + standing, *self.refits(bundle, stay + standing)]
        self.release(bundle, {signature(v) for v in standing})  # from here on they may move
        if standing:
            candidates += list(self.refits(bundle, stay))
        if not stay:
            candidates += self.placements(bundle)
        good = [c for c in candidates if consistent(self.inst, bundle, c)]
        orphans = [v for v in stay if all(bk.step.kind == "blood_draw" for bk in v) and signature(v) not in self.fixed]
        if not good and orphans:
            # A draw-only trip kept (in the past or the freeze window) whose reviews can no
            # longer follow it cannot stand either: it goes, and the bundle is placed without it.
            self.release(bundle, {signature(v) for v in orphans})
            self.put(standing)
            self.place(bundle, [v for v in stay if v not in orphans], standing)
            return
        best = min(good, key=lambda c: self.price(bundle, c), default=stay)
        self.put(best[len(stay):])

    def eject(self, target: Bundle, movable: set[str], by_id: dict[str, Bundle]) -> bool:
        """Book `target` (still missing reviews) in one of its cheapest places on an empty roster
        by moving one movable patient in the way elsewhere after the freeze, when the two
        together, stability included, then cost less. Returns whether it did."""
        empty = GreedyBooker(self.inst, empty_book(self.inst))
        wanted = sorted(empty.placements(target), key=lambda p: (self.price(target, p), p[-1][0].day, p[-1][0].site_id))
        for placement in wanted[:EJECTION_PLACES]:
            day, site = placement[-1][0].day, placement[-1][0].site_id
            needed = {c for bk in placement[-1] for part in bk.step.parts for c in part}
            blockers = sorted({bk.bundle_id for bk in self.book.bookings if bk.day == day and bk.site_id == site
                               and bk.bundle_id != target.id and bk.bundle_id in movable
                               and needed & set(bk.clinician_ids)})[:EJECTION_BLOCKERS]
            for blocker in (by_id[b] for b in blockers):
                target_was, blocker_was = visits_of(self.book, target.id), visits_of(self.book, blocker.id)
                if not self.after_freeze(blocker_was):
                    continue
                before = self.price(target, target_was) + self.price(blocker, blocker_was)
                self.release(target)
                self.release(blocker)
                fits = next((p for p in self.booker.placements(target, at=(day, site))
                             if consistent(self.inst, target, p)), None)
                if fits is not None:
                    self.put(fits)
                    tries = [t for t in self.placements(blocker)
                             if self.after_freeze(t) and consistent(self.inst, blocker, t)]
                    again = min(tries, key=lambda t: self.price(blocker, t), default=None)
                    if again is not None and self.price(target, fits) + self.price(blocker, again) < before:
                        self.put(again)
                        return True
                    self.release(target)
                self.put(blocker_was)
                self.put(target_was)
        return False


def _sort_previous(r: PreviousPlan, previous: Plan) -> tuple[dict[str, list[Visit]], dict[str, list[Visit]],
                                                           dict[str, int]]:
    """Per bundle: the visits that stay whatever happens (pinned, moved by the manager, past or
    in the freeze window, and standing), the other standing visits, and how many fell."""
    must: dict[str, list[Visit]] = defaultdict(list)
    keep: dict[str, list[Visit]] = defaultdict(list)
    lost: dict[str, int] = defaultdict(int)
    for v in previous.visits:
        bundle_id = r.old_bundle.get(v.id)
        if v.id in r.moves:
            must[bundle_id].append(r.moves[v.id])
        elif v.id in r.standing:
            frozen = v.id in r.pinned or as_local(v.start) < r.frozen_before
            (must if frozen else keep)[bundle_id].append(r.standing[v.id])
        else:
            lost[bundle_id or v.patient_id] += 1
    return must, keep, lost


def replan(prepared: Prepared, previous: Plan, settings: SolverSettings | None = None, *,
           previous_plan_id: str | None = None,
           on_progress: Callable[[PlanningProgress], None] | None = None) -> Plan:
    """The next plan version: `previous` changed only where the disruptions make it.

    `prepared` comes from `prepare` on the scenario `previous` was made from. `settings`
    (default the scenario's) bound the time: the placing is greedy with exact day fits, the
    ejection stops at the improvement deadline and the compaction of re-placed visits at its
    own (`scheduler.budget`). The result's `replan` field records what was applied; the caller
    gates it against `prepared.scenario` before writing or storing it (`scheduler.plan_gate`).
    Raises DisruptionError when a pinned booking or a manager's move no longer holds (as
    `prepare` would).
    """
    settings = settings or prepared.scenario.solver
    budget = Budget(settings.time_limit_seconds, deterministic=settings.deterministic_seconds is not None)
    started = budget.started
    clock = StageClock(started)

    def report(stage: str, objective=None, bound=None) -> None:
        if on_progress:
            on_progress(PlanningProgress(stage, time.monotonic() - started, settings.time_limit_seconds,
                                         objective, bound))

    report("replanning")
    reused = prepared.reading is not None and prepared.reading.previous is previous
    r = prepared.reading if reused else PreviousPlan(prepared, previous)
    if r.booking_problems:
        raise DisruptionError(r.booking_problems)
    bundles = r.bundles
    must, keep, lost = _sort_previous(r, previous)
    booked = {rid for visits in (*must.values(), *keep.values()) for v in visits for bk in v for rid in bk.step.review_ids}
    free = [b for b in bundles if lost.get(b.id) or any(rid not in booked for s in b.review_steps for rid in s.review_ids)]
    old_visits: dict[str, list[Visit]] = defaultdict(list)
    for bookings in r.old.values():
        if bookings:
            old_visits[bookings[0].bundle_id].append(bookings)
    clock.lap("reading")

    inst = Instance(_freeze_scenario(r.scenario, {b.patient_id for b in free}, r.frozen_before))
    # A free bundle's standing visits go in the book too, so no one else may take them.
    placer = _Placer(inst, bundles, {b.id: must.get(b.id, []) + keep.get(b.id, []) for b in bundles},
                     old_visits, r.frozen_before,
                     {signature(r.standing[v]) for v in r.pinned if v in r.standing}
                     | {signature(m) for m in r.moves.values()})
    order = sorted(priority_order(inst, free), key=lambda b: -bool(lost.get(b.id)))
    for bundle in order:
        placer.place(bundle, must.get(bundle.id, []), keep.get(bundle.id, []))
    clock.lap("placing")

    movable = {b.id for b in bundles if not must.get(b.id)}
    for target in order:
        if Budget.passed(budget.improve_deadline):
            break
        booked_now = {rid for bk in placer.book.by_bundle.get(target.id, []) for rid in bk.step.review_ids}
        if target.id in movable and any(rid not in booked_now for s in target.review_steps for rid in s.review_ids):
            placer.eject(target, movable, r.by_id)
    clock.lap("ejection")

    chosen = placer.book.bookings
    # Compaction moves every visit of a bundle it is given, so only bundles none of whose visits
    # is kept exactly: a visit kept as it was is never re-timed.
    moved = {b.id for b in bundles if b.id in movable and visits_of(placer.book, b.id) and not (
        {signature(v) for v in visits_of(placer.book, b.id)} & {signature(v) for v in old_visits.get(b.id, [])})}
    report("compacting", evaluate(inst, bundles, chosen).total)
    chosen = compact(inst, bundles, chosen, workers=settings.workers, seed=settings.seed,
                     deadline=budget.compact_deadline, movable=moved)
    clock.lap("compaction")
    plan = _assemble(prepared, r, inst, bundles, chosen, settings, previous_plan_id, clock, len(free))
    report("done", plan.solver.objective, plan.solver.best_bound)
    return plan


def consistent(inst: Instance, bundle: Bundle, visits: list[Visit]) -> bool:
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



def _assemble(prepared: Prepared, r: PreviousPlan, inst: Instance, bundles: list[Bundle], chosen: list[Booking],
              settings: SolverSettings, previous_plan_id: str | None, clock: StageClock, placed: int) -> Plan:
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
    clock.lap("assembly")
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
            gap=gap, wall_seconds=clock.wall_seconds, stage_seconds=clock.seconds,
            time_limit_seconds=settings.time_limit_seconds, workers=settings.workers, seed=settings.seed),
    )
