"""Reading and writing scenarios and plans: the only place rows are built from engine objects."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from api.errors import ApiError, not_found
from api.models import (
    AppointmentClinician,
    AppointmentRecord,
    CalendarEvent,
    Job,
    PlanRecord,
    Publication,
    ScenarioRecord,
    ScenarioVersion,
    new_id,
    utcnow,
)
from scheduler.domain import Scenario
from scheduler.plan import Plan, StoredPlan


def add_scenario(session: Session, organisation_id: str, scenario: Scenario, source: str) -> ScenarioVersion:
    record = ScenarioRecord(organisation_id=organisation_id, name=label(scenario.name), latest_version=1)
    session.add(record)
    session.flush()
    return _add_version(session, record, scenario, 1, source)


def lock_scenario(session: Session, scenario_id: str) -> ScenarioRecord:
    """The scenario row, locked until the transaction ends, so numbering versions and plans or
    publishing never races. PostgreSQL: FOR NO KEY UPDATE, which still lets rows that refer to the
    scenario (jobs, tokens) be inserted meanwhile; SQLite: the writer's lock is held already."""
    return session.get(ScenarioRecord, scenario_id, with_for_update={"key_share": True}, populate_existing=True)


def label(text: str) -> str:
    """A name or file name as a short database label: valid UTF-8 without NUL, at most 200
    characters (the full name stays in the scenario document)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")[:200]


def add_version(session: Session, record: ScenarioRecord, scenario: Scenario, source: str) -> ScenarioVersion:
    """An edit is a new version; plans already made keep pointing at the version they solved."""
    record = lock_scenario(session, record.id)
    number = (session.scalar(select(func.max(ScenarioVersion.version)).where(
        ScenarioVersion.scenario_id == record.id)) or 0) + 1
    record.latest_version = number
    record.name = label(scenario.name)
    record.updated_at = utcnow()
    return _add_version(session, record, scenario, number, source)


def _add_version(session: Session, record: ScenarioRecord, scenario: Scenario, number: int,
                 source: str) -> ScenarioVersion:
    version = ScenarioVersion(
        scenario_id=record.id, version=number, content=scenario.model_dump(mode="json"), source=label(source),
        patients=len(scenario.patients), reviews=sum(len(p.due_reviews) for p in scenario.patients),
    )
    session.add(version)
    session.flush()
    return version


def scenario_record(session: Session, organisation_id: str, scenario_id: str) -> ScenarioRecord:
    record = session.get(ScenarioRecord, scenario_id)
    if record is None or record.organisation_id != organisation_id:
        raise not_found("scenario")  # another organisation's scenario does not exist for this key
    return record


def scenario_version(session: Session, record: ScenarioRecord, number: int | None = None) -> ScenarioVersion:
    number = number or record.latest_version
    version = session.scalar(select(ScenarioVersion).where(
        ScenarioVersion.scenario_id == record.id, ScenarioVersion.version == number))
    if version is None:
        raise not_found("scenario version")
    return version


# Scenario versions and finished plans never change, so their parsed forms are cached by id:
# calendar and plan reads then skip re-validating a whole scenario on every request.
_parsed: OrderedDict[tuple[str, str], Any] = OrderedDict()
_PARSED_KEEP = 64
_parsed_lock = threading.Lock()


def cached(kind: str, key: str, parse: Callable[[], Any]) -> Any:
    """The value for (kind, key), computed once; only for things that never change."""
    with _parsed_lock:
        if (kind, key) in _parsed:
            _parsed.move_to_end((kind, key))
            return _parsed[(kind, key)]
    value = parse()
    # A parsed plan or scenario is tens of thousands of long-lived objects; moved out of the
    # cyclic garbage collector's sight, they no longer make its full collections pause every
    # request in flight (tens of ms on a practice month: the read latency's tail). They are
    # freed by reference counting when evicted.
    gc.freeze()
    with _parsed_lock:
        _parsed[(kind, key)] = value
        while len(_parsed) > _PARSED_KEEP:
            _parsed.popitem(last=False)
    return value


def scenario_of(version: ScenarioVersion) -> Scenario:
    return cached("scenario", version.id, lambda: Scenario.model_validate(version.content))


def plan_record(session: Session, organisation_id: str, plan_id: str) -> PlanRecord:
    record = session.get(PlanRecord, plan_id)
    if record is None or record.organisation_id != organisation_id:
        raise not_found("plan")
    return record


def plan_of(record: PlanRecord) -> Plan:
    return cached("plan", record.id, lambda: Plan.model_validate(record.document))


def add_plan(session: Session, version: ScenarioVersion, organisation_id: str, plan: Plan,
             job_id: str | None = None) -> PlanRecord:
    """Store a checked plan and every appointment; the caller's transaction makes it all-or-nothing.

    The stored document records where it is kept (`stored`: its own plan id, the scenario and the
    version number), so a plan file exported from the service names the plan it came from; read
    the plan back with `plan_of(record)` to have it with `stored` filled in.
    """
    lock_scenario(session, version.scenario_id)
    number = (session.scalar(select(func.max(PlanRecord.number)).where(
        PlanRecord.scenario_id == version.scenario_id)) or 0) + 1
    plan_id = new_id()
    plan = plan.model_copy(update={"stored": StoredPlan(
        plan_id=plan_id, scenario_id=version.scenario_id, scenario_version=version.version)})
    record = PlanRecord(
        id=plan_id, organisation_id=organisation_id, scenario_id=version.scenario_id, scenario_version_id=version.id,
        number=number, job_id=job_id, document=plan.model_dump(mode="json"), objective=plan.solver.objective,
        best_bound=plan.solver.best_bound, gap=plan.solver.gap, reviews_booked=plan.metrics.reviews_booked,
        reviews=plan.metrics.reviews,
    )
    session.add(record)
    session.flush()
    session.add_all(
        AppointmentRecord(
            plan_id=record.id, id=a.id, patient_id=a.patient_id, visit_id=a.visit_id, kind=a.kind, date=a.date,
            start=a.start, end=a.end, site_id=a.site_id, room_id=a.room_id,
            clinician_ids=list(a.clinician_ids), review_ids=list(a.review_ids),
            review_type_ids=list(a.review_type_ids), blood_marker_ids=list(a.blood_marker_ids),
        )
        for a in plan.appointments
    )
    session.add_all(
        AppointmentClinician(plan_id=record.id, appointment_id=a.id, clinician_id=c)
        for a in plan.appointments for c in a.clinician_ids
    )
    session.flush()
    return record


def plan_status(record: PlanRecord, scenario: ScenarioRecord) -> str:
    """published (the scenario's published plan), superseded (published before, not now) or draft."""
    if scenario.published_plan_id == record.id:
        return "published"
    return "superseded" if record.published_at is not None else "draft"


def booking_references(session: Session, scenario_id: str) -> dict[str, str]:
    """Every booking reference the scenario's calendars have used (active and cancelled) -> the
    visit id its current (or last) content is in, for disruptions that name a booking by reference."""
    rows = session.execute(select(CalendarEvent.reference, CalendarEvent.visit_id).where(
        CalendarEvent.scenario_id == scenario_id))
    return {reference: visit_id for reference, visit_id in rows}


def discard_plan(session: Session, record: PlanRecord) -> None:
    """Delete a plan that was never published, with its appointments, in the caller's transaction.

    The jobs that made it keep their row, with plan_id None and stage "discarded". Raises ApiError
    409 `plan_published` for a plan that has ever been published (patients may hold its invites)
    and 409 `plan_in_use` while a queued or running job re-plans it.
    """
    lock_scenario(session, record.scenario_id)  # publishing and re-planning wait, or went first
    session.refresh(record)
    scenario = session.get(ScenarioRecord, record.scenario_id)
    published = (record.published_at is not None or scenario.published_plan_id == record.id
                 or session.scalar(select(Publication.plan_id).where(Publication.plan_id == record.id).limit(1))
                 or session.scalar(select(CalendarEvent.id).where(CalendarEvent.plan_id == record.id).limit(1)))
    if published:
        raise ApiError(409, "plan_published", "This plan has been published, so patients may hold its "
                       "invites; only a plan never published can be discarded.", "plan_id")
    replanning = session.scalar(select(Job.id).where(Job.base_plan_id == record.id,
                                                     Job.status.in_(("queued", "running"))).limit(1))
    if replanning:
        raise ApiError(409, "plan_in_use", f"Job {replanning} is re-planning this plan; cancel it or let it "
                       "finish before discarding the plan.", "plan_id")
    session.execute(delete(AppointmentClinician).where(AppointmentClinician.plan_id == record.id))
    session.execute(delete(AppointmentRecord).where(AppointmentRecord.plan_id == record.id))
    session.execute(update(Job).where(Job.plan_id == record.id).values(
        plan_id=None, stage="discarded", updated_at=utcnow()))
    session.delete(record)
    session.flush()
