"""Re-planning from the web page: disruptions recorded one at a time with a form (absence,
closure, cancellation, did-not-attend, pin, manual move), then the re-plan started as a job;
the difference is shown (plans.diff_page) before anything is published.

The list being built travels in the form itself (a hidden JSON field), so nothing is stored
until the re-plan starts; each entry is checked as it is added, and the whole list against the
plan when the re-plan starts (the API's own checks, docs/replan.md).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from api.deps import DB
from api.errors import ApiError
from api.routes import plans as plan_routes
from api.schemas import ReplanRequest
from api.web.plans import loaded, references_of
from api.web.routing import Posted, SignedIn, WebRoute, render
from api.web.sessions import WebCaller
from scheduler.disruptions import disruptions_from_data
from scheduler.problems import Problem, ScenarioError

router = APIRouter(include_in_schema=False, route_class=WebRoute)
MAX_DRAFT_CHARS = 200_000  # a few hundred entries; the request body limit bounds it anyway
KINDS = {
    "clinician_absence": "Clinician absent",
    "room_closure": "Room closed",
    "site_closure": "Site closed",
    "patient_cancelled": "Patient cancelled",
    "patient_did_not_attend": "Patient did not attend",
    "booking_pinned": "Pin a booking (keep it where it is)",
    "booking_moved": "Move a booking by hand",
}


def _local(value: str) -> str:
    """A datetime-local input ("2027-03-23T09:00") as the disruption files write it."""
    value = value.strip()
    return value + ":00" if len(value) == 16 else value


def entry_from_form(form: dict[str, str]) -> dict[str, Any]:
    """One disruption entry, shaped as in a disruptions file, from the form's fields; fields the
    kind does not use are left out, so the validator names only what is wrong or missing."""
    kind = form.get("kind", "")
    entry: dict[str, Any] = {"kind": kind}

    def put(name: str, field: str | None = None, convert=lambda v: v.strip()) -> None:
        value = form.get(field or name, "")
        if value.strip():
            entry[name] = convert(value)

    if kind in ("clinician_absence", "room_closure", "site_closure"):
        put({"clinician_absence": "clinician", "room_closure": "room", "site_closure": "site"}[kind])
        put("start", convert=_local)
        put("end", convert=_local)
        put("reason")
    elif kind == "patient_cancelled":
        put("patient")
        entry["rebook"] = form.get("rebook") == "yes"
        put("reason")
    elif kind == "patient_did_not_attend":
        put("patient")
        put("date")
    elif kind in ("booking_pinned", "booking_moved"):
        put("reference")
        if kind == "booking_moved":
            put("date", "move_date")
            put("start", "move_start")
            put("clinician", "move_clinician")
            put("room", "move_room")
    return entry


def _draft(text: str) -> list[dict[str, Any]]:
    if len(text) > MAX_DRAFT_CHARS:
        raise ApiError(413, "too_large", "Too many disruptions in one re-plan.", "draft")
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError:
        raise ApiError(422, "invalid_request", "The list of disruptions was damaged; start again.", "draft") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ApiError(422, "invalid_request", "The list of disruptions was damaged; start again.", "draft")
    return value


def _page(request: Request, session: DB, web: WebCaller, plan_id: str, draft: list[dict[str, Any]],
          problems: list[Problem] | None = None, error: str | None = None, form: dict[str, str] | None = None,
          status_code: int = 200) -> Response:
    record, plan, scenario = loaded(session, web.caller.organisation_id, plan_id)
    references = sorted(set(references_of(session, record.id).values()))
    return render(request, "replan.html", status_code=status_code, record=record, scenario=scenario,
                  draft=draft, draft_json=json.dumps(draft), problems=problems or [], error=error,
                  form=form or {}, kinds=KINDS, references=references,
                  patients=sorted({a.patient_id for a in plan.appointments}))


@router.get("/plans/{plan_id}/replan")
def replan_form(request: Request, plan_id: str, web: SignedIn, session: DB) -> Response:
    if not web.may("replan"):
        raise ApiError(403, "forbidden", f"A {web.role} key may not re-plan plans; use a manager key.")
    return _page(request, session, web, plan_id, [])


async def replan_form_fields(request: Request, web: Posted) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def prepared(request: Request, plan_id: str, web: Posted,
             fields: Annotated[dict[str, str], Depends(replan_form_fields)]) -> plan_routes.PreparedReplan | ApiError | None:
    """For "start": the disruptions checked against the plan and applied (the API's own
    preparation), before the request takes its turn to write; None for the other actions."""
    if fields.get("action") != "start":
        return None
    try:
        draft = _draft(fields.get("draft", ""))
        if not draft:
            return ApiError(422, "invalid_disruptions", "Add at least one disruption first.", "disruptions")
        limit = fields.get("time_limit_seconds", "").strip()
        as_of = _local(fields.get("as_of", ""))
        body = ReplanRequest(disruptions=draft, as_of=as_of or None, time_limit_seconds=float(limit) if limit else None)
    except ApiError as exc:
        return exc
    except (ValueError, ValidationError):
        return ApiError(422, "invalid_request", "The time limit must be 1 to 3600 seconds and 'as of' a date and "
                        "time.", "time_limit_seconds")
    try:
        return plan_routes.prepared_replan(plan_id, body, web.caller, request)
    except ApiError as exc:
        return exc


@router.post("/plans/{plan_id}/replan")
def replan_action(request: Request, plan_id: str, web: Posted,
                  fields: Annotated[dict[str, str], Depends(replan_form_fields)],
                  ready: Annotated[plan_routes.PreparedReplan | ApiError | None, Depends(prepared)],
                  session: DB) -> Response:
    """`action`: "add" (check the form's entry and add it), "remove-N" (drop entry N, 1-based)
    or "start" (re-plan with the list)."""
    if not web.may("replan"):
        raise ApiError(403, "forbidden", f"A {web.role} key may not re-plan plans; use a manager key.")
    draft = _draft(fields.get("draft", ""))
    action = fields.get("action", "")
    if action == "add":
        entry = entry_from_form(fields)
        try:
            disruptions_from_data(draft + [entry], "disruptions")
        except ScenarioError as exc:
            return _page(request, session, web, plan_id, draft, exc.problems,
                         "That disruption cannot be added as it is:", fields, 422)
        return _page(request, session, web, plan_id, draft + [entry])
    if action.startswith("remove-") and action[7:].isdigit():
        n = int(action[7:])
        return _page(request, session, web, plan_id, [e for i, e in enumerate(draft, 1) if i != n])
    if action == "start":
        if isinstance(ready, ApiError):
            return _page(request, session, web, plan_id, draft, ready.problems, ready.message, fields, ready.status)
        job = plan_routes.replan_plan(plan_id, web.caller, ready, session)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)
    raise ApiError(422, "invalid_request", "Unknown action.", "action")
