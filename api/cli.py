"""The `onevisit` command: the engine's commands plus the service's (serve, db, keys).

`onevisit plan` also keeps the scenario and the checked plan in the database (SQLite file
`onevisit.db` by default), under the organisation `local`, so the service and calendar links can
serve what was planned on the command line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from sqlalchemy import select

from api.audit import begin_command, reset_context
from api.audit import current as current_audit
from api.cli_audit import audit_app
from api.cli_explain import explain
from api.cli_fhir import fhir
from api.cli_messages import messages
from api.cli_options import DatabaseOpt
from api.config import Settings
from api.db import make_engine, make_sessionmaker, transaction, upgrade
from api.keys import ROLES, create_key, organisation, revoke_key
from api.models import PlanRecord, ScenarioRecord
from api.store import add_plan, add_scenario, add_version, label, plan_of, scenario_version
from api.web.sessions import LINK_MINUTES
from scheduler import cli as engine_cli
from scheduler.domain import Scenario
from scheduler.plan import Plan
from scheduler.recall.cli import import_recall

app = typer.Typer(add_completion=False, no_args_is_help=True, help="OneVisit: one clinic, one appointment.")
db_app = typer.Typer(no_args_is_help=True, help="The database: SQLite file by default, PostgreSQL via DATABASE_URL.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys for the management API.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")


@app.callback()
def _audited(ctx: typer.Context) -> None:
    """Every command's database writes are recorded as the operating-system user's (api/audit.py)."""
    token = begin_command(f"onevisit {ctx.invoked_subcommand or ''}".strip())
    ctx.call_on_close(lambda: reset_context(token))


def _group_command(ctx: typer.Context) -> None:
    """In a command group (keys, db, audit): the entry names the command too, 'onevisit keys create'."""
    context = current_audit()
    if context is not None and ctx.invoked_subcommand:
        context.action = f"{context.action} {ctx.invoked_subcommand}"


for _group in (db_app, keys_app, audit_app):
    _group.callback()(_group_command)
for command in (engine_cli.schema, engine_cli.generate, engine_cli.capacity):
    app.command()(command)
app.command()(fhir)
app.command()(explain)
app.command()(messages)
app.command()(import_recall)
console = Console()
LOCAL_ORGANISATION = "local"

OrganisationOpt = Annotated[str, typer.Option("--org", help="Organisation the key belongs to.")]


def _url(database_url: str | None) -> str:
    return database_url or Settings.from_env().database_url


def save_plan(url: str, scenario: Scenario, plan: Plan, source: str,
              scenario_id: str | None = None) -> tuple[ScenarioRecord, int, Plan, int]:
    """Keep the scenario (a new version only when it changed) and the plan, in one transaction.

    The scenario is the one with `scenario_id` when given (a re-plan adds a version to the
    scenario it came from), else the organisation's scenario of the same name, else a new one.
    Does not check the plan: callers pass only a plan the gate has passed (`write_and_keep`).
    Returns (scenario record, version number, the plan as stored (its `stored` filled in), plan
    number within the scenario).
    """
    upgrade(url)
    engine = make_engine(url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            org = organisation(session, LOCAL_ORGANISATION)
            record = None
            if scenario_id is not None:
                record = session.get(ScenarioRecord, scenario_id)
                record = record if record is not None and record.organisation_id == org.id else None
            if record is None:
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
            return record, version.version, plan_of(stored), stored.number
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


def write_and_keep(scenario: Scenario, plan: Plan, out: Path, url: str | None, source: str,
                   scenario_id: str | None = None, extra: Callable[[Plan], dict[str, str]] | None = None) -> Plan:
    """The post-solve step of `plan` and `replan`: gate the plan, keep the scenario and plan in
    the database at `url` (None: not kept), then write `out`/plan.json (naming the stored plan,
    its scenario and version), appointments.csv, scenario.yaml and `extra(plan)`.

    The gate (`engine_cli.gate_or_exit`) runs first: a plan that fails the independent check
    raises typer.Exit(1) before any file is written or the database is opened. `source` is
    recorded on a new scenario version; `scenario_id` is passed to `save_plan`. Returns the plan
    as written.
    """
    engine_cli.gate_or_exit(scenario, plan)
    saved = None
    if url is not None:
        record, version, plan, number = save_plan(url, scenario, plan, source, scenario_id)
        saved = (f"Saved in {url}: scenario {record.id} version {version}, plan {plan.stored.plan_id} "
                 f"(plan {number} of this scenario), organisation '{LOCAL_ORGANISATION}'.")
    engine_cli.write_files(scenario, plan, out, extra(plan) if extra else None)
    if saved:
        console.print(saved, markup=False)
    return plan


def _session_for(database_url: str | None):
    url = _url(database_url)
    upgrade(url)
    return make_engine(url)


@dataclass(frozen=True)
class PlanSource:
    """A PLAN argument resolved: the plan, the scenario it was planned from (None when neither
    beside the file nor in the database), where it is stored (None: not in this database), and
    the booking references its scenario's calendars use (reference -> visit id)."""

    plan: Plan
    scenario: Scenario | None
    plan_id: str | None = None
    scenario_id: str | None = None
    references: dict[str, str] = field(default_factory=dict)


def _fail(message: str) -> NoReturn:
    engine_cli.errors.print(message, markup=False)
    raise typer.Exit(engine_cli.EXIT_BAD_INPUT)


def resolve_plan(spec: str, url: str) -> PlanSource:
    """A plan file (plan.json, or a folder holding one) or a stored plan id, with its scenario.

    For a file, the scenario is the `scenario.yaml` beside it, else the stored scenario version
    its `stored` field names; a stored id reads both from the database at `url`. Prints what is
    wrong and raises typer.Exit(2) when neither is found or a file cannot be read.
    """
    path = Path(spec)
    if path.is_dir():
        path = path / "plan.json"
    if path.is_file():
        try:
            plan = Plan.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            _fail(f"{path}: not a readable plan: {exc}")
        beside = path.parent / "scenario.yaml"
        scenario = engine_cli._load(beside) if beside.is_file() else None
        stored = _stored(plan.stored.plan_id, url) if plan.stored else None
        if stored is None:
            if scenario is None:
                _fail(f"{path}: no scenario.yaml beside it, and the plan is not in {url}")
            return PlanSource(plan, scenario)
        return PlanSource(plan, scenario or stored.scenario, stored.plan_id, stored.scenario_id, stored.references)
    if path.suffix or "/" in spec:
        _fail(f"PLAN: {spec} is not a plan file (nor a folder holding plan.json)")
    stored = _stored(spec, url)
    if stored is None:
        _fail(f"PLAN: {spec} is neither a plan file nor a plan stored in {url}")
    return stored


def _stored(plan_id: str, url: str) -> PlanSource | None:
    from api.models import ScenarioVersion
    from api.store import booking_references, scenario_of

    engine = _session_for(url)
    try:
        with make_sessionmaker(engine)() as session:
            record = session.get(PlanRecord, plan_id)
            if record is None:
                return None
            scenario = scenario_of(session.get(ScenarioVersion, record.scenario_version_id))
            return PlanSource(plan_of(record), scenario, record.id, record.scenario_id,
                              booking_references(session, record.scenario_id))
    finally:
        engine.dispose()


def _plan_record(session, plan_id: str | None):
    if plan_id is not None and (Path(plan_id).is_file() or Path(plan_id).is_dir()):
        path = Path(plan_id) / "plan.json" if Path(plan_id).is_dir() else Path(plan_id)
        try:
            stored = Plan.model_validate_json(path.read_text(encoding="utf-8")).stored
        except (OSError, ValueError) as exc:
            _fail(f"{path}: not a readable plan: {exc}")
        if stored is None:
            _fail(f"{path}: the plan was never saved in a database (planned with --no-save)")
        plan_id = stored.plan_id
    query = select(PlanRecord).order_by(PlanRecord.created_at.desc())
    record = session.scalar(query.where(PlanRecord.id == plan_id) if plan_id else query)
    if record is None:
        console.print(f"[red]No plan {plan_id or 'at all'} in the database.[/]")
        raise typer.Exit(engine_cli.EXIT_BAD_INPUT)
    return record


PlanIdArg = Annotated[str | None, typer.Argument(
    metavar="[PLAN]", help="A plan file (or its folder) or a stored plan id (default: the newest plan).")]
PlanSpecArg = Annotated[str, typer.Argument(metavar="PLAN", help="A plan file (or its folder) or a stored plan id.")]


@app.command()
def replan(
    plan_spec: PlanSpecArg,
    disruptions: Annotated[Path, typer.Option(help="Disruptions file, YAML or JSON (docs/replan.md).")],
    out: Annotated[Path, typer.Option(help="Folder for plan.json, scenario.yaml, diff.json and appointments.csv.")],
    as_of: Annotated[str | None, typer.Option(
        help="Re-plan as of this moment, ISO 8601 (local Europe/London unless it has an offset); default now.")] = None,
    time_limit: engine_cli.TimeLimitOpt = None, workers: engine_cli.WorkersOpt = None,
    seed: engine_cli.SeedOpt = None, database_url: DatabaseOpt = None,
    save: Annotated[bool, typer.Option(help="Also keep the new scenario version and plan in the database.")] = True,
) -> None:
    """Re-plan after disruptions, moving only what must move; writes the new plan, its scenario
    and the diff against PLAN."""
    from scheduler.diff import diff_plans, format_diff
    from scheduler.disruptions import DisruptionError, load_disruptions
    from scheduler.replan import prepare
    from scheduler.replan import replan as replan_plan

    url = _url(database_url)
    source = resolve_plan(plan_spec, url)
    if source.scenario is None:
        _fail(f"PLAN: the scenario {plan_spec} was planned from was not found")
    moment = None
    if as_of is not None:
        try:
            moment = dt.datetime.fromisoformat(as_of)
        except ValueError:
            _fail(f"--as-of: expected a date and time such as 2027-03-23T09:00, got {as_of!r}")
    try:
        entries = load_disruptions(disruptions)
        prepared = prepare(source.scenario, source.plan, entries, as_of=moment, references=source.references)
    except DisruptionError as exc:
        engine_cli.errors.print(f"[bold red]{len(exc.problems)} problem(s) in the disruptions; nothing was written.[/]")
        for problem in exc.problems:
            engine_cli.errors.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(engine_cli.EXIT_BAD_INPUT) from None
    settings = engine_cli.solver_settings(prepared.scenario, time_limit, workers, seed)
    new = engine_cli.with_progress(settings, lambda show: replan_plan(
        prepared, source.plan, settings, previous_plan_id=source.plan_id, on_progress=show))
    kept = write_and_keep(
        prepared.scenario, new, out, url if save else None, f"replan of {plan_spec} with {disruptions.name}",
        scenario_id=source.scenario_id,
        extra=lambda stored: {"diff.json": diff_plans(source.plan, stored).model_dump_json(indent=2)})
    console.print(format_diff(diff_plans(source.plan, kept)), markup=False, highlight=False)


@app.command()
def diff(
    old: Annotated[str, typer.Argument(metavar="OLD", help="The earlier plan: a plan file or a stored plan id.")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="The later plan: a plan file or a stored plan id.")],
    out: Annotated[Path | None, typer.Option(help="Also write the diff as JSON to this file.")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """What changed from OLD to NEW, patient by patient, with the reason for each change."""
    from scheduler.diff import diff_plans, format_diff

    url = _url(database_url)
    result = diff_plans(_plan_only(old, url), _plan_only(new, url))
    if out is not None:
        engine_cli._write_atomically(out, result.model_dump_json(indent=2))
    console.print(format_diff(result), markup=False, highlight=False)


def _plan_only(spec: str, url: str) -> Plan:
    path = Path(spec) / "plan.json" if Path(spec).is_dir() else Path(spec)
    if path.is_file():
        try:
            return Plan.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            _fail(f"{path}: not a readable plan: {exc}")
    return resolve_plan(spec, url).plan


@app.command()
def check(
    first: Annotated[str, typer.Argument(metavar="[SCENARIO] PLAN", help="The plan (a file or a stored plan id), "
                                         "optionally after the scenario file it was made from.")],
    second: Annotated[str | None, typer.Argument(metavar="", help="The plan, when a scenario file comes first.")] = None,
    sessions_csv: Annotated[Path | None, typer.Option(help="Roster sessions CSV the plan used.")] = None,
    due_csv: Annotated[Path | None, typer.Option(help="Due reviews CSV the plan used.")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Verify every hard rule and recompute the metrics of a plan; exit 1 on any violation.

    `onevisit check PLAN` checks the plan against the scenario beside it (scenario.yaml) or the
    stored version it names; `onevisit check SCENARIO PLAN` against the scenario file given."""
    from scheduler.check import check_plan, format_report

    url = _url(database_url)
    if second is None:
        source = resolve_plan(first, url)
        scenario, plan = source.scenario, source.plan
    else:
        scenario, plan = engine_cli._load(Path(first), sessions_csv, due_csv), _plan_only(second, url)
    report = check_plan(scenario, plan)
    console.print(format_report(report), markup=False)
    raise typer.Exit(0 if report.ok else engine_cli.EXIT_INVALID_PLAN)


@app.command()
def publish(plan_id: PlanIdArg = None, database_url: DatabaseOpt = None,
            confirm_scenario_version: Annotated[int | None, typer.Option(
                min=1, help="Publish a plan made from an older scenario version than the latest: "
                "give its version to confirm.")] = None) -> None:
    """Publish a plan: patients' invites, updates and cancellations follow from it. A plan made
    from an older version of the scenario than the latest needs --confirm-scenario-version."""
    from api.errors import ApiError
    from api.publish import publish as publish_plan

    engine = _session_for(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            record = _plan_record(session, plan_id)
            try:
                result = publish_plan(session, record, confirm_scenario_version)
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
                if event.calendar_invites:
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
    link = first_sign_in_link(settings.database_url, _browser_base(host, port, settings.public_url))
    if link:
        console.print("No API key exists yet. Open this one-time link to sign in to the rota as the "
                      f"'{LOCAL_ORGANISATION}' organisation's manager (one use, {LINK_MINUTES} minutes):\n"
                      f"[bold]{link}[/]", soft_wrap=True)
    # Without a graceful-shutdown timeout uvicorn waits for every open request however long it
    # takes, so one stalled client could keep a stopping server alive indefinitely.
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                timeout_graceful_shutdown=settings.shutdown_seconds)


def _browser_base(host: str, port: int, public_url: str) -> str:
    """Where a browser on this machine reaches the server: the public URL when listening on
    every address, else the address listened on."""
    if host in ("0.0.0.0", "::", ""):
        return public_url
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def first_sign_in_link(database_url: str, base: str) -> str | None:
    """On a fresh install (no API key that is not revoked, in any organisation), a one-time
    sign-in link for the local organisation's manager; None once a key exists. The token is
    random, lives LINK_MINUTES, is stored only as a hash, and is shown only on this console."""
    from api.models import ApiKey
    from api.web.sessions import create_sign_in_link

    upgrade(database_url)  # a fresh install has no tables yet
    engine = make_engine(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            if session.scalar(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)).limit(1)) is not None:
                return None
            token = create_sign_in_link(session, organisation(session, LOCAL_ORGANISATION).id)
    finally:
        engine.dispose()
    return f"{base}/sign-in/link/{token}"


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
