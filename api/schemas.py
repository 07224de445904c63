"""Request and response bodies of the HTTP API (the OpenAPI document is generated from them)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from api.errors import ApiError, ProblemOut
from scheduler.domain import SolverSettings
from scheduler.plan import (
    AppointmentKind,
    Comparison,
    Metrics,
    SolverStats,
    UnbookedReview,
    VisitPurpose,
)

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

LONDON = ZoneInfo("Europe/London")
_ISO_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?")


def _iso_date_time_text(value: Any) -> Any:
    # As for dates: a number (or numeric text) would otherwise be read as seconds since 1970.
    if not isinstance(value, str) or not _ISO_DATE_TIME.fullmatch(value):
        raise ValueError("must be a date and time written YYYY-MM-DDTHH:MM[:SS], with a UTC offset "
                         "(2027-03-22T09:00:00+00:00) or without one (London time)")
    return value


def _in_london(value: dt.datetime) -> dt.datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=LONDON)
    try:
        aware.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    return aware


IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_date_time_text), AfterValidator(_in_london),
                        Field(strict=False)]
"""A moment given as ISO 8601 text, with a UTC offset or without one (then London wall-clock
time); always aware once read."""


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
    warnings: list[ProblemOut] = Field(
        [], description="On a create or upload: each roster session the planner will not use and why "
        "(a bank holiday without on_bank_holiday, a date outside the period, leave, an exact repeat).")


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


class SolverOverrides(BaseModel):
    """Solver settings for one solve; those left out come from the scenario's own.

    Every number has a stated range and is refused outside it, never clamped; types are strict,
    so `false` is not a seed and `"5"` or `2.0` is not a worker count (422 naming the field).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    time_limit_seconds: float | None = Field(
        None, ge=1, le=MAX_TIME_LIMIT_SECONDS, allow_inf_nan=False,
        description="Wall-clock seconds the solver may use, 1 to 3600; default the scenario's.")
    workers: int | None = Field(None, ge=1, le=MAX_SOLVER_WORKERS,
                                description="CP-SAT search workers for this solve, 1 to 64; default the scenario's.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED,
                             description="CP-SAT random seed, 0 to 2^31-1; default the scenario's.")

    def settings(self, solver: dict[str, Any], whose: str, advice: str) -> SolverSettings:
        """`solver` (a scenario's solver settings, as stored) with these overrides. Raises
        ApiError 422 `invalid_settings` naming the field when a stored value is out of today's
        ranges; `whose` and `advice` word the message."""
        overrides = self.model_dump(include={"time_limit_seconds", "workers", "seed"}, exclude_none=True)
        try:
            return SolverSettings.model_validate({**solver, **overrides})
        except ValidationError as exc:  # a scenario stored before today's ranges: say so, not a 500
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise ApiError(422, "invalid_settings", f"{whose} solver setting '{where}' is not usable "
                           f"({first['msg']}); {advice}.", f"solver.{where}") from None


class PlanRequest(SolverOverrides):
    """Start a plan of a scenario version."""

    version: int | None = Field(None, ge=1, le=MAX_VERSION, description="Scenario version to solve; default the latest.")


class ReplanRequest(SolverOverrides):
    """Re-plan a stored plan: what went wrong (docs/replan.md), from when, and solver settings
    (as for a plan)."""

    disruptions: list[Any] = Field(
        description="The disruption entries, each a mapping with a `kind`, exactly as in a "
        "disruptions file (docs/replan.md); every bad entry is refused by number and field.")
    as_of: IsoDateTime | None = Field(
        None, description="The moment re-planned from: ISO 8601, with a UTC offset or without one "
        "(London time); default now. Nothing new is booked before it.")


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
    plan_id: str | None = Field(description="The plan made; None until finished, and once the plan is discarded.")
    base_plan_id: str | None = Field(None, description="The plan this job re-plans (a re-plan job), else None.")
    error: JobError | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class JobList(BaseModel):
    items: list[JobOut]


PlanStatus = Literal["draft", "published", "superseded"]


class PlanOut(BaseModel):
    id: str
    scenario_id: str
    scenario_version: int
    number: int = Field(description="Plan version within the scenario.")
    job_id: str | None
    created_at: dt.datetime
    published_at: dt.datetime | None = Field(description="When the plan was (last) published; None if never.")
    status: PlanStatus = Field(description="published: the scenario's published plan; superseded: published "
                               "before, another plan since; draft: never published.")
    previous_plan_id: str | None = Field(description="The plan this one re-planned (None: not a re-plan).")
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


class VisitOut(BaseModel):
    """One patient visit (a trip to one site on one day) with its appointments, in local time."""

    id: str
    patient_id: str
    date: dt.date
    site_id: str
    purpose: VisitPurpose
    start: dt.datetime = Field(description="Local time with offset (Europe/London).")
    end: dt.datetime
    appointments: list[AppointmentOut]


class BookingOut(BaseModel):
    """A booking as the desk looks it up by the reference the patient reads out."""

    reference: str
    status: Literal["active", "cancelled"] = Field(
        description="cancelled: the visit is in no published plan any more; `visit` is as it was last booked.")
    sequence: int = Field(description="The invite's SEQUENCE: how many times it was updated or cancelled.")
    sensitive: bool = Field(description="The visit includes a sensitive clinic: its reviews are never named in "
                            "feeds or FHIR free text. The patient's invite is the same neutral invite as any.")
    calendar_invites: bool = Field(description="The patient takes calendar invites (their contact_preference "
                                   "includes 'calendar'); false: no invite file or link is made.")
    patient_id: str
    scenario_id: str
    plan_id: str = Field(description="The plan the visit's current (or, once cancelled, last) booking is in.")
    published_plan_id: str | None = Field(description="The scenario's published plan now.")
    updated_at: dt.datetime
    visit: VisitOut


class KeyInfo(BaseModel):
    organisation: str
    role: str


class CapacityStudyRequest(BaseModel):
    """Start a capacity study of a stored scenario version (docs/capacity.md)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    study: dict[str, Any] = Field(
        description="The study document as in a study file, in JSON, without `base`: the base is the stored "
        "scenario version (a `base` given is replaced by a note naming that version).")
    scenario_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                             description="The stored scenario the variants change.")
    version: int | None = Field(None, ge=1, le=MAX_VERSION, description="Scenario version; default the latest.")
    time_limit_seconds: float | None = Field(
        None, ge=1, le=MAX_TIME_LIMIT_SECONDS, allow_inf_nan=False,
        description="Seconds per solve, 1 to 3600, overriding the study's `time_limit_seconds`.")


class StudyProgress(BaseModel):
    done: int = Field(description="Solves finished (the base, the variants, then the bottleneck candidates).")
    total: int = Field(description="Solves in the whole study.")
    variant: str | None = Field(description="The variant solved last; None before the first.")


class ReportFileOut(BaseModel):
    name: str = Field(description="Fetch it at /v1/capacity-studies/{id}/report/{name}.")
    media_type: str
    size: int = Field(description="Bytes.")


class CapacityStudyOut(BaseModel):
    id: str
    name: str
    scenario_id: str
    scenario_version: int
    status: JobStatus
    cancel_requested: bool
    time_limit_seconds: float = Field(description="Seconds per solve.")
    variants: int = Field(description="Variants of the study (sweeps expanded), the base not counted.")
    progress: StudyProgress
    error: JobError | None
    report_files: list[ReportFileOut] = Field(description="The report's files once finished; empty before.")
    study: dict[str, Any] = Field(description="The study document as run.")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class CapacityStudyList(BaseModel):
    items: list[CapacityStudyOut]
