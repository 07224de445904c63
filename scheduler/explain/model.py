"""The shape of an explanation: why a patient's visits are where they are (docs/explain.md).

Units throughout: dates are local calendar dates, times local wall-clock times (Europe/London),
durations and travel in minutes, costs in objective points (`scheduler.model.objective`; smaller
is better). A cost delta is always *alternative minus plan*: positive means the alternative would
cost more than what the plan did.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

RuleCode = Literal[
    "due_window", "roster", "competence", "room_capability", "patient_unavailable", "results_turnaround",
    "fasting_draw", "max_visit_length", "reachable_sites", "one_trip_a_day", "capacity_taken",
]
"""The rules that can rule a (day, site) out for a patient's visit, in the order they are tested:
`one_trip_a_day` (an opted-out patient's other appointment is that day), `due_window`,
`patient_unavailable`, `competence` (nobody in the scenario may do the review), `roster` (nobody
allowed to do it works there that day, or their sessions do not meet the patient's hours),
`room_capability`, `max_visit_length`, `fasting_draw` (a fasting draw must start by
`visit_rules.fasting_draw_latest_start`), `results_turnaround` (results-first reviews: the draw's
results are not back in time), `capacity_taken` (possible on an empty roster, but the time of
the clinicians and rooms is booked for other patients). `reachable_sites` is only a summary rule
(sites the patient cannot reach are never considered)."""

TERMS = ("unbooked", "visits", "review_visits", "priority_days", "travel", "continuity", "wait",
         "preference", "sessions", "room_changes")
"""The objective's terms (`scheduler.model.objective.Breakdown`), in objective points."""


class ExplainModel(BaseModel):
    model_config = {"extra": "forbid"}


class Rule(ExplainModel):
    """A rule that limited where the patient's visit could go."""

    code: RuleCode
    text: str = Field(description="Plain English, for a practice manager to read to the patient.")
    options_ruled_out: int = Field(0, description="(day, site) options this rule ruled out (the first rule "
                                                  "that fails at an option is counted).")


class AppointmentWhy(ExplainModel):
    """One appointment of a visit: who, where, and why that clinician and room."""

    kind: str = Field(description="blood_draw, review or joint_review.")
    start: dt.time
    end: dt.time
    review_ids: list[str]
    review_type_ids: list[str]
    clinician_ids: list[str]
    room_id: str
    why_clinician: str
    why_room: str


class VisitWhy(ExplainModel):
    """One visit (one trip: one date, one site) of the plan, explained."""

    visit_id: str | None = Field(None, description="The plan's visit id.")
    date: dt.date
    site_id: str
    start: dt.time
    end: dt.time
    clinician_ids: list[str]
    room_ids: list[str]
    appointments: list[AppointmentWhy]
    why: list[str] = Field(description="Why this day and site, in plain English.")


class PlacedVisit(ExplainModel):
    """A visit of an alternative or of a change's result."""

    date: dt.date
    site_id: str
    start: dt.time
    end: dt.time
    clinician_ids: list[str]
    room_ids: list[str]
    review_ids: list[str]
    blood_draw: bool


class Cost(ExplainModel):
    """A placement's own objective terms (points), and the same in plain units."""

    total: int
    terms: dict[str, int] = Field(description="Objective points per term (scheduler.model.objective).")
    trips: int
    travel_minutes: int = Field(description="Travel both ways, summed over the trips (minutes).")
    continuity_misses: int = Field(description="Reviews not done by the named clinician.")
    wait_minutes: int
    reviews_unbooked: int


class Alternative(ExplainModel):
    """Another way the patient's reviews could have been booked, everything else in the plan
    kept where it is, with what it would cost against the plan."""

    visits: list[PlacedVisit]
    cost: Cost
    cost_delta: int = Field(description="Objective points, alternative minus plan (positive: costs more).")
    delta_by_term: dict[str, int] = Field(description="Points per objective term, alternative minus plan; "
                                                      "terms that do not change are left out.")
    trips_delta: int
    travel_minutes_delta: int = Field(description="Travel both ways, alternative minus plan (minutes).")
    continuity_delta: int = Field(description="Reviews missing the named clinician, alternative minus plan.")
    wait_minutes_delta: int
    summary: str


class RuledOut(ExplainModel):
    """A (day, site) the patient's visit could not go to, and the first rule that stopped it."""

    date: dt.date
    site_id: str
    code: RuleCode
    text: str


class Change(ExplainModel):
    """A change to the scenario tried to give the patient one visit, and what came of it when
    the patient was placed again with the rest of the plan fixed."""

    kind: Literal["add_session", "add_room", "longer_max_visit"]
    description: str
    session: dict | None = Field(None, description="add_session: the roster session added (clinician_id, "
                                                   "role, date, start, end, site_id).")
    room: dict | None = Field(None, description="add_room: the room added (id, site_id, capabilities, "
                                                "capacity_people).")
    max_visit_minutes: int | None = Field(None, description="longer_max_visit: the new maximum.")
    resource_minutes: int = Field(description="Clinician minutes added (a session) or minutes of "
                                              "visit allowed beyond today's maximum; 0 for a room.")
    gives_one_visit: bool
    visits: list[PlacedVisit] = Field(default_factory=list)
    cost_delta: int | None = Field(None, description="Objective points for this patient, after minus plan.")
    delta_by_term: dict[str, int] = Field(default_factory=dict)
    others_moved: int = Field(0, description="Visits of other patients the change would unsettle.")


class ReviewState(ExplainModel):
    review_id: str
    review_type_id: str
    window_start: dt.date
    window_end: dt.date
    booked: bool
    visit_id: str | None
    unbooked_reason: str | None = None


class Explanation(ExplainModel):
    """Why a patient's visits are on this day, at this site, with these clinicians and rooms.

    `status`: `one_visit` (every review in one visit; a separate results-first draw trip may
    come before it), `split` (reviews over more than one visit), `unbooked` (no review booked),
    `partly_booked`, or `separate` (opted out: one appointment per review, by choice)."""

    patient_id: str
    status: Literal["one_visit", "split", "unbooked", "partly_booked", "separate"]
    summary: str
    reviews: list[ReviewState]
    visits: list[VisitWhy]
    rules: list[Rule] = Field(description="What limited the choice, most options ruled out first.")
    cost: Cost = Field(description="The patient's own objective terms in the plan.")
    alternatives: list[Alternative] = Field(description="Feasible alternatives with everything else fixed, "
                                                        "cheapest first (at most 5); the first is the next best.")
    ruled_out: list[RuledOut] = Field(description="Each (day, site) considered that could not take the visit.")
    options_considered: int = Field(description="(day, site) pairs considered: horizon days x reachable sites.")
    change: Change | None = Field(None, description="split/unbooked: the smallest change found that gives one "
                                                    "visit, None if none of those tried does (or not needed).")
    changes_tried: list[Change] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    seconds: float = Field(description="Wall-clock time to compute this explanation (seconds).")
