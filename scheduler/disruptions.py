"""Disruptions: what went wrong with a planned week, as a file a practice manager writes.

A disruptions file (YAML or JSON, docs/replan.md) is a list of entries, each with a `kind`:
absences, closures and roster changes; patients who cancelled, did not attend, were added or had
a review removed; and the manager's own decisions about bookings (pinned, moved). The models
here are its single definition: `disruptions_json_schema()` is the schema docs/replan.md
publishes. `load_disruptions` / `disruptions_from_text` read and validate a file's fields;
`scheduler.replan` checks the entries against the scenario and plan they apply to and turns
them into the scenario's next version.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from scheduler.domain import (
    Id,
    LocalDateTime,
    LocalTime,
    Patient,
    Reason,
    RosterSession,
    Strict,
)
from scheduler.problems import Problem, ScenarioError
from scheduler.scenario_io.messages import pydantic_message
from scheduler.scenario_io.reading import parse_json, parse_yaml, read_file

MAX_DISRUPTIONS = 5_000
"""Entries in one file: a bad week at a large PCN is tens; this bounds the work before solving."""

Reference = Annotated[str, Field(pattern=r"^OV-[A-Z0-9]{6}$", description="Booking reference, e.g. OV-7K3P9Q.")]
AppointmentId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
                                     description="An appointment id from plan.json.")]


class _Range(Strict):
    start: LocalDateTime = Field(description="From (local, ISO 8601), e.g. 2027-03-23T00:00:00.")
    end: LocalDateTime = Field(description="Until (local, exclusive), e.g. 2027-03-26T00:00:00.")
    reason: Reason = ""

    @model_validator(mode="after")
    def _ordered(self) -> _Range:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        return self


class ClinicianAbsence(_Range):
    """A clinician is away (sick, called elsewhere): their roster sessions are cut to the time
    outside `start`..`end`."""

    kind: Literal["clinician_absence"]
    clinician: Id


class RoomClosure(_Range):
    """A room cannot be used from `start` to `end` (a leak)."""

    kind: Literal["room_closure"]
    room: Id


class SiteClosure(_Range):
    """Every room at a site cannot be used from `start` to `end`."""

    kind: Literal["site_closure"]
    site: Id


class SessionAdded(Strict):
    """An extra roster session (an extra clinic, a locum)."""

    kind: Literal["session_added"]
    session: RosterSession


class SessionRemoved(Strict):
    """A roster session taken off: the scenario's session with the same clinician, date,
    start, end and site."""

    kind: Literal["session_removed"]
    session: RosterSession


class PatientCancelled(Strict):
    """A patient cancelled: with `rebook` their visits are booked again on other days, without
    it their reviews are taken out of this period."""

    kind: Literal["patient_cancelled"]
    patient: Id
    rebook: bool = True
    reason: Reason = ""


class PatientDidNotAttend(Strict):
    """A patient did not attend their visit on `date`: its reviews are due again, the patient's
    priority rises by one (at most 3), and they are booked again after the freeze window."""

    kind: Literal["patient_did_not_attend"]
    patient: Id
    date: dt.date


class PatientAdded(Strict):
    """A patient to fit in (an urgent referral), as in the scenario's `patients`."""

    kind: Literal["patient_added"]
    patient: Patient


class ReviewRemoved(Strict):
    """A due review no longer needed (done elsewhere, no longer clinically indicated)."""

    kind: Literal["review_removed"]
    patient: Id
    review_type: Id


class _Booking(Strict):
    reference: Reference | None = None
    appointment: AppointmentId | None = None

    @model_validator(mode="after")
    def _one(self) -> _Booking:
        if (self.reference is None) == (self.appointment is None):
            raise ValueError("give exactly one of reference (the booking reference on the invite) and appointment")
        return self


class BookingPinned(_Booking):
    """A visit (by booking reference) or one appointment that must not move."""

    kind: Literal["booking_pinned"]


class BookingMoved(_Booking):
    """The manager's own move: the visit (by reference) or appointment to `date` at `start`,
    optionally with another clinician or room. Honoured exactly if it is valid; refused with
    the rule it breaks if not."""

    kind: Literal["booking_moved"]
    date: dt.date
    start: LocalTime
    clinician: Id | None = Field(None, description="Instead of the clinician now booked.")
    room: Id | None = Field(None, description="Instead of the room now booked.")


Disruption = Annotated[
    ClinicianAbsence | RoomClosure | SiteClosure | SessionAdded | SessionRemoved | PatientCancelled
    | PatientDidNotAttend | PatientAdded | ReviewRemoved | BookingPinned | BookingMoved,
    Field(discriminator="kind"),
]
KINDS: tuple[str, ...] = (
    "clinician_absence", "room_closure", "site_closure", "session_added", "session_removed",
    "patient_cancelled", "patient_did_not_attend", "patient_added", "review_removed",
    "booking_pinned", "booking_moved",
)
_LIST = TypeAdapter(list[Disruption])
_ENTRY: TypeAdapter[Disruption] = TypeAdapter(Disruption)


class DisruptionError(ScenarioError):
    """The disruptions cannot be used; `problems` names each entry and field that is wrong."""


def entry_location(index: int, kind: str | None, field_path: tuple[Any, ...] = ()) -> str:
    """How a problem names its place: `entry 3 (clinician_absence): end` (entries count from 1,
    as a manager reads the file)."""
    text = f"entry {index + 1}" + (f" ({kind})" if kind else "")
    if field_path:
        text += ": " + "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                               for i, p in enumerate(field_path))
    return text


def disruptions_from_data(data: Any, source: str) -> list[Disruption]:
    """Validate parsed data (a list of mappings) as disruptions.

    Raises DisruptionError listing every problem, each naming the entry (1-based) and field.
    """
    if not isinstance(data, list):
        raise DisruptionError([Problem(source, "", "expected a list of disruptions at the top level "
                                       "(each entry a mapping with a 'kind')")])
    if len(data) > MAX_DISRUPTIONS:
        raise DisruptionError([Problem(source, "", f"{len(data):,} entries: at most {MAX_DISRUPTIONS:,} "
                                       "disruptions in one file")])
    problems: list[Problem] = []
    entries: list[Disruption] = []
    for index, item in enumerate(data):
        kind = item.get("kind") if isinstance(item, dict) else None
        if not isinstance(item, dict):
            problems.append(Problem(source, entry_location(index, None), "expected a mapping with a 'kind'"))
            continue
        if kind not in KINDS:
            problems.append(Problem(source, entry_location(index, None, ("kind",)),
                                    f"{kind!r} is not a kind of disruption; use one of: {', '.join(KINDS)}"
                                    if kind is not None else "required field is missing"))
            continue
        try:
            entries.append(_ENTRY.validate_python(item))
        except ValidationError as exc:
            for error in exc.errors():
                field_path = tuple(error["loc"][1:])  # after the union's tag
                if error["type"] == "extra_forbidden":
                    message = f"unknown field '{field_path[-1]}'"
                elif error["type"] == "string_pattern_mismatch" and field_path[-1:] == ("reference",):
                    message = (f"{str(error.get('input'))[:40]!r} is not a booking reference: expected OV- and "
                               "six capital letters or digits, as on the invite (OV-7K3P9Q)")
                elif error["type"] == "value_error":
                    message = str(error.get("ctx", {}).get("error", error["msg"]))
                else:
                    message = pydantic_message({**error, "loc": ("disruption", *field_path)})
                problems.append(Problem(source, entry_location(index, kind, field_path), message))
    if problems:
        raise DisruptionError(problems)
    return entries


def disruptions_from_text(text: str, source: str) -> list[Disruption]:
    """Parse YAML or JSON text (JSON when `source` ends in .json) and validate it.

    Raises DisruptionError naming the file and each entry and field that is wrong.
    """
    parsed = parse_json(text, source) if source.lower().endswith(".json") else parse_yaml(text, source)
    if parsed.problems or not parsed.ok:
        raise DisruptionError(parsed.problems or [Problem(source, "", "the file could not be read")])
    return disruptions_from_data(parsed.data, source)


def load_disruptions(path: str | Path) -> list[Disruption]:
    """Read a disruptions file (.yaml, .yml or .json), bounded in size as scenario files are.

    Raises DisruptionError for a missing or unreadable file and for every problem in it.
    """
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise DisruptionError([Problem(path.name, "", f"unknown file type '{path.suffix}': use .yaml, .yml or .json")])
    text, problems = read_file(path)
    if problems or text is None:
        raise DisruptionError(problems or [Problem(path.name, "", "the file could not be read")])
    return disruptions_from_text(text, path.name)


def disruptions_json_schema() -> dict[str, Any]:
    """The JSON Schema of a disruptions file (a list of entries), as docs/replan.md shows it."""
    schema = _LIST.json_schema()
    schema["title"] = "OneVisit disruptions"
    schema["description"] = "What went wrong with a planned week; see docs/replan.md."
    return schema


def as_data(disruptions: list[Disruption]) -> list[dict[str, Any]]:
    """The entries as JSON-ready data (dates and times as ISO 8601 text)."""
    return _LIST.dump_python(disruptions, mode="json", exclude_defaults=False)
