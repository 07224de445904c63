"""Sending a publication's messages: for each patient visit that publication made new, changed
or cancelled, one message on each channel the patient prefers (`Patient.contact_preference`).

- `calendar`: the patient's invite (`api.publish.invite_file`): an iMIP e-mail (`.eml`) when the
  contacts give an e-mail address, else the bare `.ics`; through Notify's e-mail (the invite's text
  and the patient's calendar link) when a Notify key and e-mail template are configured.
- `sms`: `sms.sms_text`, to the contacts' mobile number.
- `letter`: `letter.letter_pdf`, to the contacts' postal address, large print when the patient's
  `needs.large_print` says so.

Only the delivery status is kept, one `MessageDelivery` row per (event, publication, channel):
`created` (Notify accepted it), `outbox` (written to the outbox folder), `no_contact` (the
contacts file has no detail for that channel), `error-<HTTP status>` (Notify refused it; the
others still go), `unencodable` (a site name or phone with no GSM-7 form). Sending the same
publication again skips every (event, channel) already recorded, so nothing goes twice.

Messages go out only for the plan the scenario publishes now and for its latest publication;
an earlier publication's messages would describe visits that have changed since.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.calendar import clean_text, invite_email
from api.config import Settings
from api.errors import ApiError
from api.messages.compose import Message, visit_facts, visit_when
from api.messages.contacts import Contact
from api.messages.gsm import NotGsm7
from api.messages.letter import letter_pdf
from api.messages.notify import NotifySender, Sent
from api.messages.outbox import outbox_name, write_atomic
from api.messages.sms import sms_text
from api.models import (
    CalendarEvent,
    CalendarToken,
    MessageDelivery,
    PlanRecord,
    Publication,
    ScenarioRecord,
    ScenarioVersion,
    utcnow,
)
from api.publish import download_address, invite_file, latest_publication, previous_showing
from api.store import plan_of, scenario_of

CHANNELS = ("calendar", "sms", "letter")
SENT_ACTIONS = ("new", "update", "cancel")


@dataclass
class SendResult:
    plan_id: str
    publish_number: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # channel -> status -> n
    skipped: int = 0  # (event, channel) pairs already sent for this publication
    not_in_contacts: int = 0  # patients messaged this time who have no row in the contacts file


def _bare(mailbox: str) -> str:
    return mailbox[len("mailto:"):] if mailbox.lower().startswith("mailto:") else mailbox


def publication_rows(session: Session, record: PlanRecord) -> tuple[int, list]:
    """(publish number, [(Publication, CalendarEvent)]) of the plan's latest publication; ApiError
    409 if the plan was never published, or is no longer what its scenario publishes."""
    rows = session.execute(latest_publication(record.id)).all()
    if not rows or record.published_at is None:
        raise ApiError(409, "not_published", "This plan was never published; publish it first, then send "
                       "its messages.", "plan_id")
    scenario = session.get(ScenarioRecord, record.scenario_id)
    number = rows[0][0].publish_number
    if scenario.published_plan_id != record.id or scenario.publish_count != number:
        raise ApiError(409, "not_current", "Another publication of this scenario came after this plan's; "
                       "send the messages of the plan published now.", "plan_id")
    return number, rows


def send_messages(
    session: Session,
    record: PlanRecord,
    contacts: dict[str, Contact],
    *,
    settings: Settings,
    outbox: Path | None,
    notify: NotifySender | None = None,
    progress: Callable[[int, int], None] | None = None,
    today: dt.date | None = None,
    after_each: Callable[[], None] | None = None,
) -> SendResult:
    """Send (or write to `outbox`) every message of the plan's latest publication not sent yet.

    `after_each` runs after each recorded message (the CLI commits there, so an interrupted run
    resumes where it stopped). Raises ApiError 409 (see `publication_rows`) or ValueError when
    neither Notify nor an outbox is given.
    """
    if notify is None and outbox is None:
        raise ValueError("give an outbox folder or a GOV.UK Notify key")
    if notify is not None and not notify.config.sms_template_id:
        raise ValueError("ONEVISIT_NOTIFY_SMS_TEMPLATE_ID is not set")
    number, rows = publication_rows(session, record)
    result = SendResult(record.id, number)
    counts: dict[str, Counter] = defaultdict(Counter)
    done = {(d.event_id, d.channel) for d in session.scalars(select(MessageDelivery).where(
        MessageDelivery.event_id.in_([e.id for _, e in rows]), MessageDelivery.publish_number == number))}
    # An unchanged visit goes only to the channels the patient added since it was last published.
    work = [(pub, event) for pub, event in rows if pub.action in SENT_ACTIONS or pub.channels_added]
    work.sort(key=lambda pe: pe[1].reference)
    cache: dict[str, tuple] = {}
    organiser = settings.organiser

    def loaded(plan_id: str):
        if plan_id not in cache:
            plan_record = session.get(PlanRecord, plan_id)
            cache[plan_id] = (scenario_of(session.get(ScenarioVersion, plan_record.scenario_version_id)),
                              plan_of(plan_record))
        return cache[plan_id]

    missing: set[str] = set()
    for index, (pub, event) in enumerate(work):
        scenario, plan = loaded(event.plan_id)
        patient = next((p for p in scenario.patients if p.id == event.patient_id), None)
        channels = [c for c in CHANNELS if patient is not None and c in patient.contact_preference
                    and (pub.action in SENT_ACTIONS or c in (pub.channels_added or []))]
        action = pub.action if pub.action in SENT_ACTIONS else "new"  # new to that channel
        contact = contacts.get(event.patient_id, Contact())
        todo = [c for c in channels if (event.id, c) not in done]
        if todo and event.patient_id not in contacts:
            missing.add(event.patient_id)
        result.skipped += len(channels) - len(todo)
        if todo:
            before = None
            if action == "update":
                shown = previous_showing(session, event.id, number)
                if shown is not None:
                    before = visit_when(shown.scenario, shown.plan, shown.visit_id)
            message = Message(action, event.reference, visit_facts(scenario, plan, event.visit_id), before)
        for channel in todo:
            sent = _send_one(session, channel, message, event, number, contact, settings=settings,
                             organiser=organiser, outbox=outbox, notify=notify, today=today)
            now = utcnow()
            session.add(MessageDelivery(organisation_id=event.organisation_id, event_id=event.id,
                                        publish_number=number, action=action, channel=channel,
                                        status=sent.status, provider_id=sent.provider_id,
                                        created_at=now, updated_at=now))
            session.flush()
            counts[channel][sent.status] += 1
            if after_each is not None:
                after_each()
        if progress is not None:
            progress(index + 1, len(work))
    result.counts = {c: dict(sorted(counts[c].items())) for c in CHANNELS if counts[c]}
    result.not_in_contacts = len(missing)
    return result


def _calendar_link(session: Session, event, settings: Settings) -> str | None:
    token = session.scalar(select(CalendarToken.token).where(
        CalendarToken.kind == "patient", CalendarToken.subject_id == event.id, CalendarToken.revoked_at.is_(None)))
    return f"{settings.public_url}/v1/calendar/patient/{token}.ics" if token else None


def _send_one(session: Session, channel: str, message: Message, event, number: int, contact: Contact, *,
              settings: Settings, organiser: str, outbox: Path | None, notify: NotifySender | None,
              today: dt.date | None) -> Sent:
    reference, action = message.reference, message.action

    def to_outbox(data: bytes, kind: str | None = None) -> Sent:
        if outbox is None:
            return Sent("no_outbox")
        write_atomic(outbox, outbox_name(reference, number, action, channel, kind), data)
        return Sent("outbox")

    if channel == "sms":
        if contact.mobile is None:
            return Sent("no_contact")
        try:
            text = sms_text(message)
        except (NotGsm7, ValueError):
            return Sent("unencodable")
        if notify is not None:
            return notify.sms(contact.mobile, text, reference)
        return to_outbox(text.encode("utf-8") + b"\n")
    if channel == "letter":
        if not contact.postal:
            return Sent("no_contact")
        pdf = letter_pdf(message, contact.postal, today=today)
        if notify is not None:
            return notify.letter(pdf, reference)
        return to_outbox(pdf)
    # calendar
    try:
        if contact.email is None:
            return to_outbox(invite_file(session, event, organiser, download_address(reference, organiser)), "ics")
        ics = invite_file(session, event, organiser, f"mailto:{contact.email}")
        mail = invite_email(ics, sender=_bare(organiser), to=contact.email)
    except ValueError:
        return Sent("withheld")  # the calendar library would not render this visit's invite
    if notify is not None and notify.config.email_template_id:
        text = mail.get_body(("plain",)).get_content()
        link = _calendar_link(session, event, settings)
        if link and action != "cancel":
            text += f"\nAdd this visit to your calendar: {link}\n"
        return notify.email(contact.email, clean_text(str(mail["Subject"]), single_line=True), text, reference)
    return to_outbox(mail.as_bytes(), "eml")


def deliveries(session: Session, record: PlanRecord) -> list[tuple[MessageDelivery, str]]:
    """Every delivery recorded for the plan's publications: (delivery, booking reference)."""
    numbers = select(Publication.publish_number).where(Publication.plan_id == record.id).distinct()
    events = select(Publication.event_id).where(Publication.plan_id == record.id)
    query = (select(MessageDelivery, CalendarEvent.reference)
             .join(CalendarEvent, CalendarEvent.id == MessageDelivery.event_id)
             .where(MessageDelivery.event_id.in_(events), MessageDelivery.publish_number.in_(numbers))
             .order_by(MessageDelivery.publish_number, CalendarEvent.reference, MessageDelivery.channel))
    return [(delivery, reference) for delivery, reference in session.execute(query)]
