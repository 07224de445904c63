"""The audit trail: who changed what, when, and from which request (issue 18; data-protection
assurance asks exactly this).

Every database transaction that writes records one `AuditEntry` in the same transaction, so an
entry exists exactly when the write does. The entry is built from the *audit context* of the code
that wrote:

* an HTTP request (`AuditMiddleware`): the method and route template ("POST
  /v1/plans/{plan_id}/publish"), its path parameters, a request id (the caller's `X-Request-ID`
  when it is a plain token, else a random one, echoed in the response), and the caller once the
  key or web session is known (`identify`): the key's prefix and role;
* a command (`begin`): `cli` and the operating-system user for `onevisit ...` commands;
  `job` and the job id for solver and capacity-study workers;
* anything else writing (a test seeding a database): `unattributed`.

What changed is listed per entry: "insert plans 3f2a…", "update calendar_events 9c1e…", at most
`MAX_CHANGES` of them plus the count. Progress counters (jobs, capacity studies) and a web
session's idle clock are not changes worth an entry; their creation is.

Nothing in the service updates or deletes an entry: no route or command edits it, the ORM
refuses to flush a change to one (`AuditLogIsAppendOnly`), and the database refuses an UPDATE
(a trigger, migration 0007). Entries older than the retention are removed only by `onevisit
audit prune`, which records its own entry.
"""

from __future__ import annotations

import datetime as dt
import getpass
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session

from api.keys import Caller
from api.models import AuditEntry

MAX_CHANGES = 50
# Updates the service makes on its own to these tables only move a counter or a clock (a job's or
# a study's progress, a web session's idle time): not entries. The rows' creation is recorded,
# and so is any update a person makes (a cancel, a sign-out).
QUIET_UPDATES = frozenset({"jobs", "capacity_studies", "web_sessions"})
PEOPLE = frozenset({"api_key", "web", "sign_in_link", "cli"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
PRUNE_ACTION = "onevisit audit prune"


class AuditLogIsAppendOnly(RuntimeError):
    """An attempt to change or delete an audit entry through the ORM (only `prune` deletes)."""


@dataclass
class AuditContext:
    """Who is writing and why. `scope` (an ASGI scope) gives the route template and path
    parameters once routing has happened."""

    actor_kind: str = "unattributed"  # api_key | web | sign_in_link | cli | job | unattributed
    actor: str = ""
    role: str = ""
    organisation_id: str | None = None
    action: str = ""
    request_id: str = ""
    target: dict[str, str] = field(default_factory=dict)
    scope: Mapping[str, Any] | None = None

    def described(self) -> tuple[str, dict[str, str]]:
        """(action, target) as they stand: a request's route template once it is routed."""
        if self.scope is None:
            return self.action, self.target
        route = self.scope.get("route")
        template = getattr(route, "path", None) or self.scope.get("path", "")
        # A token in a path is a credential (a calendar or sign-in link): never written down.
        params = {str(k): "(secret)" if "token" in str(k) and "token_id" not in str(k) else str(v)[:200]
                  for k, v in (self.scope.get("path_params") or {}).items()}
        return f"{self.scope.get('method', '')} {template}"[:300], params


_current: ContextVar[AuditContext | None] = ContextVar("onevisit_audit", default=None)


def current() -> AuditContext | None:
    """The audit context of the running request or command, if any."""
    return _current.get()


@contextmanager
def begin(actor_kind: str, actor: str, role: str, action: str,
          organisation_id: str | None = None) -> Iterator[AuditContext]:
    """Run a block of work (a command, a job) with its own audit context."""
    context = AuditContext(actor_kind=actor_kind, actor=actor[:100], role=role, action=action[:300],
                           organisation_id=organisation_id, request_id=uuid.uuid4().hex)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def begin_command(action: str) -> Token[AuditContext | None]:
    """A command line's context until `reset_context(token)`: the OS user, actor kind `cli`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's numeric user)
        user = "uid-unknown"
    return _current.set(AuditContext(actor_kind="cli", actor=user[:100], role="cli", action=action[:300],
                                     request_id=uuid.uuid4().hex))


def reset_context(token: Token[AuditContext | None]) -> None:
    """End the context `begin_command` started."""
    _current.reset(token)


def identify(caller: Caller, kind: str = "api_key") -> None:
    """Name the caller of the running request (an API key, or a web session and its key)."""
    context = _current.get()
    if context is None:
        return
    context.actor_kind = kind if caller.key_prefix else "sign_in_link"
    context.actor = caller.key_prefix or "one-time sign-in link"
    context.role = caller.role
    context.organisation_id = caller.organisation_id


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when it is a plain token of at most 64 characters, else a new one."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return uuid.uuid4().hex


class AuditMiddleware:
    """Gives each HTTP request an audit context (and its id in an `X-Request-ID` response header)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = AuditContext(actor_kind="anonymous", request_id=request_id(scope.get("headers", [])),
                               scope=scope)
        token = _current.set(context)

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", context.request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


# --- recording, on every Session ---------------------------------------------------------------


def _quiet(table: str) -> bool:
    """An update of `table` that is no entry: the service's own progress and clock updates."""
    context = _current.get()
    return table in QUIET_UPDATES and (context is None or context.actor_kind not in PEOPLE)


def _note(session: Session, line: str, organisation_id: str | None) -> None:
    changes: list[str] = session.info.setdefault("audit_changes", [])
    changes.append(line)
    if organisation_id and "audit_organisation" not in session.info:
        session.info["audit_organisation"] = organisation_id


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_entries(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get("audit_pruning"):
        return
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEntry):
            raise AuditLogIsAppendOnly("audit entries cannot be changed or deleted")


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    for op, objects in (("insert", session.new), ("update", session.dirty), ("delete", session.deleted)):
        for obj in objects:
            table = getattr(obj, "__tablename__", None)
            if table is None or table == "audit_log":
                continue
            if op == "update" and (_quiet(table) or not session.is_modified(obj)):
                continue
            state = inspect(obj)
            key = "/".join(str(part) for part in state.mapper.primary_key_from_instance(obj) if part is not None)
            _note(session, f"{op} {table} {key}".strip(), getattr(obj, "organisation_id", None))


@event.listens_for(Session, "do_orm_execute")
def _collect_statements(state: ORMExecuteState) -> None:
    """Writes issued as statements (session.execute(update(...))) bypass the flush."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    table = getattr(state.statement, "table", None)
    name = getattr(table, "name", "")
    if name == "audit_log" or (state.is_update and _quiet(name)):
        return
    op = "update" if state.is_update else "delete" if state.is_delete else "insert"
    _note(state.session, f"{op} {name} (statement)", None)


@event.listens_for(Session, "before_commit")
def _record(session: Session) -> None:
    session.flush()  # changes still pending (commit flushes after this hook) are collected first
    changes = session.info.pop("audit_changes", None)
    organisation_id = session.info.pop("audit_organisation", None)
    if not changes:
        return
    context = _current.get() or AuditContext()
    action, target = context.described()
    session.add(AuditEntry(
        organisation_id=context.organisation_id or organisation_id,
        at=dt.datetime.now(dt.UTC), actor_kind=context.actor_kind, actor=context.actor or "", role=context.role,
        action=action or "", target=target, request_id=context.request_id, changes=changes[:MAX_CHANGES],
        change_count=len(changes)))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("audit_changes", None)
    session.info.pop("audit_organisation", None)


# --- reading and pruning ----------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """What to list: entries of one organisation, newest first, optionally since/until (UTC,
    inclusive), by actor (key prefix or user), actor kind, action text (a substring of the route
    or command) or request id; at most `limit`, before entry id `before_id` (paging)."""

    organisation_id: str
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    actor: str | None = None
    actor_kind: str | None = None
    action: str | None = None
    request_id: str | None = None
    limit: int = 100
    before_id: int | None = None


def list_entries(session: Session, wanted: AuditFilter) -> list[AuditEntry]:
    """The entries `wanted` selects, newest first (highest id first)."""
    # Maintenance (a prune) belongs to no organisation and is shown to every one: it removed
    # their entries too.
    maintenance = AuditEntry.organisation_id.is_(None) & AuditEntry.action.startswith(PRUNE_ACTION)
    query = select(AuditEntry).where((AuditEntry.organisation_id == wanted.organisation_id) | maintenance)
    if wanted.since is not None:
        query = query.where(AuditEntry.at >= wanted.since)
    if wanted.until is not None:
        query = query.where(AuditEntry.at <= wanted.until)
    if wanted.actor:
        query = query.where(AuditEntry.actor == wanted.actor)
    if wanted.actor_kind:
        query = query.where(AuditEntry.actor_kind == wanted.actor_kind)
    if wanted.action:
        query = query.where(AuditEntry.action.contains(wanted.action, autoescape=True))
    if wanted.request_id:
        query = query.where(AuditEntry.request_id == wanted.request_id)
    if wanted.before_id is not None:
        query = query.where(AuditEntry.id < wanted.before_id)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(wanted.limit)))


def prune(session: Session, older_than: dt.datetime) -> int:
    """Delete entries recorded before `older_than` (UTC); returns how many. The caller's
    transaction then records this prune as an entry of its own (`_record`)."""
    session.info["audit_pruning"] = True
    try:
        removed = session.execute(delete(AuditEntry).where(AuditEntry.at < older_than)).rowcount
    finally:
        session.info.pop("audit_pruning", None)
    _note(session, f"delete audit_log {removed} entries recorded before {older_than.isoformat()}", None)
    return removed
