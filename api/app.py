"""The FastAPI application: migrations and job recovery at start-up, the job and capacity-study
dispatchers, routes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api import docs_pages, errors, web
from api.audit import AuditMiddleware
from api.capacity_jobs import StudyDispatcher, recover_interrupted_studies
from api.config import Settings
from api.db import database_ready, make_engine, make_sessionmaker, upgrade, writer
from api.deps import Services
from api.jobs import Dispatcher, recover_interrupted
from api.routes import audit as audit_routes
from api.routes import bookings, calendar, capacity, fhir, jobs, messages, plans, scenarios
from api.routes.explain import router as explain_router
from api.routes.recall import router as recall_router

DESCRIPTION = """OneVisit plans consolidated multidisciplinary visits for people with several long-term
conditions. Management routes need `Authorization: Bearer <API key>`; calendar routes use the
random token in their URL. Every error has the shape `{"error": {"code", "message", "field",
"problems"}}`."""


def create_app(settings: Settings | None = None, *, run_jobs: bool | None = None) -> FastAPI:
    """Build the app; without run_jobs (settings or argument) it serves but never solves.

    Only the instance that runs jobs recovers interrupted ones: another instance's running
    solves are not its to fail.
    """
    settings = settings or Settings.from_env()
    run_jobs = settings.run_jobs if run_jobs is None else run_jobs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        factory = make_sessionmaker(engine)
        app.state.services = Services(settings, engine, factory, make_sessionmaker(writer(engine)), anyio.Lock())
        if run_jobs:
            recover_interrupted(factory)
            recover_interrupted_studies(factory)
        dispatcher = Dispatcher(settings.database_url, factory, settings.workers, settings.poll_seconds)
        studies = StudyDispatcher(settings.database_url, factory, settings.study_processes, settings.poll_seconds)
        # Everything loaded so far (modules, the app, its routes) lives as long as the process:
        # out of the cyclic collector's sight, full collections stay short (see api.store.cached).
        gc.collect()
        gc.freeze()
        if run_jobs:
            dispatcher.start()
            studies.start()
        try:
            yield
        finally:
            if run_jobs:
                dispatcher.stop()
                studies.stop()
            engine.dispose()

    app = FastAPI(title="OneVisit", version="1", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    errors.install(app, settings.max_body_bytes)
    app.add_middleware(AuditMiddleware)  # every write records who, what and the request (api/audit.py)
    for module in (scenarios, jobs, plans, calendar, bookings, capacity, fhir, messages):
        app.include_router(module.router)
    app.include_router(audit_routes.router)  # GET /v1/audit (api/audit.py)
    app.include_router(recall_router)  # POST /v1/scenarios/{id}/recall (docs/recall-import.md)
    app.include_router(explain_router)  # GET /v1/plans/{id}/patients/{patient}/explanation (docs/explain.md)
    docs_pages.install(app)
    web.install(app)  # the rota's pages under /, after the API so /v1 and /docs win

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the scenario's real schema, which the scenario routes refer
        to (their bodies are read by our own validator, so FastAPI does not see the model)."""
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in scenarios.scenario_components().items():
                if name in components and components[name] != schema:
                    raise RuntimeError(f"two different OpenAPI schemas are both called {name!r}")
                components[name] = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers", responses=errors.GUARD_RESPONSES)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Readiness: the database answers",
             responses={503: {"description": "Database unreachable"}, **errors.GUARD_RESPONSES})
    def readyz() -> JSONResponse:
        if database_ready(app.state.services.engine):
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "database unreachable"}, status_code=503)

    return app
