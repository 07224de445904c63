"""The exact standalone floor: each bundle's best cost in the master with the roster to itself.

The simple standalone floor (`objective.standalone_floor`) prices each part of a bundle on its
own: one trip (two when results must be back) at the nearest site, and each review's best
day for priority and continuity independently. Those choices need not fit together: the day the
named clinician works may be a day the other reviews cannot share, or the visit would be too
long, so the patient needs another trip or loses continuity. Here each bundle is solved alone,
exactly, in the master's own relaxation (same variables and rules, without the capacity rules —
one patient alone rarely fills a clinician — and without sessions).

Why it is a lower bound: in any plan, every objective term except sessions belongs to one bundle,
and a bundle's terms are at least its optimum in the master with nobody else booked (the master is
a relaxation of exact timetabling, and other patients only take capacity away). Unbooked reviews
are priced exactly, so no assumption about the weights is needed. CP-SAT's proven bound for each
bundle is used, so a bundle stopped early still gives a valid figure. Sessions: at least one if
anything is booked, so the floor adds one session unless leaving everything unbooked is cheaper.
"""

from __future__ import annotations

import math

from ortools.sat.python import cp_model

from scheduler.bundles import Bundle
from scheduler.instance import Instance
from scheduler.model import constraints
from scheduler.model.objective import SESSION_USED, UNBOOKED_REVIEW, master_objective
from scheduler.model.variables import build_variables

DETERMINISTIC_LIMIT = 0.5  # CP-SAT's deterministic time per bundle: the same figure in any process


def exact_bundle_floor(inst: Instance, bundle: Bundle, seed: int = 0) -> int:
    """Proven lower bound on the bundle's own objective terms (sessions excluded)."""
    model = cp_model.CpModel()
    v = build_variables(model, inst, [bundle])
    constraints.step_opens_visit(model, v)
    constraints.one_site_per_day(model, v)
    constraints.draw_before_review(model, inst, v)
    constraints.draw_trip_is_a_trip(model, v)
    constraints.visit_fits_length(model, inst, v)
    model.minimize(master_objective(inst, v, sessions=False))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    solver.parameters.max_deterministic_time = DETERMINISTIC_LIMIT
    solver.parameters.cp_model_presolve = False  # tiny models: presolve costs more than it saves
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return 0
    bound = solver.best_objective_bound
    return math.floor(bound + 1e-6) if math.isfinite(bound) else 0


def nothing_booked(bundle: Bundle) -> int:
    return sum(UNBOOKED_REVIEW * (1 + bundle.priority) * s.reviews for s in bundle.steps)


def exact_standalone_floor(inst: Instance, bundles: list[Bundle], seed: int = 0) -> tuple[int, list[int]]:
    """Sum of the bundles' exact standalone floors, plus one session if anything is booked; and
    each bundle's own floor (the improvement pass starts with the bundles furthest above it)."""
    each = [exact_bundle_floor(inst, bundle, seed) for bundle in bundles]
    return min(sum(each) + SESSION_USED, sum(nothing_booked(b) for b in bundles)), each
