"""Benchmark: "why this visit" (`scheduler.explain.explain_patient`, docs/explain.md) per patient.

Plans sample_rosters/tutorial.yaml and sample_rosters/practice-month.yaml (or reads plans given
with --plans), puts each plan through the independent checker, then times `explain_patient`
for one patient of each kind the plan has (booked in one visit, split over several visits,
unbooked or partly booked) and for a sample of 20 patients (random, seeded), and prints the time
per patient (wall-clock, `time.perf_counter()` around the call, which includes reading the plan
back into the engine) against the 5 s target. The script asserts nothing.

Usage: python benchmarks/explain.py [--time-limit 20] [--workers 2] [--seed 1] [--sample 20]
                                    [--plans tutorial=DIR practice-month=DIR] [--out FILE]
  --plans reads DIR/plan.json and DIR/scenario.yaml (as `onevisit plan --out DIR` writes them)
  instead of planning; a name other than the two samples adds that plan (e.g. an overloaded
  month from `onevisit generate practice --load 1.3`, which has unbooked patients).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.check import check_plan  # noqa: E402
from scheduler.explain import explain_patient  # noqa: E402
from scheduler.plan import Plan  # noqa: E402
from scheduler.planner import make_plan  # noqa: E402
from scheduler.scenario_io import load_scenario  # noqa: E402

TARGET_SECONDS = 5.0
SAMPLES = {"tutorial": ROOT / "sample_rosters" / "tutorial.yaml",
           "practice-month": ROOT / "sample_rosters" / "practice-month.yaml"}


def timed(scenario, plan, patient_id):
    started = time.perf_counter()
    e = explain_patient(scenario, plan, patient_id)
    return time.perf_counter() - started, e


def run(name: str, args, given: dict[str, Path], lines: list[str]) -> None:
    if name in given:
        scenario = load_scenario(given[name] / "scenario.yaml")
        plan = Plan.model_validate_json((given[name] / "plan.json").read_text(encoding="utf-8"))
        made = f"plan read from {given[name]}"
    else:
        scenario = load_scenario(SAMPLES[name])
        scenario = scenario.model_copy(update={"solver": scenario.solver.model_copy(update={
            "time_limit_seconds": args.time_limit, "workers": args.workers, "seed": args.seed})})
        started = time.perf_counter()
        plan = make_plan(scenario)
        made = f"planned in {time.perf_counter() - started:.1f} s ({args.time_limit:g} s limit, {args.workers} workers, seed {args.seed})"
    checked = "checker OK" if check_plan(scenario, plan).ok else "CHECKER FAILED"
    lines.append(f"\n## {name}: {len(scenario.patients)} patients, {len(plan.visits)} visits; {made}; {checked}")
    # Warm-up: the first call in a process pays for imports and caches.
    timed(scenario, plan, scenario.patients[0].id)
    kinds: dict[str, tuple[str, float, object]] = {}
    for p in scenario.patients:
        if {"one_visit", "split", "unbooked"} <= kinds.keys():
            break
        seconds, e = timed(scenario, plan, p.id)
        kind = {"partly_booked": "unbooked"}.get(e.status, e.status)
        if kind in ("one_visit", "split", "unbooked") and kind not in kinds:
            kinds[kind] = (p.id, seconds, e)
    lines.append("| case | patient | status | seconds | alternatives | ruled out / considered | change | target |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for kind in ("one_visit", "split", "unbooked"):
        if kind not in kinds:
            lines.append(f"| {kind} | (none in this plan) | | | | | | |")
            continue
        pid, seconds, e = kinds[kind]
        change = e.change.description if e.change else ("none found" if e.changes_tried else "-")
        lines.append(f"| {kind} | {pid} | {e.status} | {seconds:.2f} | {len(e.alternatives)} | "
                     f"{len(e.ruled_out)} / {e.options_considered} | {change} | "
                     f"{'OK' if seconds < TARGET_SECONDS else 'OVER'} (< {TARGET_SECONDS:g} s) |")
    rng = random.Random(args.seed)
    sample = rng.sample([p.id for p in scenario.patients], min(args.sample, len(scenario.patients)))
    times = sorted((timed(scenario, plan, pid)[0], pid) for pid in sample)
    mean = sum(t for t, _ in times) / len(times)
    worst, who = times[-1]
    lines.append(f"\nSample of {len(times)} patients (seed {args.seed}): mean {mean:.2f} s, median "
                 f"{times[len(times) // 2][0]:.2f} s, max {worst:.2f} s ({who}) -> "
                 f"{'OK' if worst < TARGET_SECONDS else 'OVER'} against the {TARGET_SECONDS:g} s target")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--plans", nargs="*", default=[], help="name=DIR pairs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "explain-results.txt")
    args = parser.parse_args()
    given = {k: Path(v) for k, v in (item.split("=", 1) for item in args.plans)}
    lines = [f"# explain_patient timings ({platform.machine()}, {os.cpu_count()} cores, load "
             f"{os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"]
    for name in [*SAMPLES, *(n for n in given if n not in SAMPLES)]:
        run(name, args, given, lines)
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
