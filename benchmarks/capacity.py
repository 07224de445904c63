"""Capacity-study benchmark (issue 15): a 20-variant study on the PCN sample, solved with 1 and
2 local worker processes and on a local Dask cluster with 2 workers.

    python benchmarks/capacity.py [--quick] [--time-limit 10] [--out benchmarks/capacity-results.txt]

The study is built here: the base `sample_rosters/pcn-month.yaml` (1,000 patients, 3,332
reviews) and two sweeps of 10 variants each, "extra hub GP sessions" (0-9 sessional GPs at the
hub on Tuesday afternoons) and "demand" (factor 0.90-1.35 on every patient), so 20 variants plus
the base: 21 solves, each also planned from the base's plan (as every study variant is),
bottlenecks off (`bottlenecks: []`). `--quick`: 4 variants at 5 s, to check the script.

Reported per run: wall time of `run_study` (expanding, every solve and check, the figures; not
writing the report), solves per minute, and whether the figures (patients fully booked and
reviews booked of every variant) equal those of the first run.

Peak memory per solve, two ways:
- process pool: `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` of this script after each pool
  run: the largest resident set of any worker process it has waited for (each worker process
  runs several solves in turn, so this is the largest solve plus the process's own baseline);
- Dask: `resource.getrusage(RUSAGE_SELF).ru_maxrss` read inside each Dask worker process after
  the run (`Client.run`), which includes the Dask worker's own memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.capacity.outcome import StudyOutcome, run_study
from scheduler.capacity.study import expand, study_from_data
from scheduler.scenario_io import load_scenario

SAMPLE = ROOT / "sample_rosters" / "pcn-month.yaml"


def study_data(quick: bool, time_limit: float) -> dict:
    gp_values = [0, 1] if quick else list(range(10))
    demand_values = [0.9, 1.2] if quick else [round(0.9 + 0.05 * i, 2) for i in range(10)]
    return {
        "name": "benchmark: PCN hub GP sweep and demand sweep",
        "base": str(SAMPLE),
        "time_limit_seconds": time_limit,
        "seed": 1,
        "sweeps": [
            {"name": "extra hub GP sessions", "values": gp_values, "changes": [
                {"kind": "sessions_added", "role": "gp", "site": "hub", "weekdays": ["tue"],
                 "start": "14:00", "end": "18:00", "count": "$value"}]},
            {"name": "demand", "values": demand_values, "changes": [
                {"kind": "demand_scaled", "factor": "$value"}]},
        ],
        "bottlenecks": [],
    }


def figures_key(outcome: StudyOutcome) -> list[tuple[str, int | None, int | None]]:
    return [(v.name, v.figures.patients_fully_booked if v.figures else None,
             v.figures.reviews_booked if v.figures else None) for v in outcome.variants]


def children_peak_mib() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if platform.system() == "Linux" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale / 1024


def _worker_peak_kib() -> int:
    import resource as r
    return r.getrusage(r.RUSAGE_SELF).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 variants at 5 s per solve")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds per solve (default 10; 5 with --quick)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "capacity-results.txt")
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    limit = args.time_limit or (5.0 if args.quick else 10.0)

    base = load_scenario(SAMPLE)
    study = study_from_data(study_data(args.quick, limit), "benchmark")
    variants = expand(study, base, "benchmark")
    solves = len(variants)
    lines = [
        "Capacity-study benchmark (benchmarks/capacity.py" + (" --quick" if args.quick else "") + ")",
        (f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}; "
         f"load average before: {os.getloadavg()[0]:.2f}"),
        (f"Study: base {SAMPLE.name} ({len(base.patients):,} patients) + {solves - 1} variants = {solves} solves; "
         f"{limit:g} s per solve (1 CP-SAT worker, seed 1; each variant also planned from the base's plan); "
         "bottlenecks off."),
        "",
    ]
    print("\n".join(lines), flush=True)

    results = []
    first_key = None

    def run(label: str, processes: int, dask: str | None) -> StudyOutcome:
        nonlocal first_key
        start = time.perf_counter()
        outcome = run_study(study, base, processes=processes, dask=dask,
                            on_progress=lambda done, total, name: print(f"  {label}: {done}/{total} {name}", flush=True))
        wall = time.perf_counter() - start
        key = figures_key(outcome)
        same = "first run" if first_key is None else ("same" if key == first_key else "DIFFERENT")
        first_key = first_key or key
        failed = sum(1 for v in outcome.variants if v.error)
        results.append((label, wall, solves / wall * 60, failed, same))
        print(f"{label}: {wall:.1f} s", flush=True)
        return outcome

    run("process pool, 1 worker", 1, None)
    run("process pool, 2 workers", 2, None)
    pool_peak = children_peak_mib()
    dask_peaks: list[float] = []
    if not args.skip_dask:
        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            run("Dask LocalCluster, 2 workers", 2, cluster.scheduler_address)
            with Client(cluster.scheduler_address) as client:
                dask_peaks = [kib / 1024 for kib in client.run(_worker_peak_kib).values()]

    table = ["| run | wall time | solves / min | failed | figures vs first run |",
             "|---|---:|---:|---:|---|"]
    table += [f"| {label} | {wall:.1f} s | {rate:.1f} | {failed} | {same} |" for label, wall, rate, failed, same in results]
    memory = [
        "",
        f"Peak memory, process pool (RUSAGE_CHILDREN max RSS of the worker processes): {pool_peak:,.0f} MiB",
    ]
    if dask_peaks:
        memory.append("Peak memory, Dask (RUSAGE_SELF max RSS inside each worker after the run, Dask's own memory "
                      f"included): {', '.join(f'{p:,.0f}' for p in dask_peaks)} MiB")
    text = "\n".join(lines + table + memory) + "\n"
    print("\n" + text)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
