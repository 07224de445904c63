"""Bottlenecks: which one resource, increased by one session or one room, books the most more
patients, measured by solving each marginal variant, not guessed (issue 15).

The candidates are stated, not searched: one more roster session of each role at each site on
each weekday that role works there (every week of the horizon, at the hours it usually works
then), and one more room of each capability at each site (as large as the site's largest room
with it). Each candidate is a study variant applied on top of the scenario examined, so it is
solved and checked like any other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from scheduler.capacity.study import (
    Change,
    RoomAdded,
    SessionsAdded,
    StudyVariant,
    Variant,
    apply_variant,
)
from scheduler.domain import WEEKDAYS, Room, Scenario
from scheduler.plan import Plan

DAYS = {"mon": "Mondays", "tue": "Tuesdays", "wed": "Wednesdays", "thu": "Thursdays", "fri": "Fridays",
        "sat": "Saturdays", "sun": "Sundays"}


@dataclass(frozen=True)
class Candidate:
    """One marginal increase: a label a planner reads, and the change that makes it."""

    label: str
    change: Change


@dataclass(frozen=True)
class Bottleneck:
    """A candidate's effect against the scenario it was added to, on the same patients."""

    label: str
    patients_gained: int
    reviews_gained: int
    one_visit_patients_gained: int


def candidates(scenario: Scenario, roles: list[str] | None = None, sites: list[str] | None = None) -> list[Candidate]:
    """The stated candidate set for `scenario`, in a fixed order (sessions by role, site and
    weekday; then rooms by site and capability). `roles` / `sites` narrow it (None or empty:
    all)."""
    role_of = {c.id: c.role for c in scenario.clinicians}
    hours: dict[tuple[str, str, str], Counter] = {}
    for s in scenario.sessions:
        role = role_of.get(s.clinician_id)
        if role is None or (roles and role not in roles) or (sites and s.site_id not in sites):
            continue
        key = (role, s.site_id, WEEKDAYS[s.date.weekday()])
        hours.setdefault(key, Counter())[(s.start, s.end)] += 1
    found = []
    for (role, site, weekday), seen in sorted(hours.items(), key=lambda kv: (kv[0][0], kv[0][1], WEEKDAYS.index(kv[0][2]))):
        (start, end), _ = max(seen.items(), key=lambda kv: (kv[1], kv[0]))
        found.append(Candidate(
            f"one more {role.replace('_', ' ')} session at {site} on {DAYS[weekday]} ({start:%H:%M}-{end:%H:%M})",
            SessionsAdded(kind="sessions_added", role=role, site=site, weekdays=[weekday], start=start, end=end)))
    for site in sorted({r.site_id for r in scenario.rooms}):
        if sites and site not in sites:
            continue
        at_site = [r for r in scenario.rooms if r.site_id == site]
        for capability in sorted({c for r in at_site for c in r.capabilities}):
            people = max(r.capacity_people for r in at_site if capability in r.capabilities)
            room = Room(id=f"extra-{site}-{capability}"[:64].replace("_", "-"), site_id=site,
                        name=f"Extra {capability} room", capacity_people=people, capabilities=[capability])
            found.append(Candidate(f"one more {capability} room at {site}", RoomAdded(kind="room_added", room=room)))
    return found


def marginal_variants(subject: StudyVariant, found: list[Candidate], seed: int) -> list[StudyVariant]:
    """Each candidate applied to the subject's scenario, as a variant named after the subject and
    the candidate. Raises StudyError if a candidate makes the scenario invalid (it cannot: each
    adds to what is there)."""
    made = []
    for candidate in found:
        name = f"{subject.name} + {candidate.label}"
        scenario = apply_variant(subject.scenario, Variant(name=name[:200], changes=[candidate.change]), seed)
        made.append(StudyVariant(name, scenario, (*subject.changes, candidate.change)))
    return made


def _one_visit_patients(plan: Plan) -> set[str]:
    visits: Counter = Counter(v.patient_id for v in plan.visits if v.purpose != "blood_draw_trip")
    unbooked = {u.patient_id for u in plan.unbooked}
    return {p for p, n in visits.items() if n == 1 and p not in unbooked}


def rank(subject_plan: Plan, solved: list[tuple[Candidate, Plan]]) -> list[Bottleneck]:
    """Candidates by how many more patients are fully booked, then reviews booked, then patients
    with all their reviews in one visit, against the subject's plan on the same patients (the
    candidates add no patients). Most first; ties by label."""
    before = subject_plan.metrics
    base_one = _one_visit_patients(subject_plan)
    result = [Bottleneck(c.label, plan.metrics.patients_fully_booked - before.patients_fully_booked,
                         plan.metrics.reviews_booked - before.reviews_booked,
                         len(_one_visit_patients(plan) - base_one) - len(base_one - _one_visit_patients(plan)))
              for c, plan in solved]
    return sorted(result, key=lambda b: (-b.patients_gained, -b.reviews_gained, -b.one_visit_patients_gained, b.label))
