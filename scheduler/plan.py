"""The plan: appointments grouped into visits, unbooked reviews with reasons, metrics, solver facts.

Written as JSON (docs/plan-format.md). The plan checker reads only this and the scenario.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AppointmentKind = Literal["blood_draw", "review", "joint_review"]
VisitPurpose = Literal["consolidated", "blood_draw_trip", "separate"]
UnbookedReason = Literal[
    "no_clinician_rostered",
    "no_room_with_capability",
    "patient_unavailable",
    "longer_than_a_visit",
    "no_blood_draw_before_review",
    "capacity_used_up",
]


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Appointment(PlanModel):
    """One step of a visit: a blood draw, a (combined) review, or a joint MDT consultation."""

    id: str = Field(description="Stable: the same scenario and booking give the same id.")
    patient_id: str
    visit_id: str
    kind: AppointmentKind
    date: dt.date
    start: dt.datetime = Field(description="ISO 8601 with UTC offset (Europe/London).")
    end: dt.datetime
    site_id: str
    room_id: str
    clinician_ids: list[str]
    review_ids: list[str] = Field(default_factory=list, description="Due reviews covered.")
    review_type_ids: list[str] = Field(default_factory=list)
    blood_marker_ids: list[str] = Field(default_factory=list)


class Visit(PlanModel):
    """One trip by one patient to one site on one day."""

    id: str
    patient_id: str
    date: dt.date
    site_id: str
    purpose: VisitPurpose
    start: dt.datetime
    end: dt.datetime
    appointment_ids: list[str]


class UnbookedReview(PlanModel):
    patient_id: str
    review_id: str
    review_type_id: str
    reason: UnbookedReason
    detail: str


class Metrics(PlanModel):
    """Figures for one way of booking the same patients (plan, greedy or old way)."""

    patients: int
    patients_fully_booked: int
    reviews: int
    reviews_booked: int
    appointments: int
    visits: int
    blood_draws: int
    draw_trips: int = Field(description="Visits made only for a blood draw.")
    visits_per_patient: float = Field(description="Mean over patients with a booked review.")
    single_visit_share: float = Field(
        description="Share of consolidating patients, fully booked, with all their reviews in one "
        "visit (a separate blood-draw trip allowed)."
    )
    one_trip_share: float = Field(
        0.0,
        description="Share of consolidating patients, fully booked, who make one trip in all "
        "(blood draw included). 0 in plans written before this field existed.",
    )
    continuity_rate: float = Field(
        description="Share of reviews of patients wanting continuity done by their named clinician."
    )
    patient_hours: float = Field(description="Travel both ways plus time in the visit, summed.")
    patient_wait_minutes: int = Field(description="Idle minutes between steps, summed.")
    multi_step_visits: int = Field(
        0, description="Visits with two or more steps (only these can have waiting). 0 in plans "
        "written before this field existed.")
    wait_minutes_per_multi_step_visit: float = Field(
        0.0, description="patient_wait_minutes / multi_step_visits (0 when there are none).")
    clinician_minutes: int = Field(description="Clinician time booked (joint: each clinician).")
    clinician_utilisation: float
    room_utilisation: float
    clinician_sessions: int = Field(
        0, description="Clinician sessions holding at least one of their draws or reviews (joint sittings aside)."
    )
    room_changes: int = Field(
        0, description="Within those sessions, consecutive draws/reviews of a clinician in different rooms."
    )
    rooms_per_session_mean: float = Field(
        0.0, description="Distinct rooms of a clinician's draws and reviews per such session, averaged."
    )
    messages_calendar: int = Field(
        0, description="Patient messages on publishing, by channel: one calendar invite per visit of "
        "each patient whose contact_preference includes 'calendar'. 0 in plans written before this field existed.")
    messages_sms: int = Field(0, description="One SMS text per visit of each patient who chose 'sms'.")
    messages_letter: int = Field(0, description="One letter per visit of each patient who chose 'letter'.")


class Comparison(PlanModel):
    """The plan against the old way (one appointment and one draw per review)."""

    appointments_saved: int
    trips_saved: int
    blood_draws_saved: int
    patient_hours_saved: float
    clinician_minutes_saved: int


class SolverStats(PlanModel):
    status: str = Field(description="OPTIMAL (gap 0 for the chosen bundles) or FEASIBLE.")
    method: str
    objective: int = Field(description="Objective of this plan (docs/optimiser.md).")
    best_bound: int = Field(description="A proven lower bound on the objective (bound_scope says of "
                            "which plans); the largest of bound_sources.")
    bound_source: str = Field(
        "", description="Which figure gave best_bound: cp_sat_master, lp_relaxation, "
        "exact_standalone_floor or simple_standalone_floor (docs/optimiser.md).")
    bound_sources: dict[str, int] = Field(
        default_factory=dict, description="Every lower bound computed, by source (a source not "
        "computed inside the time limit is absent).")
    bound_scope: str = Field(
        "", description="In words, which plans best_bound is a lower bound of.")
    gap: float = Field(description="(objective - best_bound) / objective; 0 is proven optimal.")
    wall_seconds: float = Field(
        description="Wall-clock seconds of the whole optimisation (greedy, baselines, floors, master, "
        "timetabling, improvement, compaction, assembly); kept within time_limit_seconds (docs/optimiser.md). "
        "Loading, checking and writing are outside it."
    )
    stage_seconds: dict[str, float] = Field(
        default_factory=dict,
        description="wall_seconds by stage: greedy, baselines, master (floors included), "
        "timetabling, improvement, compaction, assembly.",
    )
    time_limit_seconds: float
    workers: int
    seed: int


class StoredPlan(PlanModel):
    """Where the plan is kept: the database's plan id and the scenario version it belongs to
    (`onevisit plan` and `replan` fill it in when they save; None when not saved)."""

    plan_id: str
    scenario_id: str
    scenario_version: int = Field(ge=1)


class ReplanRecord(PlanModel):
    """How a re-planned version came about (docs/replan.md)."""

    previous_plan_id: str | None = Field(description="The stored plan re-planned (None: a plan file never saved).")
    as_of: dt.datetime = Field(description="The moment re-planned from (ISO 8601 with UTC offset): "
                               "nothing new is booked before it.")
    freeze_until: dt.datetime = Field(description="End of the freeze window: appointments before it "
                                      "moved only when they could not stand, and nothing new was booked before it.")
    disruptions: list[dict] = Field(description="The disruption entries applied, as in the file.")
    targets: dict[str, list[str]] = Field(
        default_factory=dict, description="For each booking_pinned / booking_moved entry (1-based, as "
        "text), the appointment ids of the previous plan it names.")


class Plan(PlanModel):
    format_version: Literal[1] = 1
    scenario_name: str
    stored: StoredPlan | None = Field(None, description="Set when the plan is kept in a database.")
    replan: ReplanRecord | None = Field(None, description="Set on a plan made by re-planning another.")
    timezone: str = "Europe/London"
    appointments: list[Appointment]
    visits: list[Visit]
    unbooked: list[UnbookedReview]
    metrics: Metrics
    baselines: dict[str, Metrics] = Field(
        default_factory=dict, description="'greedy' and 'old_way' booked into the same roster."
    )
    comparison: Comparison | None = None
    solver: SolverStats
