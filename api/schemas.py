"""Request and response bodies of the HTTP API (the OpenAPI document is generated from them)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from api.errors import ProblemOut
from scheduler.plan import AppointmentKind, Comparison, Metrics, SolverStats, UnbookedReview

MAX_VERSION = 2**31 - 1  # a version number fits the database's integer column
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date_text(value: Any) -> Any:
    # pydantic alone reads "0" or "1700000000" as seconds since 1970 (a date_to=0 would become
    # 1970-01-01); a date in a query is written YYYY-MM-DD, as its OpenAPI `format: date` says.
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_text)]
"""A calendar date given as text YYYY-MM-DD (RFC 3339 full-date) and nothing else."""


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ScenarioVersionOut(Out):
    version: int
    source: str
    patients: int
    reviews: int
    created_at: dt.datetime


class ScenarioOut(Out):
    id: str
    name: str
    latest_version: int
    published_plan_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    versions: list[ScenarioVersionOut] = []


class ScenarioList(BaseModel):
    items: list[ScenarioOut]


class ValidationReport(BaseModel):
    ok: bool
    patients: int = 0
    reviews: int = 0
    problems: list[ProblemOut] = []


MAX_SEED = 2**31 - 1  # CP-SAT's random_seed is a 32-bit signed integer
MAX_TIME_LIMIT_SECONDS = 3600
MAX_SOLVER_WORKERS = 64


class PlanRequest(BaseModel):
    """Start a plan; settings left out come from the scenario's own solver settings.

    Every number has a stated range and is refused outside it, never clamped; types are strict,
    so `false` is not a seed and `"5"` or `2.0` is not a worker count (422 naming the field).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    version: int | None = Field(None, ge=1, le=MAX_VERSION, description="Scenario version to solve; default the latest.")
    time_limit_seconds: float | None = Field(
        None, ge=1, le=MAX_TIME_LIMIT_SECONDS, allow_inf_nan=False,
        description="Wall-clock seconds the solver may use, 1 to 3600; default the scenario's.")
    workers: int | None = Field(None, ge=1, le=MAX_SOLVER_WORKERS,
                                description="CP-SAT search workers for this solve, 1 to 64; default the scenario's.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED,
                             description="CP-SAT random seed, 0 to 2^31-1; default the scenario's.")


JobStatus = Literal["queued", "running", "finished", "failed", "cancelled"]


class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    id: str
    scenario_id: str
    scenario_version: int
    status: JobStatus
    stage: str
    cancel_requested: bool
    elapsed_seconds: float
    time_limit_seconds: float
    objective: float | None
    bound: float | None
    gap: float | None = Field(description="(objective - bound) / objective of the best plan so far.")
    reviews_booked: int | None
    reviews_total: int
    patients_booked: int | None = Field(description="Patients with every due review booked so far.")
    patients_total: int
    plan_id: str | None
    error: JobError | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class JobList(BaseModel):
    items: list[JobOut]


class PlanOut(BaseModel):
    id: str
    scenario_id: str
    scenario_version: int
    number: int = Field(description="Plan version within the scenario.")
    job_id: str | None
    created_at: dt.datetime
    published_at: dt.datetime | None
    scenario_name: str
    metrics: Metrics
    baselines: dict[str, Metrics]
    comparison: Comparison | None
    solver: SolverStats
    unbooked_count: int


class PlanList(BaseModel):
    items: list[PlanOut]


class AppointmentOut(BaseModel):
    id: str
    patient_id: str
    visit_id: str
    kind: AppointmentKind
    date: dt.date
    start: dt.datetime = Field(description="Local time with offset (Europe/London).")
    end: dt.datetime
    site_id: str
    room_id: str
    clinician_ids: list[str]
    review_ids: list[str]
    review_type_ids: list[str]
    blood_marker_ids: list[str]


class AppointmentPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[AppointmentOut]


class UnbookedList(BaseModel):
    items: list[UnbookedReview]


class KeyInfo(BaseModel):
    organisation: str
    role: str
