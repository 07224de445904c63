"""The SMS text of a message: plain, GSM-7 only, at most MAX_FRAGMENTS fragments.

Says the date and time (short date, NHS clock style from `api.calendar.wording`), the site's
name, how long to allow, the fasting instruction when the blood test needs it, the booking
reference and the practice phone to change it. An update says what it was; a cancellation which
visit is cancelled; a blood-test-only trip when the check-up it prepares for is. No condition,
test, clinician name or patient id, and no role (the letter and invite carry the steps).

Units: fragments of 160 / 153 GSM-7 septets (`gsm.fragment_count`). When a long site name would
take the text past MAX_FRAGMENTS, optional sentences are dropped first, then the site name is
shortened; the result is always checked.
"""

from __future__ import annotations

from api.calendar import wording
from api.messages.compose import FASTING_HOURS, Message
from api.messages.gsm import fragment_count, to_gsm

MAX_FRAGMENTS = 3


def _parts(m: Message, site: str) -> tuple[list[str], list[str]]:
    """(essential sentences, optional sentences) of the text."""
    f, w = m.facts, m.facts.when
    what = "blood test" if f.blood_test_only else "appointment"
    ref = f"Ref {m.reference}."
    call = f"call {f.phone}" if f.phone else "contact your GP practice"
    if m.action == "cancel":
        return ([f"Your {what} at {site} on {w.short_day} at {w.time} is cancelled.", ref,
                 f"To book again or ask about it, {call}."],
                ["If we have sent you a new appointment, that one still stands."])
    essential: list[str] = []
    if m.action == "update":
        b = m.before
        moved, moved_place = m.changes()
        if b is not None and moved and moved_place:
            essential.append(f"Your {what} has changed. It was {b.short_day} at {b.time} at {b.site_name}.")
        elif b is not None and moved:
            essential.append(f"Your {what} has changed. It was {b.short_day} at {b.time}.")
        elif b is not None and moved_place:
            essential.append(f"Your {what} has moved from {b.site_name}.")
        else:
            essential.append(f"Your {what} has changed.")
        essential.append(f"It is now {w.short_day} at {w.time} at {site}, for about {w.length}.")
    else:
        essential.append(f"Your {what} at {site}: {w.short_day} at {w.time}, for about {w.length}.")
    if f.fasting_from is not None:
        essential.append(f"Nothing to eat or drink except water from {wording.clock(f.fasting_from)} "
                         f"the night before ({FASTING_HOURS} hours).")
    optional = []
    if f.blood_test_only and f.review is not None:
        optional.append(f"It is for your check-up on {f.review.short_day} at {f.review.time}.")
    return essential + [ref, f"To change it, {call}."], optional


def sms_text(m: Message) -> str:
    """The text message; ValueError if it cannot be made to fit MAX_FRAGMENTS, `gsm.NotGsm7`
    for text (a site name, a phone number) with no GSM-7 form."""
    site = to_gsm(m.facts.when.site_name)
    names = [site] + [site[:cut].rstrip() + "..." for cut in range(len(site) - 1, 7, -1)]
    for name in names:
        essential, optional = _parts(m, name)
        for extra in (optional, []):
            text = to_gsm(" ".join(essential[:-2] + extra + essential[-2:]))
            if fragment_count(text) <= MAX_FRAGMENTS:
                return text
    raise ValueError(f"the text message does not fit {MAX_FRAGMENTS} fragments")
