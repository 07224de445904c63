"""Solving a study's variants side by side: in a local process pool (the default) or on a Dask
cluster (`onevisit[dask]`), one solve per task, each checked by the independent checker.

Every solve uses one CP-SAT worker and the study's seed, so a variant's plan does not depend on
where it ran; how many solves run at once is the pool's or the cluster's business. Scenarios and
plans cross process boundaries as JSON text, so a worker needs only `onevisit` installed.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from scheduler.capacity.study import StudyVariant
from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario, SolverSettings
from scheduler.plan import Plan
from scheduler.planner import make_plan
from scheduler.replan import Prepared, replan

DASK_MISSING = ("--dask needs Dask: install it with  pip install 'onevisit[dask]'  (the process pool, "
                "the default, needs nothing more)")


class DaskMissing(RuntimeError):
    """Dask was asked for and is not installed."""


@dataclass(frozen=True)
class Solved:
    """One variant's plan, or why it has none (`error`: the checker's report, or the exception)."""

    name: str
    plan: Plan | None
    error: str | None = None


def from_start(scenario: Scenario, start: Plan, settings: SolverSettings) -> Plan:
    """`start` (the plan of the scenario a variant was made from) read into the variant: every
    visit that still stands kept, the rest placed around them (`scheduler.replan` with no
    disruptions and no freeze window). A variant that only adds capacity keeps the whole start
    plan, so it can only book more."""
    long_ago = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    plan = replan(Prepared(scenario, [], long_ago, long_ago), start, settings)
    return plan.model_copy(update={"replan": None, "solver": plan.solver.model_copy(update={
        "method": "the plan of the scenario it was made from, read into the variant, the rest placed around it"})})


def solve_variant(name: str, scenario_json: str, settings_json: str,
                  start_json: str | None = None) -> tuple[str, str | None, str | None]:
    """Plan one variant and check it; the task each pool process or Dask worker runs.

    Takes and returns JSON text: (name, plan JSON or None, error or None). With `start_json`
    (the plan of the scenario the variant was made from) the variant is also planned from it
    (`from_start`) and the plan with the lower objective kept, so adding capacity never loses
    what the start plan booked to a pre-solve choice (grouping, room allocation) going another
    way. A plan the checker refuses is returned as an error, never as figures.
    """
    scenario = Scenario.model_validate_json(scenario_json)
    settings = SolverSettings.model_validate_json(settings_json)
    try:
        plan = make_plan(scenario, settings)
        report = None
        if start_json is not None:
            other = from_start(scenario, Plan.model_validate_json(start_json), settings)
            if other.solver.objective < plan.solver.objective:
                other_report = check_plan(scenario, other)
                if other_report.ok:
                    plan, report = other, other_report
    except Exception as exc:  # noqa: BLE001 - a failed solve is reported for its variant, the study goes on
        return name, None, f"{type(exc).__name__}: {exc}"
    report = report or check_plan(scenario, plan)  # checked once: the start plan's report is reused
    if not report.ok:
        return name, None, "the plan failed the independent check:\n" + format_report(report)
    return name, plan.model_dump_json(), None


def solve_settings(time_limit_seconds: float, seed: int, deterministic_seconds: float | None = None) -> SolverSettings:
    """The settings of every solve in a study: one CP-SAT worker, the study's seed, and its
    deterministic budget when it has one (then no solve depends on timing)."""
    return SolverSettings(time_limit_seconds=time_limit_seconds, workers=1, seed=seed,
                          deterministic_seconds=deterministic_seconds)


def run_variants(variants: list[StudyVariant], settings: SolverSettings, *, processes: int = 2,
                 dask: str | None = None, on_done: Callable[[Solved], None] | None = None,
                 starts: dict[str, Plan] | None = None) -> list[Solved]:
    """Solve every variant; results in the variants' order. `starts`: variant name -> the plan
    it is also planned from (`solve_variant`).

    `processes`: solves at once in the local pool (spawned processes), or workers of a
    `dask="local"` LocalCluster; `dask`: a scheduler address (`tcp://host:8786`), or "local".
    `on_done` is called as each solve finishes (for a progress bar). Raises DaskMissing when
    `dask` is given and Dask is not installed.
    """
    starts = starts or {}
    tasks = [(v.name, v.scenario.model_dump_json(), settings.model_dump_json(),
              starts[v.name].model_dump_json() if v.name in starts else None) for v in variants]
    done: dict[str, Solved] = {}

    def finish(result: tuple[str, str | None, str | None]) -> None:
        name, plan_json, error = result
        solved = Solved(name, Plan.model_validate_json(plan_json) if plan_json else None, error)
        done[name] = solved
        if on_done:
            on_done(solved)

    if dask is None:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, processes), mp_context=context) as pool:
            for future in as_completed([pool.submit(solve_variant, *task) for task in tasks]):
                finish(future.result())
    else:
        _run_on_dask(tasks, dask, processes, finish)
    return [done[v.name] for v in variants]


def _run_on_dask(tasks: list[tuple[str, str, str, str | None]], address: str, processes: int,
                 finish: Callable[[tuple[str, str | None, str | None]], None]) -> None:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError:
        raise DaskMissing(DASK_MISSING) from None
    cluster = None
    if address == "local":
        # One thread per worker process: CP-SAT holds the GIL-free solve, but our own greedy and
        # assembly stages are Python, so processes, not threads, give the parallelism.
        cluster = LocalCluster(n_workers=max(1, processes), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        address = cluster.scheduler_address
    try:
        with Client(address) as client:
            futures = {client.submit(solve_variant, *task, key=f"onevisit-{i}-{task[0][:40]}", pure=False): task[0]
                       for i, task in enumerate(tasks)}
            for future in dask_completed(list(futures)):
                try:
                    finish(future.result())
                except Exception as exc:  # noqa: BLE001 - a worker lost: that variant fails, the study goes on
                    finish((futures[future], None, f"the Dask task failed: {type(exc).__name__}: {exc}"))
    finally:
        if cluster is not None:
            cluster.close()
