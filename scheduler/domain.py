"""The scenario: sites, rooms, clinicians, rosters, the review catalogue and patients.

These pydantic models are the single definition of the scenario format: the loader validates
files against them, `onevisit schema` prints their JSON Schema and docs/scenario-format.md
describes them. Cross-references between ids are checked in `scheduler.validate`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

Id = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="Identifier: letters, digits, '_', '.', '-'.",
    ),
]

# Text rules (RFC 5545 section 3.3.11 forbids control characters other than HTAB in calendar TEXT;
# Python's str.splitlines also breaks on VT, FF, FS/GS/RS, NEL, U+2028 and U+2029, so a name holding
# one would break a CSV row, an e-mail header or an invite line). Tab is allowed everywhere; LF
# and CRLF only in fields meant to hold several lines.
_FORBIDDEN = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029"
SINGLE_LINE_PATTERN = rf"^[^\n{_FORBIDDEN}]*$"
"""Text on one line: no control characters but tab, no line breaks."""
MULTILINE_PATTERN = rf"^(?:[^\n{_FORBIDDEN}]|\r?\n)*$"
"""Text of several lines: as SINGLE_LINE_PATTERN, and LF or CRLF between lines."""


def text_field(max_length: int, *, multiline: bool = False) -> type[str]:
    """A text type with a length limit (characters) and the control-character rules above."""
    pattern = MULTILINE_PATTERN if multiline else SINGLE_LINE_PATTERN
    return Annotated[str, Field(max_length=max_length, pattern=pattern)]  # type: ignore[return-value]


Name = text_field(200)
Capability = text_field(64)
Phone = text_field(40)
Reason = text_field(500)
Url = text_field(2000)
Address = text_field(500, multiline=True)
Description = text_field(5000, multiline=True)
Count = Annotated[int, Field(strict=True)]
"""A whole number: true/false or 2.0 are refused rather than read as 1 or 2."""
Real = Annotated[float, Field(allow_inf_nan=False)]
"""A finite number: NaN and infinity are refused."""
LocalTime = Annotated[dt.time, WithJsonSchema({
    "type": "string",
    "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$",
    "description": "Local clock time in Europe/London, HH:MM (no UTC offset).",
})]
"""A clock time, local to Europe/London. JSON Schema's `format: time` would demand a UTC offset,
which the loader refuses, so the schema states the HH:MM pattern instead."""
def _local_date_time(value: object) -> object:
    """Only text or a datetime: a bare number would otherwise be read as a Unix timestamp."""
    if isinstance(value, dt.datetime) or isinstance(value, str):
        return value
    raise ValueError("expected a local date and time such as 2027-03-23T09:00:00")


def _to_london(value: dt.datetime) -> dt.datetime:
    """An offset given anyway is honoured: the instant, as Europe/London wall-clock time."""
    if value.tzinfo is None:
        return value
    return value.astimezone(ZoneInfo("Europe/London")).replace(tzinfo=None)


LocalDateTime = Annotated[dt.datetime, BeforeValidator(_local_date_time), AfterValidator(_to_london), WithJsonSchema({
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?(Z|[+-]\d{2}:\d{2})?$",
    "description": "Local date and time in Europe/London, ISO 8601 (2027-03-23T00:00:00); one "
                   "given with a UTC offset is converted to London time.",
})]
"""A date and clock time, local to Europe/London (naive); one given with a UTC offset is
converted to London time."""

Role = Literal[
    "gp",
    "practice_nurse",
    "diabetes_specialist_nurse",
    "respiratory_specialist_nurse",
    "heart_failure_specialist_nurse",
    "consultant_cardiology",
    "consultant_renal",
    "consultant_respiratory",
    "consultant_diabetes",
    "consultant_elderly_care",
    "pharmacist",
    "hca",
    "phlebotomist",
    "mental_health_practitioner",
    "social_prescriber",
    "care_coordinator",
]
Organisation = Literal["primary", "community", "secondary", "voluntary"]
SiteKind = Literal["practice", "pcn_hub", "community", "hospital"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Strict(BaseModel):
    """Base: unknown fields are errors, so a typo never silently drops a setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(Strict):
    """A place patients travel to: a practice, a PCN hub, a community venue or outpatients."""

    id: Id
    name: Name
    kind: SiteKind = "practice"
    address: Address = Field(
        description="Full postal address, shown to patients; may span lines."
    )
    phone: Phone | None = Field(None, description="Reception number patients call to cancel or rebook.")
    latitude: Real | None = Field(None, ge=-90, le=90)
    longitude: Real | None = Field(None, ge=-180, le=180)
    opens: LocalTime = Field(dt.time(8, 0), description="Rooms usable from (local time).")
    closes: LocalTime = Field(dt.time(18, 30), description="Rooms usable until (local time).")
    catchment_travel_minutes: Count | None = Field(
        None, ge=0, le=300,
        description="Typical door-to-door travel one way, in minutes, for a patient of this site's "
        "catchment: used as the patient's travel time to this site when a recall import gives none "
        "(clinical systems export no travel times).")


class Room(Strict):
    """A room at a site; capacity counts people (patient, carer and clinicians)."""

    id: Id
    site_id: Id
    name: Name = ""
    capacity_people: Count = Field(3, ge=1, le=50)
    capabilities: list[Capability] = Field(
        default_factory=list,
        description="e.g. phlebotomy, spirometry, ecg, wheelchair_access, mdt.",
    )


class Clinician(Strict):
    """A member of staff who can carry out reviews or take blood during rostered sessions."""

    id: Id
    name: Name = ""
    role: Role
    organisation: Organisation = "primary"
    review_type_ids: list[Id] = Field(
        default_factory=list,
        description="Review types this clinician may carry out (role must also be allowed).",
    )
    takes_bloods: bool = Field(False, description="May carry out the combined blood draw.")


class RosterSession(Strict):
    """A block of time a clinician works at a site on a date (local time, Europe/London)."""

    clinician_id: Id
    date: dt.date
    start: LocalTime
    end: LocalTime
    site_id: Id
    on_bank_holiday: bool = Field(
        False, description="Set to run a session on an England bank holiday; otherwise ignored."
    )
    room_id: Id | None = Field(
        None,
        description="The room the clinician holds for the whole session (a room at the session's "
        "site); left out, the planner allocates one (visit_rules.clinician_room_per_session).",
    )


class Leave(Strict):
    """Whole days a clinician is away (annual leave, sickness, training); inclusive."""

    clinician_id: Id
    start_date: dt.date
    end_date: dt.date
    reason: Reason = ""


class Closure(Strict):
    """A room, or every room at a site, out of use from `start` to `end` (local times; the end
    is exclusive): a leak, a power cut, a site shut for the day. Re-planning records a
    `room_closure` or `site_closure` disruption here (docs/replan.md)."""

    room_id: Id | None = Field(None, description="The room closed (give this or site_id).")
    site_id: Id | None = Field(None, description="The site closed: every room at it (give this or room_id).")
    start: LocalDateTime
    end: LocalDateTime
    reason: Reason = ""


class BloodMarker(Strict):
    """A blood test; the combined draw takes the union of markers the due reviews need."""

    id: Id
    name: Name = ""
    fasting: bool = False
    point_of_care: bool = Field(False, description="Result in minutes, so drawn inside the visit.")
    turnaround_working_days: Count = Field(3, ge=0, le=20)


class SharedComponent(Strict):
    """A part of several reviews (BP, weight, medicines reconciliation) done once per visit."""

    id: Id
    name: Name = ""
    minutes: Count = Field(ge=1, le=60)


class ReviewType(Strict):
    """A kind of review in the catalogue, e.g. diabetes annual review."""

    id: Id
    name: Name
    roles: list[Role] = Field(min_length=1, description="Roles that may carry it out.")
    duration_minutes: Count = Field(ge=5, le=240, description="Alone, shared components included.")
    room_capabilities: list[Capability] = Field(default_factory=list)
    blood_marker_ids: list[Id] = Field(default_factory=list)
    results_before_review: bool = Field(
        False, description="Laboratory results must be back before the review starts."
    )
    shared_component_ids: list[Id] = Field(default_factory=list)
    sensitive: bool = Field(
        False, description="Sensitive clinic (learning-disability or SMI health check, mental-health "
        "review): its name never appears in an output shared with staff or other organisations "
        "(clinician and room feeds, FHIR free text). Patients are sent the same neutral invite as "
        "for any visit; to send no invite, set the patient's contact_preference.")


class ReachableSite(Strict):
    """A site the patient can get to, with door-to-door travel time one way."""

    site_id: Id
    travel_minutes: Count = Field(ge=0, le=300)


class Unavailability(Strict):
    """When a patient cannot attend: on weekdays (weekly) or on one date, between two times."""

    weekdays: list[Weekday] = Field(default_factory=list)
    date: dt.date | None = None
    start: LocalTime = dt.time(0, 0)
    end: LocalTime = dt.time(23, 59)
    reason: Reason = ""


class Needs(Strict):
    """Access needs that change rooms, capacity and durations."""

    interpreter_language: Capability | None = None
    wheelchair: bool = False
    carer_attending: bool = False
    extra_time_factor: Real = Field(
        1.0, ge=1.0, le=3.0, description="Multiplies review durations (LD, frailty, many meds)."
    )
    large_print: bool = Field(
        False, description="Letters in large print (Accessible Information Standard, DCB1605).")


class DueReview(Strict):
    """A review a patient is due, to be booked inside its window (inclusive dates)."""

    id: Id | None = Field(None, description="Stable id; defaults to '<patient>-<review type>'.")
    review_type_id: Id
    window_start: dt.date
    window_end: dt.date


Channel = Literal["calendar", "sms", "letter"]
"""How a patient is told about a visit: a calendar invite (iCalendar, by e-mail or download), an
SMS text, or a printed letter."""


class Patient(Strict):
    """A pseudonymous patient with reviews due; no names, NHS numbers or dates of birth."""

    id: Id
    due_reviews: list[DueReview] = Field(min_length=1)
    named_clinician_id: Id | None = None
    wants_continuity: bool = True
    reachable_sites: list[ReachableSite] = Field(default_factory=list)
    unavailable: list[Unavailability] = Field(default_factory=list)
    needs: Needs = Needs()
    opt_out_consolidation: bool = False
    joint_consultation: bool = Field(
        False, description="See all clinicians together in one MDT room (set by a clinician)."
    )
    priority: Count = Field(0, ge=0, le=3, description="0 routine … 3 highest (complex, deprived).")
    preferred_time: Literal["any", "morning", "afternoon"] = "any"
    contact_preference: list[Channel] = Field(
        default_factory=lambda: ["calendar"], min_length=1, max_length=3,
        description="Channels the patient is told by about a visit and any change to it, e.g. "
        "['sms', 'letter']; leave out 'calendar' for no calendar invites (e.g. letter only). "
        "Contact details are never part of a scenario: they come from a contacts file at send time.")
    deprivation_quintile: Count | None = Field(
        None, ge=1, le=5, description="Deprivation quintile of the patient's home area, 1 = most "
        "deprived fifth, 5 = least, from the English Indices of Deprivation (IMD); for equity "
        "figures only, never used to book.")

    def review_id(self, due: DueReview) -> str:
        """The due review's stable id."""
        return due.id or f"{self.id}-{due.review_type_id}"


class SolverSettings(Strict):
    """CP-SAT parameters; explicit so runs are reproducible."""

    time_limit_seconds: Real = Field(30.0, ge=1, le=3600)
    workers: Count = Field(2, ge=1, le=64)
    seed: Count = Field(0, ge=0, le=2**31 - 1, description="CP-SAT's random seed (a 32-bit integer).")
    log: bool = False
    deterministic_seconds: Real | None = Field(
        None, gt=0, le=3600,
        description="When set, no stage stops on the clock: the CP-SAT master stops after this much CP-SAT "
        "deterministic time, the floors and compaction after their own deterministic limits, the improvement "
        "pass after its fixed rounds, and the LP bound (which only stops on the clock) is left out; with one "
        "worker the plan is then the same on any machine and under any load, and time_limit_seconds is not "
        "enforced. Capacity studies use it (docs/capacity.md).")


class VisitRules(Strict):
    """How a consolidated visit may be shaped."""

    max_visit_minutes: Count = Field(180, ge=15, le=600)
    max_wait_minutes: Count = Field(20, ge=0, le=240, description="Between consecutive steps.")
    blood_draw_minutes: Count = Field(10, ge=5, le=60)
    fasting_draw_latest_start: LocalTime = dt.time(10, 30)
    joint_extra_minutes_per_review: Count = Field(
        10, ge=0, le=60, description="A joint consultation lasts its longest review plus this per other review."
    )
    slot_minutes: Literal[5, 10, 15] = 5
    clinician_room_per_session: Literal["hard", "soft", "off"] = Field(
        "hard",
        description="hard: a clinician keeps one room for a whole roster session (joint MDT "
        "sittings aside); soft: a room change within a session is allowed but penalised; "
        "off: any free room for every step.",
    )
    blood_draw_policy: Literal["draw_in_visit", "earlier_draw_trip_allowed"] = Field(
        "draw_in_visit",
        description="draw_in_visit: the combined draw is the first step of a visit that has "
        "reviews, and one draw serves all of them; a draw-only trip only when a review needs "
        "its laboratory results back first. earlier_draw_trip_allowed: the draw may also be a "
        "trip of its own on an earlier day when that books more.",
    )


class InviteSettings(Strict):
    """What patient invites may say. Privacy first: by default clinicians appear by role only."""

    contact_phone: Phone | None = Field(
        None, description="Number to cancel or rebook; a site's own phone is used when it has one."
    )
    rebook_url: Url | None = Field(None, description="Web page where patients cancel or rebook.")
    show_clinician_names: bool = Field(
        False, description="Name clinicians in invites (off: 'a nurse', 'a pharmacist')."
    )
    fasting_reminder_time: LocalTime = Field(
        dt.time(19, 0), description="Local time of the evening-before reminder when a test needs fasting."
    )


class PrivacySettings(Strict):
    """Identifier rules. Patients are pseudonymous: by default an id that passes the NHS number
    check (Modulus 11) is refused, so a real NHS number cannot enter by mistake."""

    allow_nhs_number_ids: bool = Field(
        False, description="Allow patient ids that are valid NHS numbers: only for a deployment "
        "inside the NHS boundary (HSCN), with the practice's data protection officer's agreement. "
        "Even then no invite, feed, FHIR bundle, SMS, letter or outbox file carries the id.")


class Scenario(Strict):
    """Everything the planner needs for one planning period."""

    name: text_field(1000)  # type: ignore[valid-type]  # stored as a 200-character label, kept whole
    description: Description = ""
    timezone: Literal["Europe/London"] = "Europe/London"
    horizon_start: dt.date
    horizon_end: dt.date
    visit_rules: VisitRules = VisitRules()
    solver: SolverSettings = SolverSettings()
    invites: InviteSettings = InviteSettings()
    privacy: PrivacySettings = PrivacySettings()
    sites: list[Site] = Field(min_length=1)
    rooms: list[Room] = Field(min_length=1)
    clinicians: list[Clinician] = Field(min_length=1)
    sessions: list[RosterSession] = Field(default_factory=list)
    leave: list[Leave] = Field(default_factory=list)
    closures: list[Closure] = Field(
        default_factory=list, description="Rooms or sites out of use for a while (docs/replan.md).")
    blood_markers: list[BloodMarker] = Field(default_factory=list)
    shared_components: list[SharedComponent] = Field(default_factory=list)
    review_types: list[ReviewType] = Field(min_length=1)
    patients: list[Patient] = Field(default_factory=list)
