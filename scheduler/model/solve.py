"""Building and solving the master model; callers get a small result, never a raw CpSolver."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from scheduler.budget import FLOOR_SHARE, Budget
from scheduler.domain import SolverSettings
from scheduler.instance import Instance
from scheduler.model import constraints
from scheduler.model.floor import DETERMINISTIC_LIMIT, exact_floors, nothing_booked
from scheduler.model.objective import add_objective, simple_bundle_floors, standalone_floor
from scheduler.model.relaxation import LpBound, lp_bound
from scheduler.model.variables import Option, add_complete_hint, build_variables
from scheduler.steps import Bundle


@dataclass(frozen=True)
class SolverProgress:
    """What a progress bar shows: best objective so far and the proven bound."""

    elapsed_seconds: float
    objective: float | None
    bound: float | None


@dataclass
class SolveResult:
    """The master's outcome: CP-SAT's status name (or NOT_SEARCHED when the budget ran out before
    the search), its objective, the best proven bound (floors included) and the (day, site) of
    every step it placed."""

    status: str
    objective: int | None
    best_bound: int
    wall_seconds: float
    assignment: dict[tuple[int, int], Option]  # (bundle index, step index) -> (day, site)
    bundle_floors: list[int] = field(default_factory=list)  # each bundle's exact standalone floor
    bound_sources: dict[str, int] = field(default_factory=dict)  # every bound computed, by source
    lp: LpBound | None = None

    @property
    def bound_source(self) -> str:
        """The source of `best_bound`: the first in BOUND_SOURCES' order that reaches it."""
        return next((s for s in BOUND_SOURCES if self.bound_sources.get(s) == self.best_bound), "")


# Reported in this order; on a tie the first named is given as the source.
BOUND_SOURCES = ("cp_sat_master", "lp_relaxation", "exact_standalone_floor", "simple_standalone_floor")


class _Reporter(cp_model.CpSolverSolutionCallback):
    def __init__(self, on_progress: Callable[[SolverProgress], None] | None, floor: int = 0):
        super().__init__()
        self._on_progress = on_progress
        self._start = time.monotonic()
        self._floor = floor
        self.bound: float | None = None
        self.objective: float | None = None

    def on_solution_callback(self) -> None:
        self.objective = self.objective_value
        self._emit()

    def on_bound(self, bound: float) -> None:
        self.bound = max(bound, self._floor)
        self._emit()

    def _emit(self) -> None:
        if self._on_progress:
            self._on_progress(SolverProgress(time.monotonic() - self._start, self.objective, self.bound))


LP_SHARE = 0.5


def _floor(value: float) -> int:
    return math.floor(value + 1e-6) if math.isfinite(value) else 0


def solve_master(
    inst: Instance,
    bundles: list[Bundle],
    settings: SolverSettings,
    hint: dict[tuple[int, int], Option] | None = None,
    on_progress: Callable[[SolverProgress], None] | None = None,
    budget: Budget | None = None,
    greedy_costs: list[int] | None = None,
) -> SolveResult:
    """Solve the CP-SAT master over (day, site) with the floors; see docs/optimiser.md.

    `budget` (default: `settings.time_limit_seconds` from now) sets the deadlines: the exact
    floors stop at `budget.floor_deadline`, the search at `budget.master_deadline`, model
    building included. `greedy_costs[b]` (bundle b's own objective terms in the warm start,
    sessions aside) orders the exact floors: furthest above the simple floor first.
    """
    started = time.monotonic()
    budget = budget or Budget(settings.time_limit_seconds, started, settings.deterministic_seconds is not None)
    model = cp_model.CpModel()
    v = build_variables(model, inst, bundles)
    # Valid lower bounds that do not depend on the master's search (docs/optimiser.md); the
    # time they take comes out of the master's time limit.
    simple = simple_bundle_floors(inst, v)
    # The exact floors go furthest above the simple ones where the warm start costs most above
    # them (a review it could not book is 100,000): those first, so a cut-short run keeps them.
    gains = greedy_costs or [0] * len(bundles)
    order = sorted(range(len(bundles)), key=lambda b: (simple[b] - gains[b], b))
    # A deterministic budget cuts the exact floors by count instead of by the clock: as many
    # bundles as FLOOR_SHARE of its deterministic seconds allows at DETERMINISTIC_LIMIT each.
    most = (int(FLOOR_SHARE * settings.deterministic_seconds / DETERMINISTIC_LIMIT)
            if settings.deterministic_seconds is not None else None)
    floors = exact_floors(inst, bundles, settings.seed, budget.floor_deadline, simple, order, most)
    bundle_floors = floors.bundle_floors
    sources = {"simple_standalone_floor": standalone_floor(inst, v, simple), "exact_standalone_floor": floors.total}
    floor = max(sources.values())
    if on_progress:
        on_progress(SolverProgress(time.monotonic() - started, None, floor))
    in_time = lambda: not Budget.passed(budget.master_deadline)  # noqa: E731
    if not (constraints.add_constraints(model, inst, v, still_in_time=in_time) and in_time()):
        # No time left to search: the floors are still valid bounds, and the greedy and its
        # improvement make the plan. Building the rest would only overrun the limit.
        return SolveResult("NOT_SEARCHED", None, floor, time.monotonic() - started, {}, bundle_floors, sources)
    add_objective(model, inst, v)
    # The capacity-aware bound (scheduler.model.relaxation) comes before the search, as the
    # search's own relaxation seldom finishes on two workers; it may use up to LP_SHARE of
    # what is left of the master's time.
    # PDLP stops only on the clock, so a deterministic solve leaves the LP bound out.
    lp = None if budget.deterministic else lp_bound(
        model, v, floors.own_floors, [nothing_booked(b) for b in bundles],
        time.monotonic() + LP_SHARE * Budget.left(budget.master_deadline), settings.workers)
    if lp is not None and lp.bound is not None and lp.bound > 0:  # an LP stopped at once gives nothing useful
        sources["lp_relaxation"] = lp.bound
        floor = max(floor, lp.bound)
        if on_progress:
            on_progress(SolverProgress(time.monotonic() - started, None, floor))
    if Budget.passed(budget.master_deadline):
        return SolveResult("NOT_SEARCHED", None, floor, time.monotonic() - started, {}, bundle_floors, sources, lp)
    if hint:
        add_complete_hint(model, v, hint)

    solver = cp_model.CpSolver()
    # What is left of the master's share once the floors and the model are built; at least a
    # moment, so that a hint is still turned into a solution CP-SAT can report.
    if settings.deterministic_seconds is not None:
        solver.parameters.max_deterministic_time = settings.deterministic_seconds
    else:
        solver.parameters.max_time_in_seconds = max(0.05, Budget.left(budget.master_deadline))
    solver.parameters.num_workers = settings.workers
    solver.parameters.random_seed = settings.seed
    solver.parameters.log_search_progress = settings.log
    reporter = _Reporter(on_progress, floor)
    solver.best_bound_callback = reporter.on_bound
    status = solver.solve(model, reporter)
    wall = time.monotonic() - started

    assignment: dict[tuple[int, int], Option] = {}
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    if found:
        for (b, k, opt), x in v.x.items():
            if solver.value(x):
                assignment[(b, k)] = opt
    if math.isfinite(solver.best_objective_bound):  # proven even when no solution was found
        sources["cp_sat_master"] = _floor(solver.best_objective_bound)
    return SolveResult(
        status=solver.status_name(status),
        objective=round(solver.objective_value) if found else None,
        best_bound=max(sources.values()),
        wall_seconds=wall,
        assignment=assignment,
        bundle_floors=bundle_floors,
        bound_sources=sources,
        lp=lp,
    )
