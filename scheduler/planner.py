"""Scenario in, plan out: greedy warm start, CP-SAT master, day scheduling, repair.

Stages:
1. Bundle each patient's due reviews (scheduler.bundles).
2. The greedy consolidator books a valid plan in well under a second; it is the warm start.
3. The CP-SAT master chooses a (day, site) for every step against aggregated capacities; its
   bound is a true lower bound on every plan (docs/optimiser.md).
4. Each day at each site is timetabled exactly through the day book; anything that does not fit
   is re-placed greedily.
5. Each candidate (greedy, timetabled master, greedy guided by the master) is improved by taking
   bundles out and putting them back where cheaper; the cheapest plan is kept.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

from scheduler.assemble import appointments_and_visits, booked_review_ids, unbooked_entries
from scheduler.baselines import GreedyBooker, greedy_consolidate, old_way, priority_order
from scheduler.budget import Budget, StageClock
from scheduler.bundles import BundleBuilder
from scheduler.compact import compact
from scheduler.daybook import Booking, Daybook, empty_book
from scheduler.domain import Scenario, SolverSettings
from scheduler.instance import Instance
from scheduler.metrics import compare, compute_metrics
from scheduler.model.objective import SESSION_USED, VISIT, evaluate
from scheduler.model.solve import SolverProgress, solve_master
from scheduler.plan import Metrics, Plan, SolverStats
from scheduler.reasons import unbooked_reasons
from scheduler.steps import Bundle


@dataclass(frozen=True)
class PlanningProgress:
    stage: str  # "greedy", "solving", "timetabling", "compacting", "baselines", "done"
    elapsed_seconds: float
    time_limit_seconds: float
    objective: float | None = None
    bound: float | None = None
    reviews_booked: int | None = None  # in the best plan so far (greedy until a better one is kept)
    patients_booked: int | None = None  # patients with every due review booked, same plan


def bound_scope(scenario: Scenario) -> str:
    """In words, which plans `best_bound` is a lower bound of (docs/optimiser.md): the grouping
    of reviews into sittings is chosen before solving, and under the hard room rule so is each
    clinician session's room."""
    rooms = (" and gives each clinician session the room it is allocated before solving"
             if scenario.visit_rules.clinician_room_per_session == "hard" else "")
    return ("A lower bound on the objective of every plan that groups each patient's reviews into "
            f"the sittings this plan uses{rooms}; a plan grouping them otherwise could cost less.")


def schedule_days(inst: Instance, bundles: list[Bundle], assignment: dict) -> Daybook:
    """Timetable the master's choice day by day; re-place greedily whatever does not fit."""
    book = Daybook(inst)
    booker = GreedyBooker(inst, book)
    per_option: dict[tuple[int, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for (b, k), option in assignment.items():
        per_option[option][b].append(k)
    rank = {bundle.id: i for i, bundle in enumerate(priority_order(inst, bundles))}
    failed: set[int] = set()
    for day, site in sorted(per_option):
        for b in sorted(per_option[(day, site)], key=lambda b: rank[bundles[b].id]):
            if b in failed:
                continue
            bundle = bundles[b]
            steps = [bundle.steps[k] for k in sorted(per_option[(day, site)][b])]
            found = booker.fit(bundle, steps, day, site)
            if found:
                book.commit(found)
            else:
                failed.add(b)
                book.release_bundle(bundle.id)
    unplaced = failed | {b for b in range(len(bundles)) if not any((b, k) in assignment for k in range(len(bundles[b].steps)))}
    for b in sorted(unplaced, key=lambda b: rank[bundles[b].id]):
        book.release_bundle(bundles[b].id)
        booker.place(bundles[b])
    return book


def guided_greedy(inst: Instance, bundles: list[Bundle], assignment: dict) -> Daybook:
    """The greedy consolidator, each bundle trying the master's (day, site) for its reviews first."""
    booker = GreedyBooker(inst)
    index = {bundle.id: b for b, bundle in enumerate(bundles)}
    for bundle in priority_order(inst, bundles):
        b = index[bundle.id]
        chosen = [assignment.get((b, k)) for k, step in enumerate(bundle.steps) if step.reviews]
        booker.place(bundle, chosen[0] if chosen and len(set(chosen)) == 1 else None)
    return booker.book


def rebuild(inst: Instance, bookings: list[Booking]) -> Daybook:
    """A day book holding these bookings, one commit per visit, in a fixed order."""
    book = Daybook(inst)
    visits: dict[tuple[str, int], list[Booking]] = defaultdict(list)
    for bk in bookings:
        visits[(bk.bundle_id, bk.visit_key)].append(bk)
    for key in sorted(visits):
        book.commit(visits[key])
    return book


EJECTION_TARGETS = 60  # bundles above their floor tried, furthest first
EJECTION_PLACES = 3  # their cheapest single visits on an empty roster
EJECTION_BLOCKERS = 8  # bundles in the way tried at each
EJECTION_EXCESS = 50  # bundles at least this far above their floor are tried (a continuity miss)


def improve(inst: Instance, bundles: list[Bundle], bookings: list[Booking], floors: list[int],
            rounds: int = 4, deadline: float | None = None) -> list[Booking]:
    """Take each bundle out and put it back in its cheapest single-visit placement, if cheaper.

    Bundles furthest above their exact standalone floor go first; a bundle already at its floor
    (sessions aside) cannot gain. The cost of a placement is the bundle's full objective plus the
    sessions it opens, so the plan's objective never goes up. A fixed number of rounds and a
    fixed order keep it deterministic. At `deadline` (a `time.monotonic()` moment) it stops
    between two bundles and returns the plan as improved so far.
    """
    book = rebuild(inst, bookings)
    booker = GreedyBooker(inst, book)
    sessions: Counter = Counter((c, bk.day, bk.site_id) for bk in book.bookings for c in bk.clinician_ids)

    def cost(bundle: Bundle, visits: list[list[Booking]]) -> int:
        flat = [replace(bk, visit_key=i) for i, visit in enumerate(visits) for bk in visit]
        opened = {(c, bk.day, bk.site_id) for bk in flat for c in bk.clinician_ids if sessions[(c, bk.day, bk.site_id)] <= 0}
        own = evaluate(inst, [bundle], flat)
        return own.total - own.sessions + SESSION_USED * len(opened)

    def visit_price(bundle: Bundle, visit: list[Booking]) -> int:
        """One visit's own cost: its trip, travel, priority days, continuity, waiting, sessions."""
        own = evaluate(inst, [bundle], visit)
        return own.total - own.unbooked - own.sessions + SESSION_USED * sum(
            sessions[(c, bk.day, bk.site_id)] <= 0 for bk in visit for c in bk.clinician_ids)

    def mark(visits: list[list[Booking]], add: bool) -> None:
        for visit in visits:
            for bk in visit:
                for c in bk.clinician_ids:
                    sessions[(c, bk.day, bk.site_id)] += 1 if add else -1

    for _ in range(rounds):
        changed = False
        excess = []
        for b, bundle in enumerate(bundles):
            mine = book.by_bundle.get(bundle.id, [])
            own = evaluate(inst, [bundle], mine)
            own = own.total - own.sessions
            if own > floors[b]:
                excess.append((floors[b] - own, bundle.id, b))
        for _gain, _id, b in sorted(excess):
            if Budget.passed(deadline):
                return book.bookings
            bundle = bundles[b]
            current: dict[int, list[Booking]] = defaultdict(list)
            for bk in book.by_bundle.get(bundle.id, []):
                current[bk.visit_key].append(bk)
            now = [current[k] for k in sorted(current)]
            book.release_bundle(bundle.id)
            mark(now, add=False)
            best, best_cost = now, cost(bundle, now)
            tries = list(booker.placements(bundle))
            if best_cost - floors[b] >= VISIT:  # a trip could be saved: try two-visit splits too
                tries += booker.two_visit_placements(bundle, lambda visit: visit_price(bundle, visit))
            for placement in tries:
                price = cost(bundle, placement)
                if price < best_cost:
                    best, best_cost = placement, price
            for visit in best:
                book.commit(visit)
            mark(best, add=True)
            changed = changed or best is not now
        if not changed:
            break

    # Ejection: a bundle still a trip or a continuity miss above its floor is put in a single
    # visit where it fits on an empty roster, after taking out one bundle in its way, which is
    # then put back wherever is cheapest; kept only when the two together (and the sessions)
    # cost less.
    def visits_of(bundle: Bundle) -> list[list[Booking]]:
        current: dict[int, list[Booking]] = defaultdict(list)
        for bk in book.by_bundle.get(bundle.id, []):
            current[bk.visit_key].append(bk)
        return [current[k] for k in sorted(current)]

    def own_cost(bundle: Bundle) -> int:
        own = evaluate(inst, [bundle], book.by_bundle.get(bundle.id, []))
        return own.total - own.sessions

    def take(bundle: Bundle) -> list[list[Booking]]:
        visits = visits_of(bundle)
        book.release_bundle(bundle.id)
        mark(visits, add=False)
        return visits

    def put(visits: list[list[Booking]]) -> None:
        for visit in visits:
            book.commit(visit)
        mark(visits, add=True)

    def sessions_open() -> int:
        return sum(1 for count in sessions.values() if count > 0)

    empty = GreedyBooker(inst, empty_book(inst))
    index = {bundle.id: b for b, bundle in enumerate(bundles)}
    stuck = sorted((floors[b] - own_cost(bundle), bundle.id, b) for b, bundle in enumerate(bundles)
                   if own_cost(bundle) - floors[b] >= EJECTION_EXCESS)
    for _gain, _id, t in stuck[:EJECTION_TARGETS]:
        if Budget.passed(deadline):
            break
        target = bundles[t]
        wanted = sorted(empty.placements(target), key=lambda p: (cost(target, p), p[-1][0].day, p[-1][0].site_id))
        done = False
        for placement in wanted[:EJECTION_PLACES]:
            day, site = placement[-1][0].day, placement[-1][0].site_id
            needed = {c for bk in placement[-1] for part in bk.step.parts for c in part}
            blockers = sorted({index[bk.bundle_id] for bk in book.bookings
                               if bk.day == day and bk.site_id == site and bk.bundle_id != target.id
                               and needed & set(bk.clinician_ids)})[:EJECTION_BLOCKERS]
            for b in blockers:
                other = bundles[b]
                before = own_cost(target) + own_cost(other) + SESSION_USED * sessions_open()
                target_was, other_was = take(target), take(other)
                fits = next(iter(booker.placements(target, at=(day, site))), None)
                if fits is not None:
                    put(fits)
                    tries = list(booker.placements(other))
                    tries += booker.two_visit_placements(other, lambda visit: visit_price(other, visit))
                    again = min(tries, key=lambda p: cost(other, p), default=None)
                    if again is not None:
                        put(again)
                        if own_cost(target) + own_cost(other) + SESSION_USED * sessions_open() < before:
                            done = True
                            break
                        take(other)
                    take(target)
                put(other_was)
                put(target_was)
            if done:
                break
    return book.bookings


def own_costs(inst: Instance, bundles: list[Bundle], bookings: list[Booking]) -> list[int]:
    """Each bundle's own objective terms in these bookings, sessions aside."""
    mine: dict[str, list[Booking]] = defaultdict(list)
    for bk in bookings:
        mine[bk.bundle_id].append(bk)
    costs = []
    for bundle in bundles:
        own = evaluate(inst, [bundle], mine.get(bundle.id, []))
        costs.append(own.total - own.sessions)
    return costs


def hint_from(bundles: list[Bundle], bookings: list[Booking]) -> dict[tuple[int, int], tuple[int, str]]:
    index = {(bundle.id, step.key): (b, k) for b, bundle in enumerate(bundles) for k, step in enumerate(bundle.steps)}
    return {index[(bk.bundle_id, bk.step.key)]: (bk.day, bk.site_id) for bk in bookings}


def _metrics(inst: Instance, bundles: list[Bundle], bookings: list[Booking]) -> Metrics:
    appointments, visits = appointments_and_visits(inst, bundles, bookings)
    unbooked = unbooked_entries(inst, bookings, {})
    return compute_metrics(inst, appointments, visits, unbooked)


def shared_minutes_saved(inst: Instance, bookings: list[Booking]) -> int:
    """Clinician minutes the combined reviews saved against the same reviews done one by one."""
    saved = 0
    for bk in bookings:
        if bk.step.kind != "review" or bk.step.reviews < 2:
            continue
        factor = inst.patients[bk.patient_id].needs.extra_time_factor
        alone = sum(inst.slots_up(inst.review_types[t].duration_minutes * factor) for t in bk.step.review_type_ids)
        saved += (alone - bk.step.slots) * inst.slot_minutes
    return saved


def make_plan(
    scenario: Scenario,
    settings: SolverSettings | None = None,
    on_progress: Callable[[PlanningProgress], None] | None = None,
) -> Plan:
    """Plan the scenario: every stage inside `settings.time_limit_seconds` of wall-clock time.

    `settings` defaults to the scenario's own. The plan's `solver.wall_seconds` is the whole
    span of this call and `solver.stage_seconds` its parts; the anytime stages stop at their
    deadlines (`scheduler.budget`). Raises nothing for a valid scenario: a review that cannot
    be booked is reported as unbooked with its reason.
    """
    settings = settings or scenario.solver
    budget = Budget(settings.time_limit_seconds, deterministic=settings.deterministic_seconds is not None)
    started = budget.started
    clock = StageClock(started)
    lap = clock.lap

    inst = Instance(scenario)
    booked = {"reviews": None, "patients": None}

    def report(stage: str, objective=None, bound=None) -> None:
        if on_progress:
            on_progress(PlanningProgress(stage, time.monotonic() - started, settings.time_limit_seconds,
                                         objective, bound, booked["reviews"], booked["patients"]))

    def count_booked(bookings: list[Booking]) -> None:
        done = booked_review_ids(bookings)
        booked["reviews"] = len(done)
        booked["patients"] = sum(all(p.review_id(d) in done for d in p.due_reviews) for p in scenario.patients)

    bundles = BundleBuilder(inst).bundles()
    greedy = greedy_consolidate(inst, bundles).bookings
    greedy_score = evaluate(inst, bundles, greedy).total
    count_booked(greedy)
    report("greedy", objective=greedy_score)
    lap("greedy")
    # The old way and the greedy baseline are part of the plan and of its time limit; they are
    # quick and cannot be cut short, so they are done first and the anytime stages share the rest.
    old_book, old_bundles = old_way(inst)
    old_metrics = _metrics(inst, old_bundles, old_book.bookings)
    greedy_metrics = _metrics(inst, bundles, greedy)
    lap("baselines")

    def on_solver(p: SolverProgress) -> None:
        report("solving", p.objective if p.objective is not None else greedy_score, p.bound)

    result = solve_master(inst, bundles, settings, hint_from(bundles, greedy), on_solver, budget,
                          own_costs(inst, bundles, greedy))
    lap("master")
    report("timetabling", result.objective, result.best_bound)
    candidates = [(greedy, "greedy consolidator")]
    if result.assignment:
        candidates += [
            (schedule_days(inst, bundles, result.assignment).bookings,
             "CP-SAT master over (day, site) + exact day timetabling"),
            (guided_greedy(inst, bundles, result.assignment).bookings,
             "CP-SAT master over (day, site) + greedy guided by it"),
        ]
    lap("timetabling")
    # Each candidate is improved (bundles re-placed where cheaper) and the best kept: the
    # candidates start from different places, and the pass ends in different local optima.
    # The cheapest goes first, so a tight limit spends its time where it most likely pays.
    scored = sorted(((evaluate(inst, bundles, bookings).total, order, bookings, label)
                     for order, (bookings, label) in enumerate(candidates)), key=lambda c: (c[0], c[1]))
    chosen, method, score = greedy, "greedy consolidator (CP-SAT found nothing better)", greedy_score
    for total, _order, bookings, label in scored:
        if total < score:
            chosen, method, score = bookings, label, total
        if result.bundle_floors and not Budget.passed(budget.improve_deadline):
            improved = improve(inst, bundles, bookings, result.bundle_floors, deadline=budget.improve_deadline)
            total = evaluate(inst, bundles, improved).total
            if total < score:
                chosen, method, score = improved, label + ", then each bundle re-placed where cheaper", total
    lap("improvement")
    # Who is booked is settled; each day's timetable is re-solved for the least waiting, then
    # the fewest idle gaps, never raising the objective (scheduler.compact).
    report("compacting", score, result.best_bound)
    chosen = compact(inst, bundles, chosen, workers=settings.workers, seed=settings.seed,
                     deadline=budget.compact_deadline)
    objective = evaluate(inst, bundles, chosen).total
    if objective < score:
        method += ", then each day's visits compacted"
    count_booked(chosen)
    lap("compaction")

    report("baselines", objective, result.best_bound)
    reasons = unbooked_reasons(inst, bundles, booked_review_ids(chosen))
    appointments, visits = appointments_and_visits(inst, bundles, chosen)
    unbooked = unbooked_entries(inst, chosen, reasons)
    metrics = compute_metrics(inst, appointments, visits, unbooked)
    bound = result.best_bound
    gap = (objective - bound) / objective if objective else 0.0
    comparison = compare(metrics, old_metrics, shared_minutes_saved(inst, chosen))
    lap("assembly")
    plan = Plan(
        scenario_name=scenario.name,
        appointments=appointments,
        visits=visits,
        unbooked=unbooked,
        metrics=metrics,
        baselines={"greedy": greedy_metrics, "old_way": old_metrics},
        comparison=comparison,
        solver=SolverStats(
            status="OPTIMAL" if gap == 0 else "FEASIBLE",
            method=method,
            objective=objective,
            best_bound=bound,
            bound_source=result.bound_source,
            bound_sources=result.bound_sources,
            bound_scope=bound_scope(scenario),
            gap=gap,
            wall_seconds=clock.wall_seconds,  # the clock the stages were lapped on
            stage_seconds=clock.seconds,
            time_limit_seconds=settings.time_limit_seconds,
            workers=settings.workers,
            seed=settings.seed,
        ),
    )
    report("done", objective, bound)
    return plan
