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
from api.models import PlanRecord, ScenarioRecord
from api.store import add_plan, add_scenario, add_version, label, scenario_version
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
    """Keep the scenario (a new version only when it changed) and the plan, in one transaction.

    Does not check the plan: callers pass only a plan the gate has passed (`write_and_keep`).
    Returns (scenario record, version number, plan id, plan number within the scenario).
    """
    upgrade(url)
    engine = make_engine(url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            org = organisation(session, LOCAL_ORGANISATION)
            record = session.scalar(select(ScenarioRecord).where(
                ScenarioRecord.organisation_id == org.id, ScenarioRecord.name == label(scenario.name)))
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
    loaded, result = engine_cli.solve_scenario(scenario, sessions_csv, due_csv, time_limit, workers, seed)
    write_and_keep(loaded, result, out, _url(database_url) if save else None, scenario.name)


def write_and_keep(scenario: Scenario, plan: Plan, out: Path, url: str | None, source: str) -> None:
    """The `plan` command's post-solve step: gate the plan, write `out`/plan.json and
    appointments.csv, then keep the scenario and plan in the database at `url` (None: not kept).

    The gate runs first (inside `engine_cli.write_checked`): a plan that fails the independent
    check raises typer.Exit(1) before any file is written or the database is opened.
    `source` is the scenario's file name, recorded on a new scenario version.
    """
    engine_cli.write_checked(scenario, plan, out)
    if url is None:
        return
    record, version, plan_id, number = save_plan(url, scenario, plan, source)
    console.print(f"Saved in {url}: scenario {record.id} version {version}, plan {plan_id} "
                  f"(plan {number} of this scenario), organisation '{LOCAL_ORGANISATION}'.")


def _session_for(database_url: str | None):
    url = _url(database_url)
    upgrade(url)
    return make_engine(url)


def _plan_record(session, plan_id: str | None):
    query = select(PlanRecord).order_by(PlanRecord.created_at.desc())
    record = session.scalar(query.where(PlanRecord.id == plan_id) if plan_id else query)
    if record is None:
        console.print(f"[red]No plan {plan_id or 'at all'} in the database.[/]")
        raise typer.Exit(engine_cli.EXIT_BAD_INPUT)
    return record


PlanIdArg = Annotated[str | None, typer.Argument(help="Plan id (default: the newest plan).")]


@app.command()
def publish(plan_id: PlanIdArg = None, database_url: DatabaseOpt = None) -> None:
    """Publish a plan: patients' invites, updates and cancellations follow from it."""
    from api.errors import ApiError
    from api.publish import publish as publish_plan

    engine = _session_for(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            record = _plan_record(session, plan_id)
            try:
                result = publish_plan(session, record)
            except ApiError as exc:
                console.print(f"[red]{exc.message}[/]")
                raise typer.Exit(engine_cli.EXIT_BAD_INPUT) from None
    finally:
        engine.dispose()
    counts = ", ".join(f"{n} {action}" for action, n in result.counts.items())
    console.print(f"Published plan {result.plan_id}: invites {counts}.")


@app.command()
def ics(
    plan_id: PlanIdArg = None,
    out: Annotated[Path, typer.Option(help="Folder for invites/, clinicians/ and rooms/.")] = Path("out/calendars"),
    database_url: DatabaseOpt = None,
) -> None:
    """Write a published plan's calendar files: each patient invite (or cancellation) it sent,
    and a feed per clinician and per room."""
    from api.calendar import clinician_feed, room_feed
    from api.models import ScenarioVersion
    from api.publish import download_address, identity, invite_file, latest_publication
    from api.store import plan_of, scenario_of

    settings = Settings.from_env()
    engine = _session_for(database_url)
    files: dict[Path, bytes] = {}
    try:
        with make_sessionmaker(engine)() as session:
            record = _plan_record(session, plan_id)
            if record.published_at is None:
                console.print(f"[red]Plan {record.id} is not published; run `onevisit publish {record.id}` first.[/]")
                raise typer.Exit(engine_cli.EXIT_BAD_INPUT)
            scenario = scenario_of(session.get(ScenarioVersion, record.scenario_version_id))
            plan = plan_of(record)
            rows = session.execute(latest_publication(record.id)).all()
            current = {}
            for pub, event in rows:
                if pub.action != "cancel":
                    current[event.visit_id] = identity(event)
                if not event.sensitive:
                    files[out / "invites" / f"{event.reference}.ics"] = invite_file(
                        session, event, settings.organiser, download_address(event.reference, settings.organiser))
            for clinician in scenario.clinicians:
                files[out / "clinicians" / f"{clinician.id}.ics"] = clinician_feed(
                    scenario, plan, clinician.id, current, calendar_name="OneVisit clinic list")
            for room in scenario.rooms:
                files[out / "rooms" / f"{room.id}.ics"] = room_feed(
                    scenario, plan, room.id, current, calendar_name=f"OneVisit room {room.name or room.id}")
    finally:
        engine.dispose()
    for path, body in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    invites = sum(1 for p in files if p.parent.name == "invites")
    console.print(f"Wrote {invites} patient invite(s) and {len(files) - invites} feed(s) under {out}.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    database_url: DatabaseOpt = None,
    workers: Annotated[int | None, typer.Option(help="Plans solved at once (default: $ONEVISIT_WORKERS, 2).")] = None,
) -> None:
    """Start the HTTP API (OpenAPI docs at /docs); migrations are applied at start-up.

    SIGTERM or Ctrl-C stops it within about ONEVISIT_SHUTDOWN_SECONDS (default 5): requests still
    open then (a slow upload, an event stream) are cancelled, and running solves are stopped and
    marked failed with code `interrupted`.
    """
    import uvicorn

    from api.app import create_app

    overrides = {k: v for k, v in (("database_url", database_url), ("workers", workers)) if v is not None}
    try:
        settings = Settings.from_env(**overrides)
    except ValueError as exc:  # a bad ONEVISIT_* variable: say which, no traceback
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(engine_cli.EXIT_BAD_INPUT) from None
    # Without a graceful-shutdown timeout uvicorn waits for every open request however long it
    # takes, so one stalled client could keep a stopping server alive indefinitely.
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                timeout_graceful_shutdown=settings.shutdown_seconds)


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
