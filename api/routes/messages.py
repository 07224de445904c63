"""Patient messages (docs/messages.md): send the SMS texts, letters and calendar invites of a
plan's latest publication, with contacts uploaded for the request only, and list how each went.

Contact details are read from the upload, used and dropped: they are never stored, logged or
returned. Only delivery statuses are kept (`MessageDelivery`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel, Field

from api.deps import DB, CallerDep, ServicesDep, require
from api.errors import ERROR_RESPONSES, ApiError
from api.messages.contacts import MAX_BYTES, ContactsError, read_contacts
from api.messages.notify import sender_from_settings
from api.messages.send import deliveries, send_messages
from api.store import plan_record
from scheduler.problems import Problem

router = APIRouter(prefix="/v1", tags=["messages"], responses=ERROR_RESPONSES)


class MessagesSent(BaseModel):
    plan_id: str
    publish_number: int = Field(description="The publication whose messages these are.")
    counts: dict[str, dict[str, int]] = Field(
        description="Messages recorded by this request, by channel (calendar, sms, letter) and status "
        "(created, outbox, no_contact, error-<HTTP status>, ...).")
    already_sent: int = Field(description="Messages of this publication recorded before, not sent again.")
    patients_not_in_contacts: int = Field(description="Patients messaged who have no row in the contacts file.")


class Delivery(BaseModel):
    reference: str
    publish_number: int
    action: str
    channel: str
    status: str


class DeliveryList(BaseModel):
    items: list[Delivery]


@router.post("/plans/{plan_id}/messages", response_model=MessagesSent,
             summary="Send the messages of the plan's latest publication (manager key)")
def send(plan_id: str, session: DB, caller: CallerDep, services: ServicesDep,
         contacts: Annotated[UploadFile, File(description="Contacts CSV keyed by patient id (docs/messages.md).")],
         ) -> MessagesSent:
    """For each visit the latest publication made new, changed or cancelled, a message on each
    channel the patient prefers. Through GOV.UK Notify when ONEVISIT_NOTIFY_API_KEY is set, else
    written to the outbox folder (ONEVISIT_MESSAGES_OUTBOX, default `out/messages`). 409 `not_published` for a plan never published, `not_current`
    when a later publication replaced it; 422 `invalid_contacts` listing every problem by row and
    column (values are never echoed)."""
    require(caller, "publish", "send messages to patients")
    data = contacts.file.read(MAX_BYTES + 1)
    try:
        book = read_contacts(data)
    except ContactsError as exc:
        problems = [Problem("contacts", f"row {p.row}, column '{p.column}'", p.message) for p in exc.problems]
        raise ApiError(422, "invalid_contacts", f"{len(problems)} problem(s) in the contacts file; nothing was sent.",
                       "contacts", problems) from None
    record = plan_record(session, caller.organisation_id, plan_id)
    settings = services.settings
    try:
        result = send_messages(session, record, book, settings=settings, outbox=Path(settings.messages_outbox),
                               notify=sender_from_settings(settings))
    except ValueError as exc:
        raise ApiError(503, "not_configured", str(exc)) from None
    return MessagesSent(plan_id=record.id, publish_number=result.publish_number, counts=result.counts,
                        already_sent=result.skipped, patients_not_in_contacts=result.not_in_contacts)


@router.get("/plans/{plan_id}/messages", response_model=DeliveryList,
            summary="How each message of the plan's publications went (no contact details)")
def list_deliveries(plan_id: str, session: DB, caller: CallerDep) -> DeliveryList:
    require(caller, "publish", "see patients' messages")
    record = plan_record(session, caller.organisation_id, plan_id)
    return DeliveryList(items=[
        Delivery(reference=ref, publish_number=d.publish_number, action=d.action, channel=d.channel, status=d.status)
        for d, ref in deliveries(session, record)])
