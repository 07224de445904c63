"""Request dependencies: the database session and the calling API key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.config import Settings
from api.db import begin_writing
from api.errors import ApiError
from api.keys import Caller, authenticate


@dataclass
class Services:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]


def services(request: Request) -> Services:
    return request.app.state.services


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def db(request: Request) -> Iterator[Session]:
    """A session whose work commits when the route succeeds and rolls back when it fails.

    Used with scope="function": the commit happens before the response is sent, so a client that
    got a 201 can read what it wrote at once, and a failed commit is an error, not a lost write.
    """
    with services(request).factory() as session, session.begin():
        if request.method not in SAFE_METHODS:
            begin_writing(session)
        yield session


bearer = HTTPBearer(auto_error=False, description="An API key from `onevisit keys create`.")


DB = Annotated[Session, Depends(db, scope="function")]


def caller(
    session: DB,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorised", "An API key is required: 'Authorization: Bearer <key>'.", "Authorization")
    found = authenticate(session, credentials.credentials)
    if found is None:
        raise ApiError(401, "unauthorised", "Unknown or revoked API key.", "Authorization")
    return found


def require(caller: Caller, action: str) -> None:
    if not caller.may(action):
        raise ApiError(403, "forbidden", f"A {caller.role} key may not {action.replace('_', ' ')}; use a manager key.")


CallerDep = Annotated[Caller, Depends(caller)]
ServicesDep = Annotated[Services, Depends(services)]
