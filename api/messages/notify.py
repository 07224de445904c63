"""Sending through GOV.UK Notify with its official client (`notifications-python-client`).

- SMS: `send_sms_notification` with a template whose whole body is `((body))`; the text goes in
  the personalisation field `body`.
- Letters: `send_precompiled_letter_notification` with the PDF (`letter.py`).
- Calendar e-mails: `send_email_notification` with a template whose subject is `((subject))`
  and body `((body))` (the invite's text and the patient's calendar link); Notify cannot attach
  an iCalendar part, so the link carries the invite.

`reference` is always the booking reference, never a patient id. A Notify error (HTTP 4xx/5xx)
does not raise: it comes back as the status `error-<HTTP status>` so the rest of the batch goes
on, and the message is recorded with that status. Statuses otherwise are Notify's (`created` on
acceptance; later ones come from Notify's callbacks or status API).

API keys look like `<key name>-<service id uuid>-<secret uuid>`; the client signs each request
with an HS256 JWT (secret = the last 36 characters, iss = the service id).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from notifications_python_client.errors import APIError
from notifications_python_client.notifications import NotificationsAPIClient


@dataclass(frozen=True)
class Sent:
    status: str
    provider_id: str | None = None


@dataclass(frozen=True)
class NotifyConfig:
    api_key: str
    base_url: str = "https://api.notifications.service.gov.uk"
    sms_template_id: str | None = None
    email_template_id: str | None = None
    timeout: float = 30.0


class NotifySender:
    """One Notify client for a batch (the client is not thread-safe: use one per thread)."""

    def __init__(self, config: NotifyConfig):
        self.config = config
        self.client = NotificationsAPIClient(config.api_key, base_url=config.base_url, timeout=config.timeout)

    @staticmethod
    def _done(call) -> Sent:
        try:
            answer = call()
        except APIError as exc:
            return Sent(f"error-{exc.status_code}")
        except OSError as exc:  # connection refused, timeout (requests' errors are OSErrors)
            return Sent(f"error-{type(exc).__name__}"[:40])
        return Sent("created", str(answer.get("id")) if isinstance(answer, dict) and answer.get("id") else None)

    def sms(self, phone: str, text: str, reference: str) -> Sent:
        if not self.config.sms_template_id:
            raise ValueError("ONEVISIT_NOTIFY_SMS_TEMPLATE_ID is not set")
        return self._done(lambda: self.client.send_sms_notification(
            phone, self.config.sms_template_id, personalisation={"body": text}, reference=reference))

    def letter(self, pdf: bytes, reference: str) -> Sent:
        return self._done(lambda: self.client.send_precompiled_letter_notification(reference, io.BytesIO(pdf)))

    def email(self, address: str, subject: str, body: str, reference: str) -> Sent:
        if not self.config.email_template_id:
            raise ValueError("ONEVISIT_NOTIFY_EMAIL_TEMPLATE_ID is not set")
        return self._done(lambda: self.client.send_email_notification(
            address, self.config.email_template_id, personalisation={"subject": subject, "body": body},
            reference=reference))


def sender_from_settings(settings) -> NotifySender | None:
    """A sender when `settings.notify_api_key` is set (api.config.Settings), else None (outbox)."""
    if not settings.notify_api_key:
        return None
    return NotifySender(NotifyConfig(settings.notify_api_key, settings.notify_base_url,
                                     settings.notify_sms_template_id, settings.notify_email_template_id))
