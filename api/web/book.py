"""The appointment book's data: one day or one week of a plan as rows (clinicians or rooms) and
blocks (appointments), shaped for EventCalendar's resource timeline, and the printable
clinician day list.

Times are Europe/London wall-clock times written without an offset ("2026-03-30T09:10:00"):
the timeline draws them as given, so a block reads the time the patient's invite says on either
side of a clock change. Plans never change once stored, so each plan's index by day is built
once per process (api.store.cached).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass

import pendulum

from api.store import cached
from scheduler.domain import Scenario
from scheduler.plan import Appointment, Plan, Visit

LONDON = pendulum.timezone("Europe/London")
ROWS = ("clinician", "room")
# Visit colours: dark enough for white text at WCAG AA (contrast at least 4.5:1 against #fff),
# distinct enough that neighbouring visits read apart.
PALETTE = ("#005eb8", "#007f3b", "#8a1538", "#4c2c92", "#7c2855", "#00594c", "#6b4e00", "#330072",
           "#a00054", "#1d5c84", "#5c3d00", "#3d4a00")
KIND_LABEL = {"blood_draw": "Blood draw", "review": "Review", "joint_review": "Joint review"}


def local(value: dt.datetime) -> dt.datetime:
    return value.astimezone(LONDON)


def wall(value: dt.datetime) -> str:
    """Local wall-clock time without offset, as the timeline wants it."""
    return local(value).strftime("%Y-%m-%dT%H:%M:%S")


def visit_colour(visit_id: str) -> str:
    return PALETTE[int(hashlib.sha256(visit_id.encode()).hexdigest(), 16) % len(PALETTE)]


@dataclass(frozen=True)
class PlanIndex:
    """A plan's appointments by local date, its visits by id, and each visit's steps in order."""

    by_date: dict[dt.date, list[Appointment]]
    visits: dict[str, Visit]
    steps: dict[str, list[Appointment]]


def plan_index(plan_id: str, plan: Plan) -> PlanIndex:
    def build() -> PlanIndex:
        by_date: dict[dt.date, list[Appointment]] = defaultdict(list)
        steps: dict[str, list[Appointment]] = defaultdict(list)
        for a in sorted(plan.appointments, key=lambda a: (a.start, a.id)):
            by_date[local(a.start).date()].append(a)
            steps[a.visit_id].append(a)
        return PlanIndex(dict(by_date), {v.id: v for v in plan.visits}, dict(steps))

    return cached("book-index", plan_id, build)


def needs_of(scenario: Scenario, patient_id: str) -> list[str]:
    """What a visit must allow for, in words a receptionist uses: interpreter, wheelchair, carer,
    extra time. Fasting is per visit (needs_for_visit)."""
    patient = next((p for p in scenario.patients if p.id == patient_id), None)
    if patient is None:
        return []
    needs = patient.needs
    out = []
    if needs.interpreter_language:
        out.append(f"interpreter ({needs.interpreter_language})")
    if needs.wheelchair:
        out.append("wheelchair access")
    if needs.carer_attending:
        out.append("carer attending")
    if needs.extra_time_factor and needs.extra_time_factor > 1:
        out.append(f"extra time (x{needs.extra_time_factor:g})")
    return out


def fasting(scenario: Scenario, steps: list[Appointment]) -> bool:
    markers = {m.id: m for m in scenario.blood_markers}
    return any(markers[m].fasting for a in steps for m in a.blood_marker_ids if m in markers)


def step_text(scenario: Scenario, appointment: Appointment) -> str:
    """A step in words: the blood draw, or the reviews' names (a sensitive review is named too:
    the book is for the practice's own staff)."""
    if appointment.kind == "blood_draw":
        return "Blood draw"
    names = {t.id: t.name for t in scenario.review_types}
    reviews = ", ".join(names.get(t, t) for t in appointment.review_type_ids)
    return f"{KIND_LABEL.get(appointment.kind, appointment.kind)}: {reviews}"


def resources(scenario: Scenario, rows: str, site_id: str | None, role: str | None) -> list[dict]:
    """The book's rows: clinicians (filtered by role; by site, those rostered there) or rooms."""
    if rows == "room":
        return [{"id": r.id, "title": f"{r.name or r.id} ({r.site_id})"}
                for r in scenario.rooms if not site_id or r.site_id == site_id]
    at_site = {s.clinician_id for s in scenario.sessions if s.site_id == site_id} if site_id else None
    return [{"id": c.id, "title": f"{c.name or c.id} ({c.role})"} for c in scenario.clinicians
            if (not role or c.role == role) and (at_site is None or c.id in at_site)]


def book_data(plan_id: str, plan: Plan, scenario: Scenario, references: dict[str, str], *, first: dt.date,
              days: int, rows: str, site_id: str | None = None, role: str | None = None) -> dict:
    """The book for days first .. first+days-1: {"date_from", "date_to", "rows", "resources":
    [{id, title}], "events": [{id, resourceIds, start, end, title, backgroundColor, extendedProps:
    {patient_id, visit_id, reference, kind, steps, site_id, room_id, clinician_ids, start_local,
    end_local}}], "slot_min_time", "slot_max_time"}. `references` maps visit id to booking
    reference (empty before publishing). Raises ValueError for rows not in ROWS."""
    if rows not in ROWS:
        raise ValueError(f"rows must be one of {', '.join(ROWS)}")
    index = plan_index(plan_id, plan)
    shown = resources(scenario, rows, site_id, role)
    shown_ids = {r["id"] for r in shown}
    events = []
    for offset in range(days):
        for a in index.by_date.get(first + dt.timedelta(days=offset), ()):
            if site_id and a.site_id != site_id:
                continue
            ids = [i for i in (a.clinician_ids if rows == "clinician" else [a.room_id]) if i in shown_ids]
            if not ids:
                continue
            steps = index.steps.get(a.visit_id, [a])
            reference = references.get(a.visit_id, "")
            events.append({
                "id": a.id, "resourceIds": ids, "start": wall(a.start), "end": wall(a.end),
                "title": f"{a.patient_id} · {step_text(scenario, a)}" + (f" · {reference}" if reference else ""),
                "backgroundColor": visit_colour(a.visit_id), "textColor": "#ffffff",
                "extendedProps": {
                    "patient_id": a.patient_id, "visit_id": a.visit_id, "reference": reference, "kind": a.kind,
                    "step": steps.index(a) + 1 if a in steps else 1, "steps": len(steps),
                    "site_id": a.site_id, "room_id": a.room_id, "clinician_ids": a.clinician_ids,
                    "start_local": local(a.start).isoformat(), "end_local": local(a.end).isoformat()},
            })
    sites = [s for s in scenario.sites if not site_id or s.id == site_id]
    opens = min((s.opens for s in sites), default=dt.time(8, 0))
    closes = max((s.closes for s in sites), default=dt.time(18, 30))
    return {"date_from": first.isoformat(), "date_to": (first + dt.timedelta(days=days - 1)).isoformat(),
            "rows": rows, "resources": shown, "events": events,
            "slot_min_time": opens.strftime("%H:%M:00"), "slot_max_time": closes.strftime("%H:%M:00")}


@dataclass(frozen=True)
class DayListEntry:
    """One line of a clinician's printed day list."""

    start: str  # HH:MM local
    end: str
    room: str
    site: str
    patient_id: str
    reference: str
    what: str
    needs: list[str]


def clinician_day(plan_id: str, plan: Plan, scenario: Scenario, references: dict[str, str], clinician_id: str,
                  day: dt.date) -> list[DayListEntry]:
    """A clinician's appointments on a day, in time order, each with what the visit needs
    (fasting, interpreter, wheelchair, carer, extra time)."""
    index = plan_index(plan_id, plan)
    rooms = {r.id: r.name or r.id for r in scenario.rooms}
    sites = {s.id: s.name for s in scenario.sites}
    out = []
    for a in index.by_date.get(day, ()):
        if clinician_id not in a.clinician_ids:
            continue
        steps = index.steps.get(a.visit_id, [a])
        needs = (["fasting"] if fasting(scenario, steps) else []) + needs_of(scenario, a.patient_id)
        out.append(DayListEntry(local(a.start).strftime("%H:%M"), local(a.end).strftime("%H:%M"),
                                rooms.get(a.room_id, a.room_id), sites.get(a.site_id, a.site_id), a.patient_id,
                                references.get(a.visit_id, ""), step_text(scenario, a), needs))
    return out
