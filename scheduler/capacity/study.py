"""A capacity study: a base scenario and named variants, each a list of changes (issue 15).

An ICB planner asks "if Hub A gets two more MDT rooms on Tuesdays and the renal consultant moves
a session from the hospital into the hub, how many more patients get everything in one visit?".
The study file (YAML or JSON; `study_json_schema()`) names the base scenario and the variants;
a sweep generates variants from one template (0-6 extra room-sessions a week). `expand` turns
the study into one scenario per variant, every change applied and the result validated, so a
bad study fails before any solve with every problem named by variant and field.

These models are the single definition of the format; docs/capacity.md describes it.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from scheduler.domain import (
    WEEKDAYS,
    Clinician,
    Count,
    Id,
    LocalTime,
    Name,
    Patient,
    Real,
    Role,
    Room,
    RosterSession,
    Scenario,
    Site,
    Strict,
    Weekday,
)
from scheduler.problems import Problem, ScenarioError
from scheduler.scenario_io import load_scenario, scenario_from_dict
from scheduler.scenario_io.messages import pydantic_message
from scheduler.scenario_io.reading import parse_json, parse_yaml, read_file
from scheduler.timegrid import dates_between, is_bank_holiday

MAX_VARIANTS = 1_000
"""Variants in one study once sweeps are expanded: an ICB-wide sweep is hundreds."""
SWEEP_VALUE = "$value"
"""Written in a sweep's change where each step's value goes (a number field)."""


class RoomAdded(Strict):
    """A new room at a site."""

    kind: Literal["room_added"]
    room: Room


class RoomRemoved(Strict):
    """A room taken out of use; sessions that named it choose another."""

    kind: Literal["room_removed"]
    room: Id


class _Who(Strict):
    clinician: Id | None = Field(None, description="A named clinician (give this or role).")
    role: Role | None = Field(None, description="Every clinician of this role (give this or clinician).")

    @model_validator(mode="after")
    def _one(self) -> _Who:
        if (self.clinician is None) == (self.role is None):
            raise ValueError("give exactly one of clinician and role")
        return self


class SessionsAdded(_Who):
    """Extra roster sessions on the given weekdays of every week of the horizon (England bank
    holidays aside; a weekend day is a weekend clinic). A `role` without a named clinician adds `count` new clinicians of that
    role (sessional staff), each able to do what the role's existing clinicians do."""

    kind: Literal["sessions_added"]
    site: Id
    weekdays: list[Weekday] = Field(min_length=1)
    start: LocalTime
    end: LocalTime
    count: Count = Field(1, ge=0, le=50, description="Sessions added on each of those days (0: none, the first step of a sweep).")


class SessionsRemoved(_Who):
    """The matching sessions taken off the roster (at `site`, on `weekdays`, when given)."""

    kind: Literal["sessions_removed"]
    site: Id | None = None
    weekdays: list[Weekday] = Field(default_factory=list)


class SessionsMoved(_Who):
    """The matching sessions held at `to_site` instead of `from_site` (on `weekdays`, when given);
    a room they named stays behind."""

    kind: Literal["sessions_moved"]
    from_site: Id
    to_site: Id
    weekdays: list[Weekday] = Field(default_factory=list)


class SiteOpened(Strict):
    """A new site, its rooms, and who can reach it: the patients listed in `patient_travel`
    (patient id -> minutes one way), and the patients who reach `near`, in `travel_minutes` (or
    their minutes to `near` when left out)."""

    kind: Literal["site_opened"]
    site: Site
    rooms: list[Room] = Field(default_factory=list)
    near: Id | None = Field(None, description="An existing site: its patients can reach the new one.")
    travel_minutes: Count | None = Field(None, ge=0, le=300, description="For the patients of `near`.")
    patient_travel: dict[Id, Annotated[int, Field(strict=True, ge=0, le=300)]] = Field(
        default_factory=dict, description="Patient id -> travel minutes one way, for named patients.")

    @model_validator(mode="after")
    def _someone(self) -> SiteOpened:
        if self.near is None and not self.patient_travel:
            raise ValueError("say who can reach the new site: near (an existing site) or patient_travel")
        return self


class SiteClosed(Strict):
    """A site closed for the whole horizon: its rooms and sessions go, and patients no longer
    reach it."""

    kind: Literal["site_closed"]
    site: Id


class DemandScaled(Strict):
    """Demand scaled by `factor`: more patients drawn reproducibly from the base's (of the given
    clusters: patients whose due review types include all of one cluster), or fewer."""

    kind: Literal["demand_scaled"]
    factor: Real = Field(gt=0, le=5)
    clusters: list[list[Id]] = Field(default_factory=list, description="Review type sets; empty: every patient.")


class ConsolidationMode(Strict):
    """`joint`: every patient with two or more due reviews in one MDT sitting; `back_to_back`:
    none."""

    kind: Literal["consolidation_mode"]
    mode: Literal["joint", "back_to_back"]


class MaxVisitMinutes(Strict):
    kind: Literal["max_visit_minutes"]
    minutes: Count = Field(ge=15, le=600)


class BloodDrawPolicy(Strict):
    """The draw policy, and blood markers tested at the point of care (results in minutes)."""

    kind: Literal["blood_draw_policy"]
    policy: Literal["draw_in_visit", "earlier_draw_trip_allowed"] | None = None
    point_of_care_markers: list[Id] = Field(default_factory=list)


Change = Annotated[
    RoomAdded | RoomRemoved | SessionsAdded | SessionsRemoved | SessionsMoved | SiteOpened | SiteClosed
    | DemandScaled | ConsolidationMode | MaxVisitMinutes | BloodDrawPolicy,
    Field(discriminator="kind"),
]
CHANGE_KINDS: tuple[str, ...] = (
    "room_added", "room_removed", "sessions_added", "sessions_removed", "sessions_moved", "site_opened",
    "site_closed", "demand_scaled", "consolidation_mode", "max_visit_minutes", "blood_draw_policy",
)


class Variant(Strict):
    name: Name = Field(min_length=1)
    changes: list[Change] = Field(default_factory=list, max_length=100)


class Sweep(Strict):
    """Variants `<name> = <value>` for each value, from `changes` with SWEEP_VALUE in place of a
    number (for example `count: $value`)."""

    name: Name = Field(min_length=1)
    values: list[Real] = Field(min_length=1, max_length=MAX_VARIANTS,
                               description="One variant per value (a sweep with no steps is refused).")
    changes: list[dict[str, Any]] = Field(min_length=1, max_length=100)


class Study(Strict):
    """A base scenario and what-if variants, solved side by side (docs/capacity.md)."""

    name: Name = Field(min_length=1)
    base: str = Field(min_length=1, max_length=1000, description="The base scenario file, relative to the study file.")
    time_limit_seconds: Real = Field(60.0, ge=1, le=3600, description="Per solve (wall clock).")
    deterministic_seconds: Real | None = Field(
        None, gt=0, le=3600, description="When set, each solve stops on work done instead of the clock "
        "(SolverSettings.deterministic_seconds: the master's CP-SAT deterministic time), so the figures "
        "do not depend on the machine, its load or where a solve ran; time_limit_seconds is then not enforced.")
    seed: Count = Field(1, ge=0, le=2**31 - 1, description="The seed of every solve and of drawn patients.")
    # Bounded before anything is expanded: MAX_VARIANTS once sweeps are expanded too.
    variants: list[Variant] = Field(default_factory=list, max_length=MAX_VARIANTS)
    sweeps: list[Sweep] = Field(default_factory=list, max_length=100)
    bottlenecks: list[Name] = Field(
        default_factory=lambda: ["base"], description="Variants whose bottlenecks are ranked ('base' for the base).")
    bottleneck_roles: list[Role] = Field(
        default_factory=list, description="Roles whose extra sessions are candidates (empty: every role).")
    bottleneck_sites: list[Id] = Field(
        default_factory=list, description="Sites where extra sessions and rooms are candidates (empty: every site).")


@dataclass(frozen=True)
class StudyVariant:
    """One scenario to solve: the base (`changes` empty) or a variant."""

    name: str
    scenario: Scenario
    changes: tuple[Change, ...] = ()


class StudyError(ScenarioError):
    """The study cannot be run; `problems` names each variant and field that is wrong."""


_CHANGE: TypeAdapter[Change] = TypeAdapter(Change)


def _location(where: str, path: tuple[Any, ...]) -> str:
    return where + ("." if path else "") + "".join(
        f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _sweep_variants(sweep: Sweep, index: int, source: str) -> tuple[list[Variant], list[Problem]]:
    variants, problems = [], []
    for value in sweep.values:
        number: int | float = int(value) if float(value).is_integer() else value
        changes = [{k: (number if v == SWEEP_VALUE else v) for k, v in change.items()} for change in sweep.changes]
        name = f"{sweep.name} = {number:g}"
        made, wrong = [], []
        for i, change in enumerate(changes):
            try:
                made.append(_CHANGE.validate_python(change))
            except ValidationError as exc:
                wrong += [Problem(source, _location(f"sweeps[{index}] ({sweep.name} = {number:g})",
                                                    (f"changes[{i}]", *error["loc"][1:])), _message(error))
                          for error in exc.errors()]
        if wrong:
            return variants, wrong
        variants.append(Variant(name=name, changes=made))
    return variants, problems


def _message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return f"unknown field '{error['loc'][-1]}'"
    if error["type"] == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return pydantic_message({**error, "loc": ("study", *error["loc"])})


def study_from_data(data: Any, source: str) -> Study:
    """Validate parsed data as a study. Raises StudyError naming every field that is wrong."""
    try:
        return Study.model_validate(data)
    except ValidationError as exc:
        raise StudyError([Problem(source, _location("", tuple(e["loc"])).lstrip("."), _message(e))
                          for e in exc.errors()]) from None


def load_study(path: str | Path) -> tuple[Study, Scenario]:
    """Read a study file (.yaml, .yml or .json) and its base scenario (relative to it).

    Raises StudyError for an unreadable file and every problem in it, and for a base scenario
    that does not load (its problems, as `onevisit plan` would list them).
    """
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise StudyError([Problem(path.name, "", f"unknown file type '{path.suffix}': use .yaml, .yml or .json")])
    text, problems = read_file(path)
    if problems or text is None:
        raise StudyError(problems or [Problem(path.name, "", "the file could not be read")])
    parsed = parse_json(text, path.name) if path.suffix.lower() == ".json" else parse_yaml(text, path.name)
    if parsed.problems or not parsed.ok:
        raise StudyError(parsed.problems or [Problem(path.name, "", "the file could not be read")])
    study = study_from_data(parsed.data, path.name)
    base_path = (path.parent / study.base)
    if not base_path.is_file():
        raise StudyError([Problem(path.name, "base", f"no scenario file {study.base} beside the study")])
    try:
        return study, load_scenario(base_path)
    except ScenarioError as exc:
        raise StudyError(exc.problems) from None


def expand(study: Study, base: Scenario, source: str = "study") -> list[StudyVariant]:
    """The base and every variant (sweeps expanded, in file order) as scenarios to solve.

    Raises StudyError listing every problem, each named by variant and field: a change naming an
    unknown site, room, clinician, role or marker; a sweep with no steps; two variants with one
    name; more than MAX_VARIANTS variants; and a variant whose scenario the validator refuses.
    """
    problems: list[Problem] = []
    variants = list(study.variants)
    if len(variants) + sum(len(s.values) for s in study.sweeps) > MAX_VARIANTS:
        raise StudyError([Problem(source, "variants", f"{len(variants) + sum(len(s.values) for s in study.sweeps):,} "
                                  f"variants once sweeps are expanded: at most {MAX_VARIANTS:,} in one study")])
    for index, sweep in enumerate(study.sweeps):
        made, wrong = _sweep_variants(sweep, index, source)
        variants += made
        problems += wrong
    names = ["base"]
    result = [StudyVariant("base", base)]
    for variant in variants:
        where = f"variant '{variant.name}'"
        if variant.name in names:
            problems.append(Problem(source, where, "two variants have this name (or it is 'base')"))
            continue
        names.append(variant.name)
        scenario, wrong = _apply(base, variant, where, source, study.seed)
        problems += wrong
        if scenario is not None:
            result.append(StudyVariant(variant.name, scenario, tuple(variant.changes)))
    for index, name in enumerate(study.bottlenecks):
        if name not in names:
            problems.append(Problem(source, f"bottlenecks[{index}]", f"no variant named '{name}'"))
    if problems:
        raise StudyError(problems)
    return result


def apply_variant(base: Scenario, variant: Variant, seed: int, source: str = "study") -> Scenario:
    """The base with the variant's changes applied and validated. Raises StudyError naming the
    variant and field of every problem."""
    scenario, problems = _apply(base, variant, f"variant '{variant.name}'", source, seed)
    if problems or scenario is None:
        raise StudyError(problems)
    return scenario


def _apply(base: Scenario, variant: Variant, where: str, source: str, seed: int) -> tuple[Scenario | None, list[Problem]]:
    """The base with the variant's changes applied in order, validated; or the problems."""
    data = base.model_dump(mode="python")
    problems: list[Problem] = []
    for index, change in enumerate(variant.changes):
        at = f"{where}: changes[{index}] ({change.kind})"
        for field_name, message in _apply_change(data, change, seed, index):
            problems.append(Problem(source, f"{at}.{field_name}" if field_name else at, message))
    if problems:
        return None, problems
    try:
        return scenario_from_dict(_dump(data), "scenario"), []
    except ScenarioError as exc:
        return None, [Problem(source, where, f"the variant's scenario is invalid: {p.location}: {p.message}")
                      for p in exc.problems]


def _dump(data: Any) -> Any:
    """Scenario data as JSON-ready values (dates and times as ISO 8601 text), for the validator."""
    if isinstance(data, dict):
        return {k: _dump(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_dump(v) for v in data]
    if isinstance(data, dt.datetime):
        return data.isoformat()
    if isinstance(data, dt.date | dt.time):
        return data.isoformat()
    return data


def _open_days(data: dict, weekdays: list[str]) -> list[dt.date]:
    return [d for d in dates_between(data["horizon_start"], data["horizon_end"])
            if WEEKDAYS[d.weekday()] in weekdays and not is_bank_holiday(d)]


def _who(data: dict, change) -> list[str]:
    if change.clinician is not None:
        return [change.clinician]
    return [c["id"] for c in data["clinicians"] if c["role"] == change.role]


def _apply_change(data: dict, change: Change, seed: int, index: int) -> list[tuple[str, str]]:
    """Apply one change to the scenario data in place; returns (field, problem) pairs."""
    sites = {s["id"] for s in data["sites"]}
    rooms = {r["id"]: r for r in data["rooms"]}
    clinicians = {c["id"]: c for c in data["clinicians"]}

    def unknown(field_name: str, value: str, known, noun: str) -> list[tuple[str, str]]:
        return [] if value in known else [(field_name, f"unknown {noun} '{value}'")]

    if isinstance(change, RoomAdded):
        wrong = unknown("room.site_id", change.room.site_id, sites, "site")
        if change.room.id in rooms:
            wrong.append(("room.id", f"room '{change.room.id}' already exists"))
        if not wrong:
            data["rooms"].append(change.room.model_dump())
        return wrong
    if isinstance(change, RoomRemoved):
        wrong = unknown("room", change.room, rooms, "room")
        if not wrong:
            data["rooms"] = [r for r in data["rooms"] if r["id"] != change.room]
            data["sessions"] = [{**s, "room_id": None} if s.get("room_id") == change.room else s
                                for s in data["sessions"]]
        return wrong
    if isinstance(change, SessionsAdded | SessionsRemoved | SessionsMoved):
        wrong = []
        if change.clinician is not None:
            wrong += unknown("clinician", change.clinician, clinicians, "clinician")
        elif not _who(data, change) and not isinstance(change, SessionsAdded):
            wrong.append(("role", f"no clinician has the role '{change.role}'"))
        for name in ("site", "from_site", "to_site"):
            value = getattr(change, name, None)
            if value is not None:
                wrong += unknown(name, value, sites, "site")
        if wrong:
            return wrong
        if isinstance(change, SessionsAdded):
            return _add_sessions(data, change, index)
        who = set(_who(data, change))
        weekdays = set(change.weekdays) or set(WEEKDAYS)

        def matches(s: dict, site: str | None) -> bool:
            return (s["clinician_id"] in who and (site is None or s["site_id"] == site)
                    and WEEKDAYS[s["date"].weekday()] in weekdays)

        if isinstance(change, SessionsRemoved):
            kept = [s for s in data["sessions"] if not matches(s, change.site)]
            if len(kept) == len(data["sessions"]):
                return [("", "no roster session matches")]
            data["sessions"] = kept
            return []
        moved = [s for s in data["sessions"] if matches(s, change.from_site)]
        if not moved:
            return [("from_site", "no roster session matches")]
        data["sessions"] = [{**s, "site_id": change.to_site, "room_id": None} if matches(s, change.from_site) else s
                            for s in data["sessions"]]
        return []
    if isinstance(change, SiteOpened):
        wrong = unknown("near", change.near, sites, "site") if change.near is not None else []
        patient_ids = {p["id"] for p in data["patients"]}
        wrong += [(f"patient_travel.{pid}", f"unknown patient '{pid}'") for pid in change.patient_travel
                  if pid not in patient_ids]
        if change.site.id in sites:
            wrong.append(("site.id", f"site '{change.site.id}' already exists"))
        for i, room in enumerate(change.rooms):
            if room.site_id != change.site.id:
                wrong.append((f"rooms[{i}].site_id", f"a room of the new site must have site_id '{change.site.id}'"))
            if room.id in rooms:
                wrong.append((f"rooms[{i}].id", f"room '{room.id}' already exists"))
        if wrong:
            return wrong
        data["sites"].append(change.site.model_dump())
        data["rooms"] += [r.model_dump() for r in change.rooms]
        for p in data["patients"]:
            near = next((r for r in p["reachable_sites"] if r["site_id"] == change.near), None)
            minutes = change.patient_travel.get(p["id"])
            if minutes is None and near is not None:
                minutes = near["travel_minutes"] if change.travel_minutes is None else change.travel_minutes
            if minutes is not None:
                p["reachable_sites"] = [*p["reachable_sites"], {"site_id": change.site.id, "travel_minutes": minutes}]
        return []
    if isinstance(change, SiteClosed):
        wrong = unknown("site", change.site, sites, "site")
        if wrong:
            return wrong
        if len(sites) == 1:
            return [("site", "the only site cannot close")]
        gone = {r["id"] for r in data["rooms"] if r["site_id"] == change.site}
        data["sites"] = [s for s in data["sites"] if s["id"] != change.site]
        data["rooms"] = [r for r in data["rooms"] if r["id"] not in gone]
        data["sessions"] = [s for s in data["sessions"] if s["site_id"] != change.site]
        data["closures"] = [c for c in data.get("closures", []) if c.get("site_id") != change.site
                            and c.get("room_id") not in gone]
        for p in data["patients"]:
            p["reachable_sites"] = [r for r in p["reachable_sites"] if r["site_id"] != change.site]
        stranded = [p["id"] for p in data["patients"] if not p["reachable_sites"]]
        if stranded:
            return [("site", f"{len(stranded)} patient(s) could reach no other site (first: {stranded[0]}); "
                     "open another site near them in the same variant first")]
        return []
    if isinstance(change, DemandScaled):
        return _scale_demand(data, change, seed, index)
    if isinstance(change, ConsolidationMode):
        for p in data["patients"]:
            p["joint_consultation"] = change.mode == "joint" and len(p["due_reviews"]) >= 2
        return []
    if isinstance(change, MaxVisitMinutes):
        data["visit_rules"]["max_visit_minutes"] = change.minutes
        return []
    if isinstance(change, BloodDrawPolicy):
        markers = {m["id"]: m for m in data["blood_markers"]}
        wrong = [(f"point_of_care_markers[{i}]", f"unknown blood marker '{m}'")
                 for i, m in enumerate(change.point_of_care_markers) if m not in markers]
        if wrong:
            return wrong
        if change.policy is not None:
            data["visit_rules"]["blood_draw_policy"] = change.policy
        for m in change.point_of_care_markers:
            markers[m]["point_of_care"] = True
        return []
    raise AssertionError(f"unhandled change {change.kind}")  # every kind is handled above


def _add_sessions(data: dict, change: SessionsAdded, index: int) -> list[tuple[str, str]]:
    if change.end <= change.start:
        return [("end", "the sessions end at or before they start")]
    if change.count == 0:
        return []
    days = _open_days(data, change.weekdays)
    if not days:
        return [("weekdays", "no day of the horizon but bank holidays falls on these weekdays")]
    who = _who(data, change)
    if change.clinician is None:  # sessional staff of the role, able to do what the role does
        like = [c for c in data["clinicians"] if c["role"] == change.role]
        if not like:
            return [("role", f"no clinician has the role '{change.role}' to model new sessional staff on")]
        types = sorted({t for c in like for t in c.get("review_type_ids", [])})
        who = []
        for k in range(change.count):
            new_id = f"extra-{change.role}-{index + 1}-{k + 1}"
            data["clinicians"].append(Clinician(id=new_id, name=f"Sessional {change.role.replace('_', ' ')}",
                                                role=change.role, organisation=like[0]["organisation"],
                                                review_type_ids=types,
                                                takes_bloods=any(c.get("takes_bloods") for c in like)).model_dump())
            who.append(new_id)
    else:
        who = who * change.count
    taken = {(s["clinician_id"], s["date"]) for s in data["sessions"]}
    for clinician in who:
        for day in days:
            if (clinician, day) in taken and change.clinician is not None:
                continue  # a named clinician already works that day: one more session would overlap
            data["sessions"].append(RosterSession(clinician_id=clinician, date=day, start=change.start,
                                                  end=change.end, site_id=change.site).model_dump())
    return []


def _scale_demand(data: dict, change: DemandScaled, seed: int, index: int) -> list[tuple[str, str]]:
    """More patients, copied from the base's (of the clusters) with new ids, or fewer, drawn with
    `random.Random(f"{seed}-{index}")` so the same study gives the same patients."""
    rng = random.Random(f"{seed}-demand-{index}")
    known = {t["id"] for t in data["review_types"]}
    wrong = [(f"clusters[{i}]", f"unknown review type '{t}'") for i, cluster in enumerate(change.clusters)
             for t in cluster if t not in known]
    if wrong:
        return wrong
    patients = data["patients"]

    def in_cluster(p: dict) -> bool:
        types = {d["review_type_id"] for d in p["due_reviews"]}
        return not change.clusters or any(set(c) <= types for c in change.clusters)

    pool = [p for p in patients if in_cluster(p)]
    if not pool:
        return [("clusters", "no patient of the base has all the review types of any cluster")]
    delta = round(len(pool) * (change.factor - 1))
    if delta < 0:
        gone = {p["id"] for p in rng.sample(pool, min(-delta, len(pool)))}
        data["patients"] = [p for p in patients if p["id"] not in gone]
        return []
    ids = {p["id"] for p in patients}
    for k in range(delta):
        model = rng.choice(pool)
        new_id = f"{model['id']}-x{index + 1}-{k + 1}"[:64]
        while new_id in ids:
            new_id = new_id + "x"
        ids.add(new_id)
        copy = Patient.model_validate(model).model_dump()
        copy["id"] = new_id
        copy["due_reviews"] = [{**d, "id": None} for d in copy["due_reviews"]]
        patients.append(copy)
    return []


def study_json_schema() -> dict[str, Any]:
    """The JSON Schema of a study file, as docs/capacity.md shows it."""
    schema = Study.model_json_schema()
    schema["title"] = "OneVisit capacity study"
    return schema
