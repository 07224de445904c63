"""The capacity-aware bound (scheduler.model.relaxation): the master's linear relaxation.

What is proved here, beside the exhaustive comparison in tests/test_bound_exhaustive.py (which
checks every bound source, the LP's included, against the exact optimum):
- every plan the engine makes, read as the master's variables, satisfies every row of the LP and
  prices at most its objective there: the linearisation removes no plan (a row too strict would
  make the bound a lie, and only this kind of test sees it);
- `dual_bound` is a weak-duality bound for any multipliers, not only the solver's optimal ones;
- where patients compete for one clinician, the LP sees what the standalone floors cannot: a
  review must go unbooked.
"""

from __future__ import annotations

import math
import random
import time

import pytest
from ortools.sat.python import cp_model

from scheduler.baselines import greedy_consolidate
from scheduler.bundles import BundleBuilder
from scheduler.check import check_plan, format_report
from scheduler.domain import SolverSettings
from scheduler.instance import Instance
from scheduler.model import constraints
from scheduler.model import relaxation as lp_module
from scheduler.model.floor import exact_floors, nothing_booked
from scheduler.model.objective import UNBOOKED_REVIEW, add_objective, evaluate
from scheduler.model.variables import build_variables
from scheduler.planner import hint_from, make_plan
from scheduler.scenario_io import load_scenario
from tests.builders import patient, scenario, session

MON = "2027-03-22"


def master(inst: Instance, bundles):
    model = cp_model.CpModel()
    v = build_variables(model, inst, bundles)
    constraints.add_constraints(model, inst, v)
    add_objective(model, inst, v)
    return model, v


def point(v, bundles, hint) -> dict[int, float]:
    """Every master variable's value for a plan given as (bundle, step) -> (day, site)."""
    values: dict[int, float] = {}
    for (b, k, opt), x in v.x.items():
        values[x.index] = float(hint.get((b, k)) == opt)
    for (b, k), booked in v.booked.items():
        values[booked.index] = float((b, k) in hint)
    visits = {(b, opt) for (b, _k), opt in hint.items()}
    for key, visit in v.visit.items():
        values[visit.index] = float(key in visits)
    with_reviews = {(b, opt) for (b, k), opt in hint.items() if bundles[b].steps[k].reviews}
    for key, var in v.review_visit.items():
        values[var.index] = float(key in with_reviews)
    for option, used in v.used.items():
        values[used.index] = float(option in set(hint.values()))
    return values


def crowded():
    """Three patients each needing a 30-minute frailty review, one GP with one hour on one day."""
    return scenario([session("gp", MON, "09:00", "10:00")],
                    [patient(f"P{i}", "frailty", first=MON, last=MON) for i in range(3)])


@pytest.mark.parametrize("where", ["tutorial", "crowded", "practice-month"])
def test_every_engine_plan_satisfies_every_row_and_prices_at_most_its_objective(where):
    s = crowded() if where == "crowded" else load_scenario(f"sample_rosters/{where}.yaml")
    inst = Instance(s)
    bundles = BundleBuilder(inst).bundles()
    bookings = greedy_consolidate(inst, bundles).bookings
    model, v = master(inst, bundles)
    floors = exact_floors(inst, bundles)
    lp = lp_module.linear_program(model, v, floors.own_floors, [nothing_booked(b) for b in bundles])
    values = point(v, bundles, hint_from(bundles, bookings))
    x = [values.get(i, 0.0) for i in range(len(lp.variables.ids))]
    activity = [0.0] * len(lp.linear_constraints.ids)
    matrix = lp.linear_constraint_matrix
    for row, column, coefficient in zip(matrix.row_ids, matrix.column_ids, matrix.coefficients):
        activity[row] += coefficient * x[column]
    broken = [(i, lo, a, hi) for i, (lo, a, hi) in enumerate(zip(lp.linear_constraints.lower_bounds, activity,
                                                                   lp.linear_constraints.upper_bounds))
              if a < lo - 1e-6 or a > hi + 1e-6]
    assert not broken, broken[:5]
    priced = lp.objective.offset + sum(c * x[i] for i, c in zip(lp.objective.linear_coefficients.ids,
                                                                  lp.objective.linear_coefficients.values))
    assert priced <= evaluate(inst, bundles, bookings).total + 1e-6
    # The floors' cuts are there (one row per bundle with a floor), so the test covers them.
    assert len(lp.linear_constraints.ids) > 0 and sum(1 for f in floors.own_floors if f) > 0


def test_dual_bound_holds_for_any_multipliers():
    s = load_scenario("sample_rosters/tutorial.yaml")
    inst = Instance(s)
    bundles = BundleBuilder(inst).bundles()
    model, v = master(inst, bundles)
    lp = lp_module.linear_program(model, v, [0] * len(bundles), [nothing_booked(b) for b in bundles])
    bookings = greedy_consolidate(inst, bundles).bookings
    values = point(v, bundles, hint_from(bundles, bookings))
    feasible = lp.objective.offset + sum(c * values.get(i, 0.0) for i, c in zip(
        lp.objective.linear_coefficients.ids, lp.objective.linear_coefficients.values))
    rng = random.Random(7)
    rows = len(lp.linear_constraints.ids)
    for _ in range(20):
        duals = {i: rng.uniform(-1000, 1000) for i in rng.sample(range(rows), k=min(rows, 50))}
        assert lp_module.dual_bound(lp, duals) <= feasible + 1e-6
    assert lp_module.dual_bound(lp, {}) <= feasible + 1e-6


def test_the_lp_sees_shared_capacity_the_floors_cannot():
    """Each patient alone could be booked, so the floors price three bookings; one hour of GP
    time holds two 30-minute reviews, so one review must go unbooked, and the LP knows it."""
    s = crowded()
    inst = Instance(s)
    bundles = BundleBuilder(inst).bundles()
    model, v = master(inst, bundles)
    floors = exact_floors(inst, bundles)
    result = lp_module.lp_bound(model, v, floors.own_floors, [nothing_booked(b) for b in bundles],
                                time.monotonic() + 30, 1)
    assert floors.total < UNBOOKED_REVIEW <= result.bound, (floors.total, result)
    plan = make_plan(s, SolverSettings(time_limit_seconds=5, workers=1, seed=0))
    report = check_plan(s, plan)
    assert report.ok, format_report(report)
    assert result.bound <= plan.solver.objective
    assert plan.metrics.reviews_booked == 2
    assert UNBOOKED_REVIEW <= plan.solver.bound_sources["lp_relaxation"] <= plan.solver.objective
    assert plan.solver.best_bound == max(plan.solver.bound_sources.values())
    assert plan.solver.bound_source in plan.solver.bound_sources and "sittings" in plan.solver.bound_scope


def test_a_solver_with_no_time_reports_no_bound():
    s = crowded()
    inst = Instance(s)
    bundles = BundleBuilder(inst).bundles()
    model, v = master(inst, bundles)
    result = lp_module.lp_bound(model, v, [0] * len(bundles), [nothing_booked(b) for b in bundles],
                                time.monotonic() - 1, 1)
    assert result.bound is None and result.termination == "NOT_SEARCHED"
    assert not math.isnan(result.seconds)
