"""Calendar output: patient invites (iTIP REQUEST/CANCEL), clinician and room feeds, invite emails.

Pure functions of a scenario, a plan and identities the service stores; no database, no HTTP.
See docs/calendars.md.
"""

from api.calendar.email import InvalidAddress, invite_email
from api.calendar.render import (
    EventIdentity,
    PreviousVisit,
    clinician_feed,
    invite_fingerprint,
    is_sensitive_visit,
    new_reference,
    new_uid,
    patient_cancel,
    patient_request,
    previous_visit,
    review_visit_for,
    room_feed,
    takes_calendar_invites,
    visit_steps,
)
from api.calendar.sanitise import clean_text
from api.calendar.timezone import london_vtimezone

__all__ = [
    "EventIdentity",
    "InvalidAddress",
    "clean_text",
    "clinician_feed",
    "PreviousVisit",
    "is_sensitive_visit",
    "invite_email",
    "invite_fingerprint",
    "london_vtimezone",
    "new_reference",
    "new_uid",
    "previous_visit",
    "patient_cancel",
    "patient_request",
    "review_visit_for",
    "room_feed",
    "takes_calendar_invites",
    "visit_steps",
]
