"""GET /v1/audit: the organisation's audit trail, newest first, with filters (api/audit.py).
Read only: the service has no route that changes or deletes an entry."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.audit import AuditFilter, list_entries
from api.deps import DB, CallerDep, require
from api.errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["audit"], responses=ERROR_RESPONSES)

ActorKind = Literal["api_key", "web", "sign_in_link", "cli", "job", "unattributed", "anonymous"]


class AuditEntryOut(BaseModel):
    id: int = Field(description="Increases with every entry; page with before_id.")
    at: dt.datetime = Field(description="When the write was committed (UTC).")
    actor_kind: str = Field(description="api_key, web (a signed-in page), sign_in_link, cli (a command on "
                            "the server: actor is the operating-system user), job (a solver or study worker).")
    actor: str = Field(description="The API key's prefix (never the key), the OS user, or the job id.")
    role: str
    action: str = Field(description="The route ('POST /v1/plans/{plan_id}/publish') or command ('onevisit plan').")
    target: dict[str, str] = Field(description="The route's path parameters.")
    request_id: str = Field(description="The request's X-Request-ID (the caller's, or one the service gave).")
    changes: list[str] = Field(description="Rows written: 'insert plans <id>', at most 50.")
    change_count: int


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_before_id: int | None = Field(description="Pass as before_id for the next, older page; null at the end.")


@router.get("/audit", response_model=AuditPage, summary="The organisation's audit trail: who changed what, when")
def audit_trail(
    session: DB, caller: CallerDep,
    since: Annotated[dt.datetime | None, Query(description="From this instant (ISO 8601 with offset).")] = None,
    until: Annotated[dt.datetime | None, Query(description="Up to this instant.")] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    actor_kind: ActorKind | None = None,
    action: Annotated[str | None, Query(max_length=300, description="Part of the route or command.")] = None,
    request_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> AuditPage:
    require(caller, "audit")
    entries = list_entries(session, AuditFilter(
        caller.organisation_id, since=_utc(since), until=_utc(until), actor=actor, actor_kind=actor_kind,
        action=action, request_id=request_id, limit=limit, before_id=before_id))
    items = [AuditEntryOut.model_validate(e, from_attributes=True) for e in entries]
    return AuditPage(items=items, next_before_id=items[-1].id if len(items) == limit else None)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A naive instant is taken as UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
