"""Recall imports: a clinical system's recall export added to a scenario as a new version
(docs/recall-import.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field

from api.deps import DB, CallerDep
from api.errors import ERROR_RESPONSES, ApiError, ProblemOut, problem_dict, scenario_error
from api.routes.scenarios import scenario_out
from api.schemas import ScenarioOut
from api.store import add_version, scenario_record, scenario_version
from scheduler.domain import Scenario
from scheduler.problems import Problem, ScenarioError
from scheduler.recall.importer import import_recall
from scheduler.recall.profile import MAX_PROFILE_BYTES, SHIPPED, load_profile, profile_from_text
from scheduler.recall.tables import MAX_EXPORT_BYTES

router = APIRouter(prefix="/v1", tags=["scenarios"], responses=ERROR_RESPONSES)


class RecallCounts(BaseModel):
    rows_read: int
    patients_created: int
    due_reviews_added: int
    skipped: int
    refused: int


class RecallImportOut(BaseModel):
    scenario: ScenarioOut
    version: int = Field(description="The new scenario version holding the imported rows.")
    counts: RecallCounts = Field(description="rows_read = due_reviews_added + skipped + refused.")
    warnings: list[ProblemOut] = Field(
        [], description="Each export row not used and why, then each roster session the planner will not use.")


def _problem(source: str, message: str) -> ApiError:
    return scenario_error(ScenarioError([Problem(source, "", message)]))


@router.post("/scenarios/{scenario_id}/recall", status_code=201, response_model=RecallImportOut,
             summary="Import a recall export (CSV or .xlsx) into a new scenario version")
def import_recall_export(
    scenario_id: str,
    caller: CallerDep,
    session: DB,
    export: Annotated[UploadFile, File(description="The recall export, CSV or .xlsx.")],
    profile: Annotated[UploadFile | str | None, File(
        description="A shipped profile's name (" + ", ".join(SHIPPED) + "), or a profile YAML file.")] = None,
    strict: Annotated[bool, Form(description="Every warning is an error: nothing is saved.")] = False,
) -> RecallImportOut:
    """Add the export's rows to the scenario's latest version and save the result as a new
    version. 422 naming the file, row and column when the export or profile cannot be used or
    the result does not validate, and (strict) for any warning."""
    record = scenario_record(session, caller.organisation_id, scenario_id)
    current = Scenario.model_validate(scenario_version(session, record).content)
    try:
        if profile is not None and not isinstance(profile, str):
            source = profile.filename or "profile.yaml"
            raw = profile.file.read(MAX_PROFILE_BYTES + 1)
            try:
                chosen = profile_from_text(raw.decode("utf-8-sig"), source)
            except UnicodeDecodeError:
                raise _problem(source, "the profile is not UTF-8 text") from None
        elif profile in SHIPPED:
            source = profile
            chosen = load_profile(profile)
        else:
            raise _problem("profile", "give a shipped profile's name (" + ", ".join(SHIPPED) + ") or upload a "
                           "profile YAML file as profile" + (f"; '{profile[:40]}' is not one" if profile else ""))
        name = export.filename or "export"
        data = export.file.read(MAX_EXPORT_BYTES + 1)
        result = import_recall(current, chosen, data, name, profile_source=source, scenario_source="scenario")
    except ScenarioError as error:
        raise scenario_error(error) from None
    if strict and result.warnings:
        raise ApiError(422, "invalid_scenario",
                       f"strict: {len(result.warnings)} warning(s) are errors; nothing was saved.",
                       str(result.warnings[0].source), result.warnings)
    version = add_version(session, record, result.scenario, f"recall import {name} (profile {source})")
    return RecallImportOut(
        scenario=scenario_out(session, record, result.roster), version=version.version,
        counts=RecallCounts(**result.counts()),
        warnings=[ProblemOut(**problem_dict(p)) for p in result.warnings])
