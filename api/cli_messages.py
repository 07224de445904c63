"""`onevisit messages PLAN --contacts FILE [--outbox DIR]`: send the SMS texts, letters and
calendar invites of a plan's latest publication (docs/messages.md).

Registered in `api.cli` with `app.command()(messages)`. This module imports `api.cli` only when
the command runs, so `api.cli` may import it anywhere without an import cycle. Without a GOV.UK
Notify key (ONEVISIT_NOTIFY_API_KEY) every message is written to the outbox folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli_options import DatabaseOpt

console = Console()

PlanId = Annotated[str, typer.Argument(
    metavar="PLAN_ID", help="A stored plan id (or a plan file or folder saved in the database).")]
ContactsFile = Annotated[Path, typer.Option(
    "--contacts", help="Contacts CSV keyed by patient id (docs/messages.md); read, used, never stored.")]
OutboxDir = Annotated[Path | None, typer.Option(
    "--outbox", help="Folder for messages not sent through GOV.UK Notify (default: out/messages).")]


def messages(plan_id: PlanId, contacts: ContactsFile, outbox: OutboxDir = None,
             database_url: DatabaseOpt = None) -> None:
    """Send each patient the messages the plan's latest publication calls for (new, changed and
    cancelled visits) on the channels they prefer: calendar invite, SMS, letter. Prints the
    counts by channel and status; sending again sends nothing twice."""
    from api.cli import _fail, _plan_record, _session_for
    from api.config import Settings
    from api.db import make_sessionmaker
    from api.errors import ApiError
    from api.messages.contacts import MAX_BYTES, ContactsError, read_contacts
    from api.messages.notify import sender_from_settings
    from api.messages.send import send_messages

    try:
        if contacts.stat().st_size > MAX_BYTES:
            _fail(f"--contacts: {contacts} is larger than {MAX_BYTES // (1024 * 1024)} MiB")
        data = contacts.read_bytes()
    except OSError as exc:
        _fail(f"--contacts: cannot read {contacts}: {exc.strerror or exc}")
    try:
        book = read_contacts(data)
    except ContactsError as exc:
        _fail("\n".join([f"--contacts: {contacts}: {len(exc.problems)} problem(s); nothing was sent:",
                         *(f"  {p}" for p in exc.problems)]))
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        _fail(str(exc))
    notify = sender_from_settings(settings)
    folder = outbox if outbox is not None else Path("out/messages")
    if folder.exists() and not folder.is_dir():
        _fail(f"--outbox: {folder} is not a folder")
    engine = _session_for(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            record = _plan_record(session, plan_id)
            with Progress(TextColumn("Sending messages"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as bar:
                task = bar.add_task("send", total=None)
                try:
                    result = send_messages(
                        session, record, book, settings=settings, outbox=folder, notify=notify,
                        progress=lambda done, total: bar.update(task, completed=done, total=total),
                        after_each=session.commit)
                except ApiError as exc:
                    session.rollback()
                    _fail(f"PLAN_ID: {exc.message}")
                except (ValueError, OSError) as exc:
                    session.rollback()
                    _fail(str(exc))
            session.commit()
    finally:
        engine.dispose()
    console.print(f"Plan {result.plan_id}, publication {result.publish_number}:", markup=False)
    table = Table()
    for column in ("channel", "status", "messages"):
        table.add_column(column, justify="right" if column == "messages" else "left")
    for channel, statuses in result.counts.items():
        for status, n in statuses.items():
            table.add_row(channel, status, str(n))
    console.print(table)
    total = sum(n for statuses in result.counts.values() for n in statuses.values())
    where = "GOV.UK Notify" if notify is not None else f"the outbox {folder}"
    console.print(f"{total} message(s) recorded ({where}); {result.skipped} already sent before.", markup=False)
    if result.not_in_contacts:
        console.print(f"{result.not_in_contacts} patient(s) had no row in {contacts}: their SMS and letters are "
                      "recorded no_contact.", markup=False)
