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
from scheduler.budget import Budget
from scheduler.compact import compact
from scheduler.daybook import Booking, Daybook
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
    r = PreviousPlan(prepared, previous)
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
            if v.id in r.pinned or as_local(v.start) < r.frozen_before:
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
        new = {signature(v) for v in visits}
        days = {bk.day for v in visits for bk in v}
        cost = 0
        for old in old_visits.get(bundle.id, []):
            if signature(old) in new:
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
        for visit in visits_of(book, bundle.id):  # from here on the standing visits may move
            if signature(visit) in {signature(v) for v in standing}:
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
        best = min((c for c in candidates if consistent(inst, bundle, c)), key=lambda c: price(bundle, c),
                   default=stay)
        put(best[len(stay):])  # every candidate starts with `stay`, in the book already
    lap("placing")

    def take(bundle: Bundle) -> list[Visit]:
        visits = visits_of(book, bundle.id)
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
                target_was, blocker_was = visits_of(book, target.id), visits_of(book, blocker.id)
                if not after_freeze(blocker_was):
                    continue
                before = price(target, target_was) + price(blocker, blocker_was)
                take(target)
                take(blocker)
                fits = next((p for p in booker.placements(target, at=(day, site)) if consistent(inst, target, p)), None)
                if fits is not None:
                    put(fits)
                    tries = [list(p) for p in booker.placements(blocker)]
                    tries += [list(p) for p in booker.two_visit_placements(
                        blocker, lambda visit, blocker=blocker: price(blocker, [visit]))]
                    tries = [t for t in tries if after_freeze(t) and consistent(inst, blocker, t)]
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
             and {signature(v) for v in visits_of(book, b.id)} != {signature(v) for v in old_visits.get(b.id, [])}}
    report("compacting", evaluate(inst, bundles, chosen).total)
    chosen = compact(inst, bundles, chosen, workers=settings.workers, seed=settings.seed,
                     deadline=budget.compact_deadline, movable=moved)
    lap("compaction")
    plan = _assemble(prepared, r, inst, bundles, chosen, settings, previous_plan_id, stage_seconds, started,
                     len(free), lap)
    report("done", plan.solver.objective)
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
