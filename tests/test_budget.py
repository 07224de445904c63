"""The time limit is the budget of the whole optimisation: each anytime stage stops at its deadline
and keeps a valid result. Deadlines already passed make these tests exact (no wall-clock
figures are asserted; `benchmarks/solve_samples.py` measures wall time against the limit)."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from scheduler.baselines import greedy_consolidate
from scheduler.budget import Budget
from scheduler.bundles import BundleBuilder
from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario
from scheduler.instance import Instance
from scheduler.model.floor import exact_standalone_floor
from scheduler.model.objective import evaluate
from scheduler.model.solve import solve_master
from scheduler.planner import improve, make_plan

ROOT = Path(__file__).resolve().parent.parent


def tutorial(**solver) -> Scenario:
    data = yaml.safe_load((ROOT / "sample_rosters" / "tutorial.yaml").read_text())
    data["solver"] = {**data.get("solver", {}), "workers": 1, "seed": 3, **solver}
    return Scenario.model_validate(data)


def test_budget_shares_out_the_limit_in_order() -> None:
    budget = Budget(40.0, started=100.0)
    assert budget.floor_deadline == 118.0
    assert budget.master_deadline == 128.0  # 70%
    assert budget.improve_deadline == 135.2 - 0.5  # 88%, less the assembly's half second
    assert budget.compact_deadline == 139.5 and budget.end == 140.0
    assert Budget.passed(time.monotonic() - 1) and not Budget.passed(None)
    assert Budget.left(time.monotonic() - 5) == 0.0


def test_floors_not_reached_by_their_deadline_are_zero_and_still_a_bound() -> None:
    scenario = tutorial()
    inst = Instance(scenario)
    bundles = BundleBuilder(inst).bundles()
    full, each = exact_standalone_floor(inst, bundles, 3)
    assert full > 0 and any(each)
    cut, cut_each = exact_standalone_floor(inst, bundles, 3, deadline=time.monotonic() - 1)
    assert cut_each == [0] * len(bundles)
    greedy = greedy_consolidate(inst, bundles).bookings
    assert cut <= full <= evaluate(inst, bundles, greedy).total


def test_a_master_out_of_time_does_not_search_and_keeps_valid_floors() -> None:
    scenario = tutorial()
    inst = Instance(scenario)
    bundles = BundleBuilder(inst).bundles()
    spent = Budget(scenario.solver.time_limit_seconds, started=time.monotonic() - 10_000)
    result = solve_master(inst, bundles, scenario.solver, budget=spent)
    assert result.status == "NOT_SEARCHED" and result.assignment == {} and result.objective is None
    greedy = greedy_consolidate(inst, bundles).bookings
    assert 0 < result.best_bound <= evaluate(inst, bundles, greedy).total
    searched = solve_master(inst, bundles, scenario.solver)
    assert searched.status in ("OPTIMAL", "FEASIBLE") and searched.assignment
    assert result.best_bound <= searched.best_bound


def test_improvement_stops_at_its_deadline_with_the_plan_unchanged() -> None:
    scenario = tutorial()
    inst = Instance(scenario)
    bundles = BundleBuilder(inst).bundles()
    greedy = greedy_consolidate(inst, bundles).bookings
    floors = [0] * len(bundles)  # every bundle "above its floor": all would be tried
    stopped = improve(inst, bundles, greedy, floors, deadline=time.monotonic() - 1)
    assert sorted((b.bundle_id, b.step.key, b.day, b.start) for b in stopped) == sorted(
        (b.bundle_id, b.step.key, b.day, b.start) for b in greedy)
    improved = improve(inst, bundles, greedy, floors)
    assert evaluate(inst, bundles, improved).total <= evaluate(inst, bundles, greedy).total


def test_the_plan_reports_its_whole_span_by_stage() -> None:
    scenario = tutorial(time_limit_seconds=5)
    plan = make_plan(scenario)
    report = check_plan(scenario, plan)
    assert report.ok, format_report(report)
    stages = plan.solver.stage_seconds
    assert list(stages) == ["greedy", "baselines", "master", "timetabling", "improvement", "compaction", "assembly"]
    assert all(seconds >= 0 for seconds in stages.values())
    # The stages are laps of one clock: together they are the reported span, to rounding.
    assert abs(sum(stages.values()) - plan.solver.wall_seconds) < 0.05
    assert plan.solver.time_limit_seconds == 5
