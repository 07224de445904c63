"""An iMIP message (RFC 6047) carrying one invite or cancel.

multipart/alternative: a text/plain part (the event's summary and description, for mail readers
that show no calendar) and the calendar part, `text/calendar; charset=UTF-8; method=REQUEST` (or
CANCEL), whose method is read from the ics itself so the two can never disagree. The calendar
bytes go in base64, untouched: CRLF line ends and folding survive any mail relay. (The email
package writes parameter values quoted, charset="UTF-8"; method="REQUEST", which MIME defines as
the same value as the bare token.)

Header fields (RFC 5322) carry no CR, LF or other control character from data: the subject and
the plain-text part are cleaned with `clean_text` (a site or clinician name is data), and only the
real addresses, `sender` and `to`, are checked, raising `InvalidAddress` naming which one.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
from email.message import EmailMessage

from icalendar import Calendar

from api.calendar.sanitise import clean_text

_METHODS = ("REQUEST", "CANCEL")
# A bare addr-spec in dot-atom form (RFC 5322 3.2.3 atext and ".", 3.4.1): no white space, no
# controls, no display name, quoting or group syntax that could smuggle a second address in.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
_ADDRESS = re.compile(rf"{_ATOM}@{_ATOM}")
DEFAULT_SUBJECT = "Your visit"


class InvalidAddress(ValueError):
    """`sender` or `to` is not a bare e-mail address. `field` names which ("sender" or "to"), so a
    caller can blame the right input; other ValueErrors are about the ics, not an address."""

    def __init__(self, field: str, address: str):
        super().__init__(f"{field} {address!r} is not a bare e-mail address")
        self.field = field
        self.address = address


def _address(field: str, address: str) -> str:
    bare = address.removeprefix("mailto:")
    if not _ADDRESS.fullmatch(bare):
        raise InvalidAddress(field, address)
    return bare


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

    `sender` should be the organiser mailbox used in the ics; `to` the attendee's; both bare
    addresses (a "mailto:" prefix is dropped), else `InvalidAddress`. The subject defaults to the
    event's SUMMARY (neutral by construction); whichever it is, it goes out on one line with no
    control characters (RFC 5322 2.2, `clean_text`), as does the text part's content. Raises
    ValueError for an ics that is not one REQUEST or CANCEL event. Serialise with
    `msg.as_bytes(policy=email.policy.SMTP)` or hand it to `smtplib.SMTP.send_message`.
    """
    sender, to = _address("sender", sender), _address("to", to)
    method, event = _one_event(ics)
    summary = clean_text(str(event.get("summary", "")), single_line=True) or DEFAULT_SUBJECT
    description = clean_text(str(event.get("description", "")))
    subject = summary if subject is None else clean_text(subject, single_line=True) or DEFAULT_SUBJECT

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
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
