"""Benchmark: plan the sample practice month and PCN month; print the figures the targets name.

For each scenario, in its own process (so peak memory is its own):
- time to the first checker-valid plan (the greedy consolidator) and the whole solve time,
- the plan's objective, CP-SAT's proven bound and the gap, at each time limit,
- visits per patient, single-visit share and draws for the plan, the greedy and the old way,
- peak resident memory.

- wall time against the limit (the limit is the budget of the whole optimisation: it should end
  within 5% + 2 s of it), reviews booked, trips, draw-only trips and room changes per clinician
  roster session, counted from the plan's own appointments (so the same figures can be taken on
  an older commit),
- optionally under each room rule and draw policy side by side (`--rules`, `--policies`).

Usage: python benchmarks/solve_samples.py [--quick] [--workers 2] [--only practice:60 pcn:60 ...]
                                          [--rules hard off] [--policies draw_in_visit earlier_draw_trip_allowed]
  --quick uses 10 s limits instead of the targets' 60 s (practice) and 300 s (PCN).
  --only runs just the named scenario:limit pairs (scenario "practice" or "pcn").
  --rules / --policies set visit_rules.clinician_room_per_session / visit_rules.blood_draw_policy
  for each run (a value the scenario model does not know is reported, not run).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def session_rooms(scenario, plan) -> tuple[int, int, float]:
    """(clinician roster sessions used, room changes inside them, mean rooms per session), from
    the plan's appointments: joint consultations (the clinicians join an MDT room) are left out."""
    from zoneinfo import ZoneInfo

    london = ZoneInfo("Europe/London")
    sessions = {}
    for s in scenario.sessions:
        sessions.setdefault((s.clinician_id, s.date, s.site_id), []).append((s.start, s.end))
    rooms: dict[tuple, list[tuple]] = {}
    for a in plan.appointments:
        if a.kind == "joint_review":
            continue
        local = a.start.astimezone(london).time()
        for c in a.clinician_ids:
            spans = sessions.get((c, a.date, a.site_id), [])
            span = next((sp for sp in spans if sp[0] <= local < sp[1]), None)
            rooms.setdefault((c, a.date, a.site_id, span), []).append((a.start, a.room_id))
    changes = 0
    for booked in rooms.values():
        ordered = [room for _, room in sorted(booked)]
        changes += sum(1 for x, y in zip(ordered, ordered[1:]) if x != y)
    mean = sum(len({r for _, r in b}) for b in rooms.values()) / len(rooms) if rooms else 0.0
    return len(rooms), changes, mean


def run_one(path: str, limit: float, workers: int, seed: int, rules: dict, queue) -> None:
    from scheduler.check import check_plan
    from scheduler.planner import make_plan
    from scheduler.scenario_io import load_scenario

    scenario = load_scenario(Path(path))
    if rules:
        scenario = scenario.model_copy(update={"visit_rules": scenario.visit_rules.model_validate(
            {**scenario.visit_rules.model_dump(), **rules})})
    settings = scenario.solver.model_copy(update={"time_limit_seconds": limit, "workers": workers, "seed": seed})
    marks: dict[str, float] = {}

    def progress(p) -> None:
        marks.setdefault(p.stage, p.elapsed_seconds)

    started = time.monotonic()
    plan = make_plan(scenario, settings, on_progress=progress)
    total = time.monotonic() - started
    report = check_plan(scenario, plan)
    used, changes, mean_rooms = session_rooms(scenario, plan)
    draw_only = sum(1 for v in plan.visits if v.purpose == "blood_draw_trip")
    queue.put({
        "scenario": Path(path).name,
        "rules": rules,
        "wall_s": plan.solver.wall_seconds,
        "over_limit_pct": round(100 * (plan.solver.wall_seconds - limit) / limit, 1),
        "within_5pct_plus_2s": plan.solver.wall_seconds <= 1.05 * limit + 2,
        "stage_s": getattr(plan.solver, "stage_seconds", {}),
        "trips": plan.metrics.visits,
        "draw_only_trips": draw_only,
        "clinician_sessions": used,
        "room_changes": changes,
        "rooms_per_session": round(mean_rooms, 2),
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


def measure(path: Path, limit: float, workers: int, seed: int, rules: dict | None = None) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_one, args=(str(path), limit, workers, seed, rules or {}, queue))
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
    parser.add_argument("--rules", nargs="+", default=[None], metavar="RULE",
                        help="visit_rules.clinician_room_per_session values to run (hard, soft, off).")
    parser.add_argument("--policies", nargs="+", default=[None], metavar="POLICY",
                        help="visit_rules.blood_draw_policy values to run.")
    args = parser.parse_args()
    variants = []
    for rule in args.rules:
        for policy in args.policies:
            chosen = {}
            if rule:
                chosen["clinician_room_per_session"] = rule
            if policy:
                chosen["blood_draw_policy"] = policy
            variants.append(chosen)
    runs = [("practice-month.yaml", [10.0] if args.quick else [10.0, 60.0]),
            ("pcn-month.yaml", [10.0] if args.quick else [60.0, 300.0])]
    if args.only:
        runs = []
        for item in args.only:
            name, _, limit = item.partition(":")
            runs.append((f"{name}-month.yaml", [float(limit or 60)]))
    results = []
    table = []
    for name, limits in runs:
        for limit in limits:
            for rules in variants:
                try:
                    r = measure(ROOT / "sample_rosters" / name, limit, args.workers, args.seed, rules)
                except Exception as exc:  # noqa: BLE001 - a setting this commit does not know
                    print(f"\n== {name} {rules}: not run ({type(exc).__name__}: {exc})")
                    continue
                results.append(r)
                said = ", ".join(f"{k}={v}" for k, v in rules.items()) or "scenario's own rules"
                print(f"\n== {r['scenario']}: {r['patients']} patients, {r['reviews']} reviews, "
                      f"limit {limit:.0f} s, {args.workers} workers, {said}")
                print(f"first valid plan {r['first_valid_plan_s']} s; optimisation {r['wall_s']} s "
                      f"({r['over_limit_pct']:+}% against the limit, "
                      f"{'within' if r['within_5pct_plus_2s'] else 'OVER'} 5% + 2 s); whole run {r['solve_s']} s; "
                      f"checker {'OK' if r['checker_ok'] else 'FAILED: ' + str(r['violations'])}")
                if r["stage_s"]:
                    print("stages: " + ", ".join(f"{k} {v} s" for k, v in r["stage_s"].items()))
                print(f"objective {r['objective']:,}  bound {r['bound']:,}  gap {r['gap_pct']}%  ({r['method']})")
                print(f"peak memory {r['peak_rss_mb']} MB")
                print(f"trips {r['trips']} (draw-only {r['draw_only_trips']}); clinician sessions {r['clinician_sessions']}, "
                      f"room changes {r['room_changes']}, rooms per session {r['rooms_per_session']}")
                print(f"{'':10} {'booked':>7} {'visits/pt':>9} {'single':>7} {'visits':>7} {'draws':>6} {'pt hours':>9}")
                for way, m in r["ways"].items():
                    print(f"{way:10} {m['reviews_booked']:>7} {m['visits_per_patient']:>9} "
                          f"{m['single_visit_share']:>7} {m['visits']:>7} {m['blood_draws']:>6} {m['patient_hours']:>9}")
                table.append(f"| {r['scenario']} | {limit:.0f} s | {said} | {r['wall_s']} s | "
                             f"{r['ways']['onevisit']['reviews_booked']} | {r['trips']} | {r['draw_only_trips']} | "
                             f"{r['rooms_per_session']} | {r['room_changes']} | {r['gap_pct']}% |")
    print("\n| scenario | limit | rules | optimisation wall | booked | trips | draw-only trips | rooms / session "
          "| room changes | gap |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(table))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
