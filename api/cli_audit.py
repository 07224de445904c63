"""`onevisit audit list` and `onevisit audit prune`: the audit trail on the command line
(api/audit.py). Registered in `api.cli` as the `audit` command group."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from api.audit import AuditFilter, list_entries, prune
from api.cli_options import DatabaseOpt
from api.config import Settings
from api.db import make_engine, make_sessionmaker, transaction, upgrade
from api.models import Organisation

audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: who changed what, when, from which request.")
console = Console()
EXIT_BAD_INPUT = 2



def _when(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        console.print(f"[red]{option} {text!r} is not a date or date and time (ISO 8601, e.g. 2026-12-01 or "
                      "2026-12-01T09:30+00:00).[/]")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@audit_app.command("list")
def audit_list(
    org: Annotated[str, typer.Option("--org", help="Organisation name.")] = "local",
    since: Annotated[str | None, typer.Option(help="From (ISO 8601; UTC unless an offset is given).")] = None,
    until: Annotated[str | None, typer.Option(help="Up to (ISO 8601).")] = None,
    actor: Annotated[str | None, typer.Option(help="A key prefix or an OS user.")] = None,
    actor_kind: Annotated[str | None, typer.Option(help="api_key, web, sign_in_link, cli or job.")] = None,
    action: Annotated[str | None, typer.Option(help="Part of the route or command, e.g. publish.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """List an organisation's audit entries, newest first."""
    wanted_since, wanted_until = _when(since, "--since"), _when(until, "--until")
    url = database_url or Settings.from_env().database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            organisation_id = session.scalar(select(Organisation.id).where(Organisation.name == org))
            if organisation_id is None:
                console.print(f"[red]No organisation called {org!r}.[/]")
                raise typer.Exit(EXIT_BAD_INPUT)
            entries = list_entries(session, AuditFilter(organisation_id, since=wanted_since, until=wanted_until,
                                                        actor=actor, actor_kind=actor_kind, action=action,
                                                        limit=limit))
            rows = [(e.id, e.at, e.actor_kind, e.actor, e.role, e.action, e.target, e.request_id, e.changes,
                     e.change_count) for e in entries]
    finally:
        engine.dispose()
    if json_out:
        import json

        for row in rows:
            typer.echo(json.dumps(dict(zip(("id", "at", "actor_kind", "actor", "role", "action", "target",
                                            "request_id", "changes", "change_count"), row)), default=str))
        return
    table = Table(title=f"Audit trail of {org} (newest first)")
    for column in ("id", "when (UTC)", "who", "role", "what", "request", "rows changed"):
        table.add_column(column)
    for id_, at, kind, who, role, what, target, request, changes, count in rows:
        shown = f"{what} {target}" if target else what
        table.add_row(str(id_), at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"), f"{kind}: {who}", role,
                      shown, request[:12], f"{count}: " + ", ".join(changes[:3]) + (" …" if count > 3 else ""))
    console.print(table)


@audit_app.command("prune")
def audit_prune(
    older_than_days: Annotated[int | None, typer.Option(
        min=1, help="Remove entries older than this many days (default: ONEVISIT_AUDIT_RETENTION_DAYS).")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Remove audit entries older than the retention. The only way entries are ever removed, and
    itself recorded in the trail."""
    settings = Settings.from_env()
    days = older_than_days or settings.audit_retention_days
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    url = database_url or settings.database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            removed = prune(session, cutoff)
    finally:
        engine.dispose()
    console.print(f"Removed {removed} audit entr{'y' if removed == 1 else 'ies'} recorded before "
                  f"{cutoff:%Y-%m-%d %H:%M} UTC ({days} days).")
