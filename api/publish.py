"""Publishing a plan: each patient visit keeps one calendar event (random UID, booking reference,
link token) across plan versions, and SEQUENCE rises only when what the invite shows changes.

A visit of the new plan takes over the event of the visit with the same id in the published
plan (same patient, same reviews); failing that, the patient's remaining event sharing most
reviews with it (a visit whose make-up changed), or the remaining draw-only trip for a draw-only
trip. Events left over are cancelled (SEQUENCE + 1). What happened to each event is recorded
per publication, so a mailer can send exactly the updates and cancellations needed; publishing
an earlier plan again is one more publication, measured against what is published now.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.calendar import (
    EventIdentity,
    PreviousVisit,
    invite_fingerprint,
    is_sensitive_visit,
    new_reference,
    new_uid,
    patient_cancel,
    patient_request,
    previous_visit,
    takes_calendar_invites,
)
from api.errors import ApiError
from api.models import (
    CalendarEvent,
    CalendarToken,
    PlanRecord,
    Publication,
    ScenarioVersion,
    utcnow,
)
from api.store import lock_scenario, plan_of, scenario_of
from scheduler.domain import Scenario
from scheduler.plan import Plan, Visit

ACTIONS = ("new", "update", "unchanged", "cancel")


def new_token() -> str:
    """A calendar link secret: 256 random bits, nothing about its subject."""
    return secrets.token_urlsafe(32)


def identity(event: CalendarEvent) -> EventIdentity:
    return EventIdentity(event.uid, event.sequence, event.reference)


@dataclass(frozen=True)
class PublishResult:
    plan_id: str
    counts: dict[str, int]


def _reviews(plan: Plan, visit: Visit) -> list[str]:
    by_id = {a.id: a for a in plan.appointments}
    return sorted({r for a_id in visit.appointment_ids for r in by_id[a_id].review_ids})


def _match(plan: Plan, active: list[CalendarEvent]) -> dict[str, CalendarEvent]:
    """visit id of the new plan -> the event it continues (same patient)."""
    matched: dict[str, CalendarEvent] = {}
    by_visit = {e.visit_id: e for e in active}
    left: dict[str, list[CalendarEvent]] = defaultdict(list)

    def continues(event: CalendarEvent, visit: Visit) -> bool:
        return event.patient_id == visit.patient_id

    for visit in plan.visits:
        if visit.id in by_visit and continues(by_visit[visit.id], visit):
            matched[visit.id] = by_visit.pop(visit.id)
    for event in by_visit.values():
        left[event.patient_id].append(event)
    for visit in plan.visits:
        candidates = [e for e in left[visit.patient_id] if continues(e, visit)]
        if visit.id in matched or not candidates:
            continue
        reviews = set(_reviews(plan, visit))

        def overlap(event: CalendarEvent, reviews: set[str] = reviews) -> int:
            return len(reviews & set(event.review_ids)) if reviews else int(not event.review_ids)

        best = max(candidates, key=overlap)
        if overlap(best) > 0:
            matched[visit.id] = best
            left[visit.patient_id].remove(best)
    return matched


def latest_publication(plan_id: str) -> Select[tuple[Publication, CalendarEvent]]:
    """Each event's record in the plan's latest publication (a plan published again has several)."""
    latest = select(func.max(Publication.publish_number)).where(Publication.plan_id == plan_id)
    return (select(Publication, CalendarEvent).join(CalendarEvent, CalendarEvent.id == Publication.event_id)
            .where(Publication.plan_id == plan_id, Publication.publish_number == latest.scalar_subquery()))


def _unique_reference(session: Session) -> str:
    while True:
        reference = new_reference()
        if session.scalar(select(CalendarEvent.id).where(CalendarEvent.reference == reference)) is None:
            return reference


def _patient_link(session: Session, event: CalendarEvent) -> None:
    """The patient's calendar link for the event, unless one is live already."""
    live = session.scalar(select(CalendarToken.id).where(
        CalendarToken.kind == "patient", CalendarToken.subject_id == event.id, CalendarToken.revoked_at.is_(None)))
    if live is None:
        session.add(CalendarToken(organisation_id=event.organisation_id, scenario_id=event.scenario_id,
                                  kind="patient", subject_id=event.id, token=new_token()))


def publish(session: Session, record: PlanRecord, confirmed_version: int | None = None) -> PublishResult:
    """Make `record` the scenario's published plan and bring every calendar event up to date.

    A plan made from an older version of the scenario than the latest may miss what was entered
    since (an absence, a closure, a cancelled patient: hazard HAZ-009), so it is published only
    when `confirmed_version` names its version; otherwise ApiError 409 `older_scenario_version`.
    """
    scenario_record = lock_scenario(session, record.scenario_id)  # one publication at a time
    if scenario_record.published_plan_id == record.id:
        raise ApiError(409, "already_published", "This plan is already the published plan.", "plan_id")
    version = session.get(ScenarioVersion, record.scenario_version_id)
    if version.version != scenario_record.latest_version and confirmed_version != version.version:
        raise ApiError(
            409, "older_scenario_version",
            f"This plan was made from version {version.version} of the scenario, but version "
            f"{scenario_record.latest_version} is the latest: it may not include what was changed since "
            "(an absence, a closure, a cancelled or added patient). Plan or re-plan from the latest version, "
            f"or publish this plan anyway by confirming its version ({version.version}).",
            "confirm_scenario_version")
    scenario: Scenario = scenario_of(version)
    plan = plan_of(record)
    active = session.scalars(select(CalendarEvent).where(
        CalendarEvent.scenario_id == record.scenario_id, CalendarEvent.status == "active")).all()
    patients = {p.id: p for p in scenario.patients}
    matched = _match(plan, list(active))
    counts = dict.fromkeys(ACTIONS, 0)
    now = utcnow()
    scenario_record.publish_count += 1
    number = scenario_record.publish_count

    def note(event: CalendarEvent, action: str, channels_added: list[str] | None = None) -> None:
        counts[action] += 1
        session.add(Publication(plan_id=record.id, event_id=event.id, publish_number=number,
                                patient_id=event.patient_id, action=action, sequence=event.sequence,
                                visit_id=event.visit_id, channels_added=channels_added or None))

    for visit in plan.visits:
        fingerprint = invite_fingerprint(scenario, plan, visit.id)
        sensitive = is_sensitive_visit(scenario, plan, visit.id)
        invites = takes_calendar_invites(patients[visit.patient_id])
        channels = list(patients[visit.patient_id].contact_preference)
        event = matched.get(visit.id)
        if event is None:
            event = CalendarEvent(
                organisation_id=record.organisation_id, scenario_id=record.scenario_id,
                patient_id=visit.patient_id, uid=new_uid(), reference=_unique_reference(session), sequence=0,
                sensitive=sensitive, calendar_invites=invites, channels=channels, fingerprint=fingerprint,
                review_ids=_reviews(plan, visit), plan_id=record.id, visit_id=visit.id, updated_at=now)
            session.add(event)
            session.flush()
            if invites:
                _patient_link(session, event)
            note(event, "new")
            continue
        action = "unchanged"
        if event.fingerprint != fingerprint:
            event.sequence += 1  # only ever rises
            action = "update"
        if invites and not event.calendar_invites:
            _patient_link(session, event)  # the patient has asked for calendar invites since
        # A channel chosen since the last publication has not been told of this visit yet.
        added = [c for c in channels if event.channels is not None and c not in event.channels]
        event.sensitive, event.calendar_invites, event.channels = sensitive, invites, channels
        event.fingerprint, event.review_ids = fingerprint, _reviews(plan, visit)
        event.plan_id, event.visit_id, event.updated_at = record.id, visit.id, now
        note(event, action, added if action == "unchanged" else None)
    continued = {e.id for e in matched.values()}
    for event in active:
        if event.id not in continued:
            event.status, event.sequence, event.updated_at = "cancelled", event.sequence + 1, now
            note(event, "cancel")  # keeps the plan and visit it was last in, to render the cancel
    scenario_record.published_plan_id = record.id
    record.published_at = now
    session.flush()
    return PublishResult(record.id, counts)


def replaced(session: Session, event: CalendarEvent) -> PreviousVisit | None:
    """For an event whose latest sent invite was an update: when and where the visit was before
    (what the update replaces). None for an event sent once, unchanged since, or cancelled."""
    if event.status == "cancelled" or event.sequence == 0:
        return None
    last = session.scalars(select(Publication).where(
        Publication.event_id == event.id, Publication.action.in_(("new", "update")))
        .order_by(Publication.publish_number.desc()).limit(1)).first()
    if last is None or last.action != "update":
        return None
    before = previous_showing(session, event.id, last.publish_number)
    return previous_visit(before.scenario, before.plan, before.visit_id) if before is not None else None


def invite_file(session: Session, event: CalendarEvent, organiser: str, attendee: str) -> bytes:
    """The patient's invite as it stands: a REQUEST (an update says what it replaces), or a
    CANCEL from the plan it was last in."""
    record = session.get(PlanRecord, event.plan_id)
    scenario = scenario_of(session.get(ScenarioVersion, record.scenario_version_id))
    if event.status == "cancelled":
        return patient_cancel(scenario, plan_of(record), event.visit_id, identity(event),
                              organiser=organiser, attendee=attendee)
    return patient_request(scenario, plan_of(record), event.visit_id, identity(event), organiser=organiser,
                           attendee=attendee, previous=replaced(session, event))


@dataclass(frozen=True)
class Showing:
    """What an event showed its patient in one publication: the scenario and plan it was
    rendered from and the visit in that plan."""

    scenario: Scenario
    plan: Plan
    visit_id: str
    publish_number: int


def previous_showing(session: Session, event_id: str, publish_number: int) -> Showing | None:
    """What the event showed before publication `publish_number` (the latest earlier publication
    that sent or kept it), so an update can say what changed: old and new date, time and place.

    None when the event is new in that publication, or its earlier publications predate
    migration 0006 (which started recording the visit shown).
    """
    row = session.scalars(
        select(Publication).where(Publication.event_id == event_id, Publication.publish_number < publish_number,
                                  Publication.action != "cancel", Publication.visit_id.is_not(None))
        .order_by(Publication.publish_number.desc()).limit(1)).first()
    if row is None:
        return None
    record = session.get(PlanRecord, row.plan_id)
    scenario = scenario_of(session.get(ScenarioVersion, record.scenario_version_id))
    return Showing(scenario, plan_of(record), row.visit_id, row.publish_number)


def download_address(reference: str, organiser: str) -> str:
    """Downloaded invites name the patient by booking reference only (no e-mail is stored)."""
    return f"mailto:patient-{reference.lower()}@{organiser.rsplit('@', 1)[-1]}"
