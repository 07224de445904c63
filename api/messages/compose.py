"""What a patient message says about one visit, read out of the scenario and plan: when, where,
how long, who by role, fasting, and (for an update) what it was before. Pure functions, no
database; the SMS (`sms.py`) and the letter (`letter.py`) word these facts.

Nothing here carries a condition, a review type, a blood test's name, a clinician's name (roles
only, as in `api.calendar.wording`, whatever `invites.show_clinician_names` says) or a patient
id. Times are Europe/London local time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from api.calendar import clean_text, review_visit_for, visit_steps, wording
from api.calendar.timezone import LONDON, UTC, london_time
from scheduler.domain import Scenario
from scheduler.plan import Plan

FASTING_HOURS = 12  # as in the calendar invite (api/calendar/render.py)
ACTIONS = ("new", "update", "cancel")


def one_line(text: object) -> str:
    return clean_text("" if text is None else str(text), single_line=True).strip()


@dataclass(frozen=True)
class When:
    """Where and when a visit is (or was)."""

    start: dt.datetime
    end: dt.datetime
    site_name: str

    @property
    def day(self) -> str:
        return wording.long_date(self.start.date())

    @property
    def short_day(self) -> str:
        return wording.short_date(self.start.date())

    @property
    def time(self) -> str:
        return wording.clock(self.start)

    @property
    def length(self) -> str:
        return wording.duration(self.end - self.start)


@dataclass(frozen=True)
class VisitFacts:
    """One visit as a patient message tells it."""

    when: When
    address: tuple[str, ...]  # the site's address lines (name not repeated)
    phone: str | None  # the site's, else the scenario's contact phone
    rebook_url: str | None
    steps: tuple[str, ...]  # "9:30am: blood test with a healthcare assistant", roles only
    blood_test_only: bool
    fasting_from: dt.datetime | None  # nothing to eat or drink from this time (London)
    fasting_test_at: dt.datetime | None
    review: When | None  # for a blood-test-only trip: the visit it prepares for
    large_print: bool
    practice_name: str

    @property
    def place(self) -> str:
        """Site name and address on one line."""
        lines = [self.when.site_name, *self.address]
        return ", ".join(x for x in lines if x)


def _when(scenario: Scenario, plan: Plan, visit_id: str) -> When:
    appointments = [a for a in plan.appointments if a.visit_id == visit_id]
    if not appointments:
        raise KeyError(f"no appointments for visit {visit_id!r}")
    visit = next(v for v in plan.visits if v.id == visit_id)
    site = next(s for s in scenario.sites if s.id == visit.site_id)
    return When(london_time(min(a.start for a in appointments)), london_time(max(a.end for a in appointments)),
                one_line(site.name))


def visit_when(scenario: Scenario, plan: Plan, visit_id: str) -> When:
    """When and where a visit of `plan` is; KeyError for a visit not in it."""
    if not any(v.id == visit_id for v in plan.visits):
        raise KeyError(f"no visit {visit_id!r} in this plan")
    return _when(scenario, plan, visit_id)


def visit_facts(scenario: Scenario, plan: Plan, visit_id: str) -> VisitFacts:
    """The facts of one visit; KeyError for a visit not in the plan."""
    visit = next((v for v in plan.visits if v.id == visit_id), None)
    if visit is None:
        raise KeyError(f"no visit {visit_id!r} in this plan")
    site = next(s for s in scenario.sites if s.id == visit.site_id)
    patient = next(p for p in scenario.patients if p.id == visit.patient_id)
    markers = {m.id: m for m in scenario.blood_markers}
    appointments = sorted((a for a in plan.appointments if a.visit_id == visit_id), key=lambda a: (a.start, a.id))
    steps = visit_steps(scenario, plan, visit_id)
    fasting = next((a for a in appointments if a.kind == "blood_draw"
                    and any(markers[m].fasting for m in a.blood_marker_ids)), None)
    test_at = london_time(fasting.start) if fasting else None
    fasting_from = ((test_at.astimezone(UTC) - dt.timedelta(hours=FASTING_HOURS)).astimezone(LONDON)
                    if test_at else None)
    review = review_visit_for(plan, visit_id)
    site_name = one_line(site.name)
    address = tuple(x.strip() for x in clean_text(site.address or "", single_line=True, join="\n").split("\n")
                    if x.strip())
    address = tuple(x for part in address for x in [p.strip() for p in part.split(",")] if x)
    if address and address[0].lower() == site_name.lower():
        address = address[1:]
    phone = one_line(site.phone) or one_line(scenario.invites.contact_phone) or None
    return VisitFacts(
        when=_when(scenario, plan, visit_id), address=address, phone=phone,
        rebook_url=one_line(scenario.invites.rebook_url) or None, steps=tuple(steps),
        blood_test_only=all(a.kind == "blood_draw" for a in appointments),
        fasting_from=fasting_from, fasting_test_at=test_at,
        review=_when(scenario, plan, review.id) if review is not None else None,
        large_print=patient.needs.large_print, practice_name=site_name,
    )


@dataclass(frozen=True)
class Message:
    """What one message is about: the action (new, update, cancel), the booking reference, the
    visit as it is (or, for a cancel, was) and, for an update, how it was before."""

    action: str
    reference: str
    facts: VisitFacts
    before: When | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {self.action!r}")

    def changes(self) -> tuple[bool, bool]:
        """(the date or time changed, the place changed), for an update with a known before."""
        if self.before is None:
            return False, False
        return self.before.start != self.facts.when.start, self.before.site_name != self.facts.when.site_name
