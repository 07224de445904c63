"""Europe/London for calendars: a rule-based VTIMEZONE and wall-clock conversion that refuses
the clock-change hour.

Several widely used parsers read only the first RDATE of a VTIMEZONE and then place winter
appointments an hour wrong, so the definition here is the two yearly rules the UK has followed
since 1996: British Summer Time from 01:00 GMT on the last Sunday of March, back to GMT at
01:00 GMT (02:00 BST) on the last Sunday of October. Every event time is also checked against
the system's tz database: if the law ever changes, rendering fails loudly instead of publishing a
VTIMEZONE that disagrees with the times it describes.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard

TZID = "Europe/London"
LONDON = ZoneInfo(TZID)
UTC = dt.UTC

GMT = dt.timedelta(0)
BST = dt.timedelta(hours=1)
# First year of the current rules; the DTSTART of each observance is that year's transition,
# written in the local time in force before it (RFC 5545 3.6.5).
RULES_SINCE = 1996


def last_sunday(year: int, month: int) -> dt.date:
    """The last Sunday of a month (March and October carry the UK clock changes)."""
    first_of_next = dt.date(year + month // 12, month % 12 + 1, 1)
    last = first_of_next - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - 6) % 7)


def london_vtimezone() -> Timezone:
    """VTIMEZONE for Europe/London as two RRULE observances, no RDATE lists."""
    tz = Timezone()
    tz.add("tzid", TZID)
    tz.add("x-lic-location", TZID)

    daylight = TimezoneDaylight()
    daylight.add("tzname", "BST")
    daylight.add("tzoffsetfrom", GMT)
    daylight.add("tzoffsetto", BST)
    daylight.add("dtstart", dt.datetime.combine(last_sunday(RULES_SINCE, 3), dt.time(1, 0)))
    daylight.add("rrule", {"freq": "yearly", "bymonth": 3, "byday": "-1SU"})

    standard = TimezoneStandard()
    standard.add("tzname", "GMT")
    standard.add("tzoffsetfrom", BST)
    standard.add("tzoffsetto", GMT)
    standard.add("dtstart", dt.datetime.combine(last_sunday(RULES_SINCE, 10), dt.time(2, 0)))
    standard.add("rrule", {"freq": "yearly", "bymonth": 10, "byday": "-1SU"})

    tz.add_component(daylight)
    tz.add_component(standard)
    return tz


def rule_offset(instant: dt.datetime) -> dt.timedelta:
    """UTC offset in London at an instant according to the VTIMEZONE's two rules."""
    utc = instant.astimezone(UTC)
    year = utc.year
    summer_from = dt.datetime.combine(last_sunday(year, 3), dt.time(1, 0), UTC)
    summer_until = dt.datetime.combine(last_sunday(year, 10), dt.time(1, 0), UTC)
    return BST if summer_from <= utc < summer_until else GMT


def in_clock_change_hour(wall: dt.datetime) -> bool:
    """True when a naive London wall-clock time does not exist (March) or happens twice (October)."""
    naive = wall.replace(tzinfo=None)
    first = naive.replace(tzinfo=LONDON, fold=0)
    second = naive.replace(tzinfo=LONDON, fold=1)
    # zoneinfo gives the two readings different offsets exactly in the gap and in the overlap.
    return first.utcoffset() != second.utcoffset()


def london_time(instant: dt.datetime) -> dt.datetime:
    """An aware datetime in Europe/London for an event boundary, or ValueError.

    Refuses naive (floating) times, any time whose London wall clock falls in the 01:00-02:00
    clock-change hour (as written, or after conversion), and any instant where the tz database
    and the published VTIMEZONE rules disagree.
    """
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"floating time {instant.isoformat()}: event times need a UTC offset")
    local = instant.astimezone(LONDON)
    # A London offset (+00:00 or +01:00) with a wall clock inside the gap or overlap means the
    # writer meant that hour, whatever instant the offset happens to make of it.
    if instant.utcoffset() in (GMT, BST) and in_clock_change_hour(instant):
        raise ValueError(f"{instant.isoformat()} is inside the Europe/London clock-change hour")
    if in_clock_change_hour(local):
        raise ValueError(
            f"{instant.isoformat()} is {local.strftime('%H:%M')} in London on a clock-change day, "
            "a time that does not exist or happens twice"
        )
    if local.utcoffset() != rule_offset(instant):
        raise ValueError(
            f"the tz database and the Europe/London VTIMEZONE rules disagree at {instant.isoformat()}"
        )
    return local
