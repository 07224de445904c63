"""Capacity studies (issue 15): start one of a stored scenario version as a job, follow its
progress, cancel it, and fetch its report (HTML, JSON, CSV, PNG) once finished.

A study is validated when it is asked for (`study_from_data`, then `expand` against the stored
scenario version): a bad study is a 422 `invalid_study` listing every problem, named by variant
and field, and nothing is saved. A study's report files are served only once it is finished: a
study queued, running, failed or cancelled answers 409 `not_finished` (its id exists for this
key; the report does not yet, or never will); an unknown file name is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.deps import DB, CallerDep, services
from api.errors import ERROR_RESPONSES, ApiError, not_found
from api.models import CapacityStudy, CapacityStudyFile, ScenarioVersion, utcnow
from api.schemas import (
    CapacityStudyList,
    CapacityStudyOut,
    CapacityStudyRequest,
    JobError,
    ReportFileOut,
    StudyProgress,
)
from api.store import label, scenario_of, scenario_record, scenario_version
from scheduler.capacity.study import StudyError, expand, study_from_data

router = APIRouter(prefix="/v1", tags=["capacity studies"], responses=ERROR_RESPONSES)
FINAL = ("finished", "failed", "cancelled")
# The HTML report is self-contained (plots embedded as data: URLs, inline styles): nothing else
# may load or run, so a hostile variant name could never run script even if escaping failed.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
REPORT_CONTENT = {
    "text/html": {"schema": {"type": "string"}},
    "application/json": {"schema": {}},
    "text/csv": {"schema": {"type": "string"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
}


def study_out(session: Session, study: CapacityStudy) -> CapacityStudyOut:
    version = session.get(ScenarioVersion, study.scenario_version_id)
    files = session.execute(select(CapacityStudyFile.name, CapacityStudyFile.media_type, CapacityStudyFile.size)
                            .where(CapacityStudyFile.study_id == study.id)
                            .order_by(CapacityStudyFile.name)).all() if study.status == "finished" else []
    document = study.document
    variants = len(document.get("variants", [])) + sum(len(s.get("values", [])) for s in document.get("sweeps", []))
    return CapacityStudyOut(
        id=study.id, name=study.name, scenario_id=study.scenario_id, scenario_version=version.version,
        status=study.status, cancel_requested=study.cancel_requested,
        time_limit_seconds=study.time_limit_seconds or document.get("time_limit_seconds", 60.0),
        variants=variants,
        progress=StudyProgress(done=study.progress_done, total=study.progress_total, variant=study.progress_variant),
        error=JobError(code=study.error_code, message=study.error_message or "") if study.error_code else None,
        report_files=[ReportFileOut(name=n, media_type=m, size=s) for n, m, s in files], study=document,
        created_at=study.created_at, started_at=study.started_at, finished_at=study.finished_at,
    )


def _study(session: Session, organisation_id: str, study_id: str) -> CapacityStudy:
    study = session.get(CapacityStudy, study_id)
    if study is None or study.organisation_id != organisation_id:
        raise not_found("capacity study")  # another organisation's study does not exist for this key
    return study


def study_error(exc: StudyError) -> ApiError:
    first = exc.problems[0] if exc.problems else None
    return ApiError(422, "invalid_study", f"{len(exc.problems)} problem(s) in the study; nothing was saved.",
                    first.location if first else "study", exc.problems)


class Validated:
    """A study request checked against its stored scenario version, ready to store."""

    def __init__(self, scenario_id: str, version_id: str, document: dict[str, Any], name: str,
                 time_limit_seconds: float | None) -> None:
        self.scenario_id, self.version_id, self.document = scenario_id, version_id, document
        self.name, self.time_limit_seconds = name, time_limit_seconds


def validated_study(request: Request, caller: CallerDep, body: Annotated[CapacityStudyRequest, Body()]) -> Validated:
    """The request's study validated and expanded against the stored scenario version, in a
    reading session of its own, before the request takes its turn to write (expanding a large
    study holds up no other write). 404 for a scenario or version this key cannot see; 422
    `invalid_study` listing every problem."""
    with services(request).factory() as session:
        record = scenario_record(session, caller.organisation_id, body.scenario_id)
        version = scenario_version(session, record, body.version)
        base = scenario_of(version)
        scenario_id, version_id, number = record.id, version.id, version.version
    data = dict(body.study)
    data["base"] = f"stored scenario {scenario_id} version {number}"
    try:
        study = study_from_data(data, "study")
        expand(study, base, "study")
    except StudyError as exc:
        raise study_error(exc) from None
    return Validated(scenario_id, version_id, study.model_dump(mode="json"), label(study.name),
                     body.time_limit_seconds)


ValidatedStudy = Annotated[Validated, Depends(validated_study)]


@router.post("/capacity-studies", status_code=202, response_model=CapacityStudyOut,
             summary="Start a capacity study of a stored scenario version (a job)")
def start_study(caller: CallerDep, validated: ValidatedStudy, session: DB) -> CapacityStudyOut:
    # The scenario was read before this transaction: a scenario is never deleted, so it still stands.
    study = CapacityStudy(organisation_id=caller.organisation_id, name=validated.name,
                          scenario_id=validated.scenario_id, scenario_version_id=validated.version_id,
                          document=validated.document, time_limit_seconds=validated.time_limit_seconds)
    session.add(study)
    session.flush()
    return study_out(session, study)


@router.get("/capacity-studies", response_model=CapacityStudyList, summary="List capacity studies, newest first")
def list_studies(session: DB, caller: CallerDep, scenario_id: str | None = None,
                 status: Literal["queued", "running", "finished", "failed", "cancelled"] | None = None
                 ) -> CapacityStudyList:
    query = select(CapacityStudy).where(CapacityStudy.organisation_id == caller.organisation_id)
    if scenario_id:
        query = query.where(CapacityStudy.scenario_id == scenario_id)
    if status:
        query = query.where(CapacityStudy.status == status)
    studies = session.scalars(query.order_by(CapacityStudy.created_at.desc()).limit(500)).all()
    return CapacityStudyList(items=[study_out(session, s) for s in studies])


@router.get("/capacity-studies/{study_id}", response_model=CapacityStudyOut,
            summary="A capacity study's status, progress and (once finished) report files")
def get_study(study_id: str, session: DB, caller: CallerDep) -> CapacityStudyOut:
    return study_out(session, _study(session, caller.organisation_id, study_id))


@router.post("/capacity-studies/{study_id}/cancel", response_model=CapacityStudyOut,
             summary="Cancel a queued or running capacity study")
def cancel_study(study_id: str, session: DB, caller: CallerDep) -> CapacityStudyOut:
    study = _study(session, caller.organisation_id, study_id)
    if study.status in FINAL:
        raise ApiError(409, "study_finished", f"The study is already {study.status}.", "study_id")
    # A queued study is cancelled at once; a running one is stopped by the dispatcher within a moment.
    session.execute(update(CapacityStudy).where(CapacityStudy.id == study.id, CapacityStudy.status == "queued").values(
        status="cancelled", error_code="cancelled", error_message="Cancelled on request.",
        finished_at=utcnow(), updated_at=utcnow()))
    session.execute(update(CapacityStudy).where(CapacityStudy.id == study.id, CapacityStudy.status == "running")
                    .values(cancel_requested=True))
    session.flush()
    session.refresh(study)
    return study_out(session, study)


@router.get("/capacity-studies/{study_id}/report/{file_name}", response_class=Response,
            summary="A file of a finished study's report",
            description="report.html (self-contained; served with a Content-Security-Policy that lets "
            "nothing load or run), report.json, figures.csv, capacity_curve.png, utilisation_heatmap.png, "
            "equity.png. 409 `not_finished` while the study is not finished; 404 for another name.",
            responses={200: {"content": REPORT_CONTENT, "description": "The file."}})
def get_report_file(study_id: str, file_name: str, session: DB, caller: CallerDep) -> Response:
    study = _study(session, caller.organisation_id, study_id)
    if study.status != "finished":
        raise ApiError(409, "not_finished", f"The study is {study.status}; its report exists once it is finished.",
                       "study_id")
    found = session.get(CapacityStudyFile, (study.id, file_name))
    if found is None:
        raise not_found("report file")
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
    if found.media_type.startswith("text/html"):
        headers["Content-Security-Policy"] = REPORT_CSP
    return Response(content=found.content, media_type=found.media_type, headers=headers)
