"""Scenarios: create from JSON or uploaded files, list, read, new versions, validate, start plans."""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, File, Path, Request, UploadFile
from sqlalchemy import select

from api.deps import DB, CallerDep
from api.errors import ERROR_RESPONSES, ApiError, ProblemOut, problem_dict, scenario_error
from api.models import Job, ScenarioRecord, ScenarioVersion
from api.routes.jobs import job_out
from api.schemas import (
    MAX_VERSION,
    JobOut,
    PlanRequest,
    ScenarioList,
    ScenarioOut,
    ScenarioVersionOut,
    ValidationReport,
)
from api.store import add_scenario, add_version, scenario_record, scenario_version
from scheduler.domain import Scenario
from scheduler.scenario_io import (
    Problem,
    ScenarioError,
    decode_text,
    scenario_from_dict,
    scenario_from_text,
)
from scheduler.scenario_io.accounting import session_origins_from_text, unused_sessions

router = APIRouter(prefix="/v1", tags=["scenarios"], responses=ERROR_RESPONSES)

SCENARIO_SCHEMA_NAME = "Scenario"
# The body is read by `scenario_document`, not by FastAPI, so that a bad scenario is answered by
# the scenario validator (every problem, in the command line's words) rather than by pydantic;
# the OpenAPI document still states its real schema (`scenario_components` puts it there).
SCENARIO_BODY = {"requestBody": {
    "required": True,
    "description": "The scenario document, exactly as a scenario file in JSON (docs/scenario-format.md).",
    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{SCENARIO_SCHEMA_NAME}"}}},
}}


def scenario_components() -> dict[str, dict[str, Any]]:
    """The scenario's JSON Schema as OpenAPI components: `Scenario` and every model it uses,
    with references pointing into `#/components/schemas/`."""
    schema = Scenario.model_json_schema(mode="validation", ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return {**definitions, SCENARIO_SCHEMA_NAME: schema}


def _body_problem(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message, "body", [Problem("request", "body", message)])


def _not_a_number(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _json(raw: bytes) -> Any:
    """Parse a JSON body; every failure is a 422 naming the body (never a 500)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _body_problem(f"The body is not UTF-8 text (byte 0x{raw[exc.start]:02x} at position {exc.start}).") from None
    try:
        return json.loads(text, parse_constant=_not_a_number)
    except json.JSONDecodeError as exc:
        raise _body_problem(f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    except RecursionError:
        raise _body_problem("The body nests arrays or objects too deeply to be a scenario.") from None
    except ValueError as exc:  # NaN or Infinity, or an integer of thousands of digits
        raise _body_problem(f"The body could not be read as JSON: {exc}.") from None


async def scenario_document(request: Request) -> Any:
    """The request's JSON body, parsed off the event loop.

    The body is at most ONEVISIT_MAX_BODY_BYTES (the LimitBody middleware stops it there). Raises
    ApiError 422 `invalid_request` (field `body`) for a missing body, a content type other than
    JSON, text that is not UTF-8, invalid JSON, or NaN/Infinity.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise _body_problem("The body must be a scenario as JSON, sent with Content-Type: application/json.")
    raw = await request.body()
    if not raw.strip():
        raise _body_problem("The body is empty; send the scenario as a JSON document.")
    return await anyio.to_thread.run_sync(_json, raw)


ScenarioDocument = Annotated[Any, Depends(scenario_document)]


def parsed_json(body: ScenarioDocument) -> Scenario:
    """The JSON body validated as a scenario; ApiError 422 listing every problem otherwise."""
    try:
        return scenario_from_dict(body, "scenario.json")
    except ScenarioError as exc:
        raise scenario_error(exc) from None


def _read(upload: UploadFile | None, *, spreadsheet: bool) -> tuple[str | None, str, list[Problem]]:
    # Whole files: the request body, and so each file, is already bounded by LimitBody.
    if upload is None:
        return None, "", []
    name = upload.filename or "upload"
    text, problems = decode_text(upload.file.read(), name, spreadsheet=spreadsheet)
    return text, name, problems


def parsed_upload(
    scenario: Annotated[UploadFile, File(description="Scenario file, .yaml or .json.")],
    sessions_csv: Annotated[UploadFile | None, File(description="Roster sessions CSV.")] = None,
    due_reviews_csv: Annotated[UploadFile | None, File(description="Due reviews CSV.")] = None,
) -> tuple[Scenario, str, list[Problem]]:
    """The uploaded files validated as one scenario, with a warning for each roster session the
    planner will not use; ApiError 422 listing every problem otherwise."""
    text, name, problems = _read(scenario, spreadsheet=False)
    sessions, sessions_name, more = _read(sessions_csv, spreadsheet=True)
    problems += more
    due, due_name, more = _read(due_reviews_csv, spreadsheet=True)
    problems += more
    if not name.lower().endswith((".yaml", ".yml", ".json")):
        problems.append(Problem(name, "", "unknown file type: upload the scenario as .yaml, .yml or .json"))
    if problems or text is None:
        raise scenario_error(ScenarioError(problems))
    try:
        parsed = scenario_from_text(text, name, sessions_csv_text=sessions, due_reviews_csv_text=due,
                                    sessions_source=sessions_name or "sessions.csv",
                                    due_reviews_source=due_name or "due_reviews.csv")
    except ScenarioError as exc:
        raise scenario_error(exc) from None
    origins = session_origins_from_text(parsed, sessions, sessions_name or "sessions.csv")
    warnings = unused_sessions(parsed, name, origins)
    return parsed, ", ".join(n for n in (name, sessions_name, due_name) if n), warnings


# Parsed as dependencies declared after the key and before the session: a large scenario is
# validated before the request takes its turn to write, so it holds up no other write.
ParsedJson = Annotated[Scenario, Depends(parsed_json)]
ParsedUpload = Annotated[tuple[Scenario, str, list[Problem]], Depends(parsed_upload)]


def scenario_out(session: DB, record: ScenarioRecord, warnings: list[Problem] | None = None) -> ScenarioOut:
    versions = session.scalars(select(ScenarioVersion).where(ScenarioVersion.scenario_id == record.id)
                               .order_by(ScenarioVersion.version)).all()
    out = ScenarioOut.model_validate(record)
    out.versions = [ScenarioVersionOut.model_validate(v) for v in versions]
    out.warnings = [ProblemOut(**problem_dict(p)) for p in warnings or []]
    return out


@router.post("/scenarios", status_code=201, response_model=ScenarioOut, summary="Create a scenario from JSON",
             openapi_extra=SCENARIO_BODY)
def create_scenario(caller: CallerDep, parsed: ParsedJson, session: DB) -> ScenarioOut:
    version = add_scenario(session, caller.organisation_id, parsed, "json")
    return scenario_out(session, session.get(ScenarioRecord, version.scenario_id),
                        unused_sessions(parsed, "scenario.json"))


@router.post("/scenarios/upload", status_code=201, response_model=ScenarioOut,
             summary="Create a scenario from a scenario file and optional roster / due-review CSVs")
def upload_scenario(caller: CallerDep, upload: ParsedUpload, session: DB) -> ScenarioOut:
    parsed, source, warnings = upload
    version = add_scenario(session, caller.organisation_id, parsed, source)
    return scenario_out(session, session.get(ScenarioRecord, version.scenario_id), warnings)


@router.get("/scenarios", response_model=ScenarioList, summary="List this organisation's scenarios")
def list_scenarios(session: DB, caller: CallerDep) -> ScenarioList:
    records = session.scalars(select(ScenarioRecord).where(ScenarioRecord.organisation_id == caller.organisation_id)
                              .order_by(ScenarioRecord.created_at)).all()
    return ScenarioList(items=[ScenarioOut.model_validate(r) for r in records])


@router.get("/scenarios/{scenario_id}", response_model=ScenarioOut)
def get_scenario(scenario_id: str, session: DB, caller: CallerDep) -> ScenarioOut:
    return scenario_out(session, scenario_record(session, caller.organisation_id, scenario_id))


@router.get("/scenarios/{scenario_id}/versions/{version}", response_model=dict[str, Any],
            summary="A scenario version's document")
def get_scenario_version(scenario_id: str, version: Annotated[int, Path(ge=1, le=MAX_VERSION)], session: DB,
                         caller: CallerDep) -> dict[str, Any]:
    record = scenario_record(session, caller.organisation_id, scenario_id)
    return scenario_version(session, record, version).content


@router.put("/scenarios/{scenario_id}", response_model=ScenarioOut, summary="Save an edit as a new version",
            openapi_extra=SCENARIO_BODY)
def new_version(scenario_id: str, caller: CallerDep, parsed: ParsedJson, session: DB) -> ScenarioOut:
    record = scenario_record(session, caller.organisation_id, scenario_id)
    add_version(session, record, parsed, "json")
    return scenario_out(session, record, unused_sessions(parsed, "scenario.json"))


@router.post("/scenarios/{scenario_id}/upload", response_model=ScenarioOut,
             summary="Save uploaded files as a new version")
def upload_version(scenario_id: str, caller: CallerDep, upload: ParsedUpload, session: DB) -> ScenarioOut:
    parsed, source, warnings = upload
    record = scenario_record(session, caller.organisation_id, scenario_id)
    add_version(session, record, parsed, source)
    return scenario_out(session, record, warnings)


@router.post("/validate", response_model=ValidationReport, summary="Validate a scenario without saving or solving",
             openapi_extra=SCENARIO_BODY)
def validate(_caller: CallerDep, body: ScenarioDocument) -> ValidationReport:
    try:
        parsed = scenario_from_dict(body, "scenario.json")
    except ScenarioError as exc:
        return ValidationReport(ok=False, problems=[problem_dict(p) for p in exc.problems])
    return ValidationReport(ok=True, patients=len(parsed.patients),
                            reviews=sum(len(p.due_reviews) for p in parsed.patients))


@router.post("/scenarios/{scenario_id}/plans", status_code=202, response_model=JobOut,
             summary="Start planning a scenario version (a job)")
def start_plan(scenario_id: str, session: DB, caller: CallerDep,
               request: Annotated[PlanRequest | None, Body()] = None) -> JobOut:
    request = request or PlanRequest()
    record = scenario_record(session, caller.organisation_id, scenario_id)
    version = scenario_version(session, record, request.version)
    settings = request.settings(version.content.get("solver", {}), "The scenario version's",
                                "override it in the request or save a corrected version")
    job = Job(organisation_id=caller.organisation_id, scenario_id=record.id, scenario_version_id=version.id,
              settings=settings.model_dump(mode="json"))
    session.add(job)
    session.flush()
    return job_out(session, job)
