"""The figures every generated scenario is built from.

DF = /shared/DOMAIN_FIGURES.md; the row is named beside each value. Values DF does not give are
marked *Assumption*. Minutes are clinician minutes, FTE are whole-time equivalents (1.0 = nine
sessions a week), shares are fractions of 1.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.domain import Role

LIST_SIZE = 10_000  # DF defaults "Practice list 10,000" (avg list 10,101 [1])
PCN_PRACTICES = 5  # DF defaults "PCN 50,000 over 5 practices"
ADULT_SHARE = 0.80  # *Assumption*: share of a list aged 18+
MLTC_ADULT_SHARE = 0.25  # DF defaults "Adults with 2+ LTCs 25%"
RECALL_MONTHS = 12  # DF "many practices recall all LTCs in the birth month" [10][20]
INTERIM_UPLIFT = 1.2  # *Assumption*: 6-monthly/3-monthly cadences (DF defaults) add ~20%
PATIENTS_PER_PRACTICE_MONTH = round(
    LIST_SIZE * ADULT_SHARE * MLTC_ADULT_SHARE / RECALL_MONTHS * INTERIM_UPLIFT
)  # = 200 patients due per practice per four weeks
INTERIM_SHARE = (INTERIM_UPLIFT - 1) / INTERIM_UPLIFT  # patients due only 6-/3-monthly reviews
DEPRIVED_UPLIFT = 1.2  # DF defaults "most-deprived fifth x1.2"
# DF "Deprivation": 2+ LTCs in 30.0% of the most deprived fifth vs 25.8% of the least [5][6].
MLTC_MOST_DEPRIVED = 0.300
MLTC_LEAST_DEPRIVED = 0.258
# *Assumption*: linear between the two over the five fifths (most deprived first).
MLTC_BY_QUINTILE: tuple[float, ...] = tuple(
    MLTC_MOST_DEPRIVED + (MLTC_LEAST_DEPRIVED - MLTC_MOST_DEPRIVED) * i / 4 for i in range(5)
)
OPT_OUT_SHARE = 0.05  # *Assumption* (PRODUCT 000: "multiple clinicians ... most appropriate")

# DF "Staff per 10,000": GP 4.4, nurse 2.6, HCA 2.4 FTE
STAFF_FTE: dict[str, float] = {"gp": 4.4, "practice_nurse": 2.6, "hca": 2.4}
SESSIONS_PER_FTE = 9  # DF "Full-time GP 9 sessions of 4 h 10 min"
# *Assumption*: the most of a clinician's weekly sessions that may be LTC clinics.
LTC_SHARE_CAP: dict[str, float] = {
    "gp": 0.4, "practice_nurse": 0.8, "hca": 0.6, "pharmacist": 0.8,
}
HEADROOM_TARGET = 1.6  # rostered / needed minutes per usual role (brief: roughly 1.5-2x)
SIZED_ROLES: tuple[Role, ...] = ("practice_nurse", "gp", "hca", "pharmacist")

AM = (dt.time(8, 30), dt.time(12, 30))  # DF defaults "Sessions 08:30-12:30 and 14:00-18:00"
PM = (dt.time(14, 0), dt.time(18, 0))
HALVES = {"am": AM, "pm": PM}
SESSION_MINUTES = 240

# Hub LTC MDT half-days each week: (weekday, half). *Assumption*: Tuesday PM and Thursday AM.
HUB_MDT_HALF_DAYS: tuple[tuple[int, str], ...] = ((1, "pm"), (3, "am"))
# Further weekly MDT half-days opened, in this order, when a consultant's demand needs them.
HUB_EXTRA_HALF_DAYS: tuple[tuple[int, str], ...] = ((2, "am"), (0, "pm"), (4, "am"))
HUB_PHLEBOTOMY_MORNINGS: tuple[int, ...] = (0, 2, 4)  # extra hub phlebotomy: Mon, Wed, Fri AM

AGE_BANDS = ("18-49", "50-64", "65-79", "80+")
# *Assumption* shaped by DF "2+ LTCs ... age 80+ 68.2%" and "onset ~10 y earlier" when deprived.
AGE_WEIGHTS = (0.14, 0.24, 0.36, 0.26)
AGE_WEIGHTS_DEPRIVED = (0.20, 0.30, 0.32, 0.18)

INTERPRETER_LANGUAGES = (
    ("Polish", 5), ("Urdu", 5), ("Punjabi", 4), ("Bengali", 4), ("Romanian", 3), ("Arabic", 3),
    ("Gujarati", 2), ("Portuguese", 2), ("Somali", 2), ("Lithuanian", 1), ("Tamil", 1),
    ("Turkish", 1),
)

SURNAMES = (
    "Khan", "Ellis", "Osei", "Wright", "Patel", "Begum", "Hughes", "Nowak", "Okafor", "Campbell",
    "Ahmed", "Murphy", "Singh", "Taylor", "Chowdhury", "Evans", "Hussain", "Walker", "Kaur",
    "Roberts", "Ali", "Mensah", "Thompson", "Lewis", "Iqbal", "Green", "Adeyemi", "Hall", "Shah",
    "Clarke", "Bennett", "Rahman", "Kowalski", "Morgan", "Mahmood", "Turner", "Sharma", "Price",
    "Nwosu", "Baker", "Das", "Cooper", "Akhtar", "Reid", "Owusu", "Fox", "Mistry", "Young",
)
INITIALS = "ABCDEFGHJKLMNPRSTW"


@dataclass(frozen=True)
class PracticeSpec:
    """A fictional site: id, short code for room and staff ids, name, address and the shares of
    its list in each deprivation quintile (most deprived first, summing to 1)."""

    site_id: str
    code: str
    name: str
    address: str
    deprivation: tuple[float, float, float, float, float]


# Fictional names and addresses (the QX postcode area does not exist).
PRACTICES: tuple[PracticeSpec, ...] = (
    PracticeSpec("elmfield", "elm", "Elmfield Surgery", "3 Elmfield Road, Sandmere, QX1 2AB",
                 (0.30, 0.25, 0.20, 0.15, 0.10)),
    PracticeSpec("canal-street", "can", "Canal Street Medical Centre",
                 "41 Canal Street, Sandmere, QX2 7LP", (0.45, 0.25, 0.15, 0.10, 0.05)),
    PracticeSpec("oakwood", "oak", "Oakwood Health Centre", "Oakwood Lane, Sandmere, QX4 1RT",
                 (0.15, 0.20, 0.25, 0.20, 0.20)),
    PracticeSpec("priory-road", "pri", "Priory Road Surgery",
                 "118 Priory Road, Sandmere, QX3 9DE", (0.10, 0.15, 0.20, 0.25, 0.30)),
    PracticeSpec("hillside", "hil", "Hillside Family Practice",
                 "2 Hill Top, Upper Sandmere, QX5 4HW",
                 (0.05, 0.10, 0.20, 0.30, 0.35)),
)
PRACTICE_SCENARIO_DEPRIVATION = (0.22, 0.22, 0.20, 0.19, 0.17)
HUB = PracticeSpec("hub", "hub", "Sandmere PCN Hub (Health and Wellbeing Centre)",
                   "Wellbeing Centre, 1 Market Square, Sandmere, QX1 1AA", (0.2,) * 5)

SPECIALTIES: tuple[tuple[Role, str, str], ...] = (
    # (role, review type id, clinician id)
    ("consultant_cardiology", "cardiology_review", "cons-cardiology"),
    ("consultant_renal", "renal_review", "cons-renal"),
    ("consultant_respiratory", "respiratory_review", "cons-respiratory"),
    ("consultant_diabetes", "diabetes_consultant_review", "cons-diabetes"),
    ("consultant_elderly_care", "elderly_care_review", "cons-elderly-care"),
)

# Sample files committed under sample_rosters/ (tests check they never drift).
SAMPLES: dict[str, dict] = {
    "practice-month": {"kind": "practice", "seed": 2027, "start": dt.date(2027, 5, 3), "weeks": 4},
    "pcn-month": {"kind": "pcn", "seed": 2027, "start": dt.date(2027, 3, 22), "weeks": 4},
}


def ceil_slot(minutes: float, slot: int) -> int:
    """Minutes rounded up to a whole slot (plan-format's ``ceil_slot``)."""
    return int(math.ceil(minutes / slot - 1e-9)) * slot


def minute_of_day(t: dt.time) -> int:
    """Minutes since midnight."""
    return t.hour * 60 + t.minute


def weighted(rng: random.Random, options: Sequence, weights: Sequence[float]):
    """One of ``options`` drawn with the given relative ``weights``."""
    return rng.choices(list(options), weights=list(weights), k=1)[0]
