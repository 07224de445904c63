"""Signing in and out of the web page: with an API key, or with the console's one-time link."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.audit import identify
from api.deps import services
from api.keys import Caller, authenticate
from api.models import ApiKey
from api.web.routing import SignedIn, WebRoute, render
from api.web.sessions import (
    IDLE_MINUTES,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    csrf_ok,
    end_session,
    find_session,
    open_session,
    redeem_sign_in_link,
)

router = APIRouter(include_in_schema=False, route_class=WebRoute)


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no host, no '//'): an open redirect otherwise."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/scenarios"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _signed_in_response(request: Request, token: str, target: str) -> Response:
    response = RedirectResponse(_safe_next(target), status_code=303)
    # No Max-Age: a session cookie, gone when the browser closes; the server ends it after
    # IDLE_MINUTES idle anyway.
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/")
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


@router.get("/")
def home(request: Request) -> Response:
    with services(request).factory() as session:
        live = find_session(session, request.cookies.get(SESSION_COOKIE))
    return RedirectResponse("/scenarios" if live else "/sign-in", status_code=303)


def _sign_in_page(request: Request, next_path: str, error: str | None = None, status_code: int = 200) -> Response:
    value = secrets.token_urlsafe(24)
    response = render(request, "sign_in.html", status_code=status_code, web=None, csrf_token=value,
                      next_path=_safe_next(next_path), error=error, idle_minutes=IDLE_MINUTES)
    response.set_cookie(SIGN_IN_COOKIE, value, httponly=True, samesite="strict", secure=_secure(request),
                        path="/sign-in", max_age=3600)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request, next: str = "/scenarios") -> Response:  # noqa: A002 - the query's name
    return _sign_in_page(request, next)


@router.post("/sign-in")
def sign_in(request: Request, api_key: Annotated[str, Form(max_length=200)] = "",
            csrf_token: Annotated[str, Form(max_length=200)] = "",
            next: Annotated[str, Form(max_length=2000)] = "/scenarios") -> Response:  # noqa: A002
    """Exchange an API key for a session. The key itself is never stored in the browser."""
    if not csrf_ok(request.cookies.get(SIGN_IN_COOKIE, ""), csrf_token):
        return _sign_in_page(request, next, "The sign-in form had expired; please try again.", 403)
    found = services(request)
    with found.factory() as session:
        caller = authenticate(session, api_key.strip())
    if caller is None:
        return _sign_in_page(request, next, "That API key is unknown or revoked.", 401)
    identify(caller, "web")
    with found.writer_factory() as session, session.begin():
        key = session.get(ApiKey, caller.key_id)
        token = open_session(session, caller.organisation_id, caller.role, key.id)
    return _signed_in_response(request, token, next)


@router.get("/sign-in/link/{token}")
def sign_in_link(request: Request, token: str) -> Response:
    """The one-time link `onevisit serve` prints on a fresh install: a manager session for the
    local organisation."""
    found = services(request)
    with found.writer_factory() as session, session.begin():
        organisation_id = redeem_sign_in_link(session, token)
        if organisation_id:
            identify(Caller(organisation_id, "manager", ""), "sign_in_link")
        web_token = open_session(session, organisation_id, "manager", None) if organisation_id else None
    if web_token is None:
        return _sign_in_page(request, "/scenarios", "That sign-in link was already used or has expired. Start "
                             "`onevisit serve` again for a new one, or sign in with an API key.", 401)
    return _signed_in_response(request, web_token, "/scenarios")


@router.post("/sign-out")
def sign_out(request: Request, web: SignedIn, csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    if csrf_ok(web.csrf_token, csrf_token):
        with services(request).writer_factory() as session, session.begin():
            end_session(session, web.session_id)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
