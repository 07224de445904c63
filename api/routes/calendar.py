"""Calendar routes: publishing a plan, what changed for each patient, invite e-mails, link tokens,
and the token-only calendar files (patient invite, clinician feed, room feed).

The calendar files need no API key: the long random token in the URL is the only credential and
names nothing. An unknown, revoked or mistyped token is a plain 404, whatever the reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from api.calendar import clinician_feed, invite_email, room_feed
from api.calendar.email import InvalidAddress
from api.deps import DB, CallerDep, ServicesDep, require
from api.errors import ERROR_RESPONSES, ApiError, not_found
from api.models import (
    CalendarEvent,
    CalendarToken,
    PlanRecord,
    Publication,
    ScenarioRecord,
    ScenarioVersion,
    utcnow,
)
from api.publish import (
    download_address,
    identity,
    invite_file,
    latest_publication,
    new_token,
    publish,
)
from api.schemas import MAX_VERSION
from api.store import cached, plan_of, plan_record, scenario_of, scenario_record
from scheduler.domain import Id
from scheduler.plan import Metrics, Plan, SolverStats

router = APIRouter(prefix="/v1", tags=["calendar"], responses=ERROR_RESPONSES)
ICS = "text/calendar; charset=utf-8"
# One address, as browsers validate <input type=email> (WHATWG HTML): no lists, names or comments.
EMAIL = (r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
         r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
ICS_RESPONSE = {200: {"content": {"text/calendar": {}}, "description": "An iCalendar file (RFC 5545)."}}


class PublishOut(BaseModel):
    plan_id: str
    published_at: dt.datetime
    counts: dict[str, int]


class InviteChange(BaseModel):
    patient_id: str
    reference: str
    action: Literal["new", "update", "unchanged", "cancel"]
    method: Literal["REQUEST", "CANCEL"] | None
    sequence: int
    invite_url: str | None  # None: the patient takes no calendar invites (contact_preference)


class InviteChanges(BaseModel):
    plan_id: str
    items: list[InviteChange]


class TokenRequest(BaseModel):
    """Ask for a feed link: which kind of feed, and whose (an id from the scenario)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["clinician", "room"]
    subject_id: Id


class TokenOut(BaseModel):
    id: str
    kind: str
    subject_id: str
    url: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class TokenList(BaseModel):
    items: list[TokenOut]


def _url(base: str, token: CalendarToken) -> str:
    return f"{base}/v1/calendar/{token.kind}/{token.token}.ics"


@router.post("/plans/{plan_id}/publish", response_model=PublishOut,
             summary="Publish a plan: patient invites, updates and cancellations follow from it")
def publish_plan(plan_id: str, session: DB, caller: CallerDep,
                 confirm_scenario_version: Annotated[int | None, Query(
                     ge=1, le=MAX_VERSION, description="Publish a plan made from an older version of the scenario "
                     "than the latest: give that plan's version to confirm (409 older_scenario_version "
                     "otherwise).")] = None) -> PublishOut:
    require(caller, "publish")
    record = plan_record(session, caller.organisation_id, plan_id)
    result = publish(session, record, confirm_scenario_version)
    return PublishOut(plan_id=record.id, published_at=record.published_at, counts=result.counts)


@router.get("/plans/{plan_id}/invites", response_model=InviteChanges,
            summary="What publishing this plan changed for each patient's invites (its latest publication)")
def invite_changes(plan_id: str, session: DB, caller: CallerDep, services: ServicesDep,
                   patient_id: str | None = None,
                   action: Literal["new", "update", "unchanged", "cancel"] | None = None) -> InviteChanges:
    require(caller, "calendar_tokens", "see patients' invites")
    record = plan_record(session, caller.organisation_id, plan_id)
    query = latest_publication(record.id)
    if patient_id:
        query = query.where(Publication.patient_id == patient_id)
    if action:
        query = query.where(Publication.action == action)
    tokens = {t.subject_id: t for t in session.scalars(select(CalendarToken).where(
        CalendarToken.scenario_id == record.scenario_id, CalendarToken.kind == "patient",
        CalendarToken.revoked_at.is_(None)))}
    items = []
    for pub, event in session.execute(query.order_by(Publication.patient_id, CalendarEvent.reference)):
        token = tokens.get(event.id)
        # An unchanged visit is sent only to a patient who has just chosen calendar invites.
        sends = event.calendar_invites and (pub.action != "unchanged" or "calendar" in (pub.channels_added or []))
        items.append(InviteChange(
            patient_id=pub.patient_id, reference=event.reference, action=pub.action, sequence=pub.sequence,
            method=("CANCEL" if pub.action == "cancel" else "REQUEST") if sends else None,
            invite_url=_url(services.settings.public_url, token) if token and event.calendar_invites else None))
    return InviteChanges(plan_id=record.id, items=items)


def _event_by_reference(session: DB, organisation_id: str, reference: str) -> CalendarEvent:
    event = session.scalar(select(CalendarEvent).where(CalendarEvent.reference == reference))
    if event is None or event.organisation_id != organisation_id or not event.calendar_invites:
        raise not_found("invite")
    return event


@router.get("/invites/{reference}/message", response_class=Response,
            responses={200: {"content": {"message/rfc822": {}}, "description": "A MIME e-mail with the invite."}},
            summary="The e-mail to send a patient for their current invite (REQUEST or CANCEL)")
def invite_message(reference: str, session: DB, caller: CallerDep, services: ServicesDep,
                   to: Annotated[str, Query(pattern=EMAIL, max_length=254,
                                            description="The patient's e-mail address.")]) -> Response:
    require(caller, "calendar_tokens", "read patients' invite e-mails")
    event = _event_by_reference(session, caller.organisation_id, reference)
    organiser = services.settings.organiser
    ics = invite_file(session, event, organiser, f"mailto:{to}")
    try:
        message = invite_email(ics, sender=organiser.removeprefix("mailto:"), to=to)
    except InvalidAddress as exc:
        if exc.field != "to":  # the organiser setting is wrong: the service's fault, not the caller's
            raise
        raise ApiError(422, "invalid_address", f"Cannot address an e-mail to {to!r}: {exc}", "to") from None
    return Response(message.as_bytes(), media_type="message/rfc822")


@router.post("/scenarios/{scenario_id}/calendar-tokens", status_code=201, response_model=TokenOut,
             summary="A feed link for a clinician or a room")
def create_token(scenario_id: str, body: TokenRequest, session: DB, caller: CallerDep,
                 services: ServicesDep) -> TokenOut:
    require(caller, "calendar_tokens", "hand out calendar links")
    record = scenario_record(session, caller.organisation_id, scenario_id)
    scenario = scenario_of(session.scalar(select(ScenarioVersion).where(
        ScenarioVersion.scenario_id == record.id, ScenarioVersion.version == record.latest_version)))
    known = {c.id for c in scenario.clinicians} if body.kind == "clinician" else {r.id for r in scenario.rooms}
    if body.subject_id not in known:
        raise ApiError(422, "unknown_subject", f"No {body.kind} '{body.subject_id}' in the scenario.", "subject_id")
    token = CalendarToken(organisation_id=caller.organisation_id, scenario_id=record.id, kind=body.kind,
                          subject_id=body.subject_id, token=new_token())
    session.add(token)
    session.flush()
    return _token_out(token, services.settings.public_url)


def _token_out(token: CalendarToken, base: str) -> TokenOut:
    return TokenOut(id=token.id, kind=token.kind, subject_id=token.subject_id, url=_url(base, token),
                    created_at=token.created_at, revoked_at=token.revoked_at)


@router.get("/scenarios/{scenario_id}/calendar-tokens", response_model=TokenList,
            summary="Calendar links of a scenario (patient links name the visit's event)")
def list_tokens(scenario_id: str, session: DB, caller: CallerDep, services: ServicesDep,
                kind: Literal["patient", "clinician", "room"] | None = None) -> TokenList:
    require(caller, "calendar_tokens", "list calendar links")
    record = scenario_record(session, caller.organisation_id, scenario_id)
    query = select(CalendarToken).where(CalendarToken.scenario_id == record.id)
    if kind:
        query = query.where(CalendarToken.kind == kind)
    tokens = session.scalars(query.order_by(CalendarToken.created_at)).all()
    return TokenList(items=[_token_out(t, services.settings.public_url) for t in tokens])


@router.delete("/calendar-tokens/{token_id}", response_model=TokenOut, summary="Revoke a calendar link")
def revoke_token(token_id: str, session: DB, caller: CallerDep, services: ServicesDep) -> TokenOut:
    require(caller, "calendar_tokens", "revoke calendar links")
    token = session.get(CalendarToken, token_id)
    if token is None or token.organisation_id != caller.organisation_id:
        raise not_found("calendar link")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return _token_out(token, services.settings.public_url)


def _token(session: DB, kind: str, value: str) -> CalendarToken:
    token = session.scalar(select(CalendarToken).where(CalendarToken.token == value))
    if token is None or token.kind != kind or token.revoked_at is not None:
        raise not_found("calendar")
    return token


def _calendar_file(kind: str, summary: str):
    """Serve a token route for GET and HEAD (calendar clients probe with HEAD)."""
    path = f"/calendar/{kind}/{{token}}.ics"

    def register(route):
        router.get(path, response_class=Response, responses=ICS_RESPONSE, summary=summary)(route)
        router.head(path, response_class=Response, responses=ICS_RESPONSE, summary=summary)(route)
        return route

    return register


def _ics(body: bytes) -> Response:
    return Response(body, media_type=ICS, headers={"Cache-Control": "no-store"})


@_calendar_file("patient", "A patient's invite for one visit (REQUEST, or CANCEL once the visit is gone)")
def patient_invite(token: str, session: DB, services: ServicesDep) -> Response:
    found = _token(session, "patient", token)
    event = session.get(CalendarEvent, found.subject_id)
    if event is None or not event.calendar_invites:
        raise not_found("calendar")
    organiser = services.settings.organiser
    return _ics(invite_file(session, event, organiser, download_address(event.reference, organiser)))


def _feed(session: DB, token: CalendarToken, render) -> bytes:
    record = session.get(ScenarioRecord, token.scenario_id)
    published = session.get(PlanRecord, record.published_plan_id) if record.published_plan_id else None
    version = session.get(ScenarioVersion, published.scenario_version_id) if published else session.scalar(
        select(ScenarioVersion).where(ScenarioVersion.scenario_id == record.id,
                                      ScenarioVersion.version == record.latest_version))
    scenario = scenario_of(version)
    if published is None:  # an empty, valid feed until a plan is published
        plan, identities = _nothing_published(scenario.name), {}
    else:
        plan = plan_of(published)
        events = session.scalars(select(CalendarEvent).where(CalendarEvent.plan_id == published.id,
                                                             CalendarEvent.status == "active")).all()
        identities = {e.visit_id: identity(e) for e in events}
    subject = {"clinician": {c.id: c for c in scenario.clinicians}, "room": {r.id: r for r in scenario.rooms}}
    if token.subject_id not in subject[token.kind]:
        raise not_found("calendar")  # the clinician or room left the scenario
    name = _feed_name(scenario, token)
    return render(scenario, plan, token.subject_id, identities, calendar_name=name)


def _feed_name(scenario, token: CalendarToken) -> str:
    if token.kind == "room":
        room = next(r for r in scenario.rooms if r.id == token.subject_id)
        return f"OneVisit room {room.name or room.id}"
    return "OneVisit clinic list"  # no clinician name: feeds leave the NHS boundary


def _nothing_published(name: str) -> Plan:
    return Plan(scenario_name=name, appointments=[], visits=[], unbooked=[],
                metrics=Metrics(**dict.fromkeys(Metrics.model_fields, 0)),
                solver=SolverStats(status="NONE", method="nothing published yet", objective=0, best_bound=0,
                                   gap=0.0, wall_seconds=0.0, time_limit_seconds=1.0, workers=1, seed=0))


@_calendar_file("clinician", "A clinician's feed of the published plan (booking references only)")
def clinician_calendar(token: str, session: DB) -> Response:
    return _ics(_cached_feed(session, _token(session, "clinician", token), clinician_feed))


@_calendar_file("room", "A room's feed of the published plan (booking references only)")
def room_calendar(token: str, session: DB) -> Response:
    return _ics(_cached_feed(session, _token(session, "room", token), room_feed))


def _cached_feed(session: DB, token: CalendarToken, render) -> bytes:
    """A feed changes only when a plan is published, so it is rendered once per publication."""
    record = session.get(ScenarioRecord, token.scenario_id)
    if record.published_plan_id is None:
        return _feed(session, token, render)
    key = f"{record.id}/{record.publish_count}/{token.kind}/{token.subject_id}"
    return cached("feed", key, lambda: _feed(session, token, render))
