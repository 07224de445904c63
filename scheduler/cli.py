"""The `onevisit` command line: plan, check, schema, generate."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scheduler import plan_gate
from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario, SolverSettings
from scheduler.plan import Plan
from scheduler.planner import PlanningProgress, make_plan
from scheduler.scenario_io import ScenarioError, load_scenario, scenario_json_schema

app = typer.Typer(add_completion=False, no_args_is_help=True, help="OneVisit: one clinic, one appointment.")
console = Console()
errors = Console(stderr=True)

STAGES = {  # what the progress bar says during each stage of planning
    "greedy": "greedy plan ready",
    "solving": "CP-SAT master (relaxed objective)",
    "timetabling": "timetabling days",
    "compacting": "compacting visits",
    "replanning": "re-planning around the visits that stand",
    "baselines": "old-way baseline",
    "done": "done",
}
EXIT_BAD_INPUT = 2
EXIT_INVALID_PLAN = 1


def _load(path: Path, sessions_csv: Path | None = None, due_csv: Path | None = None) -> Scenario:
    try:
        return load_scenario(path, sessions_csv=sessions_csv, due_reviews_csv=due_csv)
    except ScenarioError as exc:
        errors.print(f"[bold red]{len(exc.problems)} problem(s) in the input; nothing was written.[/]")
        for problem in exc.problems:
            errors.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _write_atomically(path: Path, text: str) -> None:
    """Write beside the target and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; a plan is an ordinary file
    os.replace(tmp, path)


def appointments_csv(plan: Plan) -> str:
    """Clinician lists as a spreadsheet: one row per appointment, sorted by day and start."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", "start", "end", "site_id", "room_id", "clinician_ids", "patient_id",
                     "visit_id", "appointment_id", "kind", "review_ids", "blood_marker_ids"])
    for a in plan.appointments:
        writer.writerow([a.date.isoformat(), a.start.strftime("%H:%M"), a.end.strftime("%H:%M"), a.site_id,
                         a.room_id, ";".join(a.clinician_ids), a.patient_id, a.visit_id, a.id, a.kind,
                         ";".join(a.review_ids), ";".join(a.blood_marker_ids)])
    return out.getvalue()


def summary_table(plan: Plan) -> Table:
    old, greedy, m = plan.baselines.get("old_way"), plan.baselines.get("greedy"), plan.metrics
    table = Table(title=f"{plan.scenario_name}: before and after")
    for column in ("", "Old way", "Greedy", "OneVisit plan"):
        table.add_column(column, justify="right" if column else "left")
    rows = [
        ("Patients", "patients", "{}"),
        ("Reviews due", "reviews", "{}"),
        ("Reviews booked", "reviews_booked", "{}"),
        ("Appointments", "appointments", "{}"),
        ("Trips (visits)", "visits", "{}"),
        ("  of which blood-draw trips", "draw_trips", "{}"),
        ("Blood draws", "blood_draws", "{}"),
        ("Visits per patient", "visits_per_patient", "{:.2f}"),
        # Two figures, so the headline never seems to contradict "visits per patient": the
        # first allows a separate blood-draw trip, the second counts it.
        ("All reviews in one visit", "single_visit_share", "{:.1%}"),
        ("One trip in all, draw included", "one_trip_share", "{:.1%}"),
        ("Continuity with named clinician", "continuity_rate", "{:.1%}"),
        ("Patient hours (travel + visit)", "patient_hours", "{:.1f}"),
        ("Waiting between steps (min)", "patient_wait_minutes", "{}"),
        ("  per visit of two or more steps", "wait_minutes_per_multi_step_visit", "{:.1f}"),
        ("Clinician minutes", "clinician_minutes", "{}"),
        # What publishing sends, by each patient's contact_preference: one per visit per channel.
        ("Messages: calendar invites", "messages_calendar", "{}"),
        ("  SMS texts", "messages_sms", "{}"),
        ("  letters", "messages_letter", "{}"),
    ]
    for label, field, fmt in rows:
        cells = [fmt.format(getattr(x, field)) if x else "-" for x in (old, greedy, m)]
        table.add_row(label, *cells)
    return table


def print_summary(plan: Plan) -> None:
    console.print(summary_table(plan))
    c = plan.comparison
    if c:
        console.print(
            f"Saved against the old way: {c.appointments_saved} appointments, {c.trips_saved} trips, "
            f"{c.blood_draws_saved} blood draws, {c.patient_hours_saved:.1f} patient hours, "
            f"{c.clinician_minutes_saved} clinician minutes through shared review components."
        )
    s = plan.solver
    source = f" (from the {s.bound_source.replace('_', ' ')})" if s.bound_source else ""
    console.print(
        f"Solver: {s.status} via {s.method}; objective {s.objective}, bound {s.best_bound}{source}, "
        f"gap {s.gap:.2%}, {s.wall_seconds:.1f} s on {s.workers} worker(s), seed {s.seed}.",
        markup=False,
    )
    if s.bound_scope:
        console.print(f"The bound is {s.bound_scope[0].lower()}{s.bound_scope[1:]}", markup=False)
    if plan.unbooked:
        console.print(f"[bold yellow]{len(plan.unbooked)} review(s) not booked:[/]")
        for u in plan.unbooked:
            console.print(f"  {u.patient_id} {u.review_id}: {u.reason} - {u.detail}", markup=False)
    else:
        console.print("[green]Every due review is booked.[/]")


PlanArg = Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON).")]
OutOpt = Annotated[Path, typer.Option(help="Folder for plan.json and appointments.csv.")]
SessionsOpt = Annotated[Path | None, typer.Option(help="Roster sessions CSV to add.")]
DueOpt = Annotated[Path | None, typer.Option(help="Due reviews CSV (recall search export).")]
TimeLimitOpt = Annotated[float | None, typer.Option(help="Seconds for CP-SAT (default: scenario).")]
WorkersOpt = Annotated[int | None, typer.Option(help="CP-SAT workers (default: scenario, 2).")]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed (default: scenario).")]


def solver_settings(scenario: Scenario, time_limit: float | None, workers: int | None,
                    seed: int | None) -> SolverSettings:
    """The scenario's solver settings with the command line's overrides; bad values print what
    is wrong with each option and raise typer.Exit(2)."""
    overrides = {k: v for k, v in (("time_limit_seconds", time_limit), ("workers", workers), ("seed", seed)) if v is not None}
    try:
        return SolverSettings.model_validate({**scenario.solver.model_dump(), **overrides})
    except ValidationError as exc:
        for error in exc.errors():
            errors.print(f"--{str(error['loc'][0]).replace('_seconds', '').replace('_', '-')}: {error['msg']}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def with_progress(settings: SolverSettings, work: Callable[[Callable[[PlanningProgress], None]], Plan]) -> Plan:
    """Run `work(on_progress)` under a progress bar: stage, time against the limit, objective and
    proven bound as they improve."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
               TextColumn("objective {task.fields[objective]}  proven bound {task.fields[bound]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("planning", total=settings.time_limit_seconds, objective="-", bound="-")

        def show(p: PlanningProgress) -> None:
            fields = {}
            if p.objective is not None:
                fields["objective"] = f"{p.objective:,.0f}"
            if p.bound is not None:
                fields["bound"] = f"{p.bound:,.0f}"
            done = p.time_limit_seconds if p.stage in ("baselines", "done") else min(p.elapsed_seconds, p.time_limit_seconds)
            bar.update(task, description=STAGES.get(p.stage, p.stage), completed=done, **fields)

        return work(show)


def print_roster_warnings(loaded: Scenario, scenario: Path, sessions_csv: Path | None) -> None:
    """Name each roster session the planner will not use, and why (scheduler.scenario_io.accounting)."""
    from scheduler.scenario_io.accounting import session_origins, unused_sessions

    unused = unused_sessions(loaded, scenario.name, session_origins(loaded, sessions_csv))
    if unused:
        console.print(f"{len(unused)} roster session(s) will not be used:", markup=False, highlight=False, soft_wrap=True)
    for warning in unused:
        console.print(f"  warning: {warning}", markup=False, highlight=False, soft_wrap=True)


def solve_scenario(scenario: Path, sessions_csv: Path | None, due_csv: Path | None, time_limit: float | None,
                   workers: int | None, seed: int | None) -> tuple[Scenario, Plan]:
    """Load the scenario (with CSV imports) and plan it with a progress bar; nothing is checked or written.

    Returns (scenario, plan). Bad input or solver options print every problem and raise
    typer.Exit(2).
    """
    loaded = _load(scenario, sessions_csv, due_csv)
    print_roster_warnings(loaded, scenario, sessions_csv)
    settings = solver_settings(loaded, time_limit, workers, seed)
    return loaded, with_progress(settings, lambda show: make_plan(loaded, settings, on_progress=show))


def gate_or_exit(scenario: Scenario, plan: Plan) -> None:
    """Run the independent check (`scheduler.plan_gate.gate_plan`); a plan that fails it prints
    every violation to stderr and raises typer.Exit(1), before anything is written or kept."""
    try:
        plan_gate.gate_plan(scenario, plan)
    except plan_gate.PlanRejected as rejected:
        errors.print("[bold red]The plan failed the independent check; nothing was written.[/]")
        errors.print(rejected.details(), markup=False)
        raise typer.Exit(EXIT_INVALID_PLAN) from None


def write_files(scenario: Scenario, plan: Plan, out: Path, extra: dict[str, str] | None = None) -> None:
    """Write `out`/plan.json, appointments.csv and scenario.yaml (the scenario planned, so the
    plan file leads back to it), plus `extra` (file name -> text), each atomically; then print
    the summary. Only for a plan that passed `gate_or_exit`."""
    from scheduler.generate.files import scenario_yaml

    _write_atomically(out / "plan.json", plan.model_dump_json(indent=2))
    _write_atomically(out / "appointments.csv", appointments_csv(plan))
    _write_atomically(out / "scenario.yaml", scenario_yaml(
        scenario, header=f"The scenario {out / 'plan.json'} was planned from (written by onevisit)."))
    for name, text in (extra or {}).items():
        _write_atomically(out / name, text)
    print_summary(plan)
    names = ", ".join(str(out / n) for n in ("plan.json", "appointments.csv", "scenario.yaml", *(extra or {})))
    console.print(f"Wrote {names} (checked: no violations).", markup=False)


def write_checked(scenario: Scenario, plan: Plan, out: Path) -> None:
    """The command line's post-solve step: gate the plan (`gate_or_exit`), then write it
    (`write_files`). A plan that fails the check raises typer.Exit(1) and leaves `out`
    untouched (not even created)."""
    gate_or_exit(scenario, plan)
    write_files(scenario, plan, out)


def plan_and_write(scenario: Path, out: Path, sessions_csv: Path | None, due_csv: Path | None,
                   time_limit: float | None, workers: int | None, seed: int | None) -> tuple[Scenario, Plan]:
    """Load, plan with a progress bar, gate, write the files and print the summary.

    Returns (scenario, plan) once written. Raises typer.Exit(2) on bad input, typer.Exit(1) when
    the plan fails the independent check (nothing written).
    """
    loaded, result = solve_scenario(scenario, sessions_csv, due_csv, time_limit, workers, seed)
    write_checked(loaded, result, out)
    return loaded, result


@app.command()
def plan(scenario: PlanArg, out: OutOpt = Path("out"), sessions_csv: SessionsOpt = None, due_csv: DueOpt = None,
         time_limit: TimeLimitOpt = None, workers: WorkersOpt = None, seed: SeedOpt = None) -> None:
    """Plan consolidated visits for a scenario, check the plan, and write it."""
    plan_and_write(scenario, out, sessions_csv, due_csv, time_limit, workers, seed)


@app.command()
def check(
    scenario: Annotated[Path, typer.Argument(help="Scenario file the plan was made from.")],
    plan_file: Annotated[Path, typer.Argument(metavar="PLAN", help="plan.json to verify.")],
    sessions_csv: Annotated[Path | None, typer.Option(help="Roster sessions CSV the plan used.")] = None,
    due_csv: Annotated[Path | None, typer.Option(help="Due reviews CSV the plan used.")] = None,
) -> None:
    """Verify every hard rule and recompute the metrics of a plan; exit 1 on any violation."""
    loaded = _load(scenario, sessions_csv, due_csv)
    try:
        parsed = Plan.model_validate_json(plan_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        errors.print(f"{plan_file}: not a readable plan: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    report = check_plan(loaded, parsed)
    console.print(format_report(report), markup=False)
    raise typer.Exit(0 if report.ok else EXIT_INVALID_PLAN)


@app.command()
def schema() -> None:
    """Print the scenario format's JSON Schema."""
    console.print_json(json.dumps(scenario_json_schema()))


@app.command()
def generate(
    kind: Annotated[str, typer.Argument(help="practice or pcn")],
    out: Annotated[Path, typer.Option(help="Scenario file to write (YAML).")],
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD (a Monday).")] = "2027-05-03",
    weeks: Annotated[int, typer.Option(help="Weeks in the planning period.")] = 4,
    patients: Annotated[int | None, typer.Option(help="Patients due (default: realistic for the kind).")] = None,
    load: Annotated[
        float | None,
        typer.Option(
            help="Demand as a share of the roster's capacity, 0.1-5 (standalone review and blood-draw "
            "minutes / valid session minutes); scales the patients. Not with --patients."
        ),
    ] = None,
) -> None:
    """Generate a realistic scenario for benchmarks and demos."""
    from scheduler.generate import (
        MAX_LOAD,
        MIN_LOAD,
        generate_scenario,
        generation_header,
        scenario_load,
        write_scenario,
    )

    if kind not in ("practice", "pcn"):
        errors.print(f"kind: expected 'practice' or 'pcn', got {kind!r}")
        raise typer.Exit(EXIT_BAD_INPUT)
    if load is not None and patients is not None:
        errors.print("--load and --patients: give one or the other (--load sets the number of patients)")
        raise typer.Exit(EXIT_BAD_INPUT)
    if load is not None and not MIN_LOAD <= load <= MAX_LOAD:
        errors.print(f"--load: expected a share of capacity between {MIN_LOAD:g} and {MAX_LOAD:g}, got {load:g}")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        first_day = dt.date.fromisoformat(start)
    except ValueError:
        errors.print(f"--start: expected a date as YYYY-MM-DD, got {start!r}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    chosen: Literal["practice", "pcn"] = kind  # type: ignore[assignment]
    try:
        scenario = generate_scenario(chosen, seed=seed, start=first_day, weeks=weeks, patients=patients, load=load)
    except ValueError as exc:
        errors.print(f"generate: {exc}", markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    achieved = scenario_load(scenario) if load is not None else None
    header = generation_header(
        chosen, seed=seed, start=first_day, weeks=weeks, patients=patients, out=out, load=load, achieved_load=achieved
    )
    write_scenario(scenario, out, header=header)
    reviews = sum(len(p.due_reviews) for p in scenario.patients)
    loaded = f" Load {achieved:.3f} of roster capacity (asked {load:g})." if achieved is not None else ""
    console.print(
        f"Wrote {out}: {len(scenario.patients)} patients, {reviews} reviews, {len(scenario.sessions)} sessions.{loaded}"
    )

@app.command()
def capacity(
    study: Annotated[Path, typer.Argument(help="Capacity study file, YAML or JSON (docs/capacity.md).")],
    out: Annotated[Path, typer.Option(help="Folder for report.html, figures.csv, report.json and the plots.")],
    time_limit: Annotated[float | None, typer.Option(help="Seconds per solve (default: the study's).")] = None,
    workers: Annotated[int, typer.Option(help="Solves at once (local processes, or a local Dask cluster's workers).")] = 2,
    dask: Annotated[str | None, typer.Option(
        help="Solve on Dask: a scheduler address (tcp://host:8786), or 'local' to start a LocalCluster.")] = None,
) -> None:
    """Solve a capacity study's base and variants side by side and write its report."""
    from scheduler.capacity.outcome import run_study
    from scheduler.capacity.report import write_report
    from scheduler.capacity.run import DaskMissing
    from scheduler.capacity.study import StudyError, load_study

    if time_limit is not None and not 1 <= time_limit <= 3600:
        errors.print(f"--time-limit: expected 1 to 3600 seconds per solve, got {time_limit:g}")
        raise typer.Exit(EXIT_BAD_INPUT)
    if not 1 <= workers <= 64:
        errors.print(f"--workers: expected 1 to 64 solves at once, got {workers}")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        loaded, base = load_study(study)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} solves"),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("solving variants", total=None)

            def show(done: int, total: int, name: str) -> None:
                bar.update(task, total=total, completed=done, description=f"solved {name[:60]}")

            outcome = run_study(loaded, base, time_limit_seconds=time_limit, processes=workers, dask=dask,
                                on_progress=show, source=study.name)
    except StudyError as exc:
        errors.print(f"[bold red]{len(exc.problems)} problem(s) in the study; nothing was solved.[/]")
        for problem in exc.problems:
            errors.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except DaskMissing as exc:
        errors.print(str(exc), markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    written = write_report(outcome, out)
    failed = [v for v in outcome.variants if v.error]
    console.print(f"Solved {len(outcome.variants)} variant(s) ({len(failed)} failed) and "
                  f"{sum(len(r) for r in outcome.bottlenecks.values())} bottleneck candidate(s); "
                  f"wrote {', '.join(str(p) for p in written)}.", markup=False)


if __name__ == "__main__":
    app()
