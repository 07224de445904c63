"""An iMIP message (RFC 6047) carrying one invite or cancel.

multipart/alternative: a text/plain part (the event's summary and description, for mail readers
that show no calendar) and the calendar part, `text/calendar; charset=UTF-8; method=REQUEST` (or
CANCEL), whose method is read from the ics itself so the two can never disagree. The calendar
bytes go in base64, untouched: CRLF line ends and folding survive any mail relay. (The email
package writes parameter values quoted, charset="UTF-8"; method="REQUEST", which MIME defines as
the same value as the bare token.)
"""

from __future__ import annotations

import email.policy
import email.utils
from email.message import EmailMessage

from icalendar import Calendar

_METHODS = ("REQUEST", "CANCEL")


def _one_event(ics: bytes):
    calendar = Calendar.from_ical(ics)
    method = str(calendar.get("method", "")).upper()
    if method not in _METHODS:
        raise ValueError(f"an invite email carries METHOD:REQUEST or CANCEL, not {method or 'none'!r}")
    events = calendar.walk("VEVENT")
    if len(events) != 1:
        raise ValueError(f"one invite message carries one event, not {len(events)}")
    return method, events[0]


def invite_email(
    ics: bytes,
    *,
    sender: str,
    to: str,
    subject: str | None = None,
) -> EmailMessage:
    """The email for one patient invite or cancel (`patient_request` / `patient_cancel` output).

    `sender` should be the organiser mailbox used in the ics; `to` the attendee's. The subject
    defaults to the event's SUMMARY (neutral by construction). Serialise with
    `msg.as_bytes(policy=email.policy.SMTP)` or hand it to `smtplib.SMTP.send_message`.
    """
    method, event = _one_event(ics)
    summary = str(event.get("summary", "Your visit"))
    description = str(event.get("description", ""))

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject if subject is not None else summary
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = email.utils.make_msgid(domain="onevisit")
    msg.set_content(f"{summary}\n\n{description}\n", subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(
        ics,
        maintype="text",
        subtype="calendar",
        cte="base64",
        params={"charset": "UTF-8", "method": method},
    )
    return msg
