"""Realistic, seeded scenarios: one GP practice, or a PCN of five practices plus an LTC MDT hub.

``generate_scenario("practice" | "pcn", seed=..., start=..., weeks=4)`` builds a `Scenario` whose
every default comes from /shared/DOMAIN_FIGURES.md ("DF"; the row is named where it is used).
Values DF does not give are marked *Assumption*. The same seed always gives the same scenario: all
randomness flows from one ``random.Random(seed)``, and nothing iterates over a set.

Shapes
- ``practice``: one 10,000-patient practice (DF defaults "Practice list 10,000"), ~200 patients
  with multiple LTCs due in a four-week month (see ``PATIENTS_PER_PRACTICE_MONTH``).
- ``pcn``: five such practices (DF defaults "PCN 50,000 over 5 practices") **plus a PCN hub as a
  sixth site** hosting a "single clinic of many clinical experts" (seed 003): visiting cardiology,
  renal, respiratory, diabetes and elderly-care consultants on shared MDT half-days, with a hub GP,
  nurse, pharmacist, phlebotomist and community specialist nurses. Patients reach their own
  practice (5-20 min) and the hub (15-30 min); consultant reviews exist only at the hub.

Rosters hold only the sessions given to LTC clinics. Their number is sized from the patients'
demand: for each site and each review's usual role (``roles[0]`` in the catalogue; blood draws go
to HCAs) LTC sessions are added, spread over the week and over the staff by FTE, until the valid
session minutes reach ``HEADROOM_TARGET`` times the standalone minutes needed (capped by each
clinician's FTE and a realistic LTC share). ``capacity_report`` measures the result.

Valid by construction: unique ids, every reference resolved, sessions on working days only (never
on an England bank holiday), no clinician in two places at once, due windows inside the horizon,
and every due review has a clinician allowed to do it with a valid session, at a site the patient
reaches, inside its window, with a free stretch long enough outside the patient's unavailability
(and, where results are needed first, late enough for a draw to come back). To get there a
window is widened or a patient's commitments relaxed; in the rare case that still fails the review
is left out as not due this period.

``patients`` beyond ~200 per practice per four weeks implies a bigger list: staff (DF per 10,000)
and rooms grow in proportion so the headroom holds. The samples in sample_rosters/ are ``SAMPLES``.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import yaml

from scheduler import catalogue
from scheduler.domain import (
    WEEKDAYS,
    Clinician,
    DueReview,
    Leave,
    Needs,
    Patient,
    ReachableSite,
    ReviewType,
    Role,
    Room,
    RosterSession,
    Scenario,
    Site,
    Unavailability,
    VisitRules,
)
from scheduler.timegrid import add_working_days, is_working_day

Kind = Literal["practice", "pcn"]

# --------------------------------------------------------------------------------------------
# Figures (DF = /shared/DOMAIN_FIGURES.md)
# --------------------------------------------------------------------------------------------
LIST_SIZE = 10_000  # DF defaults "Practice list 10,000" (avg list 10,101 [1])
PCN_PRACTICES = 5  # DF defaults "PCN 50,000 over 5 practices"
ADULT_SHARE = 0.80  # *Assumption*: share of a list aged 18+
MLTC_ADULT_SHARE = 0.25  # DF defaults "Adults with 2+ LTCs 25%"
RECALL_MONTHS = 12  # DF "many practices recall all LTCs in the birth month" [10][20]
INTERIM_UPLIFT = 1.2  # *Assumption*: 6-monthly/3-monthly cadences (DF defaults) add ~20%
PATIENTS_PER_PRACTICE_MONTH = round(
    LIST_SIZE * ADULT_SHARE * MLTC_ADULT_SHARE / RECALL_MONTHS * INTERIM_UPLIFT
)  # = 200
INTERIM_SHARE = (INTERIM_UPLIFT - 1) / INTERIM_UPLIFT  # patients due only 6-/3-monthly reviews
DEPRIVED_UPLIFT = 1.2  # DF defaults "most-deprived fifth x1.2"

# DF "Staff per 10,000": GP 4.4, nurse 2.6, HCA 2.4 FTE
STAFF_FTE: dict[str, float] = {"gp": 4.4, "practice_nurse": 2.6, "hca": 2.4}
SESSIONS_PER_FTE = 9  # DF "Full-time GP 9 sessions of 4 h 10 min"
PHARMACISTS_PER_PCN = 6  # DF defaults "6 pharmacists per PCN"
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
class _PracticeSpec:
    site_id: str
    code: str
    name: str
    address: str
    deprivation: tuple[float, float, float, float, float]  # quintile shares, most deprived first


# Fictional names and addresses (the QX postcode area does not exist).
PRACTICES: tuple[_PracticeSpec, ...] = (
    _PracticeSpec("elmfield", "elm", "Elmfield Surgery", "3 Elmfield Road, Sandmere, QX1 2AB",
                  (0.30, 0.25, 0.20, 0.15, 0.10)),
    _PracticeSpec("canal-street", "can", "Canal Street Medical Centre",
                  "41 Canal Street, Sandmere, QX2 7LP", (0.45, 0.25, 0.15, 0.10, 0.05)),
    _PracticeSpec("oakwood", "oak", "Oakwood Health Centre", "Oakwood Lane, Sandmere, QX4 1RT",
                  (0.15, 0.20, 0.25, 0.20, 0.20)),
    _PracticeSpec("priory-road", "pri", "Priory Road Surgery",
                  "118 Priory Road, Sandmere, QX3 9DE", (0.10, 0.15, 0.20, 0.25, 0.30)),
    _PracticeSpec("hillside", "hil", "Hillside Family Practice",
                  "2 Hill Top, Upper Sandmere, QX5 4HW",
                  (0.05, 0.10, 0.20, 0.30, 0.35)),
)
PRACTICE_SCENARIO_DEPRIVATION = (0.22, 0.22, 0.20, 0.19, 0.17)
HUB = _PracticeSpec("hub", "hub", "Sandmere PCN Hub (Health and Wellbeing Centre)",
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


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def ceil_slot(minutes: float, slot: int) -> int:
    """Minutes rounded up to a whole slot (plan-format's ``ceil_slot``)."""
    return int(math.ceil(minutes / slot - 1e-9)) * slot


def _weighted(rng: random.Random, options: Sequence, weights: Sequence[float]):
    return rng.choices(list(options), weights=list(weights), k=1)[0]


def _minute(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def _split_fte(total: float, heads: int, rng: random.Random) -> list[float]:
    """Split ``total`` FTE over ``heads`` people, each 0.5-1.0, in 0.1 steps."""
    ftes = [5] * heads  # tenths
    left = min(round(total * 10), 10 * heads) - 5 * heads
    while left > 0:
        i = rng.randrange(heads)
        if ftes[i] < 10:
            ftes[i] += 1
            left -= 1
    return [f / 10 for f in sorted(ftes, reverse=True)]


@dataclass
class _Calendar:
    start: dt.date
    end: dt.date

    @property
    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def working_days(self) -> list[dt.date]:
        return [d for d in self.dates if is_working_day(d)]

    def week(self, day: dt.date) -> int:
        return (day - self.start).days // 7


# --------------------------------------------------------------------------------------------
# Drafts (mutable while generating; turned into frozen models at the end)
# --------------------------------------------------------------------------------------------
@dataclass
class _Staff:
    id: str
    name: str
    role: Role
    organisation: str
    review_type_ids: list[str]
    takes_bloods: bool
    home: str | None  # site it is sized for (None: visiting or hub)
    fte: float = 1.0
    sessions: dict[tuple[dt.date, str], str] = field(default_factory=dict)  # (date, half) -> site
    slots: list[tuple[int, str]] = field(default_factory=list)  # weekly (weekday, half) taken
    leave: list[tuple[dt.date, dt.date, str]] = field(default_factory=list)

    def on_leave(self, day: dt.date) -> bool:
        return any(a <= day <= b for a, b, _ in self.leave)

    def valid_minutes(self, site: str | None = None) -> int:
        return SESSION_MINUTES * sum(
            1 for (d, _), s in self.sessions.items()
            if (site is None or s == site) and is_working_day(d) and not self.on_leave(d)
        )


@dataclass
class _PatientDraft:
    id: str
    home: str
    age: str
    deprived: bool
    reviews: list[str]  # review type ids, catalogue order
    interim: bool = False
    windows: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)
    reachable: list[tuple[str, int]] = field(default_factory=list)
    unavailable: list[Unavailability] = field(default_factory=list)
    work_weekdays: list[str] = field(default_factory=list)  # weekly work pattern (relaxable)
    work_hours: tuple[dt.time, dt.time] | None = None
    interpreter: str | None = None
    wheelchair: bool = False
    carer: bool = False
    factor: float = 1.0
    opt_out: bool = False
    joint: bool = False
    priority: int = 0
    named: str | None = None
    wants_continuity: bool = True
    preferred_time: str = "any"

    def all_unavailable(self) -> list[Unavailability]:
        out = list(self.unavailable)
        if self.work_weekdays and self.work_hours:
            out.insert(0, Unavailability(
                weekdays=list(self.work_weekdays), start=self.work_hours[0],
                end=self.work_hours[1], reason="work",
            ))
        return out


# --------------------------------------------------------------------------------------------
# Demand (shared by roster sizing and capacity_report)
# --------------------------------------------------------------------------------------------
DRAW = "_blood_draw"
DRAW_ROLE: Role = "hca"


def _demand_items(
    type_ids: Sequence[str], factor: float, opt_out: bool,
    types: dict[str, ReviewType], rules: VisitRules,
) -> list[tuple[str, int]]:
    """(review type id or DRAW, standalone minutes) the old way would need for one patient:
    each review alone (no shared-component savings) and one combined draw (one per review with
    markers for a patient who opted out)."""
    slot = rules.slot_minutes
    items = [(t, ceil_slot(types[t].duration_minutes * factor, slot)) for t in type_ids]
    draw = ceil_slot(rules.blood_draw_minutes * factor, rules.slot_minutes)
    with_bloods = [t for t in type_ids if types[t].blood_marker_ids]
    draws = len(with_bloods) if opt_out else min(1, len(with_bloods))
    items += [(DRAW, draw)] * draws
    return items


def _usual_role(item: str, types: dict[str, ReviewType]) -> Role:
    return DRAW_ROLE if item == DRAW else catalogue.usual_role(types[item])


# --------------------------------------------------------------------------------------------
# Capacity report
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoleCapacity:
    """Minutes a role is rostered for (valid sessions) against the minutes of the reviews (and,
    for HCAs, blood draws) whose usual role it is, counted the old way (no shared savings)."""

    role: str
    clinicians: int
    sessions: int
    supply_minutes: int
    demand_minutes: int

    @property
    def headroom(self) -> float | None:
        return self.supply_minutes / self.demand_minutes if self.demand_minutes else None


@dataclass(frozen=True)
class CapacityReport:
    roles: dict[str, RoleCapacity]
    demand_minutes: int
    supply_minutes: int
    flow_headroom: float
    """Largest factor by which every demand could grow and still fit into valid session minutes,
    respecting who may do what and which sites each patient reaches (a max-flow bound; rooms,
    times of day and visit shapes are ignored)."""

    def table(self) -> str:
        lines = ["| role | clinicians | sessions | rostered min | needed min | headroom |",
                 "|---|---:|---:|---:|---:|---:|"]
        for rc in self.roles.values():
            h = f"{rc.headroom:.2f}x" if rc.headroom is not None else "-"
            lines.append(f"| {rc.role} | {rc.clinicians} | {rc.sessions} | {rc.supply_minutes} | "
                         f"{rc.demand_minutes} | {h} |")
        lines.append(f"| all | | | {self.supply_minutes} | {self.demand_minutes} | "
                     f"{self.supply_minutes / max(1, self.demand_minutes):.2f}x |")
        return "\n".join(lines)


def _valid_session(s: RosterSession, sc: Scenario, leave: dict[str, list[Leave]]) -> bool:
    if not sc.horizon_start <= s.date <= sc.horizon_end:
        return False
    if any(lv.start_date <= s.date <= lv.end_date for lv in leave.get(s.clinician_id, [])):
        return False
    if s.date.weekday() >= 5:
        return True
    return is_working_day(s.date) or s.on_bank_holiday


def capacity_report(scenario: Scenario) -> CapacityReport:
    """Measure rostered LTC capacity against what the due reviews and draws need (see
    `RoleCapacity` and `CapacityReport.flow_headroom`)."""
    types = {t.id: t for t in scenario.review_types}
    rules = scenario.visit_rules
    leave: dict[str, list[Leave]] = defaultdict(list)
    for lv in scenario.leave:
        leave[lv.clinician_id].append(lv)
    clin = {c.id: c for c in scenario.clinicians}

    supply: dict[tuple[str, str], int] = defaultdict(int)  # (clinician, site) -> minutes
    role_sessions: dict[str, int] = defaultdict(int)
    for s in scenario.sessions:
        if _valid_session(s, scenario, leave):
            m = _minute(s.end) - _minute(s.start)
            supply[(s.clinician_id, s.site_id)] += m
            role_sessions[clin[s.clinician_id].role] += 1

    demand: dict[tuple[tuple[str, ...], str], int] = defaultdict(int)  # (sites, item) -> minutes
    role_demand: dict[str, int] = defaultdict(int)
    for p in scenario.patients:
        sites = tuple(sorted(r.site_id for r in p.reachable_sites))
        items = _demand_items([d.review_type_id for d in p.due_reviews],
                              p.needs.extra_time_factor, p.opt_out_consolidation, types, rules)
        for item, minutes in items:
            demand[(sites, item)] += minutes
            role_demand[_usual_role(item, types)] += minutes

    roles: dict[str, RoleCapacity] = {}
    role_supply: dict[str, int] = defaultdict(int)
    for (cid, _), m in supply.items():
        role_supply[clin[cid].role] += m
    role_heads: dict[str, int] = defaultdict(int)
    for c in scenario.clinicians:
        role_heads[c.role] += 1
    for role in [r for r in role_heads] + [r for r in role_demand if r not in role_heads]:
        roles[role] = RoleCapacity(role, role_heads.get(role, 0), role_sessions.get(role, 0),
                                   role_supply.get(role, 0), role_demand.get(role, 0))

    total_demand = sum(demand.values())
    total_supply = sum(supply.values())
    return CapacityReport(roles, total_demand, total_supply,
                          _flow_headroom(scenario, types, demand, supply, clin))


def _flow_headroom(scenario, types, demand, supply, clin) -> float:
    from ortools.graph.python import max_flow

    if not demand:
        return math.inf
    dkeys = list(demand)
    pkeys = [k for k, m in supply.items() if m > 0]
    edges: list[tuple[int, int]] = []
    for i, (sites, item) in enumerate(dkeys):
        for j, (cid, site) in enumerate(pkeys):
            c = clin[cid]
            if site not in sites:
                continue
            ok = c.takes_bloods if item == DRAW else (
                c.role in types[item].roles and item in c.review_type_ids)
            if ok:
                edges.append((i, j))
    nd, src = len(dkeys), len(dkeys) + len(pkeys)
    sink = src + 1

    def fits(lam: float) -> bool:
        g = max_flow.SimpleMaxFlow()
        need = 0
        for i, k in enumerate(dkeys):
            cap = int(math.ceil(demand[k] * lam))
            need += cap
            g.add_arc_with_capacity(src, i, cap)
        for j, k in enumerate(pkeys):
            g.add_arc_with_capacity(nd + j, sink, supply[k])
        for i, j in edges:
            g.add_arc_with_capacity(i, nd + j, 10**9)
        g.solve(src, sink)
        return g.optimal_flow() >= need

    lo, hi = 0.0, sum(supply.values()) / max(1, sum(demand.values())) + 1e-9
    if not fits(1e-6):
        return 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return round(lo, 3)


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------
def generate_scenario(
    kind: Kind, *, seed: int, start: dt.date, weeks: int = 4, patients: int | None = None
) -> Scenario:
    """A realistic scenario of ``weeks`` weeks from ``start`` (see the module docstring).

    ``patients`` overrides the number of patients due (default: 200 per practice per four weeks,
    scaled by ``weeks``; for ``pcn`` the total is split over the practices by list size and
    deprivation).
    """
    if kind not in ("practice", "pcn"):
        raise ValueError(f"kind must be 'practice' or 'pcn', not {kind!r}")
    if not 2 <= weeks <= 26:
        raise ValueError("weeks must be between 2 and 26 (results-first reviews need a blood "
                         "draw about a week earlier)")
    if patients is not None and patients < 1:
        raise ValueError("patients must be at least 1")
    return _Generator(kind, seed, start, weeks, patients).build()


class _Generator:
    def __init__(self, kind: Kind, seed: int, start: dt.date, weeks: int, patients: int | None):
        self.kind, self.seed, self.weeks = kind, seed, weeks
        self.rng = random.Random(seed)
        self.cal = _Calendar(start, start + dt.timedelta(days=7 * weeks - 1))
        self.rules = VisitRules()
        self.types = (catalogue.review_types() if kind == "pcn"
                      else catalogue.primary_care_review_types())
        self.tmap = {t.id: t for t in self.types}
        self.markers = catalogue.markers_used(self.types)
        self.mmap = {m.id: m for m in self.markers}
        if kind == "practice":
            self.practices = [replace(PRACTICES[0], deprivation=PRACTICE_SCENARIO_DEPRIVATION)]
        else:
            self.practices = list(PRACTICES[:PCN_PRACTICES])
        default = round(PATIENTS_PER_PRACTICE_MONTH * len(self.practices) * weeks / 4)
        self.n_patients = patients if patients is not None else default
        # Split patients over practices by list size x deprivation uplift (DF defaults x1.2).
        weights = [1 + (DEPRIVED_UPLIFT - 1) * p.deprivation[0] for p in self.practices]
        raw = [self.n_patients * w / sum(weights) for w in weights]
        self.counts = [int(x) for x in raw]
        for i in sorted(range(len(raw)), key=lambda i: raw[i] - self.counts[i], reverse=True)[
                : self.n_patients - sum(self.counts)]:
            self.counts[i] += 1
        # More patients due than a 10,000 list gives implies a bigger list: staff and rooms
        # grow with it (DF staff per 10,000), so capacity keeps pace.
        self.scale = {
            spec.site_id: max(1.0, count * 4 / weeks / PATIENTS_PER_PRACTICE_MONTH)
            for spec, count in zip(self.practices, self.counts)
        }
        self.sites: list[Site] = []
        self.rooms: list[Room] = []
        self.staff: list[_Staff] = []
        self.patients: list[_PatientDraft] = []
        self.load: dict[tuple[str, int, str], int] = defaultdict(int)  # (site, wd, half) -> staff
        self.room_count: dict[str, int] = defaultdict(int)
        self.mdt_half_days: list[tuple[dt.date, str]] = []
        self._used_names: set[str] = set()

    # ---------------------------------------------------------------------------- build
    def build(self) -> Scenario:
        self._estate()
        self._staff_lists()
        self._leave()
        self._patients()
        self._rosters()
        self._fix_windows()
        self._named_clinicians()
        self._priorities()
        self._joint()
        return self._scenario()

    # ---------------------------------------------------------------------------- estate
    def _estate(self) -> None:
        for spec in self.practices:
            self.sites.append(Site(id=spec.site_id, name=spec.name, kind="practice",
                                   address=spec.address))
            self._practice_rooms(spec)
        if self.kind == "pcn":
            self.sites.append(Site(id=HUB.site_id, name=HUB.name, kind="pcn_hub",
                                   address=HUB.address))
            self._hub_rooms()

    def _room(self, site: str, rid: str, name: str, caps: list[str], capacity: int = 3) -> None:
        self.rooms.append(Room(id=rid, site_id=site, name=name, capacity_people=capacity,
                               capabilities=caps))
        self.room_count[site] += 1

    def _practice_rooms(self, spec: _PracticeSpec) -> None:
        """Treatment rooms (phlebotomy), nurse rooms (phlebotomy, spirometry, ECG), consulting
        rooms and an MDT-capable meeting room, wheelchair access on several (*Assumption*)."""
        rng, s, c = self.rng, spec.site_id, spec.code
        scale = self.scale[s]
        self._room(s, f"{c}-treatment1", "Treatment room 1", ["phlebotomy", "wheelchair_access"])
        self._room(s, f"{c}-treatment2", "Treatment room 2", ["phlebotomy"])
        for i in range(1, math.ceil(rng.choice([2, 3, 3]) * scale) + 1):
            caps = ["phlebotomy", "spirometry", "ecg"] + (["wheelchair_access"] if i != 2 else [])
            self._room(s, f"{c}-nurse{i}", f"Nurse room {i}", caps, 3 if i != 1 else 4)
        consult_caps = [["ecg", "wheelchair_access"], ["wheelchair_access"], ["ecg"], [],
                        ["wheelchair_access"], []]
        for i in range(1, math.ceil(rng.choice([4, 5, 6]) * scale) + 1):
            self._room(s, f"{c}-consult{i}", f"Consulting room {i}", consult_caps[(i - 1) % 6])
        self._room(s, f"{c}-meeting", "Meeting room",
                   ["mdt", "ecg", "spirometry", "wheelchair_access"], 8)

    def _hub_rooms(self) -> None:
        """Eleven rooms: enough for every hub clinician on an MDT half-day (GP, nurse, pharmacist,
        phlebotomist, five consultants, two community specialist nurses) to have one."""
        s = HUB.site_id
        self._room(s, "hub-mdt1", "MDT clinic room 1",
                   ["mdt", "ecg", "spirometry", "wheelchair_access"], 10)
        self._room(s, "hub-mdt2", "MDT clinic room 2", ["mdt", "ecg", "wheelchair_access"], 8)
        self._room(s, "hub-phlebotomy1", "Phlebotomy room 1", ["phlebotomy", "wheelchair_access"])
        self._room(s, "hub-phlebotomy2", "Phlebotomy room 2", ["phlebotomy", "wheelchair_access"])
        for i, caps in enumerate([["ecg", "wheelchair_access"],
                                  ["spirometry", "ecg", "wheelchair_access"],
                                  ["spirometry", "wheelchair_access"], ["wheelchair_access"],
                                  ["ecg", "wheelchair_access"], ["wheelchair_access"],
                                  ["spirometry", "ecg", "wheelchair_access"]], start=1):
            self._room(s, f"hub-clinic{i}", f"Clinic room {i}", caps)

    # ---------------------------------------------------------------------------- staff
    def _name(self, role: Role) -> str:
        tries = 0
        while True:
            n = f"{self.rng.choice(INITIALS)} {self.rng.choice(SURNAMES)}"
            tries += 1
            if tries > 50:  # very large scaled practices: distinguish namesakes
                n += f" ({len(self._used_names) + 1})"
            if n not in self._used_names:
                self._used_names.add(n)
                return ("Dr " + n) if role == "gp" or role.startswith("consultant") else n

    def _add_staff(self, sid: str, role: Role, *, home: str | None, fte: float = 1.0,
                   organisation: str = "primary", bloods: bool = False,
                   type_ids: list[str] | None = None) -> _Staff:
        ids = type_ids if type_ids is not None else catalogue.review_type_ids_for_role(
            role, self.types)
        ids = [t for t in ids if t in self.tmap and role in self.tmap[t].roles]
        st = _Staff(sid, self._name(role), role, organisation, ids, bloods, home, fte)
        self.staff.append(st)
        return st

    def _staff_lists(self) -> None:
        rng = self.rng
        for spec in self.practices:
            c, s, k = spec.code, spec.site_id, self.scale[spec.site_id]

            def team(role: str, heads: int) -> list[float]:
                return _split_fte(STAFF_FTE[role] * k, max(1, round(heads * k)), rng)

            for i, f in enumerate(team("gp", rng.choice([5, 6])), 1):
                self._add_staff(f"{c}-gp{i}", "gp", home=s, fte=f)
            for i, f in enumerate(team("practice_nurse", 3), 1):
                self._add_staff(f"{c}-nurse{i}", "practice_nurse", home=s, fte=f, bloods=True)
            for i, f in enumerate(team("hca", 3), 1):
                self._add_staff(f"{c}-hca{i}", "hca", home=s, fte=f, bloods=True, type_ids=[])
            for i in range(1, max(1, round(k)) + 1):
                self._add_staff(f"{c}-pharmacist{i}", "pharmacist", home=s)
        # Visiting diabetes specialist nurse: "for a proportion of their time" (PRODUCT, 000).
        self.dsn = self._add_staff("dsn1", "diabetes_specialist_nurse", home=None,
                                   organisation="community")
        if self.kind == "pcn":
            self.mhp = self._add_staff("mhp1", "mental_health_practitioner", home=None)
            # Hub staff: one GP LTC lead, a nurse, the sixth PCN pharmacist (DF "6 pharmacists
            # per PCN"), a phlebotomist, community specialist nurses and visiting consultants.
            self.hub_gp = self._add_staff("hub-gp1", "gp", home=None)
            self.hub_nurse = self._add_staff("hub-nurse1", "practice_nurse", home=None,
                                             bloods=True)
            self.hub_pharm = self._add_staff("hub-pharmacist1", "pharmacist", home=None)
            self.hub_phleb = self._add_staff("hub-phlebotomist1", "phlebotomist", home=None,
                                             bloods=True, type_ids=[])
            self.resp_sn = self._add_staff("rsn1", "respiratory_specialist_nurse", home=None,
                                           organisation="community")
            self.hf_sn = self._add_staff("hfsn1", "heart_failure_specialist_nurse", home=None,
                                         organisation="community")
            self.consultants = {
                role: self._add_staff(cid, role, home=None, organisation="secondary")
                for role, _, cid in SPECIALTIES
            }

    def _leave(self) -> None:
        """Annual leave (*Assumption*: ~6 weeks a year, in blocks of 1-5 working days) and the odd
        training day; visiting consultants are simply not rostered when away."""
        wd = self.cal.working_days
        if not wd:
            return
        p_block = min(0.9, 6 * self.weeks / 52)
        for st in self.staff:
            if st.role.startswith("consultant"):
                continue
            if self.rng.random() < p_block:
                length = self.rng.choice([1, 2, 3, 5, 5])
                i = self.rng.randrange(len(wd))
                j = min(len(wd) - 1, i + length - 1)
                st.leave.append((wd[i], wd[j], "annual leave"))
            if self.rng.random() < 0.12:
                d = self.rng.choice(wd)
                if not st.on_leave(d):
                    st.leave.append((d, d, "training"))
            st.leave.sort()

    # ---------------------------------------------------------------------------- patients
    def _patients(self) -> None:
        rng = self.rng
        n = 0
        for spec, count in zip(self.practices, self.counts):
            q_weights = [spec.deprivation[0] * DEPRIVED_UPLIFT, *spec.deprivation[1:]]
            for _ in range(count):
                n += 1
                deprived = _weighted(rng, range(5), q_weights) == 0
                age = _weighted(rng, AGE_BANDS, AGE_WEIGHTS_DEPRIVED if deprived else AGE_WEIGHTS)
                p = _PatientDraft(f"P{n:04d}", spec.site_id, age, deprived, [])
                self._conditions(p)
                self._needs(p)
                self._travel(p)
                self._availability(p)
                self._windows(p)
                self.patients.append(p)
        # DF/PRODUCT: "in some instances utilisation of multiple clinicians ... most appropriate"
        # (000): ~5% opt out of consolidation.
        for p in rng.sample(self.patients, round(0.05 * len(self.patients))):
            p.opt_out = True

    def _conditions(self, p: _PatientDraft) -> None:
        """Conditions from DF clusters: 60+ cardiometabolic (diabetes, hypertension, CKD); 85+
        CHD+HF+AF (with COPD: cardiorespiratory); <65 depression/anxiety, asthma; SMI and LD
        registers; frailty in the old; SMR driven by polypharmacy. Rates are *Assumptions*."""
        rng, age = self.rng, p.age
        ai = AGE_BANDS.index(age)
        cluster = _weighted(rng, ("cardiometabolic", "cardiorespiratory", "respiratory", "mental"),
                            ((.30, .05, .30, .35), (.50, .10, .20, .20),
                             (.55, .28, .10, .07), (.42, .48, .05, .05))[ai])
        c: set[str] = set()

        def maybe(cond: str, prob: float) -> None:
            if rng.random() < prob:
                c.add(cond)

        if cluster == "cardiometabolic":
            maybe("hypertension", .85)
            maybe("diabetes", .65)
            maybe("ckd", (.15, .3, .5, .65)[ai])
            maybe("heart_failure", (.01, .04, .08, .15)[ai])
            maybe("af", (.01, .04, .10, .18)[ai])
        elif cluster == "cardiorespiratory":
            core = ["copd", "heart_failure", "af"]
            for cond in rng.sample(core, 2):
                c.add(cond)
            maybe([x for x in core if x not in c][0], .35)
            maybe("hypertension", .6)
            maybe("ckd", (.1, .2, .35, .45)[ai])
            maybe("diabetes", .25)
        elif cluster == "respiratory":
            c.add("asthma" if rng.random() < (.85, .7, .35, .25)[ai] else "copd")
            maybe("mental_health_review", .35)
            maybe("hypertension", (.2, .4, .55, .6)[ai])
            maybe("diabetes", .15)
        else:  # mental health alongside physical LTCs (DF: 50-59 hypertension+depression)
            if rng.random() < .25:
                c.add("smi_physical_health")
            else:
                c.add("mental_health_review")
            maybe("hypertension", (.3, .5, .6, .6)[ai])
            maybe("diabetes", .35 if "smi_physical_health" in c else .2)
            maybe("asthma", .2)
        # background multimorbidity
        maybe("hypertension", .3)
        maybe("mental_health_review", .12 if "smi_physical_health" not in c else 0)
        maybe("ckd", .07)
        maybe("asthma", .04)
        maybe("copd", (.0, .04, .06, .06)[ai])
        maybe("af", (.0, .02, .05, .08)[ai])
        maybe("diabetes", .08)
        if rng.random() < (.05, .02, .01, .003)[ai]:
            c.add("learning_disability_health_check")
        ltcs = [x for x in sorted(c) if x not in ("smr", "frailty")]
        while len([x for x in ltcs if x != "learning_disability_health_check"]) < 2:
            extra = _weighted(rng, ("hypertension", "mental_health_review", "asthma", "diabetes"),
                              (.5, .2, .15, .15))
            if extra not in c:
                c.add(extra)
                ltcs.append(extra)
        if rng.random() < (.0, .0, .15, .55)[ai]:
            c.add("frailty")
        n_ltc = len(ltcs)
        p_smr = {2: .25, 3: .45}.get(n_ltc, .65) + (.2 if "frailty" in c else 0)
        maybe("smr", p_smr)

        # Interim recall (DF cadences): only the 6-/3-monthly reviews fall due this month.
        if rng.random() < INTERIM_SHARE:
            due = [x for x in ("diabetes", "heart_failure", "af") if x in c]
            if "copd" in c and rng.random() < .15:  # very severe COPD
                due.append("copd")
            if "ckd" in c and rng.random() < .25:  # high-risk CKD
                due.append("ckd")
            if due:
                c = set(due)
                p.interim = True

        if self.kind == "pcn":
            spec_probs = [
                ("cardiology_review", .06 if "heart_failure" in c else .02 if "af" in c else 0),
                ("renal_review", .06 if "ckd" in c else 0),
                ("respiratory_review", .05 if "copd" in c else .01 if "asthma" in c else 0),
                ("diabetes_consultant_review", .05 if "diabetes" in c else 0),
                ("elderly_care_review", .08 if "frailty" in c else 0),
            ]
            for tid, prob in spec_probs:
                maybe(tid, prob)
        p.reviews = [t.id for t in self.types if t.id in c]

    def _needs(self, p: _PatientDraft) -> None:
        rng, r = self.rng, set(p.reviews)
        old, very_old = p.age in ("65-79", "80+"), p.age == "80+"
        if "learning_disability_health_check" in r:
            p.factor = 1.5
            p.carer = rng.random() < .85
        elif "frailty" in r:
            p.factor = 1.25 if rng.random() < .55 else 1.5
            p.carer = rng.random() < .4
            p.wheelchair = rng.random() < .25
        elif "smr" in r and rng.random() < .5:  # "about 15 meds ... 20 minutes" (004)
            p.factor = 1.25
        if not p.wheelchair:
            p.wheelchair = rng.random() < (.06 if very_old else .03 if old else .015)
        if not p.carer:
            p.carer = rng.random() < (.12 if very_old else .2 if "smi_physical_health" in r
                                      else .02)
        if rng.random() < (.10 if p.deprived else .05):
            p.interpreter = _weighted(rng, [lang for lang, _ in INTERPRETER_LANGUAGES],
                                      [w for _, w in INTERPRETER_LANGUAGES])

    def _travel(self, p: _PatientDraft) -> None:
        """DF defaults "Travel, door to door: GP 10 min"; brief: 5-20 min to the practice and
        15-30 min to the hub."""
        rng = self.rng
        own = int(round(rng.triangular(5, 20, 10)))
        if p.deprived and rng.random() < .4:  # no car: bus
            own = min(20, own + 5)
        p.reachable = [(p.home, own)]
        if self.kind == "pcn":
            p.reachable.append((HUB.site_id, int(round(rng.triangular(15, 30, 20)))))

    def _availability(self, p: _PatientDraft) -> None:
        rng, r = self.rng, set(p.reviews)
        working_age = p.age in ("18-49", "50-64")
        p_work = {"18-49": .65, "50-64": .55}.get(p.age, 0.0)
        if r & {"learning_disability_health_check", "smi_physical_health"}:
            p_work *= .4
        if working_age and rng.random() < p_work:
            if rng.random() < .35:  # full time: early-morning or late-afternoon visits only
                p.work_weekdays = list(WEEKDAYS[:5])
                p.work_hours = (dt.time(9, 0), dt.time(17, 0))
            else:  # part time: whole days
                p.work_weekdays = sorted(rng.sample(WEEKDAYS[:5], rng.choice([2, 3, 3])),
                                         key=WEEKDAYS.index)
                p.work_hours = (dt.time(8, 0), dt.time(18, 30))
        if rng.random() < .05:
            p.unavailable.append(Unavailability(weekdays=list(WEEKDAYS[:5]), start=dt.time(15, 0),
                                                end=dt.time(16, 0), reason="caring"))
        if "ckd" in r and rng.random() < .04:
            days = ["mon", "wed", "fri"] if rng.random() < .5 else ["tue", "thu", "sat"]
            p.unavailable.append(Unavailability(weekdays=days, start=dt.time(7, 0),
                                                end=dt.time(14, 0), reason="dialysis"))
        if rng.random() < .08:
            reason = rng.choice(["hospital appointment", "away"])
            for d in sorted(rng.sample(self.cal.dates, rng.choice([1, 2, 3]))):
                p.unavailable.append(Unavailability(date=d, reason=reason))
        if p.age == "80+" and rng.random() < .35:
            p.preferred_time = "morning"
        elif not p.work_weekdays:
            x = rng.random()
            p.preferred_time = "morning" if x < .12 else "afternoon" if x < .2 else "any"

    def _windows(self, p: _PatientDraft) -> None:
        """Mostly the whole month; ~20% of recalls narrower (2-3 weeks), ~5% of reviews on their
        own narrower window (e.g. an AF 3-monthly review falling due)."""
        rng, cal = self.rng, self.cal
        span = (cal.end - cal.start).days + 1
        whole = (cal.start, cal.end)
        base = whole
        if self.weeks >= 3 and rng.random() < .2:
            length = rng.choice([d for d in (14, 21) if d < span])
            offset = 7 * rng.randrange((span - length) // 7 + 1)
            base = (cal.start + dt.timedelta(days=offset),
                    cal.start + dt.timedelta(days=offset + length - 1))
        for t in p.reviews:
            w = base
            if t in self.tmap and catalogue.usual_role(self.tmap[t]).startswith("consultant"):
                w = whole
            elif self.weeks >= 3 and rng.random() < .05:
                offset = 7 * rng.randrange((span - 14) // 7 + 1)
                w = (cal.start + dt.timedelta(days=offset),
                     cal.start + dt.timedelta(days=offset + 13))
            p.windows[t] = w

    # ---------------------------------------------------------------------------- rosters
    def _expand(self, st: _Staff, site: str, weekday: int, half: str,
                every: int = 1, offset: int = 0) -> None:
        for d in self.cal.dates:
            if d.weekday() == weekday and is_working_day(d) and self.cal.week(d) % every == offset:
                st.sessions[(d, half)] = site
        st.slots.append((weekday, half))
        self.load[(site, weekday, half)] += 1

    def _free_slot(self, st: _Staff, site: str, halves: Sequence[str] = ("am", "pm"),
                   limit: int | None = None) -> tuple[int, str] | None:
        limit = self.room_count[site] - 1 if limit is None else limit
        best, best_score = None, math.inf
        for wd in range(5):
            for half in halves:
                if (wd, half) in st.slots or self.load[(site, wd, half)] >= limit:
                    continue
                same_day = any(w == wd for w, _ in st.slots)
                score = (self.load[(site, wd, half)] + (0.6 if same_day else 0)
                         + self.rng.random() * .5)
                if score < best_score:
                    best, best_score = (wd, half), score
        return best

    def _rosters(self) -> None:
        types = self.tmap
        # demand per (site, usual role): practice reviews at home, consultant reviews at the hub
        need: dict[tuple[str, str], int] = defaultdict(int)
        for p in self.patients:
            for item, minutes in _demand_items(p.reviews, p.factor, p.opt_out, types, self.rules):
                role = _usual_role(item, types)
                site = HUB.site_id if role.startswith("consultant") else p.home
                need[(site, role)] += minutes

        # 1. Fixed sparse visitors first: the DSN one session a week at each practice; in a PCN
        #    the mental-health practitioner one session a fortnight at each practice.
        for i, spec in enumerate(self.practices):
            slot = self._free_slot(self.dsn, spec.site_id)
            if slot:
                self._expand(self.dsn, spec.site_id, *slot)
            if self.kind == "pcn":
                slot = self._free_slot(self.mhp, spec.site_id)
                if slot:
                    self._expand(self.mhp, spec.site_id, *slot, every=2, offset=i % 2)
        if self.kind == "pcn":
            self._hub_rosters(need)

        # 2. Practice LTC sessions sized from demand.
        for spec in self.practices:
            for role in SIZED_ROLES:
                target = HEADROOM_TARGET * need.get((spec.site_id, role), 0)
                team = [s for s in self.staff if s.home == spec.site_id and s.role == role]
                supply = sum(s.valid_minutes() for s in team)
                halves = ("am",) if role == "hca" else ("am", "pm")  # DF: bloods in the morning
                while supply < target:
                    open_ = [s for s in team if len(s.slots) <
                             max(1, math.floor(s.fte * SESSIONS_PER_FTE * LTC_SHARE_CAP[role]))]
                    open_.sort(key=lambda s: ((len(s.slots) + 1) / s.fte, self.rng.random()))
                    added = False
                    for s in open_:
                        slot = self._free_slot(s, spec.site_id, halves)
                        if slot:
                            before = s.valid_minutes()
                            self._expand(s, spec.site_id, *slot)
                            supply += s.valid_minutes() - before
                            added = True
                            break
                    if not added:
                        break

    def _hub_rosters(self, need: dict[tuple[str, str], int]) -> None:
        hub = HUB.site_id
        # Consultants: "a few sessions a month", as many as their demand needs x headroom.
        # Results-first clinics run after the first draws can be back (HCA tests, consultant
        # about a week later).
        lead = max((m.turnaround_working_days for m in self.markers if not m.point_of_care),
                   default=0)
        first = self.cal.working_days[0] if self.cal.working_days else self.cal.start
        results_back = add_working_days(first, lead)
        least = max(1, self.weeks // 2)
        wanted = {role: math.ceil(HEADROOM_TARGET * need.get((hub, role), 0) / SESSION_MINUTES)
                  for role, _, _ in SPECIALTIES}

        def half_days(patterns) -> list[tuple[dt.date, str]]:
            return sorted(((d, half) for d in self.cal.dates for wd, half in patterns
                           if d.weekday() == wd and is_working_day(d)),
                          key=lambda x: (x[0], x[1]))

        def allowed_for(tid: str, mdt) -> list[int]:
            every = list(range(len(mdt)))
            if self.tmap[tid].results_before_review:
                return [i for i in every if mdt[i][0] >= results_back] or every
            return every

        patterns = list(HUB_MDT_HALF_DAYS)
        extra = list(HUB_EXTRA_HALF_DAYS)
        while True:
            mdt = half_days(patterns)
            short = any(wanted[role] > len(allowed_for(tid, mdt)) for role, tid, _ in SPECIALTIES)
            if not short or not extra:
                break
            patterns.append(extra.pop(0))
        self.mdt_half_days = mdt
        for st in (self.hub_gp, self.hub_nurse, self.hub_pharm, self.hub_phleb):
            for d, half in mdt:
                st.sessions[(d, half)] = hub
        for d in self.cal.dates:
            if d.weekday() in HUB_PHLEBOTOMY_MORNINGS and is_working_day(d):
                self.hub_phleb.sessions[(d, "am")] = hub
        if not mdt:
            return
        per_half = [0] * len(mdt)
        for role, tid, _ in SPECIALTIES:
            allowed = allowed_for(tid, mdt)
            n = min(len(allowed), max(least, wanted[role]))
            # Spread over weeks and over the MDT half-days of the week, balancing consultants
            # per half-day.
            pick: list[int] = []
            for _ in range(n):
                weeks = [self.cal.week(mdt[i][0]) for i in pick]
                kinds = [(mdt[i][0].weekday(), mdt[i][1]) for i in pick]
                i = min((i for i in allowed if i not in pick), key=lambda i: (
                    per_half[i] + weeks.count(self.cal.week(mdt[i][0]))
                    + kinds.count((mdt[i][0].weekday(), mdt[i][1])), self.rng.random()))
                pick.append(i)
            cons = self.consultants[role]
            for i in sorted(pick):
                per_half[i] += 1
                cons.sessions[mdt[i]] = hub
        # Community specialist nurses join their consultants' MDT half-days.
        for sn, role in ((self.resp_sn, "consultant_respiratory"),
                         (self.hf_sn, "consultant_cardiology")):
            for key in self.consultants[role].sessions:
                sn.sessions[key] = hub

    # ---------------------------------------------------------------------------- feasibility
    def _site_sessions(self) -> dict[str, list[tuple[_Staff, dt.date, str, str]]]:
        """type id -> [(staff, date, half, site)] valid sessions of staff allowed to do it."""
        out: dict[str, list] = defaultdict(list)
        for st in self.staff:
            valid = [(d, h, s) for (d, h), s in sorted(st.sessions.items())
                     if is_working_day(d) and not st.on_leave(d)]
            for t in st.review_type_ids:
                out[t].extend((st, d, h, s) for d, h, s in valid)
            if st.takes_bloods:
                out[DRAW].extend((st, d, h, s) for d, h, s in valid)
        return out

    @staticmethod
    def _longest_free(p_unavail: list[Unavailability], d: dt.date, half: str) -> int:
        a, b = (_minute(t) for t in HALVES[half])
        blocks = []
        wd = WEEKDAYS[d.weekday()]
        for u in p_unavail:
            if (u.date == d) or (u.date is None and wd in u.weekdays):
                blocks.append((_minute(u.start), _minute(u.end)))
        free, cur = 0, a
        for s, e in sorted(blocks):
            if e <= cur or s >= b:
                continue
            free = max(free, min(s, b) - cur)
            cur = max(cur, e)
        return max(free, b - cur)

    def _review_feasible(self, p: _PatientDraft, t: str, w: tuple[dt.date, dt.date],
                         sessions: dict[str, list]) -> bool:
        reach = [s for s, _ in p.reachable]
        unav = p.all_unavailable()
        minutes = ceil_slot(self.tmap[t].duration_minutes * p.factor, self.rules.slot_minutes)
        earliest = w[0]
        lab = [m for m in self.tmap[t].blood_marker_ids if not self.mmap[m].point_of_care]
        if self.tmap[t].results_before_review and lab:
            draw_minutes = ceil_slot(self.rules.blood_draw_minutes * p.factor,
                                     self.rules.slot_minutes)
            first = [d for _, d, h, s in sessions[DRAW] if s in reach
                     and self._longest_free(unav, d, h) >= draw_minutes]
            if not first:
                return False
            turnaround = max(self.mmap[m].turnaround_working_days for m in lab)
            earliest = max(earliest, add_working_days(min(first), turnaround))
        return any(s in reach and earliest <= d <= w[1]
                   and self._longest_free(unav, d, h) >= minutes
                   for _, d, h, s in sessions[t])

    def _fix_windows(self) -> None:
        """Widen a window, then relax the patient's commitments (a work day off, caring cover, a
        one-off moved, the other dialysis days) until every review can happen."""
        sessions = self._site_sessions()
        whole = (self.cal.start, self.cal.end)
        dropped: list[tuple[_PatientDraft, str]] = []
        for p in self.patients:
            for t in p.reviews:
                if self._review_feasible(p, t, p.windows[t], sessions):
                    continue
                p.windows[t] = whole
                for relax in (self._relax_work, self._relax_dates, self._relax_dialysis):
                    while not self._review_feasible(p, t, whole, sessions) and relax(p):
                        pass
                if not self._review_feasible(p, t, whole, sessions):
                    dropped.append((p, t))
        # Last resort (rare): the review is not due this period after all.
        for p, t in dropped:
            p.reviews.remove(t)
            del p.windows[t]
        self.patients = [p for p in self.patients if p.reviews]

    def _relax_work(self, p: _PatientDraft) -> bool:
        """A worker takes a day off: drop one weekday of the work pattern."""
        if not p.work_weekdays:
            return False
        p.work_weekdays.pop(self.rng.randrange(len(p.work_weekdays)))
        return True

    def _relax_dates(self, p: _PatientDraft) -> bool:
        """Caring cover arranged, a one-off commitment moved."""
        movable = ("caring", "hospital appointment", "away")
        keep = [u for u in p.unavailable if u.reason not in movable]
        changed = len(keep) != len(p.unavailable)
        p.unavailable = keep
        return changed

    def _relax_dialysis(self, p: _PatientDraft) -> bool:
        """Dialysis on the other pattern of days (the unit has both)."""
        for i, u in enumerate(p.unavailable):
            if u.reason == "dialysis" and u.weekdays[0] == "tue":
                p.unavailable[i] = u.model_copy(update={"weekdays": ["mon", "wed", "fri"]})
                return True
        return False

    # ---------------------------------------------------------------------------- people
    def _named_clinicians(self) -> None:
        """~65% have a named clinician (*Assumption*; PRODUCT: "named clinician / key worker for
        continuity"), chosen among rostered staff at their practice able to do their reviews;
        one in five of them does not mind who they see."""
        rostered = [s for s in self.staff if s.home and s.valid_minutes() > 0 and s.review_type_ids]
        for p in self.patients:
            if self.rng.random() >= .65:
                continue
            cands, weights = [], []
            for s in rostered:
                if s.home != p.home:
                    continue
                can = [t for t in p.reviews if t in s.review_type_ids]
                if can:
                    usual = sum(1 for t in can if catalogue.usual_role(self.tmap[t]) == s.role)
                    cands.append(s)
                    weights.append(len(can) + 2 * usual)
            if cands:
                p.named = _weighted(self.rng, cands, weights).id
                p.wants_continuity = self.rng.random() >= .2

    def _priorities(self) -> None:
        """DF deprivation rows (odds x2.26, most-deprived fifth) and complexity: the top ~20% by a
        deprivation/complexity score get a priority signal (4% level 3, 6% level 2, 10% level 1)."""
        scored = []
        for p in self.patients:
            score = (2.0 * p.deprived + (len(p.reviews) >= 5) + ("frailty" in p.reviews)
                     + bool({"learning_disability_health_check", "smi_physical_health"}
                            & set(p.reviews)) + 0.5 * (p.interpreter is not None)
                     + 0.9 * self.rng.random())
            scored.append((score, p.id, p))
        scored.sort(key=lambda x: (-x[0], x[1]))
        n = len(scored)
        cut3, cut2, cut1 = round(.04 * n), round(.10 * n), round(.20 * n)
        for i, (_, _, p) in enumerate(scored[:cut1]):
            p.priority = 3 if i < cut3 else 2 if i < cut2 else 1

    def _joint(self) -> None:
        """A few complex patients are set for a joint MDT consultation by a clinician: priority 2+,
        4+ reviews needing 2+ usual roles, and a half-day on which clinicians for all their
        reviews work at one site with an MDT room while the patient is free long enough."""
        sessions = self._site_sessions()
        by_half: dict[tuple[str, dt.date, str], set[str]] = defaultdict(set)
        for t, items in sessions.items():
            for _, d, h, s in items:
                by_half[(s, d, h)].add(t)
        mdt_sites = [r.site_id for r in self.rooms if "mdt" in r.capabilities]
        cands = []
        for p in self.patients:
            roles = {catalogue.usual_role(self.tmap[t]) for t in p.reviews}
            if p.opt_out or p.priority < 2 or len(p.reviews) < 4 or len(roles) < 2:
                continue
            reach = [s for s, _ in p.reachable if s in mdt_sites]
            lo = max(p.windows[t][0] for t in p.reviews)
            hi = min(p.windows[t][1] for t in p.reviews)
            unav = p.all_unavailable()
            minutes = ceil_slot(p.factor * (
                max(self.tmap[t].duration_minutes for t in p.reviews)
                + self.rules.joint_extra_minutes_per_review * (len(p.reviews) - 1)),
                self.rules.slot_minutes)
            if any(s in reach and lo <= d <= hi and set(p.reviews) <= ts
                   and self._longest_free(unav, d, h) >= minutes
                   for (s, d, h), ts in by_half.items()):
                cands.append(p)
        k = min(len(cands), max(1, round(0.015 * len(self.patients))))
        for p in self.rng.sample(cands, k):
            p.joint = True

    # ---------------------------------------------------------------------------- output
    def _scenario(self) -> Scenario:
        cal, kind = self.cal, self.kind
        sessions = []
        for st in self.staff:
            for (d, half), site in sorted(st.sessions.items()):
                a, b = HALVES[half]
                sessions.append(RosterSession(clinician_id=st.id, date=d, start=a, end=b,
                                              site_id=site))
        sessions.sort(key=lambda s: (s.date, s.start, s.site_id, s.clinician_id))
        leave = [Leave(clinician_id=st.id, start_date=a, end_date=b, reason=r)
                 for st in self.staff for a, b, r in st.leave]
        leave.sort(key=lambda lv: (lv.start_date, lv.clinician_id))
        patients = [
            Patient(
                id=p.id,
                due_reviews=[DueReview(review_type_id=t, window_start=p.windows[t][0],
                                       window_end=p.windows[t][1]) for t in p.reviews],
                named_clinician_id=p.named,
                wants_continuity=p.wants_continuity,
                reachable_sites=[ReachableSite(site_id=s, travel_minutes=m)
                                 for s, m in p.reachable],
                unavailable=p.all_unavailable(),
                needs=Needs(interpreter_language=p.interpreter, wheelchair=p.wheelchair,
                            carer_attending=p.carer, extra_time_factor=p.factor),
                opt_out_consolidation=p.opt_out,
                joint_consultation=p.joint,
                priority=p.priority,
                preferred_time=p.preferred_time,
            )
            for p in self.patients
        ]
        n_rev = sum(len(p.reviews) for p in self.patients)
        if kind == "practice":
            name = f"Practice month - {self.practices[0].name}, {self.weeks} weeks from {cal.start}"
            what = (f"One {LIST_SIZE:,}-patient practice with {len(patients)} patients with "
                    f"multiple long-term conditions due ({n_rev} reviews)")
        else:
            name = f"PCN month - Sandmere PCN, {self.weeks} weeks from {cal.start}"
            what = (f"A PCN of {len(self.practices)} practices ({LIST_SIZE * len(self.practices):,}"
                    f" patients) plus an LTC MDT hub with visiting consultants; {len(patients)} "
                    f"patients due ({n_rev} reviews)")
        description = (f"{what}. Generated by scheduler.generate (kind {kind}, seed {self.seed}); "
                       "figures from DOMAIN_FIGURES.md, names and addresses fictional.")
        return Scenario(
            name=name, description=description,
            horizon_start=cal.start, horizon_end=cal.end,
            sites=self.sites, rooms=self.rooms,
            clinicians=[Clinician(id=s.id, name=s.name, role=s.role, organisation=s.organisation,
                                  review_type_ids=s.review_type_ids, takes_bloods=s.takes_bloods)
                        for s in self.staff],
            sessions=sessions, leave=leave,
            blood_markers=self.markers,
            shared_components=catalogue.components_used(self.types),
            review_types=self.types,
            patients=patients,
        )


# --------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------
class _Flow(dict):
    pass


class _FlowList(list):
    pass


class _Quoted(str):
    pass


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: D102
        return super().increase_indent(flow, False)


_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping(
    "tag:yaml.org,2002:map", v.items(), flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(_Quoted, lambda d, v: d.represent_scalar(
    "tag:yaml.org,2002:str", str(v), style='"'))

_DATE_KEYS = {"horizon_start", "horizon_end", "date", "start_date", "end_date", "window_start",
              "window_end"}
_TIME_KEYS = {"start", "end", "opens", "closes", "fasting_draw_latest_start"}


def _is_scalar(v) -> bool:
    return not isinstance(v, (dict, list))


def _prepare(value, key: str | None = None, depth: int = 0):
    if isinstance(value, dict):
        out = {k: _prepare(v, k, depth + 1) for k, v in value.items()}
        small = all(_is_scalar(v) or isinstance(v, _FlowList) for v in out.values())
        return _Flow(out) if small and depth >= 2 else out
    if isinstance(value, list):
        items = [_prepare(v, None, depth + 1) for v in value]
        if all(_is_scalar(v) for v in items) or (
                key == "reachable_sites" and all(isinstance(v, _Flow) for v in items)):
            return _FlowList(items)
        return items
    if isinstance(value, str) and key in _DATE_KEYS:
        return dt.date.fromisoformat(value)
    if isinstance(value, str) and key in _TIME_KEYS:
        return _Quoted(value[:5] if value.endswith(":00") and len(value) == 8 else value)
    return value


def scenario_yaml(scenario: Scenario, *, header: str | None = None) -> str:
    """The scenario as readable YAML (defaults left out, small mappings on one line), preceded
    by ``header`` as ``#`` comment lines."""
    data = _prepare(scenario.model_dump(mode="json", exclude_defaults=True))
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096,
                     default_flow_style=False)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines()) if header else ""
    return comment + body


def write_scenario(scenario: Scenario, path: str | Path, *, header: str | None = None) -> None:
    """Write ``scenario`` as YAML to ``path`` (see `scenario_yaml`)."""
    Path(path).write_text(scenario_yaml(scenario, header=header), encoding="utf-8")


def generation_command(kind: Kind, *, seed: int, start: dt.date, weeks: int = 4,
                       patients: int | None = None, out: str | Path | None = None) -> str:
    """The ``onevisit generate`` command line that reproduces a generated scenario."""
    cmd = f"onevisit generate {kind} --seed {seed} --start {start.isoformat()} --weeks {weeks}"
    if patients is not None:
        cmd += f" --patients {patients}"
    if out is not None:
        cmd += f" --out {Path(out).as_posix()}"
    return cmd


def generation_header(kind: Kind, *, seed: int, start: dt.date, weeks: int = 4,
                      patients: int | None = None, out: str | Path | None = None) -> str:
    """The comment header for a generated file: what it is and how to regenerate it."""
    what = ("One 10,000-patient GP practice" if kind == "practice"
            else "A PCN of five 10,000-patient practices plus an LTC MDT hub")
    return "\n".join([
        f"{what}: generated by scheduler.generate, figures from DOMAIN_FIGURES.md",
        "(see sample_rosters/README.md). Do not edit by hand: regenerate with",
        "  " + generation_command(kind, seed=seed, start=start, weeks=weeks, patients=patients,
                                  out=out),
    ])


def write_sample(name: str, directory: str | Path = "sample_rosters") -> Path:
    """(Re)write one of the committed ``SAMPLES`` into ``directory``."""
    spec = SAMPLES[name]
    path = Path(directory) / f"{name}.yaml"
    scenario = generate_scenario(spec["kind"], seed=spec["seed"], start=spec["start"],
                                 weeks=spec["weeks"])
    header = generation_header(spec["kind"], seed=spec["seed"], start=spec["start"],
                               weeks=spec["weeks"], out=f"sample_rosters/{name}.yaml")
    write_scenario(scenario, path, header=header)
    return path


def summary(scenario: Scenario) -> dict[str, int]:
    """Sizes: patients, reviews, sessions, clinicians, sites, rooms."""
    return {
        "patients": len(scenario.patients),
        "reviews": sum(len(p.due_reviews) for p in scenario.patients),
        "sessions": len(scenario.sessions),
        "clinicians": len(scenario.clinicians),
        "sites": len(scenario.sites),
        "rooms": len(scenario.rooms),
    }


__all__ = [
    "CapacityReport", "RoleCapacity", "SAMPLES", "capacity_report", "generate_scenario",
    "generation_command", "generation_header", "scenario_yaml", "summary", "write_sample",
    "write_scenario",
]
