"""`onevisit fhir PLAN --out FILE`: a plan as a FHIR R4 Bundle (docs/fhir.md).

Registered in `api.cli` with `app.command()(fhir)`. This module imports `api.cli` only when the
command runs, so `api.cli` may import it anywhere without an import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli_options import DatabaseOpt

console = Console()

PlanSpec = Annotated[str, typer.Argument(
    metavar="PLAN", help="A plan file (or its folder) or a stored plan id.")]
OutFile = Annotated[Path, typer.Option(
    "--out", help="The file to write: the Bundle as JSON (application/fhir+json).")]


def fhir(plan: PlanSpec, out: OutFile, database_url: DatabaseOpt = None) -> None:
    """Write a plan as a FHIR R4 Bundle of Schedule, Slot and Appointment resources (UK Core
    Appointment), with booking references once the plan has been published."""
    from api.cli import _fail, _url, resolve_plan
    from api.db import make_engine, make_sessionmaker
    from api.fhir_bundle import bundle_json
    from api.routes.fhir import published_references
    from scheduler import cli as engine_cli

    if out.is_dir():
        _fail(f"--out: {out} is a folder; give the file to write, such as {out / 'plan.fhir.json'}")
    url = _url(database_url)
    source = resolve_plan(plan, url)  # exit 2, saying why, when PLAN cannot be read
    if source.scenario is None:
        _fail(f"PLAN: the scenario {plan} was planned from was not found")
    engine_cli.gate_or_exit(source.scenario, source.plan)  # exit 1: no invalid plan leaves the practice
    references: dict[str, str] = {}
    if source.plan_id is not None:  # resolve_plan has brought the database up to date
        engine = make_engine(url)
        try:
            with make_sessionmaker(engine)() as session:
                references = published_references(session, source.plan_id)
        finally:
            engine.dispose()
    body = bundle_json(source.scenario, source.plan, references)
    try:
        engine_cli._write_atomically(out, body.decode("utf-8"))
    except OSError as exc:
        _fail(f"--out: cannot write {out}: {exc}")
    n = len(source.plan.appointments)
    booked = len({v.id for v in source.plan.visits} & references.keys())
    state = (f"with the booking references of {booked} visit(s)" if booked else
             "without booking references (the plan is not a published plan in this database)")
    console.print(f"Wrote {n} appointment(s) as a FHIR R4 Bundle to {out}, {state}.", markup=False)
