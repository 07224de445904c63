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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

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
                         (409, "Conflict with the current state"), (422, "Invalid input"))
}


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


def install(app: FastAPI) -> None:
    app.add_middleware(RejectNul)

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
