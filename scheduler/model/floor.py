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
from dataclasses import dataclass

from ortools.sat.python import cp_model

from scheduler.budget import Budget
from scheduler.instance import Instance
from scheduler.model import constraints
from scheduler.model.objective import SESSION_USED, master_objective, unbooked_weight
from scheduler.model.variables import build_variables
from scheduler.steps import Bundle

DETERMINISTIC_LIMIT = 0.5  # CP-SAT's deterministic time per bundle: the same figure in any process
SCALE = 100  # the session shares are fractions; the objective is scaled so they stay (rounded down) integers


def session_share(inst: Instance, step, part, option) -> float:
    """Sessions a step's part uses up, at least: its slots over the longest session any eligible
    clinician has at that (day, site). Each session holds at most its rostered slots, so a
    plan's sessions are at least the sum of these shares over its bookings."""
    day, site = option
    longest = max((inst.rostered_slots(c, day, site) for c in part if c in inst.on_shift.get(option, ())),
                  default=0)
    return SESSION_USED * step.slots / longest if longest else 0.0


def exact_bundle_floor(inst: Instance, bundle: Bundle, seed: int = 0) -> tuple[int, int]:
    """Proven lower bound on the bundle's own objective terms plus its session shares, times
    SCALE; and the largest session share it could carry, times SCALE."""
    model = cp_model.CpModel()
    v = build_variables(model, inst, [bundle])
    constraints.add_constraints(model, inst, v, shared=False)
    shares, most = [], 0
    for k, step in enumerate(bundle.steps):
        step_most = 0
        for option in v.options[(0, k)]:
            share = sum(math.floor(SCALE * session_share(inst, step, part, option)) for part in step.parts)
            step_most = max(step_most, share)
            if share:
                shares.append(share * v.x[(0, k, option)])
        most += step_most
    model.minimize(SCALE * master_objective(inst, v, sessions=False) + sum(shares))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    solver.parameters.max_deterministic_time = DETERMINISTIC_LIMIT
    solver.parameters.cp_model_presolve = False  # tiny models: presolve costs more than it saves
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return 0, most
    bound = solver.best_objective_bound
    return (math.floor(bound + 1e-6) if math.isfinite(bound) else 0), most


def nothing_booked(bundle: Bundle) -> int:
    """The bundle's objective with none of its reviews booked."""
    return sum(unbooked_weight(bundle.priority) * s.reviews for s in bundle.steps)


@dataclass(frozen=True)
class Floors:
    """The exact standalone floor: `total` (a bound on the whole objective), each bundle's floor
    with its session shares (`bundle_floors`, which the improvement pass compares against) and
    each bundle's floor on its own terms alone, sessions aside (`own_floors`, the LP's cuts)."""

    total: int
    bundle_floors: list[int]
    own_floors: list[int]


def exact_floors(inst: Instance, bundles: list[Bundle], seed: int = 0, deadline: float | None = None,
                 simple: list[int] | None = None, order: list[int] | None = None,
                 most_bundles: int | None = None) -> Floors:
    """Every bundle's exact standalone floor, and their total.

    Bundles are solved in `order` (indices; default: as given), so that when `deadline` (a
    `time.monotonic()` moment; None: no deadline) cuts the work short, the bundles where the
    exact floor gains most have been done. A bundle's figure is never below its simple floor
    (`simple[b]`, `objective.simple_bundle_floors`; both are lower bounds on its own terms, so
    their larger is too), and a bundle not reached keeps just that (0 without `simple`).
    `most_bundles` stops after that many bundles (a deterministic budget's cut, which does not
    depend on the clock).
    Two valid totals, the larger kept: the bundles' floors with their session shares (every
    session term accounted for by shares), and the floors without shares plus one session when
    anything is booked (better when the shares add up to less than one session). A bundle's own
    terms are at least its floor with shares less the largest share it could carry.
    """
    simple = simple or [0] * len(bundles)
    each: list[tuple[int, int]] = [(0, 0)] * len(bundles)
    for done, b in enumerate(order if order is not None else range(len(bundles))):
        if Budget.passed(deadline) or (most_bundles is not None and done >= most_bundles):
            break
        each[b] = exact_bundle_floor(inst, bundles[b], seed)
    with_shares = [max(scaled, SCALE * simple[b]) for b, (scaled, _most) in enumerate(each)]
    own = [max(scaled - most, SCALE * simple[b], 0) for b, (scaled, most) in enumerate(each)]
    one_session = min(sum(own) // SCALE + SESSION_USED, sum(nothing_booked(b) for b in bundles))
    return Floors(max(sum(with_shares) // SCALE, one_session), [x // SCALE for x in with_shares],
                  [x // SCALE for x in own])


def exact_standalone_floor(inst: Instance, bundles: list[Bundle], seed: int = 0,
                           deadline: float | None = None) -> tuple[int, list[int]]:
    """`exact_floors`' total and each bundle's floor with its session shares."""
    floors = exact_floors(inst, bundles, seed, deadline)
    return floors.total, floors.bundle_floors
