"""Capacity studies from the web page: start one on a stored scenario (the study written or
pasted as YAML, docs/capacity.md), follow its progress, and read its report with its plots."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from api.deps import DB
from api.errors import ApiError
from api.routes import capacity as capacity_routes
from api.routes import scenarios as scenario_routes
from api.schemas import CapacityStudyRequest
from api.store import scenario_of, scenario_record, scenario_version
from api.web.routing import Posted, SignedIn, WebRoute, render

router = APIRouter(include_in_schema=False, route_class=WebRoute)
MAX_STUDY_CHARS = 200_000
EXAMPLE_STUDY = """name: One more nurse session
time_limit_seconds: 20
variants:
  - name: one more practice nurse session
    changes:
      - kind: sessions_added
        role: practice_nurse
        site: {site}
        weekdays: [tue]
        start: "09:00"
        end: "12:30"
        count: 1
bottlenecks: []
"""


def _list(request: Request, session: DB, web: Any, **context: Any) -> Response:
    studies = capacity_routes.list_studies(session, web.caller).items
    scenarios = scenario_routes.list_scenarios(session, web.caller).items
    if "study_text" not in context:
        site = "SITE_ID"
        if scenarios:  # the example names a real site of the newest scenario
            record = scenario_record(session, web.caller.organisation_id, scenarios[-1].id)
            site = scenario_of(scenario_version(session, record)).sites[0].id
        context["study_text"] = EXAMPLE_STUDY.format(site=site)
    return render(request, "capacity.html", studies=studies, scenarios=scenarios, **context)


@router.get("/capacity")
def capacity_page(request: Request, web: SignedIn, session: DB) -> Response:
    return _list(request, session, web)


def study_request(request: Request, web: Posted,
                  scenario_id: Annotated[str, Form(max_length=64)] = "",
                  study: Annotated[str, Form(max_length=MAX_STUDY_CHARS)] = "",
                  time_limit_seconds: Annotated[str, Form(max_length=20)] = "") -> capacity_routes.Validated | ApiError:
    """The form's study validated and expanded against the stored scenario (the API's own
    validation), before the request takes its turn to write; the ApiError otherwise."""
    try:
        document = yaml.safe_load(study)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        return ApiError(422, "invalid_study", f"The study is not valid YAML{where}.", "study")
    if not isinstance(document, dict):
        return ApiError(422, "invalid_study", "The study must be a mapping with a name and variants.", "study")
    try:
        body = CapacityStudyRequest(study=document, scenario_id=scenario_id,
                                    time_limit_seconds=float(time_limit_seconds) if time_limit_seconds.strip()
                                    else None)
    except (ValueError, ValidationError):
        return ApiError(422, "invalid_request", "Choose a scenario; the time limit is 1 to 3600 seconds per solve.",
                        "scenario_id")
    try:
        return capacity_routes.validated_study(request, web.caller, body)
    except ApiError as exc:
        return exc


@router.post("/capacity")
def start(request: Request, web: Posted, session: DB,
          validated: Annotated[capacity_routes.Validated | ApiError, Depends(study_request)],
          study: Annotated[str, Form(max_length=MAX_STUDY_CHARS)] = "") -> Response:
    if isinstance(validated, ApiError):
        return _list(request, session, web, error=validated.message, problems=validated.problems,
                     study_text=study, status_code=validated.status)
    out = capacity_routes.start_study(web.caller, validated, session)
    return RedirectResponse(f"/capacity/{out.id}", status_code=303)


@router.get("/capacity/{study_id}")
def study_page(request: Request, study_id: str, web: SignedIn, session: DB) -> Response:
    study = capacity_routes.get_study(study_id, session, web.caller)
    return render(request, "study.html", study=study)


@router.get("/capacity/{study_id}/status.json")
def study_status(study_id: str, web: SignedIn, session: DB) -> Response:
    study = capacity_routes.get_study(study_id, session, web.caller)
    return Response(study.model_dump_json(include={"id", "status", "progress", "error", "cancel_requested"}),
                    media_type="application/json")


@router.post("/capacity/{study_id}/cancel")
def cancel(request: Request, study_id: str, web: Posted, session: DB) -> Response:
    capacity_routes.cancel_study(study_id, session, web.caller)
    return RedirectResponse(f"/capacity/{study_id}", status_code=303)


@router.get("/capacity/{study_id}/report/{file_name}")
def report_file(study_id: str, file_name: str, web: SignedIn, session: DB) -> Response:
    """A report file, as the API serves it (its own Content-Security-Policy on report.html)."""
    return capacity_routes.get_report_file(study_id, file_name, session, web.caller)
