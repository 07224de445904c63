"""The moment a re-plan is made from, its freeze window, and what `prepare` hands to `replan`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from scheduler.disruptions import (
    Disruption,
)
from scheduler.domain import (
    Scenario,
)
from scheduler.timegrid import add_working_days

LONDON = ZoneInfo("Europe/London")
SOURCE = "disruptions"
FREEZE_WORKING_DAYS = 2
"""The freeze window: the rest of `as_of`'s day and the next 2 working days. Lists for those days
are printed and patients reminded; only what cannot stand moves inside it."""


@dataclass(frozen=True)
class Prepared:
    """Disruptions checked and applied: the scenario's next version and what the re-plan needs.

    `as_of` and `freeze_until` are aware datetimes; `targets` maps the index (0-based) of each
    booking_pinned / booking_moved entry to the appointment ids of the previous plan it names.
    """

    scenario: Scenario
    disruptions: list[Disruption]
    as_of: dt.datetime
    freeze_until: dt.datetime
    targets: dict[int, list[str]] = field(default_factory=dict)
    reading: Any = field(default=None, compare=False, repr=False)
    """The previous plan as `prepare` read it (a `scheduler.replan.standing.PreviousPlan`), kept
    so that `replan` on the same plan does not read it again."""


def freeze_until(as_of: dt.datetime, working_days: int = FREEZE_WORKING_DAYS) -> dt.datetime:
    """Midnight (Europe/London) after the `working_days`-th working day after `as_of`'s date:
    Monday 09:00 gives Thursday 00:00. Working days are Monday to Friday, England bank holidays
    aside (scheduler.timegrid)."""
    local = as_of.astimezone(LONDON)
    last = add_working_days(local.date(), working_days)
    return dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0, 0), tzinfo=LONDON)


def as_aware(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    return value.replace(tzinfo=LONDON) if value.tzinfo is None else value


def as_local(value: dt.datetime) -> dt.datetime:
    """An aware instant as naive Europe/London wall-clock time."""
    return value.astimezone(LONDON).replace(tzinfo=None)
