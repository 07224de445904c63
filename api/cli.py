"""The `onevisit` command: the engine's commands plus the service's (serve, db, keys).

`onevisit plan` also keeps the scenario and the checked plan in the database (SQLite file
`onevisit.db` by default), under the organisation `local`, so the service and calendar links can
serve what was planned on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select

from api.config import Settings
from api.db import make_engine, make_sessionmaker, transaction, upgrade
from api.keys import ROLES, create_key, organisation, revoke_key
from api.models import ScenarioRecord
from api.store import add_plan, add_scenario, add_version, scenario_version
from scheduler import cli as engine_cli
from scheduler.domain import Scenario
from scheduler.plan import Plan

app = typer.Typer(add_completion=False, no_args_is_help=True, help="OneVisit: one clinic, one appointment.")
db_app = typer.Typer(no_args_is_help=True, help="The database: SQLite file by default, PostgreSQL via DATABASE_URL.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys for the management API.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
for command in (engine_cli.check, engine_cli.schema, engine_cli.generate):
    app.command()(command)
console = Console()
LOCAL_ORGANISATION = "local"

DatabaseOpt = Annotated[str | None, typer.Option(
    "--database-url", help="Database (default: $DATABASE_URL, else sqlite:///onevisit.db).")]
OrganisationOpt = Annotated[str, typer.Option("--org", help="Organisation the key belongs to.")]


def _url(database_url: str | None) -> str:
    return database_url or Settings.from_env().database_url


def save_plan(url: str, scenario: Scenario, plan: Plan, source: str) -> tuple[ScenarioRecord, int, str, int]:
    """Keep the scenario (a new version only when it changed) and the plan, in one transaction."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            org = organisation(session, LOCAL_ORGANISATION)
            record = session.scalar(select(ScenarioRecord).where(
                ScenarioRecord.organisation_id == org.id, ScenarioRecord.name == scenario.name))
            if record is None:
                version = add_scenario(session, org.id, scenario, source)
                record = session.get(ScenarioRecord, version.scenario_id)
            else:
                version = scenario_version(session, record)
                if version.content != scenario.model_dump(mode="json"):
                    version = add_version(session, record, scenario, source)
            stored = add_plan(session, version, org.id, plan)
            return record, version.version, stored.id, stored.number
    finally:
        engine.dispose()


@app.command()
def plan(
    scenario: engine_cli.PlanArg, out: engine_cli.OutOpt = Path("out"),
    sessions_csv: engine_cli.SessionsOpt = None, due_csv: engine_cli.DueOpt = None,
    time_limit: engine_cli.TimeLimitOpt = None, workers: engine_cli.WorkersOpt = None,
    seed: engine_cli.SeedOpt = None, database_url: DatabaseOpt = None,
    save: Annotated[bool, typer.Option(help="Also keep the scenario and plan in the database.")] = True,
) -> None:
    """Plan consolidated visits for a scenario, check the plan, write it and keep it in the database."""
    loaded, result = engine_cli.plan_and_write(scenario, out, sessions_csv, due_csv, time_limit, workers, seed)
    if save:
        url = _url(database_url)
        record, version, plan_id, number = save_plan(url, loaded, result, scenario.name)
        console.print(f"Saved in {url}: scenario {record.id} version {version}, plan {plan_id} "
                      f"(plan {number} of this scenario), organisation '{LOCAL_ORGANISATION}'.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    database_url: DatabaseOpt = None,
    workers: Annotated[int | None, typer.Option(help="Plans solved at once (default: $ONEVISIT_WORKERS, 2).")] = None,
) -> None:
    """Start the HTTP API (OpenAPI docs at /docs); migrations are applied at start-up."""
    import uvicorn

    from api.app import create_app

    overrides = {k: v for k, v in (("database_url", database_url), ("workers", workers)) if v is not None}
    uvicorn.run(create_app(Settings.from_env(**overrides)), host=host, port=port, log_level="info")


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOpt = None) -> None:
    """Create or migrate the database schema to the latest version."""
    url = _url(database_url)
    upgrade(url)
    console.print(f"Database {url} is up to date.")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    org: OrganisationOpt = LOCAL_ORGANISATION,
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
    database_url: DatabaseOpt = None,
) -> None:
    """Create an API key; it is shown once and stored only as a hash."""
    if role not in ROLES:
        console.print(f"[red]--role must be one of: {', '.join(ROLES)}[/]")
        raise typer.Exit(engine_cli.EXIT_BAD_INPUT)
    url = _url(database_url)
    upgrade(url)
    engine = make_engine(url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            key = create_key(session, org, role, label)
    finally:
        engine.dispose()
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The part after 'ov_' and before the next '_'.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Revoke an API key by its prefix."""
    engine = make_engine(_url(database_url))
    try:
        with transaction(make_sessionmaker(engine)) as session:
            done = revoke_key(session, prefix)
    finally:
        engine.dispose()
    if not done:
        console.print("[red]No active key with that prefix.[/]")
        raise typer.Exit(1)
    console.print("Revoked.")


if __name__ == "__main__":
    app()
