"""Stage 1, the profile: what is being generated, before any randomness is drawn."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

from scheduler import catalogue
from scheduler.domain import BloodMarker, ReviewType, VisitRules
from scheduler.generate.figures import (
    DEPRIVED_UPLIFT,
    PATIENTS_PER_PRACTICE_MONTH,
    PCN_PRACTICES,
    PRACTICE_SCENARIO_DEPRIVATION,
    PRACTICES,
    PracticeSpec,
)
from scheduler.timegrid import is_working_day

Kind = Literal["practice", "pcn"]


@dataclass(frozen=True)
class Calendar:
    """The planning period, ``start`` to ``end`` inclusive (whole weeks)."""

    start: dt.date
    end: dt.date

    @property
    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def working_days(self) -> list[dt.date]:
        """Weekdays that are not England bank holidays."""
        return [d for d in self.dates if is_working_day(d)]

    def week(self, day: dt.date) -> int:
        """0 for the first seven days, 1 for the next seven, ..."""
        return (day - self.start).days // 7


@dataclass(frozen=True)
class Profile:
    """The fixed inputs of one generation.

    ``counts`` are the patients due per practice (same order as ``practices``); ``scale`` is each
    practice's list size in units of 10,000 (at least 1): more patients due than a 10,000 list
    gives (DF "Practice list 10,000", ~200 per four weeks) implies a bigger list, and staff (DF
    "Staff per 10,000") and rooms grow with it so the headroom holds.
    """

    kind: Kind
    seed: int
    weeks: int
    calendar: Calendar
    rules: VisitRules
    types: list[ReviewType]
    markers: list[BloodMarker]
    practices: list[PracticeSpec]
    counts: list[int]
    scale: dict[str, float]

    @cached_property
    def tmap(self) -> dict[str, ReviewType]:
        return {t.id: t for t in self.types}

    @cached_property
    def mmap(self) -> dict[str, BloodMarker]:
        return {m.id: m for m in self.markers}


def default_patients(kind: Kind, weeks: int) -> int:
    """Patients due in ``weeks`` weeks: 200 per 10,000-patient practice per four weeks."""
    return round(PATIENTS_PER_PRACTICE_MONTH * (1 if kind == "practice" else PCN_PRACTICES)
                 * weeks / 4)


def split_by_practice(total: int, practices: list[PracticeSpec]) -> list[int]:
    """``total`` patients split over ``practices`` by list size (all 10,000) x the deprivation
    uplift of their most-deprived fifth (DF defaults "most-deprived fifth x1.2"), largest
    remainders first."""
    weights = [1 + (DEPRIVED_UPLIFT - 1) * p.deprivation[0] for p in practices]
    raw = [total * w / sum(weights) for w in weights]
    counts = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[
            : total - sum(counts)]:
        counts[i] += 1
    return counts


def make_profile(kind: Kind, *, seed: int, start: dt.date, weeks: int,
                 patients: int | None) -> Profile:
    """The profile for ``kind`` (``patients`` None: the default count, see `default_patients`)."""
    types = catalogue.review_types() if kind == "pcn" else catalogue.primary_care_review_types()
    if kind == "practice":
        practices = [replace(PRACTICES[0], deprivation=PRACTICE_SCENARIO_DEPRIVATION)]
    else:
        practices = list(PRACTICES[:PCN_PRACTICES])
    total = patients if patients is not None else default_patients(kind, weeks)
    counts = split_by_practice(total, practices)
    scale = {spec.site_id: max(1.0, count * 4 / weeks / PATIENTS_PER_PRACTICE_MONTH)
             for spec, count in zip(practices, counts)}
    return Profile(
        kind=kind, seed=seed, weeks=weeks,
        calendar=Calendar(start, start + dt.timedelta(days=7 * weeks - 1)),
        rules=VisitRules(), types=types, markers=catalogue.markers_used(types),
        practices=practices, counts=counts, scale=scale,
    )
