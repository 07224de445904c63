"""Benchmark: re-plan the sample practice month after a clinician's three-day absence (issue 14).

Plans sample_rosters/practice-month.yaml from scratch once, then for each case one clinician is
absent for three consecutive days, and the month is re-planned (`scheduler.replan.prepare` +
`replan`) as of the horizon's first day, 00:00 London time (so the freeze window is that day and
the next two working days). Per case it prints:

- re-plan wall time: `time.perf_counter()` around prepare + replan, and the plan's own
  `solver.wall_seconds` (the re-plan's stages, prepare not included);
- touched: visits with an appointment of that clinician overlapping the absence; dependants:
  other visits of the same patients that hold reviews while the patient's blood draw was in a
  touched visit;
- changed: visits moved + cancelled according to `scheduler.diff.diff_plans` (newly booked
  shown beside them), and the ratio changed / touched, with and without the dependants;
- the re-plan's objective against a from-scratch `make_plan` of the disrupted scenario
  (`prepared.scenario`, same settings), as a gap in %; reviews booked in each;
- whether `scheduler.check.check_plan` passes on the re-plan against `prepared.scenario`;
- peak memory: the case process's maximum resident set size (ru_maxrss) once the re-plan is
  made (the from-scratch plan comes after it), and before the re-plan started.

Targets printed beside the figures: re-plan < 10 s, changed <= 1.2 x touched, objective within
2% of from-scratch. The script asserts nothing.

How the absence is chosen, from the from-scratch plan: the clinician of each role (practice nurse,
GP, HCA, and the diabetes specialist nurse `dsn1` when it has visits) with the most visits; the
three days start at a day, on or after the end of the freeze window, on which that clinician has
appointments, choosing the start whose three days hold the most days with their appointments,
then the most touched visits, then the earliest.

Each case runs in its own process (spawn), so its peak memory is its own.

The from-scratch plan of a time-limited CP-SAT search on 2 workers differs a little from run to
run, and so do the clinicians' days chosen from it; `--keep DIR` writes it (and each case's
disruptions file and re-plan) so that a run can be looked into or repeated with `--base`.

Usage: python benchmarks/replan.py [--quick] [--workers 2] [--seed 1] [--out FILE] [--json FILE]
                                   [--keep DIR] [--base PLAN.json]
  --quick runs only the practice nurse's case, with 10 s limits (30 s otherwise) everywhere.
  --out is where the table is written (default benchmarks/replan-results.txt).
  --keep DIR writes DIR/base/plan.json (with scenario.yaml beside it, so `onevisit replan
  DIR/base --disruptions DIR/<clinician>.yaml --as-of <horizon start>T00:00` repeats a case),
  DIR/<clinician>.yaml and DIR/<clinician>-replan.json.
  --base PLAN.json re-plans that from-scratch plan instead of making one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "sample_rosters" / "practice-month.yaml"
LONDON = ZoneInfo("Europe/London")
ABSENT_DAYS = 3
TARGET_SECONDS = 10.0
TARGET_RATIO = 1.2
TARGET_GAP_PCT = 2.0
ROLES = ("practice_nurse", "gp", "hca", "diabetes_specialist_nurse")


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def _local_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(LONDON).date()


def touched_visits(plan, clinician: str, start: dt.datetime, end: dt.datetime) -> set[str]:
    """Visits with an appointment of `clinician` overlapping start..end (aware; half-open)."""
    return {a.visit_id for a in plan.appointments
            if clinician in a.clinician_ids and a.start < end and start < a.end}


def dependant_visits(plan, touched: set[str]) -> set[str]:
    """Visits not touched that hold reviews of a patient whose blood draw was in a touched visit."""
    drawn = {a.patient_id for a in plan.appointments if a.kind == "blood_draw" and a.visit_id in touched}
    return {a.visit_id for a in plan.appointments
            if a.kind != "blood_draw" and a.patient_id in drawn and a.visit_id not in touched}


def choose_cases(scenario, plan, freeze_end: dt.date, quick: bool) -> list[dict]:
    """One absence per role (see the module docstring), as JSON-ready dicts."""
    role_of = {c.id: c.role for c in scenario.clinicians}
    visits: dict[str, set[str]] = defaultdict(set)
    days: dict[str, set[dt.date]] = defaultdict(set)
    for a in plan.appointments:
        for c in a.clinician_ids:
            visits[c].add(a.visit_id)
            days[c].add(_local_date(a.start))
    cases = []
    for role in ROLES:
        if role == "diabetes_specialist_nurse":
            candidates = ["dsn1"] if visits.get("dsn1") else []
        else:
            candidates = sorted((c for c in visits if role_of.get(c) == role), key=lambda c: (-len(visits[c]), c))
        if not candidates:
            continue
        clinician = candidates[0]
        best = None
        for first in sorted(d for d in days[clinician] if d >= freeze_end):
            start = dt.datetime.combine(first, dt.time(0, 0), tzinfo=LONDON)
            end = start + dt.timedelta(days=ABSENT_DAYS)  # wall-clock days (zoneinfo adds in local time)
            held = sum(1 for i in range(ABSENT_DAYS) if first + dt.timedelta(days=i) in days[clinician])
            key = (-held, -len(touched_visits(plan, clinician, start, end)), first)
            if best is None or key < best[0]:
                best = (key, first)
        if best is None:
            continue
        first = best[1]
        cases.append({"role": role, "clinician": clinician, "first": first.isoformat(),
                      "days_with_appointments": -best[0][0]})
        if quick:
            break
    return cases


def run_case(scenario_path: str, base_json: str, case: dict, limit: float, workers: int, seed: int,
             keep: str | None, queue) -> None:
    """In a fresh process: prepare + replan, measure, then plan the disrupted scenario from scratch."""
    from scheduler.check import check_plan
    from scheduler.diff import diff_plans
    from scheduler.disruptions import disruptions_from_data
    from scheduler.domain import SolverSettings
    from scheduler.plan import Plan
    from scheduler.planner import make_plan
    from scheduler.replan import prepare, replan
    from scheduler.scenario_io import load_scenario

    scenario = load_scenario(Path(scenario_path))
    base = Plan.model_validate_json(Path(base_json).read_text(encoding="utf-8"))
    first = dt.date.fromisoformat(case["first"])
    start = dt.datetime.combine(first, dt.time(0, 0))
    end = start + dt.timedelta(days=ABSENT_DAYS)
    entries = disruptions_from_data([{
        "kind": "clinician_absence", "clinician": case["clinician"], "start": start.isoformat(),
        "end": end.isoformat(), "reason": "benchmark: off sick"}], "benchmark")
    as_of = dt.datetime.combine(scenario.horizon_start, dt.time(0, 0), tzinfo=LONDON)
    settings = SolverSettings(time_limit_seconds=limit, workers=workers, seed=seed)
    rss_before = _rss_mb()

    began = time.perf_counter()
    prepared = prepare(scenario, base, entries, as_of=as_of)
    new = replan(prepared, base, settings)
    wall = time.perf_counter() - began
    rss_after = _rss_mb()

    report = check_plan(prepared.scenario, new)
    diff = diff_plans(base, new)
    touched = touched_visits(base, case["clinician"], start.replace(tzinfo=LONDON), end.replace(tzinfo=LONDON))
    dependants = dependant_visits(base, touched)
    changed_ids = {v.old_visit_id for p in diff.patients for v in p.visits if v.change in ("moved", "cancelled")}
    changed = diff.counts["moved"] + diff.counts["cancelled"]

    if keep:
        import yaml

        Path(keep, f"{case['clinician']}.yaml").write_text(yaml.safe_dump(
            [e.model_dump(mode="json") for e in entries], sort_keys=False), encoding="utf-8")
        Path(keep, f"{case['clinician']}-replan.json").write_text(new.model_dump_json(indent=1), encoding="utf-8")

    scratch = make_plan(prepared.scenario, settings)
    queue.put({
        **case,
        "absence": f"{start:%a %d %b} to {end:%a %d %b} 00:00",
        "as_of": as_of.isoformat(),
        "freeze_until": prepared.freeze_until.isoformat(),
        "replan_wall_s": round(wall, 2),
        "replan_solver_wall_s": new.solver.wall_seconds,
        "stage_s": new.solver.stage_seconds,
        "touched": len(touched),
        "dependants": len(dependants),
        "moved": diff.counts["moved"],
        "cancelled": diff.counts["cancelled"],
        "newly_booked": diff.counts["newly_booked"],
        "changed": changed,
        "changed_not_touched": len(changed_ids - touched - dependants),
        "ratio_direct": changed / len(touched) if touched else None,
        "ratio_with_dependants": changed / (len(touched) + len(dependants)) if touched else None,
        "replan_objective": new.solver.objective,
        "scratch_objective": scratch.solver.objective,
        "scratch_wall_s": scratch.solver.wall_seconds,
        "gap_pct": 100 * (new.solver.objective - scratch.solver.objective) / scratch.solver.objective,
        "replan_booked": new.metrics.reviews_booked,
        "scratch_booked": scratch.metrics.reviews_booked,
        "reviews": new.metrics.reviews,
        "replan_visits": new.metrics.visits,
        "scratch_visits": scratch.metrics.visits,
        "checker_ok": report.ok,
        "violations": sorted({v.code for v in report.violations}),
        "rss_before_mb": rss_before,
        "peak_rss_mb": rss_after,
    })


def base_plan(limit: float, workers: int, seed: int, out: Path, given: str | None, queue) -> None:
    """In a fresh process: the from-scratch plan every case re-plans (made, or read from
    `given`), written to `out`."""
    from scheduler.domain import SolverSettings
    from scheduler.plan import Plan
    from scheduler.planner import make_plan
    from scheduler.replan import freeze_until
    from scheduler.scenario_io import load_scenario

    scenario = load_scenario(SCENARIO)
    began = time.perf_counter()
    if given:
        plan = Plan.model_validate_json(Path(given).read_text(encoding="utf-8"))
    else:
        plan = make_plan(scenario, SolverSettings(time_limit_seconds=limit, workers=workers, seed=seed))
    wall = time.perf_counter() - began
    out.write_text(plan.model_dump_json(), encoding="utf-8")
    as_of = dt.datetime.combine(scenario.horizon_start, dt.time(0, 0), tzinfo=LONDON)
    freeze_end = freeze_until(as_of).astimezone(LONDON).date()
    queue.put({
        "wall_s": round(wall, 2), "solver_wall_s": plan.solver.wall_seconds, "objective": plan.solver.objective,
        "booked": plan.metrics.reviews_booked, "reviews": plan.metrics.reviews, "visits": plan.metrics.visits,
        "patients": plan.metrics.patients, "peak_rss_mb": None if given else _rss_mb(), "given": given,
        "freeze_end": freeze_end.isoformat(),
    })


def _in_process(target, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(base: dict, results: list[dict], limit: float, workers: int, seed: int, load: tuple,
           skipped: list[str]) -> str:
    lines = [
        "Re-planning benchmark (benchmarks/replan.py): sample_rosters/practice-month.yaml",
        (f"commit {_commit()}; Python {platform.python_version()}; {os.cpu_count()} CPUs; "
         f"load average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"),
        f"settings: time limit {limit:.0f} s, {workers} workers, seed {seed} (from-scratch plans and re-plans alike)",
        "",
        (f"From-scratch plan{' (read from ' + base['given'] + ')' if base.get('given') else ''}: "
         f"{base['patients']} patients, {base['booked']}/{base['reviews']} reviews booked, "
         f"{base['visits']} visits, objective {base['objective']:,}, {base['solver_wall_s']} s "
         f"(optimisation)" + (f", peak memory {base['peak_rss_mb']} MB" if base.get("peak_rss_mb") else "")),
        (f"as_of {results[0]['as_of'] if results else '-'}; freeze window until "
         f"{results[0]['freeze_until'] if results else '-'}; each absence: {ABSENT_DAYS} days from 00:00"),
        "",
    ]
    header = ("| clinician | absent | touched | + dependants | moved | cancelled | new | ratio direct "
              "| ratio with dep. | re-plan wall (solver) | objective re-plan / scratch | gap | booked re-plan "
              "/ scratch | checker | peak memory |")
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        rd = "n/a" if r["ratio_direct"] is None else f"{r['ratio_direct']:.2f}"
        rw = "n/a" if r["ratio_with_dependants"] is None else f"{r['ratio_with_dependants']:.2f}"
        lines.append(
            f"| {r['clinician']} ({r['role']}) | {r['absence']} | {r['touched']} | {r['dependants']} | {r['moved']} "
            f"| {r['cancelled']} | {r['newly_booked']} | {rd} | {rw} | {r['replan_wall_s']:.2f} s "
            f"({r['replan_solver_wall_s']:.2f} s) | {r['replan_objective']:,} / {r['scratch_objective']:,} "
            f"| {r['gap_pct']:+.2f}% | {r['replan_booked']} / {r['scratch_booked']} of {r['reviews']} "
            f"| {'OK' if r['checker_ok'] else 'FAILED ' + ','.join(r['violations'])} "
            f"| {r['peak_rss_mb']:.0f} MB ({r['rss_before_mb']:.0f} MB before) |")
    lines += [f"({note})" for note in skipped]
    lines += ["", (f"Targets: re-plan < {TARGET_SECONDS:.0f} s; changed (moved + cancelled) <= "
                   f"{TARGET_RATIO} x touched; objective within {TARGET_GAP_PCT:.0f}% of from-scratch.")]
    for r in results:
        changed = r["changed"]
        direct, with_dep = r["touched"], r["touched"] + r["dependants"]
        lines.append(
            f"- {r['clinician']}: re-plan {r['replan_wall_s']:.2f} s ({_met(r['replan_wall_s'] < TARGET_SECONDS)}); "
            f"changed {changed} against 1.2 x {direct} touched = {TARGET_RATIO * direct:.1f} "
            f"({_met(changed <= TARGET_RATIO * direct)}), against 1.2 x {with_dep} with dependants = "
            f"{TARGET_RATIO * with_dep:.1f} ({_met(changed <= TARGET_RATIO * with_dep)}); "
            f"{r['changed_not_touched']} changed visit(s) neither touched nor dependant; "
            f"gap {r['gap_pct']:+.2f}% ({_met(r['gap_pct'] <= TARGET_GAP_PCT)}); "
            f"stages {', '.join(f'{k} {v} s' for k, v in r['stage_s'].items())}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="One case (the practice nurse), 10 s limits.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "replan-results.txt",
                        help="Where to write the table (default benchmarks/replan-results.txt).")
    parser.add_argument("--json", type=Path, help="Also write every figure here as JSON.")
    parser.add_argument("--keep", type=Path, help="Write the from-scratch plan, disruptions and re-plans here.")
    parser.add_argument("--base", type=Path, help="Re-plan this from-scratch plan.json instead of making one.")
    args = parser.parse_args()
    limit = 10.0 if args.quick else 30.0
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ov-replan-") as tmp:
        base_json = Path(tmp) / "base.json"
        print(f"Planning {SCENARIO.name} from scratch ({limit:.0f} s, {args.workers} workers, seed {args.seed}) ...",
              flush=True)
        base = _in_process(base_plan, limit, args.workers, args.seed, base_json,
                           str(args.base.resolve()) if args.base else None)
        from scheduler.plan import Plan
        from scheduler.scenario_io import load_scenario

        scenario = load_scenario(SCENARIO)
        plan = Plan.model_validate_json(base_json.read_text(encoding="utf-8"))
        if args.keep:
            (args.keep / "base").mkdir(parents=True, exist_ok=True)
            (args.keep / "base" / "plan.json").write_text(plan.model_dump_json(indent=1), encoding="utf-8")
            (args.keep / "base" / "scenario.yaml").write_text(SCENARIO.read_text(encoding="utf-8"), encoding="utf-8")
        cases = choose_cases(scenario, plan, dt.date.fromisoformat(base["freeze_end"]), args.quick)
        skipped = []
        if not args.quick and not any(c["clinician"] == "dsn1" for c in cases):
            skipped.append("dsn1, the diabetes specialist nurse: no visits after the freeze window in the "
                           "from-scratch plan, so no case")
        results = []
        for case in cases:
            print(f"Case {case['clinician']} ({case['role']}), absent {ABSENT_DAYS} days from {case['first']} ...",
                  flush=True)
            results.append(_in_process(run_case, str(SCENARIO), str(base_json), case, limit, args.workers, args.seed,
                                       str(args.keep) if args.keep else None))
    text = render(base, results, limit, args.workers, args.seed, load, skipped)
    print()
    print(text, end="")
    args.out.write_text(text, encoding="utf-8")
    print(f"\nWrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps({"base": base, "cases": results}, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
