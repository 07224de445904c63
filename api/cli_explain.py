"""`onevisit explain PLAN PATIENT`: why a patient's visit is on this day, at this site, with
these clinicians and rooms (docs/explain.md).

Registered in `api.cli` with `app.command()(explain)`. This module imports `api.cli` only when
the command runs, so `api.cli` may import it anywhere without an import cycle. The engine side
(`scheduler.explain`) has no database import; finding a stored plan is done here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli_options import DatabaseOpt

console = Console()

PlanSpec = Annotated[str, typer.Argument(
    metavar="PLAN", help="A plan file (or its folder), a stored plan id, or a stored plan's number.")]
PatientArg = Annotated[str, typer.Argument(metavar="PATIENT", help="The patient id, as in the plan.")]
ScenarioOpt = Annotated[Path | None, typer.Option(
    "--scenario", help="The scenario the plan file was planned from (default: scenario.yaml beside it, "
                       "else the stored version it names).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the explanation as JSON (docs/explain.md).")]
BudgetOpt = Annotated[float, typer.Option(
    "--budget", min=0.5, max=60, help="Seconds to spend at most on alternatives and changes.")]


def explain(plan: PlanSpec, patient: PatientArg, scenario: ScenarioOpt = None, json: JsonOpt = False,
            budget: BudgetOpt = 4.0, database_url: DatabaseOpt = None) -> None:
    """Explain a patient's visit: the rules that limited the day, site, clinician and room, the
    next-best alternatives and what they would cost, and for a split or unbooked patient the
    smallest change that gives one visit."""
    from api.cli import _fail, _plan_only, _url, resolve_plan
    from scheduler import cli as engine_cli
    from scheduler.explain import ExplainError, explain_patient
    from scheduler.explain.cli import render

    path = Path(plan)
    if scenario is not None:
        if not (path.is_file() or path.is_dir()):
            _fail(f"PLAN: {plan} is not a plan file (nor a folder holding plan.json); --scenario goes with a plan file")
        if not scenario.is_file():
            _fail(f"--scenario: {scenario} is not a file")
        loaded = engine_cli._load(scenario)  # exit 2, listing every problem
        the_plan = _plan_only(plan, _url(database_url))  # exit 2 when it is not a readable plan
    else:
        url = _url(database_url)
        spec = plan
        if plan.isdigit() and not path.exists():
            spec = _plan_by_number(int(plan), url)
        source = resolve_plan(spec, url)  # exit 2, saying why, when PLAN cannot be read
        if source.scenario is None:
            _fail(f"PLAN: the scenario {plan} was planned from was not found; give it with --scenario")
        loaded, the_plan = source.scenario, source.plan
    try:
        result = explain_patient(loaded, the_plan, patient, budget_seconds=budget)
    except ExplainError as exc:
        _fail(f"Cannot explain {patient}: {exc}")
    if json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        render(result, console)


def _plan_by_number(number: int, url: str) -> str:
    """The id of the stored plan with this number ("plan 3 of this scenario"); exit 2 when no
    plan or several scenarios' plans have it."""
    from sqlalchemy import select

    from api.cli import _fail, _session_for
    from api.db import make_sessionmaker
    from api.models import PlanRecord

    engine = _session_for(url)
    try:
        with make_sessionmaker(engine)() as session:
            records = session.scalars(select(PlanRecord).where(PlanRecord.number == number)
                                      .order_by(PlanRecord.created_at.desc())).all()
            ids = [(r.id, r.scenario_id) for r in records]
    finally:
        engine.dispose()
    if not ids:
        _fail(f"PLAN: no plan number {number} in {url}")
    if len({scenario for _, scenario in ids}) > 1:
        _fail(f"PLAN: plan number {number} exists for {len(ids)} scenarios in {url}; give the plan id: "
              + ", ".join(plan_id for plan_id, _ in ids[:5]))
    return ids[0][0]
