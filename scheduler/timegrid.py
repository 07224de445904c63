"""Dates and times: England working days, bank holidays, and local minutes to aware instants.

The engine works in local minutes after midnight on a date (clinics run 08:00-18:30, far from the
01:00-02:00 clock change), and only turns them into instants, with pendulum, when writing a plan.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays
import pendulum

TIMEZONE = "Europe/London"


@lru_cache(maxsize=64)
def bank_holidays(first_year: int, last_year: int) -> frozenset[dt.date]:
    """England bank holidays (substitute days included) for the years given."""
    years = range(first_year, last_year + 1)
    return frozenset(holidays.UK(subdiv="ENG", years=years).keys())


def is_bank_holiday(day: dt.date) -> bool:
    return day in bank_holidays(day.year, day.year)


def is_working_day(day: dt.date) -> bool:
    """Monday to Friday and not an England bank holiday."""
    return day.weekday() < 5 and not is_bank_holiday(day)


def add_working_days(day: dt.date, count: int) -> dt.date:
    """The date `count` working days after `day` (laboratory turnaround)."""
    current = day
    while count > 0:
        current += dt.timedelta(days=1)
        if is_working_day(current):
            count -= 1
    return current


def dates_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def working_day_ranks(days: list[dt.date]) -> list[int]:
    """Working days on or before each date, counting from the first: rank(b) >= rank(a) + n
    exactly when b is on or after add_working_days(a, n)."""
    ranks, count = [], 0
    for day in days:
        if is_working_day(day):
            count += 1
        ranks.append(count)
    return ranks


def minute_of_day(value: dt.time) -> int:
    return value.hour * 60 + value.minute


def local_instant(day: dt.date, minute: int) -> pendulum.DateTime:
    """The aware Europe/London instant `minute` minutes after local midnight on `day`."""
    return pendulum.datetime(day.year, day.month, day.day, minute // 60, minute % 60, tz=TIMEZONE)

