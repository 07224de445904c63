"""The words in invites and feeds: plain English for patients, bare facts for staff.

Nothing here ever names a condition, a review type, a blood test or a specialty. Clinicians
appear by a neutral role ("a practice nurse", "a hospital specialist"); specialist roles are
folded together because the specialty alone tells a reader what the patient has.
"""

from __future__ import annotations

import datetime as dt

from scheduler.domain import Role

# (noun, plural) per role; every noun takes "a".
ROLE_NOUNS: dict[Role, tuple[str, str]] = {
    "gp": ("GP", "GPs"),
    "practice_nurse": ("practice nurse", "practice nurses"),
    "diabetes_specialist_nurse": ("specialist nurse", "specialist nurses"),
    "respiratory_specialist_nurse": ("specialist nurse", "specialist nurses"),
    "heart_failure_specialist_nurse": ("specialist nurse", "specialist nurses"),
    "consultant_cardiology": ("hospital specialist", "hospital specialists"),
    "consultant_renal": ("hospital specialist", "hospital specialists"),
    "consultant_respiratory": ("hospital specialist", "hospital specialists"),
    "consultant_diabetes": ("hospital specialist", "hospital specialists"),
    "consultant_elderly_care": ("hospital specialist", "hospital specialists"),
    "pharmacist": ("pharmacist", "pharmacists"),
    "hca": ("healthcare assistant", "healthcare assistants"),
    "phlebotomist": ("phlebotomist", "phlebotomists"),
    # "Mental health practitioner" would tell anyone who sees the calendar why the patient goes.
    "mental_health_practitioner": ("clinician", "clinicians"),
    "social_prescriber": ("social prescriber", "social prescribers"),
    "care_coordinator": ("care coordinator", "care coordinators"),
}

KIND_LABELS = {"blood_draw": "blood test", "review": "review", "joint_review": "joint review"}

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
COUNTS = {2: "two", 3: "three", 4: "four", 5: "five"}


def clock(t: dt.datetime | dt.time) -> str:
    """NHS style: 9am, 9:30am, midday, 2:15pm."""
    hour, minute = t.hour, t.minute
    if (hour, minute) == (12, 0):
        return "midday"
    if (hour, minute) == (0, 0):
        return "midnight"
    suffix = "am" if hour < 12 else "pm"
    h12 = hour % 12 or 12
    return f"{h12}{suffix}" if minute == 0 else f"{h12}:{minute:02d}{suffix}"


def long_date(d: dt.date) -> str:
    """Thursday 25 March 2027 (no locale involved)."""
    return f"{DAYS[d.weekday()]} {d.day} {MONTHS[d.month - 1]} {d.year}"


def short_date(d: dt.date) -> str:
    return f"{DAYS[d.weekday()]} {d.day} {MONTHS[d.month - 1]}"


def duration(delta: dt.timedelta) -> str:
    """1 hour 5 minutes, 40 minutes, 2 hours."""
    minutes = round(delta.total_seconds() / 60)
    hours, rest = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(f"{hours} hour" + ("s" if hours > 1 else ""))
    if rest or not hours:
        parts.append(f"{rest} minute" + ("s" if rest != 1 else ""))
    return " ".join(parts)


def join_and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def people(roles: list[Role], names: list[str] | None = None) -> str:
    """'a GP and a practice nurse'; with names (opted in): 'Dr Rao (a GP) and ...'."""
    if names is not None and all(names):
        return join_and([f"{name} (a {ROLE_NOUNS[r][0]})" for name, r in zip(names, roles)])
    counted: dict[str, int] = {}
    for role in roles:
        noun = ROLE_NOUNS[role][0]
        counted[noun] = counted.get(noun, 0) + 1
    plural = {ROLE_NOUNS[r][0]: ROLE_NOUNS[r][1] for r in roles}
    parts = [
        f"a {noun}" if n == 1 else f"{COUNTS.get(n, str(n))} {plural[noun]}"
        for noun, n in counted.items()
    ]
    return join_and(parts)
