"""One error shape for every failure: {"error": {"code", "message", "field", "problems"}}.

`code` is stable and machine-readable; `field` names the offending field (dotted path, or the
file and row for uploads); `problems` lists every problem when there are several, each in the
same words the command line prints.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scheduler.scenario_io import Problem, ScenarioError


class ProblemOut(BaseModel):
    source: str
    location: str
    message: str
    line: int | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    problems: list[ProblemOut] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 problems: list[Problem] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.problems = problems or []


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")


def _body(code: str, message: str, field: str | None = None, problems: list[dict[str, Any]] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field, "problems": problems or []}}


def problem_dict(p: Problem) -> dict[str, Any]:
    return {"source": p.source, "location": p.location, "message": p.message, "line": p.line}


def scenario_error(exc: ScenarioError) -> ApiError:
    first = exc.problems[0] if exc.problems else None
    field = f"{first.source}: {first.location}" if first and first.location else (first.source if first else None)
    return ApiError(422, "invalid_scenario", f"{len(exc.problems)} problem(s) in the scenario; nothing was saved.",
                    field, exc.problems)


# Responses the OpenAPI document declares for every route, so clients (and schemathesis) know them.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in ((400, "The body could not be read"), (401, "No or unknown API key"), (403, "Role may not do this"), (404, "Not found"),
                         (409, "Conflict with the current state"),
                         (413, "The request body is larger than the service's limit (ONEVISIT_MAX_BODY_BYTES)"),
                         (422, "Invalid input"))
}

# What the input guards below may answer on any route, including those without a key.
GUARD_RESPONSES = {status: ERROR_RESPONSES[status] for status in (400, 413)}


def size_text(n: int) -> str:
    """A byte count as people read it: '20 MiB', '512 KiB' or '1000 bytes'."""
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


class BodyTooLarge(StarletteHTTPException):
    """Raised from `receive` once a body passes the limit; answered as a 413 in the error shape.

    An HTTPException so that FastAPI's body parsing passes it on rather than turning it into a
    400 ("There was an error parsing the body").
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than this service's limit of {size_text(limit)}; "
                              "nothing was read or saved.", headers={"Connection": "close"})


def _too_large(exc: BodyTooLarge) -> JSONResponse:
    # Connection: close, because the rest of the body is never read: the connection cannot be reused.
    return JSONResponse(_body("body_too_large", str(exc.detail), "body"), status_code=413, headers=exc.headers)


class LimitBody:
    """Refuse request bodies over `max_bytes` on every route, before they are read in full.

    A declared Content-Length over the limit is answered with a 413 at once, without reading any
    of the body or running the route (a client sending `Expect: 100-continue` sends none of it).
    A body without Content-Length (chunked) is counted as it arrives, and the first chunk that
    passes the limit ends the request with a 413: at most `max_bytes` plus one chunk is ever held.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        # ASCII digits only: str.isdigit would pass '²' (latin-1), which int() refuses. A malformed
        # length is the server's to refuse (h11 and httptools both do); here it is counted instead.
        if declared is not None and re.fullmatch(r"[0-9]+", declared.strip()) and int(declared) > self.max_bytes:
            await _too_large(BodyTooLarge(self.max_bytes))(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:
            # Normally the app's exception handler has answered already; this is for a body read
            # outside a route (or one whose exception was wrapped on the way out).
            if started:
                raise
            await _too_large(exc)(scope, receive, send)


class RejectNul:
    """A 400 for any NUL in the path or query string: no id, token or filter holds one, and
    PostgreSQL text cannot (it would otherwise surface as a database error)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = ("path" if "\x00" in scope["path"] else
                     "query" if b"\x00" in unquote_to_bytes(scope.get("query_string", b"")) else None)
            if where:
                message = f"The address's {where} contains a NUL character."
                await JSONResponse(_body("invalid_character", message, where), status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI, max_body_bytes: int) -> None:
    """Error handlers and the input guards (NUL characters, body size) for the whole app."""
    app.add_middleware(RejectNul)
    app.add_middleware(LimitBody, max_bytes=max_body_bytes)  # added last: outermost, so it runs first

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(_request: Request, exc: BodyTooLarge) -> JSONResponse:
        return _too_large(exc)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(_body(exc.code, exc.message, exc.field, [problem_dict(p) for p in exc.problems]),
                            status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            location = ".".join(str(x) for x in e.get("loc", ()))
            problems.append({"source": "request", "location": location, "message": e.get("msg", ""), "line": None})
        field = problems[0]["location"] if problems else None
        message = f"{len(problems)} problem(s) in the request." if problems else "Invalid request."
        return JSONResponse(_body("invalid_request", message, field, problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 401: "unauthorised"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> set[str]:
    """The methods the OpenAPI document lists for this path; a concrete path wins over a
    template (`/v1/scenarios/upload` over `/v1/scenarios/{scenario_id}`), as OpenAPI says.
    Paths outside the document (the docs pages) are tried against the routes as routing would."""
    candidates: list[tuple[int, set[str]]] = []
    for template, item in request.app.openapi()["paths"].items():
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        if re.fullmatch(pattern, request.url.path):
            candidates.append((template.count("{"), {m.upper() for m in item if m.upper() in METHODS}))
    if candidates:
        fewest = min(count for count, _ in candidates)
        return set().union(*(methods for count, methods in candidates if count == fewest))
    scopes = ({**request.scope, "method": method} for method in METHODS)
    return {scope["method"] for scope in scopes
            if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes)}
