"""Benchmark: plan the sample practice month and PCN month; print the figures the targets name.

For each scenario, in its own process (so peak memory is its own):
- time to the first checker-valid plan (the greedy consolidator) and the whole solve time,
- the plan's objective, CP-SAT's proven bound and the gap, at each time limit,
- visits per patient, single-visit share and draws for the plan, the greedy and the old way,
- peak resident memory.

Usage: python benchmarks/solve_samples.py [--quick] [--workers 2] [--only practice:60 pcn:60 ...]
  --quick uses 10 s limits instead of the targets' 60 s (practice) and 300 s (PCN).
  --only runs just the named scenario:limit pairs (scenario "practice" or "pcn").
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(path: str, limit: float, workers: int, seed: int, queue) -> None:
    from scheduler.check import check_plan
    from scheduler.planner import make_plan
    from scheduler.scenario_io import load_scenario

    scenario = load_scenario(Path(path))
    settings = scenario.solver.model_copy(update={"time_limit_seconds": limit, "workers": workers, "seed": seed})
    marks: dict[str, float] = {}

    def progress(p) -> None:
        marks.setdefault(p.stage, p.elapsed_seconds)

    started = time.monotonic()
    plan = make_plan(scenario, settings, on_progress=progress)
    total = time.monotonic() - started
    report = check_plan(scenario, plan)
    queue.put({
        "scenario": Path(path).name,
        "patients": plan.metrics.patients,
        "reviews": plan.metrics.reviews,
        "time_limit_s": limit,
        "first_valid_plan_s": round(marks.get("greedy", total), 2),
        "solve_s": round(total, 2),
        "checker_ok": report.ok,
        "violations": len(report.violations),
        "objective": plan.solver.objective,
        "bound": plan.solver.best_bound,
        "gap_pct": round(100 * plan.solver.gap, 3),
        "method": plan.solver.method,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ways": {
            name: {
                "reviews_booked": m.reviews_booked,
                "visits_per_patient": round(m.visits_per_patient, 3),
                "single_visit_share": round(m.single_visit_share, 3),
                "visits": m.visits,
                "blood_draws": m.blood_draws,
                "patient_hours": round(m.patient_hours, 1),
            }
            for name, m in [("old_way", plan.baselines["old_way"]), ("greedy", plan.baselines["greedy"]),
                            ("onevisit", plan.metrics)]
        },
    })


def measure(path: Path, limit: float, workers: int, seed: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_one, args=(str(path), limit, workers, seed, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO:SECONDS",
                        help="Just these runs, e.g. practice:60 pcn:60.")
    args = parser.parse_args()
    runs = [("practice-month.yaml", [10.0] if args.quick else [10.0, 60.0]),
            ("pcn-month.yaml", [10.0] if args.quick else [60.0, 300.0])]
    if args.only:
        runs = []
        for item in args.only:
            name, _, limit = item.partition(":")
            runs.append((f"{name}-month.yaml", [float(limit or 60)]))
    results = []
    for name, limits in runs:
        for limit in limits:
            r = measure(ROOT / "sample_rosters" / name, limit, args.workers, args.seed)
            results.append(r)
            print(f"\n== {r['scenario']}: {r['patients']} patients, {r['reviews']} reviews, "
                  f"limit {limit:.0f} s, {args.workers} workers")
            print(f"first valid plan {r['first_valid_plan_s']} s; finished {r['solve_s']} s; "
                  f"checker {'OK' if r['checker_ok'] else 'FAILED: ' + str(r['violations'])}")
            print(f"objective {r['objective']:,}  bound {r['bound']:,}  gap {r['gap_pct']}%  ({r['method']})")
            print(f"peak memory {r['peak_rss_mb']} MB")
            print(f"{'':10} {'booked':>7} {'visits/pt':>9} {'single':>7} {'visits':>7} {'draws':>6} {'pt hours':>9}")
            for way, m in r["ways"].items():
                print(f"{way:10} {m['reviews_booked']:>7} {m['visits_per_patient']:>9} "
                      f"{m['single_visit_share']:>7} {m['visits']:>7} {m['blood_draws']:>6} {m['patient_hours']:>9}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
