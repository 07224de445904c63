"""The web page for the rota: sign-in, scenarios, plans, the appointment book, reception,
publishing, re-planning and capacity studies, server-rendered under `/` by the same app as
the API (which stays under `/v1`). Templates and static files ship in the package; nothing is
loaded from a CDN (NHS networks often block them)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.web import auth, capacity, plans, replan, scenarios
from api.web.routing import HERE


def install(app: FastAPI) -> None:
    """Add the pages and their static files (/static/web) to `app`."""
    for module in (auth, scenarios, plans, replan, capacity):
        app.include_router(module.router)
    app.mount("/static/web", StaticFiles(directory=HERE / "static"), name="web-static")
