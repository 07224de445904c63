"""Request dependencies: the database session and the calling API key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from api.audit import identify
from api.config import Settings
from api.errors import ApiError
from api.keys import Caller, authenticate


@dataclass
class Services:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]  # reading
    writer_factory: sessionmaker[Session]  # writing: SQLite's write lock at the first statement
    write_turn: anyio.Lock  # one writing request at a time in this process


def services(request: Request) -> Services:
    return request.app.state.services


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


async def write_turn(request: Request) -> AsyncIterator[None]:
    """Writing requests take turns, waiting on the event loop rather than in worker threads.

    A request waiting for a database write lock inside a thread would hold that thread; enough of
    them and the request holding the lock could not get a thread to finish (SQLite's busy wait
    would then fail them all). Reads never wait here.
    """
    if request.method in SAFE_METHODS:
        yield
        return
    async with services(request).write_turn:
        yield


def db(request: Request, _turn: Annotated[None, Depends(write_turn, scope="function")]) -> Iterator[Session]:
    """A session whose work commits when the route succeeds and rolls back when it fails.

    Used with scope="function": the commit happens before the response is sent, so a client that
    got a 201 can read what it wrote at once, and a failed commit is an error, not a lost write.
    A writing request's transaction begins at its first statement, so work done before it (such
    as parsing an upload) holds no database lock.
    """
    found = services(request)
    factory = found.factory if request.method in SAFE_METHODS else found.writer_factory
    with factory() as session, session.begin():
        yield session


bearer = HTTPBearer(auto_error=False, description="An API key from `onevisit keys create`.")


DB = Annotated[Session, Depends(db, scope="function")]


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The calling key, looked up on every request (a revoked key stops at once) on a pooled
    connection of its own, without an ORM session: no lock is held for the route, and the lookup
    is a small share of a fast read's time."""
    bearer_key(credentials)  # no key: a 401 before any connection is taken
    with services(request).engine.connect() as connection:
        return caller_on(connection, credentials)


def bearer_key(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The API key of an `Authorization: Bearer` header; ApiError 401 without one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorised", "An API key is required: 'Authorization: Bearer <key>'.", "Authorization")
    return credentials.credentials


def caller_on(connection: Connection | Session, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """`caller`'s check on a connection or session already open (the fast read routes look the
    key and the plan up in one session, api/reads.py). Raises ApiError 401 when there is no
    bearer key, or it is unknown or revoked."""
    found = authenticate(connection, bearer_key(credentials))
    if found is None:
        raise ApiError(401, "unauthorised", "Unknown or revoked API key.", "Authorization")
    identify(found, "api_key")
    return found


# What each restricted action (api.keys.MANAGER_ONLY) lets a key do, worded to complete
# "A planner key may not …"; a route may word it more exactly.
ACTION_TEXT = {
    "publish": "publish plans",
    "calendar_tokens": "see patients' invites or hand out calendar links",
    "replan": "re-plan plans",
    "discard": "discard plans",
    "audit": "read the audit trail",
}


def require(caller: Caller, action: str, doing: str | None = None) -> None:
    """Refuse with a 403 if the caller's role may not do `action` (a key of ACTION_TEXT).

    `doing` words what the route does ("revoke calendar links"); the message is a sentence such
    as "A planner key may not publish plans; use a manager key." Raises KeyError for an action
    without wording: a programming error that any test of the route catches.
    """
    text = doing or ACTION_TEXT[action]
    if not caller.may(action):
        raise ApiError(403, "forbidden", f"A {caller.role} key may not {text}; use a manager key.")


CallerDep = Annotated[Caller, Depends(caller)]
ServicesDep = Annotated[Services, Depends(services)]
