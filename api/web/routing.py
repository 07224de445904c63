"""What every web page shares: the templates, the signed-in caller, CSRF checks on forms,
security headers, and errors shown as pages (never as JSON or a traceback)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.audit import identify
from api.deps import services
from api.errors import ApiError
from api.web.book import local
from api.web.sessions import SESSION_COOKIE, WebCaller, csrf_ok, find_session, touch

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")

# Pages load scripts, styles and images only from this service (no CDN, no inline script). The
# timeline positions its blocks with style attributes, hence 'unsafe-inline' for styles only.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data:; connect-src 'self'; frame-ancestors 'self'; "
                                "form-action 'self'; base-uri 'none'; object-src 'none'"),
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    # The sign-in link carries a one-time token in its URL: never send it on as a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """No live session: the page redirects to sign-in (a JSON route answers 401)."""


class CsrfFailed(Exception):
    """A form posted without the session's CSRF token."""


def _when(value: dt.datetime | None, fmt: str = "%a %d %b %Y %H:%M") -> str:
    if value is None:
        return "—"
    return local(value).strftime(fmt)


templates.env.filters["when"] = _when
templates.env.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.1f}%"
# Figures: whole numbers as they are, fractions to one decimal place.
templates.env.filters["figure"] = lambda v: "—" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from templates/`name` with the caller (if signed in) in its context."""
    context.setdefault("web", getattr(request.state, "web", None))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def signed_in(request: Request) -> WebCaller:
    """The signed-in caller, or SignInRequired (a dependency: a short reading session of its own)."""
    with services(request).factory() as session:
        return caller_in(request, session)


def caller_in(request: Request, session: Session | Connection) -> WebCaller:
    """The signed-in caller found through `session`, or SignInRequired. Refreshes the session's
    idle clock at most once a minute, best effort (a busy database must not fail a read)."""
    found = services(request)
    match = find_session(session, request.cookies.get(SESSION_COOKIE))
    if match is None:
        raise SignInRequired()
    web, stale = match
    if stale:
        try:
            with found.writer_factory() as session, session.begin():
                touch(session, web.session_id)
        except OperationalError:
            pass
    request.state.web = web
    identify(web.caller, "web")
    return web


async def posted(request: Request, web: Annotated[WebCaller, Depends(signed_in)]) -> WebCaller:
    """The signed-in caller of a form post whose CSRF token is the session's; CsrfFailed if not.
    Reads the form once (Starlette keeps it for the route's own Form parameters)."""
    form = await request.form()
    if not csrf_ok(web.csrf_token, form.get("csrf_token")):  # type: ignore[arg-type]
        raise CsrfFailed()
    return web


SignedIn = Annotated[WebCaller, Depends(signed_in)]
Posted = Annotated[WebCaller, Depends(posted)]


def error_page(request: Request, status: int, title: str, message: str, problems: list | None = None) -> HTMLResponse:
    return render(request, "error.html", status_code=status, title=title, message=message, problems=problems or [])


class WebRoute(APIRoute):
    """A route whose failures are pages: no session redirects to sign-in, a bad CSRF token is a
    403 page, and the API's own errors (404, 403, 409, 422) keep their status and message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        json_route = self.path.endswith(".json") or self.path.endswith("/events")

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                if json_route:
                    response = Response('{"error": "sign in first"}', 401, media_type="application/json")
                else:
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    response = RedirectResponse(f"/sign-in?next={quote(target, safe='')}", status_code=303)
            except CsrfFailed:
                response = error_page(request, 403, "Form expired",
                                      "This form was not sent by a page of this session (its security token "
                                      "is missing or out of date). Go back, reload the page and try again.")
            except ApiError as exc:
                response = error_page(request, exc.status, _TITLES.get(exc.status, "Cannot do that"), exc.message,
                                      exc.problems)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route


_TITLES = {403: "Not allowed", 404: "Not found", 409: "Cannot do that now", 413: "Too large",
           422: "Cannot use that"}
