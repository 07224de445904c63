"""The independent plan checker: verifies every hard rule of docs/plan-format.md, the metrics and
the before/after comparison with the old way.

Written separately from the optimiser so that it catches the optimiser's mistakes. It reads only
the scenario and the plan; it imports nothing else from `scheduler` on purpose. Each hard rule is
one small function below (docstring "Hard: ..."), registered once with the codes it may report by
the `@rule(codes=...)` decorator above it; the checks of the metrics, the baselines and the
comparison (all `metrics_mismatch`, a code they declare `shared`) are rules too. The registry
`RULES` holds them in the order they are defined, which is the order of the hard-rule table in
docs/plan-format.md; `CODES` is derived from it, and `check_plan` runs it, in that order,
refusing any code a rule did not declare.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise

import holidays
import pendulum

from scheduler.domain import (
    WEEKDAYS,
    Clinician,
    DueReview,
    Patient,
    ReviewType,
    RosterSession,
    Scenario,
)
from scheduler.plan import Appointment, Metrics, Plan, Visit

TZ = "Europe/London"
LONDON = pendulum.timezone(TZ)
UTC = dt.timezone.utc
FLOAT_TOLERANCE = 1e-6
REVIEW_KINDS = ("review", "joint_review")


@dataclass
class Violation:
    """One broken hard rule."""

    code: str
    message: str
    appointment_id: str | None = None
    patient_id: str | None = None


@dataclass
class CheckReport:
    """Everything the checker found, plus its own recomputation of the plan's metrics."""

    violations: list[Violation]
    metrics: Metrics

    @property
    def ok(self) -> bool:
        return not self.violations

    def codes(self) -> set[str]:
        """The distinct violation codes reported."""
        return {v.code for v in self.violations}


# --------------------------------------------------------------------------------------------
# Time helpers


def to_utc(value: dt.datetime) -> dt.datetime:
    """The instant in UTC (a naive value is taken as London wall-clock time)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return pendulum.instance(value, tz=TZ).astimezone(UTC)
    return value.astimezone(UTC)


def to_local(value: dt.datetime) -> dt.datetime:
    """The instant as an aware Europe/London datetime (use for display, dates and clock times)."""
    return to_utc(value).astimezone(LONDON)


def offset_is_london(value: dt.datetime) -> bool:
    """True when the value carries Europe/London's UTC offset for that instant."""
    if value.tzinfo is None or value.utcoffset() is None:
        return False
    return value.utcoffset() == to_local(value).utcoffset()


def minutes(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 60.0


def ceil_slot(x: float, slot: int) -> int:
    """Round minutes up to a whole slot (a hair of tolerance so 1.1 × 50 is 55, not 60)."""
    return int(math.ceil(x / slot - 1e-9)) * slot


class WorkingDays:
    """Monday to Friday, not an England bank holiday."""

    def __init__(self, years: range) -> None:
        self.bank_holidays = holidays.UK(subdiv="ENG", years=years)

    def is_bank_holiday(self, day: dt.date) -> bool:
        return day in self.bank_holidays

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and not self.is_bank_holiday(day)

    def add(self, day: dt.date, n: int) -> dt.date:
        """The date n working days after `day` (n = 0 gives `day`)."""
        while n > 0:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day


def add_working_days(day: dt.date, n: int) -> dt.date:
    """The date n working days after `day` (England bank holidays excluded)."""
    return WorkingDays(range(day.year, day.year + 2)).add(day, n)


# --------------------------------------------------------------------------------------------
# Indexes built once per check


class _Appt:
    """An appointment with its instants (UTC, for order and arithmetic) and London wall-clock
    times (naive, for dates and clock times) resolved once."""

    __slots__ = ("a", "s", "e", "start", "end", "date")

    def __init__(self, a: Appointment) -> None:
        self.a = a
        self.s, self.e = to_utc(a.start), to_utc(a.end)
        self.start = self.s.astimezone(LONDON).replace(tzinfo=None)
        self.end = self.e.astimezone(LONDON).replace(tzinfo=None)
        self.date: dt.date = self.start.date()


@dataclass
class _Ctx:
    scenario: Scenario
    plan: Plan
    appts: list[_Appt] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.scenario
        self.rules = s.visit_rules
        self.sites = {x.id: x for x in s.sites}
        self.rooms = {x.id: x for x in s.rooms}
        self.clinicians: dict[str, Clinician] = {x.id: x for x in s.clinicians}
        self.markers = {x.id: x for x in s.blood_markers}
        self.components = {x.id: x for x in s.shared_components}
        self.review_types: dict[str, ReviewType] = {x.id: x for x in s.review_types}
        self.patients: dict[str, Patient] = {x.id: x for x in s.patients}
        self.due: dict[str, tuple[Patient, DueReview]] = {}
        for p in s.patients:
            for d in p.due_reviews:
                self.due.setdefault(p.review_id(d), (p, d))
        years = range(s.horizon_start.year - 1, s.horizon_end.year + 2)
        self.working = WorkingDays(years)
        self.leave: set[tuple[str, dt.date]] = set()
        for lv in s.leave:
            day = lv.start_date
            while day <= lv.end_date:
                self.leave.add((lv.clinician_id, day))
                day += dt.timedelta(days=1)
        self.sessions: dict[tuple[str, dt.date], list[RosterSession]] = defaultdict(list)
        for sess in s.sessions:
            if self.session_valid(sess):
                self.sessions[(sess.clinician_id, sess.date)].append(sess)
        self.appts = [_Appt(a) for a in self.plan.appointments]
        self.by_id: dict[str, _Appt] = {}
        for x in self.appts:
            self.by_id.setdefault(x.a.id, x)
        self.by_patient: dict[str, list[_Appt]] = defaultdict(list)
        for x in self.appts:
            self.by_patient[x.a.patient_id].append(x)

    def session_valid(self, sess: RosterSession) -> bool:
        """Inside the horizon, not on leave, and a working day / weekend unless an unflagged
        bank holiday."""
        s = self.scenario
        if not (s.horizon_start <= sess.date <= s.horizon_end):
            return False
        if (sess.clinician_id, sess.date) in self.leave:
            return False
        return sess.on_bank_holiday or not self.working.is_bank_holiday(sess.date)

    @cached_property
    def draws_by_patient(self) -> dict[str, list[_Appt]]:
        out: dict[str, list[_Appt]] = defaultdict(list)
        for x in self.appts:
            if x.a.kind == "blood_draw":
                out[x.a.patient_id].append(x)
        return out

    @cached_property
    def metrics(self) -> Metrics:
        """The plan's metrics as the checker recomputes them (`_recompute`), worked out once."""
        return _recompute(self)

    def known_types(self, a: Appointment) -> list[ReviewType]:
        return [self.review_types[t] for t in a.review_type_ids if t in self.review_types]

    def factor(self, patient_id: str) -> float:
        p = self.patients.get(patient_id)
        return p.needs.extra_time_factor if p else 1.0

    def expected_minutes(self, a: Appointment) -> int | None:
        """The appointment's duration per the doc's formulas (None when it cannot be known)."""
        r = self.rules
        f = self.factor(a.patient_id)
        if a.kind == "blood_draw":
            return ceil_slot(r.blood_draw_minutes * f, r.slot_minutes)
        types = self.known_types(a)
        if not types or len(types) != len(a.review_type_ids):
            return None
        if a.kind == "joint_review":
            base = max(t.duration_minutes for t in types)
            base += r.joint_extra_minutes_per_review * (len(types) - 1)
            return ceil_slot(f * base, r.slot_minutes)
        counts: dict[str, int] = defaultdict(int)
        for t in types:
            for c in t.shared_component_ids:
                counts[c] += 1
        savings = sum(
            (k - 1) * self.components[c].minutes
            for c, k in counts.items()
            if k >= 2 and c in self.components
        )
        return ceil_slot(f * (sum(t.duration_minutes for t in types) - savings), r.slot_minutes)


def _v(code: str, message: str, x: _Appt | None = None, patient_id: str | None = None) -> Violation:
    if x is not None:
        return Violation(code, message, x.a.id, x.a.patient_id)
    return Violation(code, message, None, patient_id)


def _hm(t: dt.time | dt.datetime) -> str:
    return t.strftime("%H:%M")


def _overlaps(items: list[_Appt], key) -> list[tuple[_Appt, _Appt, str]]:
    """Pairs that overlap within each group (half-open intervals: touching is fine)."""
    groups: dict[str, list[_Appt]] = defaultdict(list)
    for x in items:
        for k in key(x):
            groups[k].append(x)
    found = []
    for k, xs in groups.items():
        xs.sort(key=lambda x: (x.s, x.e))
        latest: _Appt | None = None
        for x in xs:
            if latest is not None and x.s < latest.e:
                found.append((latest, x, k))
            if latest is None or x.e > latest.e:
                latest = x
    return found


# --------------------------------------------------------------------------------------------
# The rule registry: each rule is declared once, next to its function, with the codes it may report


RuleFn = Callable[[_Ctx], list[Violation]]


@dataclass(frozen=True)
class Rule:
    """One checker rule: `fn` returns its violations, each with one of `codes`. A code belongs to
    one rule, unless every rule declaring it is `shared` (the metric and comparison rules all
    report `metrics_mismatch`, naming the field)."""

    name: str
    codes: tuple[str, ...]
    fn: RuleFn
    shared: bool = False


class UndeclaredCodeError(RuntimeError):
    """A rule reported a code it did not declare: a bug in the checker, not in the plan."""


_REGISTERED: list[Rule] = []


def rule(*, codes: tuple[str, ...], shared: bool = False) -> Callable[[RuleFn], RuleFn]:
    """Register the decorated function as the next rule of `RULES`, reporting only `codes`
    (`shared`: other shared rules may declare the same codes). Returns the function unchanged."""
    if isinstance(codes, str):
        raise TypeError(f"codes must be a tuple of codes, not the string {codes!r}")

    def register(fn: RuleFn) -> RuleFn:
        _REGISTERED.append(Rule(fn.__name__, tuple(codes), fn, shared))
        return fn

    return register


def validate_rules(rules: Sequence[Rule]) -> None:
    """Raise ValueError unless rule names are unique, each rule declares at least one code and no
    code twice, and every code declared by two or more rules is declared by shared rules only."""
    problems: list[str] = []
    names = [r.name for r in rules]
    problems += [f"rule {n} is registered {names.count(n)} times" for n in dict.fromkeys(names)
                 if names.count(n) > 1]
    owners: dict[str, list[Rule]] = defaultdict(list)
    for r in rules:
        if not r.codes:
            problems.append(f"rule {r.name} declares no code")
        if len(set(r.codes)) != len(r.codes):
            problems.append(f"rule {r.name} declares a code twice: {r.codes}")
        for code in dict.fromkeys(r.codes):
            owners[code].append(r)
    for code, rs in owners.items():
        if len(rs) > 1 and not all(r.shared for r in rs):
            problems.append(f"code {code} is declared by {', '.join(r.name for r in rs)}; "
                            "only rules that are all shared may declare the same code")
    if problems:
        raise ValueError("bad checker rule registry: " + "; ".join(problems))


def codes_of(rules: Sequence[Rule]) -> tuple[str, ...]:
    """Every code the rules declare, once each, in rule order."""
    return tuple(dict.fromkeys(code for r in rules for code in r.codes))


def _run_rule(r: Rule, c: _Ctx) -> list[Violation]:
    """The rule's violations; UndeclaredCodeError if it reports a code it did not declare."""
    found = r.fn(c)
    undeclared = sorted({v.code for v in found}.difference(r.codes))
    if undeclared:
        raise UndeclaredCodeError(f"checker rule {r.name} reported {', '.join(undeclared)}, "
                                  f"but declares only {', '.join(r.codes)}")
    return found


# --------------------------------------------------------------------------------------------
# The hard rules, one function each


@rule(codes=("outside_horizon",))
def inside_horizon(c: _Ctx) -> list[Violation]:
    """Hard: every appointment date lies in [horizon_start, horizon_end]."""
    s = c.scenario
    return [
        _v("outside_horizon", f"on {x.date}, outside {s.horizon_start}..{s.horizon_end}", x)
        for x in c.appts
        if not (s.horizon_start <= x.date <= s.horizon_end)
    ]


@rule(codes=("bad_times",))
def times_well_formed(c: _Ctx) -> list[Violation]:
    """Hard: start < end, Europe/London offsets, `date` is the local date, one local day."""
    out = []
    for x in c.appts:
        a = x.a
        if x.e <= x.s:
            out.append(_v("bad_times", f"start {a.start.isoformat()} is not before end", x))
        for name, value in (("start", a.start), ("end", a.end)):
            if not offset_is_london(value):
                out.append(_v("bad_times", f"{name} {value.isoformat()} does not carry Europe/London's offset {to_local(value).isoformat()}", x))
        if a.date != x.date:
            out.append(_v("bad_times", f"date {a.date} is not the local date of start ({x.date})", x))
        if x.end.date() != x.date:
            out.append(_v("bad_times", f"ends on another local day ({x.end.date()})", x))
    for v in c.plan.visits:
        for name, value in (("start", v.start), ("end", v.end)):
            if not offset_is_london(value):
                out.append(Violation("bad_times", f"visit {v.id} {name} {value.isoformat()} does not carry Europe/London's offset", None, v.patient_id))
    return out


@rule(codes=("wrong_duration",))
def durations_correct(c: _Ctx) -> list[Violation]:
    """Hard: each appointment lasts exactly its duration per the doc's formulas."""
    out = []
    for x in c.appts:
        want = c.expected_minutes(x.a)
        got = minutes(x.e - x.s)
        if want is not None and abs(got - want) > FLOAT_TOLERANCE:
            out.append(_v("wrong_duration", f"{x.a.kind} lasts {got:g} min, should be {want}", x))
    return out


@rule(codes=("clinician_not_rostered",))
def clinician_rostered(c: _Ctx) -> list[Violation]:
    """Hard: each clinician has a valid session that day at that site covering it."""
    out = []
    for x in c.appts:
        for cid in x.a.clinician_ids:
            if (cid, x.date) in c.leave:
                continue  # reported as clinician_on_leave
            if not any(
                s.site_id == x.a.site_id and s.start <= x.start.time() and x.end.time() <= s.end
                for s in c.sessions.get((cid, x.date), [])
            ):
                out.append(_v("clinician_not_rostered", f"{cid} has no valid session at {x.a.site_id} on {x.date} covering {_hm(x.start)}-{_hm(x.end)}", x))
    return out


@rule(codes=("clinician_on_leave",))
def clinician_not_on_leave(c: _Ctx) -> list[Violation]:
    """Hard: no clinician works on a leave day."""
    return [
        _v("clinician_on_leave", f"{cid} is on leave on {x.date}", x)
        for x in c.appts
        for cid in x.a.clinician_ids
        if (cid, x.date) in c.leave
    ]


def _may_do(cl: Clinician, t: ReviewType) -> bool:
    return cl.role in t.roles and t.id in cl.review_type_ids


@rule(codes=("role_not_allowed",))
def roles_allowed(c: _Ctx) -> list[Violation]:
    """Hard: reviews by allowed, qualified clinicians (one per review); draws by a bleeder."""
    out = []
    for x in c.appts:
        a = x.a
        ids = a.clinician_ids
        if len(set(ids)) != len(ids):
            out.append(_v("role_not_allowed", f"a clinician is listed twice: {ids}", x))
        unknown = [cid for cid in ids if cid not in c.clinicians]
        if unknown:
            out.append(_v("role_not_allowed", f"unknown clinician(s) {unknown}", x))
        cls = [c.clinicians[cid] for cid in ids if cid in c.clinicians]
        if a.kind == "blood_draw":
            if len(ids) != 1:
                out.append(_v("role_not_allowed", f"a blood draw needs exactly one clinician, has {len(ids)}", x))
            for cl in cls:
                if not cl.takes_bloods:
                    out.append(_v("role_not_allowed", f"{cl.id} does not take bloods", x))
            continue
        types = c.known_types(a)
        if a.kind == "review":
            if len(ids) != 1:
                out.append(_v("role_not_allowed", f"a review needs exactly one clinician, has {len(ids)}", x))
        elif len(set(ids)) < 2:
            out.append(_v("role_not_allowed", f"a joint review needs at least two clinicians, has {len(set(ids))}", x))
        for t in types:
            if not any(_may_do(cl, t) for cl in cls):
                out.append(_v("role_not_allowed", f"no clinician in {ids} may carry out {t.id}", x))
        if a.kind == "joint_review":
            for cl in cls:
                if types and not any(_may_do(cl, t) for t in types):
                    out.append(_v("role_not_allowed", f"{cl.id} may carry out none of the joint review's reviews", x))
    return out


@rule(codes=("clinician_double_booked",))
def no_clinician_double_booked(c: _Ctx) -> list[Violation]:
    """Hard: no two appointments overlap for one clinician."""
    return [
        _v("clinician_double_booked", f"{k} is also in {a.a.id} ({_hm(a.start)}-{_hm(a.end)} on {a.date})", b)
        for a, b, k in _overlaps(c.appts, lambda x: set(x.a.clinician_ids))
    ]


@rule(codes=("room_double_booked",))
def no_room_double_booked(c: _Ctx) -> list[Violation]:
    """Hard: no two appointments overlap in one room."""
    return [
        _v("room_double_booked", f"room {k} is also used by {a.a.id} ({_hm(a.start)}-{_hm(a.end)} on {a.date})", b)
        for a, b, k in _overlaps(c.appts, lambda x: [x.a.room_id])
    ]


@rule(codes=("patient_double_booked",))
def no_patient_double_booked(c: _Ctx) -> list[Violation]:
    """Hard: no two appointments overlap for one patient."""
    return [
        _v("patient_double_booked", f"patient is also in {a.a.id} ({_hm(a.start)}-{_hm(a.end)} on {a.date})", b)
        for a, b, k in _overlaps(c.appts, lambda x: [x.a.patient_id])
    ]


@rule(codes=("room_wrong_site",))
def room_at_site(c: _Ctx) -> list[Violation]:
    """Hard: the room exists and belongs to the appointment's site."""
    out = []
    for x in c.appts:
        room = c.rooms.get(x.a.room_id)
        if room is None:
            out.append(_v("room_wrong_site", f"unknown room {x.a.room_id}", x))
        elif room.site_id != x.a.site_id:
            out.append(_v("room_wrong_site", f"room {room.id} is at {room.site_id}, not {x.a.site_id}", x))
    return out


@rule(codes=("room_closed",))
def room_open(c: _Ctx) -> list[Violation]:
    """Hard: the appointment lies within the site's opening hours, and its room is not closed
    (`Scenario.closures`, of the room or its site) at any moment of it."""
    out = []
    for x in c.appts:
        site = c.sites.get(x.a.site_id)
        if site is None:
            continue  # reported as site_not_reachable
        if x.start.time() < site.opens or x.end.time() > site.closes or x.end.date() != x.date:
            out.append(_v("room_closed", f"{_hm(x.start)}-{_hm(x.end)} is outside {site.id}'s hours {_hm(site.opens)}-{_hm(site.closes)}", x))
        start, end = x.start.replace(tzinfo=None), x.end.replace(tzinfo=None)  # both local already
        for closure in c.scenario.closures:
            closed = closure.room_id == x.a.room_id or (closure.room_id is None and closure.site_id == x.a.site_id)
            if closed and closure.start < end and start < closure.end:
                what = f"room {x.a.room_id}" if closure.room_id else f"site {x.a.site_id}"
                out.append(_v("room_closed", f"{_hm(x.start)}-{_hm(x.end)} on {x.date}: {what} is closed from "
                              f"{closure.start.isoformat(timespec='minutes')} to {closure.end.isoformat(timespec='minutes')}"
                              + (f" ({closure.reason})" if closure.reason else ""), x))
    return out


@rule(codes=("room_capability_missing",))
def room_has_capabilities(c: _Ctx) -> list[Violation]:
    """Hard: the room has every capability the reviews, the kind and the patient need."""
    out = []
    for x in c.appts:
        room = c.rooms.get(x.a.room_id)
        if room is None:
            continue  # reported as room_wrong_site
        need = {cap for t in c.known_types(x.a) for cap in t.room_capabilities}
        if x.a.kind == "blood_draw":
            need.add("phlebotomy")
        if x.a.kind == "joint_review":
            need.add("mdt")
        p = c.patients.get(x.a.patient_id)
        if p is not None and p.needs.wheelchair:
            need.add("wheelchair_access")
        missing = sorted(need - set(room.capabilities))
        if missing:
            out.append(_v("room_capability_missing", f"room {room.id} lacks {', '.join(missing)}", x))
    return out


@rule(codes=("room_over_capacity",))
def room_within_capacity(c: _Ctx) -> list[Violation]:
    """Hard: the room holds the patient, a carer if attending, and every clinician."""
    out = []
    for x in c.appts:
        room = c.rooms.get(x.a.room_id)
        if room is None:
            continue
        p = c.patients.get(x.a.patient_id)
        people = 1 + (1 if p is not None and p.needs.carer_attending else 0) + len(set(x.a.clinician_ids))
        if room.capacity_people < people:
            out.append(_v("room_over_capacity", f"room {room.id} holds {room.capacity_people}, needs {people}", x))
    return out


def _session_groups(c: _Ctx) -> dict[tuple, list[tuple[_Appt, RosterSession]]]:
    """Each clinician's `blood_draw`/`review` appointments by the valid roster session covering
    them (the earliest-starting one, should sessions overlap); joint reviews and appointments no
    session covers are left out. Keys are (clinician, date, site, session start, session end),
    in a fixed order; each group is sorted by start."""
    groups: dict[tuple, list[tuple[_Appt, RosterSession]]] = defaultdict(list)
    for x in c.appts:
        if x.a.kind == "joint_review":
            continue
        for cid in dict.fromkeys(x.a.clinician_ids):
            covering = [
                s for s in c.sessions.get((cid, x.date), [])
                if s.site_id == x.a.site_id and s.start <= x.start.time() and x.end.time() <= s.end
            ]
            if covering:
                s = min(covering, key=lambda s: (s.start, s.end))
                groups[(cid, x.date, s.site_id, s.start, s.end)].append((x, s))
    for items in groups.values():
        items.sort(key=lambda item: (item[0].s, item[0].e, item[0].a.id))
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3])))


@rule(codes=("clinician_changed_room",))
def clinician_keeps_room(c: _Ctx) -> list[Violation]:
    """Hard, when `visit_rules.clinician_room_per_session` is `hard`: all of a clinician's
    `blood_draw`/`review` appointments within one valid roster session are in one room, the
    session's `room_id` when it names one (joint reviews are exempt: the clinicians move to the
    MDT room for them)."""
    if c.rules.clinician_room_per_session != "hard":
        return []
    out = []
    for (cid, day, site, start, end), items in _session_groups(c).items():
        span = f"{cid}'s session {_hm(start)}-{_hm(end)} at {site} on {day}"
        named = items[0][1].room_id
        first_room = items[0][0].a.room_id
        for x, _s in items:
            if named is not None and x.a.room_id != named:
                out.append(_v("clinician_changed_room", f"in room {x.a.room_id}, but {span} names room {named}", x))
            elif named is None and x.a.room_id != first_room:
                out.append(_v("clinician_changed_room", f"in room {x.a.room_id}, but {span} started in room "
                              f"{first_room} ({items[0][0].a.id}); a clinician keeps one room per session", x))
    return out


@rule(codes=("site_not_reachable",))
def site_reachable(c: _Ctx) -> list[Violation]:
    """Hard: the site is one the patient can reach."""
    out = []
    for x in c.appts:
        p = c.patients.get(x.a.patient_id)
        reachable = {r.site_id for r in p.reachable_sites} if p else set()
        if x.a.site_id not in c.sites:
            out.append(_v("site_not_reachable", f"unknown site {x.a.site_id}", x))
        elif x.a.site_id not in reachable:
            out.append(_v("site_not_reachable", f"patient cannot reach {x.a.site_id}", x))
    return out


@rule(codes=("patient_unavailable",))
def patient_available(c: _Ctx) -> list[Violation]:
    """Hard: no appointment overlaps the patient's unavailability."""
    out = []
    for x in c.appts:
        p = c.patients.get(x.a.patient_id)
        if p is None:
            continue
        weekday = WEEKDAYS[x.date.weekday()]
        for u in p.unavailable:
            every_day = not u.weekdays and u.date is None
            if not (every_day or u.date == x.date or weekday in u.weekdays):
                continue
            if x.start.time() < u.end and u.start < x.end.time():
                why = f" ({u.reason})" if u.reason else ""
                out.append(_v("patient_unavailable", f"patient unavailable {_hm(u.start)}-{_hm(u.end)} on {x.date}{why}", x))
    return out


@rule(codes=("review_not_accounted",))
def reviews_accounted(c: _Ctx) -> list[Violation]:
    """Hard: every due review is in exactly one appointment or one unbooked entry, never both."""
    out = []
    booked: dict[str, int] = defaultdict(int)
    unbooked: dict[str, int] = defaultdict(int)
    for x in c.appts:
        a = x.a
        if a.patient_id not in c.patients:
            out.append(_v("review_not_accounted", f"unknown patient {a.patient_id}", x))
        if a.kind == "blood_draw":
            if a.review_ids or a.review_type_ids:
                out.append(_v("review_not_accounted", "a blood draw lists reviews", x))
            continue
        if not a.review_ids:
            out.append(_v("review_not_accounted", f"a {a.kind} covers no review", x))
        if len(a.review_ids) != len(a.review_type_ids):
            out.append(_v("review_not_accounted", "review_ids and review_type_ids differ in length", x))
        for i, rid in enumerate(a.review_ids):
            booked[rid] += 1
            owner = c.due.get(rid)
            if owner is None or owner[0].id != a.patient_id:
                out.append(_v("review_not_accounted", f"{rid} is not a due review of this patient", x))
                continue
            tid = a.review_type_ids[i] if i < len(a.review_type_ids) else None
            if tid != owner[1].review_type_id:
                out.append(_v("review_not_accounted", f"{rid} is a {owner[1].review_type_id} review, listed as {tid}", x))
    for u in c.plan.unbooked:
        unbooked[u.review_id] += 1
        owner = c.due.get(u.review_id)
        if owner is None or owner[0].id != u.patient_id:
            out.append(Violation("review_not_accounted", f"unbooked {u.review_id} is not a due review of {u.patient_id}", None, u.patient_id))
        elif u.review_type_id != owner[1].review_type_id:
            out.append(Violation("review_not_accounted", f"unbooked {u.review_id} is a {owner[1].review_type_id} review, listed as {u.review_type_id}", None, u.patient_id))
    for rid, (p, _) in c.due.items():
        n_b, n_u = booked.get(rid, 0), unbooked.get(rid, 0)
        if n_b + n_u == 1:
            continue
        if n_b + n_u == 0:
            msg = f"{rid} is neither booked nor unbooked"
        elif n_b and n_u:
            msg = f"{rid} is both booked and unbooked"
        else:
            msg = f"{rid} is booked {n_b} times and unbooked {n_u} times"
        out.append(Violation("review_not_accounted", msg, None, p.id))
    return out


@rule(codes=("outside_due_window",))
def inside_due_window(c: _Ctx) -> list[Violation]:
    """Hard: a review's appointment date lies in its due window."""
    out = []
    for x in c.appts:
        for rid in x.a.review_ids:
            owner = c.due.get(rid)
            if owner is None:
                continue
            d = owner[1]
            if not (d.window_start <= x.date <= d.window_end):
                out.append(_v("outside_due_window", f"{rid} on {x.date}, window {d.window_start}..{d.window_end}", x))
    return out


@rule(codes=("marker_not_drawn",))
def markers_drawn(c: _Ctx) -> list[Violation]:
    """Hard: every marker of a booked review is drawn from the patient before it starts."""
    out = []
    for x in c.appts:
        if x.a.kind == "blood_draw":
            if not x.a.blood_marker_ids:
                out.append(_v("marker_not_drawn", "a blood draw draws no markers", x))
            unknown = [m for m in x.a.blood_marker_ids if m not in c.markers]
            if unknown:
                out.append(_v("marker_not_drawn", f"unknown marker(s) {unknown}", x))
            continue
        draws = c.draws_by_patient.get(x.a.patient_id, [])
        for t in c.known_types(x.a):
            for m in t.blood_marker_ids:
                if not any(m in d.a.blood_marker_ids and d.e <= x.s for d in draws):
                    out.append(_v("marker_not_drawn", f"{m} (for {t.id}) is not drawn before {_hm(x.start)} on {x.date}", x))
    return out


@rule(codes=("results_not_back",))
def results_back(c: _Ctx) -> list[Violation]:
    """Hard: lab results (not point-of-care) are back, in working days, before such reviews."""
    out = []
    for x in c.appts:
        if x.a.kind == "blood_draw":
            continue
        draws = c.draws_by_patient.get(x.a.patient_id, [])
        for t in c.known_types(x.a):
            if not t.results_before_review:
                continue
            for m in t.blood_marker_ids:
                marker = c.markers.get(m)
                if marker is None or marker.point_of_care:
                    continue
                dates = [d.date for d in draws if m in d.a.blood_marker_ids]
                if not dates:
                    continue  # reported as marker_not_drawn
                n = marker.turnaround_working_days
                if not any(x.date >= c.working.add(d, n) for d in dates):
                    ready = c.working.add(max(dates), n)
                    out.append(_v("results_not_back", f"{m} for {t.id}: drawn {max(dates)}, results back {ready} ({n} working days), review on {x.date}", x))
    return out


@rule(codes=("fasting_draw_too_late",))
def fasting_draw_early(c: _Ctx) -> list[Violation]:
    """Hard: a draw with a fasting marker starts no later than fasting_draw_latest_start."""
    latest = c.rules.fasting_draw_latest_start
    out = []
    for x in c.appts:
        if x.a.kind != "blood_draw":
            continue
        fasting = [m for m in x.a.blood_marker_ids if m in c.markers and c.markers[m].fasting]
        if fasting and x.start.time() > latest:
            out.append(_v("fasting_draw_too_late", f"fasting draw ({', '.join(fasting)}) at {_hm(x.start)}, latest {_hm(latest)}", x))
    return out


@rule(codes=("more_than_one_draw",))
def at_most_one_draw(c: _Ctx) -> list[Violation]:
    """Hard: a consolidating patient has at most one blood draw (one test for all markers, in
    the first visit that needs it); a patient who opted out at most one per due review that
    needs blood (separate appointments by choice, each with its own draw, as the old way)."""
    out = []
    for pid, draws in c.draws_by_patient.items():
        p = c.patients.get(pid)
        if p is None:
            continue
        if not p.opt_out_consolidation:
            allowed = 1
        else:
            allowed = sum(1 for d in p.due_reviews
                          if (t := c.review_types.get(d.review_type_id)) is not None and t.blood_marker_ids)
        if len(draws) > allowed:
            out.append(Violation("more_than_one_draw", f"{len(draws)} blood draws, at most {allowed}: "
                                 f"{', '.join(d.a.id for d in draws)}", None, pid))
    return out


def _trips(c: _Ctx) -> dict[tuple[str, dt.date, str], list[_Appt]]:
    """Appointments by trip: (patient, local date, site), in a fixed order."""
    trips: dict[tuple[str, dt.date, str], list[_Appt]] = defaultdict(list)
    for x in c.appts:
        trips[(x.a.patient_id, x.date, x.a.site_id)].append(x)
    return dict(sorted(trips.items()))


@rule(codes=("draw_trip_not_needed",))
def draw_trip_only_for_results(c: _Ctx) -> list[Violation]:
    """Hard, when `visit_rules.blood_draw_policy` is `draw_in_visit`: a blood draw on a trip with
    no review is allowed only when a review it serves needs its results back first: a booked
    review of that patient, after the draw, whose type has `results_before_review` and a
    laboratory (not `point_of_care`) marker the draw takes."""
    if c.rules.blood_draw_policy != "draw_in_visit":
        return []
    out = []
    for (pid, day, site), xs in _trips(c).items():
        if any(x.a.kind in REVIEW_KINDS for x in xs):
            continue
        reviews = [x for x in c.by_patient.get(pid, []) if x.a.kind in REVIEW_KINDS]
        for d in xs:
            taken = {m for m in d.a.blood_marker_ids if m in c.markers and not c.markers[m].point_of_care}
            served = [x for x in reviews if x.s >= d.e and any(
                t.results_before_review and taken & set(t.blood_marker_ids) for t in c.known_types(x.a))]
            if not served:
                out.append(_v("draw_trip_not_needed", f"blood-draw trip to {site} on {day}, but no review it "
                              "serves needs results back first (draw_in_visit: the draw is the first step "
                              "of a visit with reviews)", d))
    return out


@rule(codes=("opted_out_combined",))
def opted_out_not_combined(c: _Ctx) -> list[Violation]:
    """Hard: a patient who opted out has no appointment covering more than one review."""
    return [
        _v("opted_out_combined", f"opted out, but {len(x.a.review_ids)} reviews in one appointment", x)
        for x in c.appts
        if x.a.kind != "blood_draw"
        and len(x.a.review_ids) > 1
        and (p := c.patients.get(x.a.patient_id)) is not None
        and p.opt_out_consolidation
    ]


def _visit_members(c: _Ctx, v: Visit) -> list[_Appt]:
    return [c.by_id[i] for i in v.appointment_ids if i in c.by_id]


@rule(codes=("visit_inconsistent",))
def visits_consistent(c: _Ctx) -> list[Violation]:
    """Hard: appointments sit in exactly one matching visit whose bounds and purpose fit."""
    out = []

    def bad(msg: str, pid: str | None, x: _Appt | None = None) -> None:
        out.append(Violation("visit_inconsistent", msg, x.a.id if x else None, pid))

    seen_visits: set[str] = set()
    listed: dict[str, list[str]] = defaultdict(list)
    for v in c.plan.visits:
        if v.id in seen_visits:
            bad(f"visit id {v.id} is used twice", v.patient_id)
        seen_visits.add(v.id)
        for aid in v.appointment_ids:
            listed[aid].append(v.id)
    seen_appts: set[str] = set()
    for x in c.appts:
        if x.a.id in seen_appts:
            bad(f"appointment id {x.a.id} is used twice", x.a.patient_id, x)
        seen_appts.add(x.a.id)
        where = listed.get(x.a.id, [])
        if len(where) != 1:
            bad(f"appointment is listed in {len(where)} visits", x.a.patient_id, x)
        elif where[0] != x.a.visit_id:
            bad(f"appointment says visit {x.a.visit_id}, but is listed in {where[0]}", x.a.patient_id, x)
    for v in c.plan.visits:
        unknown = [i for i in v.appointment_ids if i not in c.by_id]
        if unknown:
            bad(f"visit {v.id} lists unknown appointment(s) {unknown}", v.patient_id)
        xs = _visit_members(c, v)
        if not xs:
            bad(f"visit {v.id} has no appointments", v.patient_id)
            continue
        for x in xs:
            if x.a.patient_id != v.patient_id or x.date != v.date or x.a.site_id != v.site_id:
                bad(f"visit {v.id} is {v.patient_id} at {v.site_id} on {v.date}; appointment is {x.a.patient_id} at {x.a.site_id} on {x.date}", v.patient_id, x)
        first = min(x.s for x in xs)
        last = max(x.e for x in xs)
        if to_utc(v.start) != first or to_utc(v.end) != last:
            bad(f"visit {v.id} runs {to_local(v.start).isoformat()}..{to_local(v.end).isoformat()}, its appointments {to_local(first).isoformat()}..{to_local(last).isoformat()}", v.patient_id)
        kinds = [x.a.kind for x in xs]
        p = c.patients.get(v.patient_id)
        if all(k == "blood_draw" for k in kinds):
            want = "blood_draw_trip"
            if len(kinds) != 1:
                bad(f"blood-draw trip {v.id} holds {len(kinds)} draws", v.patient_id)
        elif p is not None and p.opt_out_consolidation:
            want = "separate"
            n_reviews = sum(k != "blood_draw" for k in kinds)
            if n_reviews != 1 or len(kinds) - n_reviews > 1:
                bad(f"separate visit {v.id} holds {n_reviews} review appointments and {len(kinds) - n_reviews} draws", v.patient_id)
        else:
            want = "consolidated"
        if v.purpose != want:
            bad(f"visit {v.id} purpose is {v.purpose}, its contents make it {want}", v.patient_id)
    return out


@rule(codes=("trip_split",))
def one_visit_per_trip(c: _Ctx) -> list[Violation]:
    """Hard: one patient's appointments on one date at one site are one visit. A visit is one
    trip; two visits there that day would count one trip twice (and its travel)."""
    out = []
    for (pid, day, site), xs in _trips(c).items():
        visits = sorted({x.a.visit_id for x in xs})
        if len(visits) > 1:
            out.append(Violation("trip_split", f"one trip to {site} on {day} is split into {len(visits)} "
                                 f"visits: {', '.join(visits)}", None, pid))
    return out


@rule(codes=("second_trip_same_day",))
def one_trip_a_day(c: _Ctx) -> list[Violation]:
    """Hard: a patient makes at most one trip a day. Two sites on one day is two journeys for a
    patient whose reviews the plan exists to bring together; the master and the day book never
    make it, so a bound that assumes it is honest only if the checker refuses it too."""
    sites: dict[tuple[str, dt.date], set[str]] = defaultdict(set)
    for (pid, day, site) in _trips(c):
        sites[(pid, day)].add(site)
    return [Violation("second_trip_same_day", f"{len(where)} trips on {day}, to {', '.join(sorted(where))}",
                      None, pid)
            for (pid, day), where in sorted(sites.items()) if len(where) > 1]


@rule(codes=("visit_too_long",))
def visit_not_too_long(c: _Ctx) -> list[Violation]:
    """Hard: every visit spans at most max_visit_minutes, an opted-out patient's separate
    appointment and a blood-draw trip included: the engine books none longer, and a review too
    long for any visit is reported unbooked as `longer_than_a_visit`."""
    limit = c.rules.max_visit_minutes
    out = []
    for v in c.plan.visits:
        xs = _visit_members(c, v)
        if not xs:
            continue
        span = minutes(max(x.e for x in xs) - min(x.s for x in xs))
        if span > limit + FLOAT_TOLERANCE:
            out.append(Violation("visit_too_long", f"visit {v.id} spans {span:g} min, max {limit}", None, v.patient_id))
    return out


def _gaps(xs: list[_Appt]) -> list[tuple[_Appt, float]]:
    """(appointment, idle minutes before it) for each appointment after the first, by start."""
    xs = sorted(xs, key=lambda x: (x.s, x.e))
    out = []
    latest = None
    for x in xs:
        if latest is not None:
            out.append((x, minutes(x.s - latest)))
        latest = x.e if latest is None else max(latest, x.e)
    return out


@rule(codes=("wait_too_long",))
def wait_not_too_long(c: _Ctx) -> list[Violation]:
    """Hard: in a visit, each step starts at most max_wait_minutes after earlier steps end."""
    limit = c.rules.max_wait_minutes
    return [
        _v("wait_too_long", f"waits {gap:g} min before this step in visit {v.id}, max {limit}", x)
        for v in c.plan.visits
        for x, gap in _gaps(_visit_members(c, v))
        if gap > limit + FLOAT_TOLERANCE
    ]


@rule(codes=("metrics_mismatch",), shared=True)
def metrics_match(c: _Ctx) -> list[Violation]:
    """Hard: the plan's metrics equal the checker's recomputation."""
    out = []
    mine, theirs = c.metrics.model_dump(), c.plan.metrics.model_dump()
    for name, want in mine.items():
        got = theirs[name]
        same = abs(got - want) <= FLOAT_TOLERANCE if isinstance(want, float) else got == want
        if not same:
            out.append(Violation("metrics_mismatch", f"metrics.{name} is {got}, recomputed {want}"))
    return out


# The before/after comparison against the old way (scheduler.plan.Comparison). The plan does not
# hold the old way's bookings, only their figures (baselines["old_way"]), so the old side is taken
# from there and checked for the old way's own identities; the plan side is recomputed here from
# the appointments. Saved figures are old way minus plan: positive when the plan is better.
COMPARISON_HOURS_ROUNDING = 0.005  # patient_hours_saved is given to 2 decimal places


def _shared_minutes_saved(c: _Ctx) -> int:
    """Clinician minutes saved by combined reviews: Σ over `review` appointments covering two or
    more review types of (Σ each type alone, ceil_slot(factor × duration) − the sitting's actual
    minutes). Joint reviews and single reviews save nothing here."""
    slot = c.rules.slot_minutes
    saved = 0.0
    for x in c.appts:
        if x.a.kind != "review" or len(x.a.review_type_ids) < 2:
            continue
        f = c.factor(x.a.patient_id)
        alone = sum(ceil_slot(f * t.duration_minutes, slot) for t in c.known_types(x.a))
        saved += alone - minutes(x.e - x.s)
    return round(saved)


@rule(codes=("metrics_mismatch",), shared=True)
def baselines_consistent(c: _Ctx) -> list[Violation]:
    """Metrics: each baseline describes this scenario's patients and reviews, and the old way keeps
    its own definition (every appointment its own trip, one draw per review that needs one, so
    appointments = reviews booked + draws and every draw is a draw trip)."""
    s = c.scenario
    out = []
    want = {"patients": len(s.patients), "reviews": sum(len(p.due_reviews) for p in s.patients)}
    for name, m in c.plan.baselines.items():
        for field_name, value in want.items():
            got = getattr(m, field_name)
            if got != value:
                out.append(Violation("metrics_mismatch",
                                     f"baselines.{name}.{field_name} is {got}, the scenario has {value}"))
    old = c.plan.baselines.get("old_way")
    if old is not None:
        if old.visits != old.appointments:
            out.append(Violation("metrics_mismatch", f"baselines.old_way has {old.visits} visits for "
                                 f"{old.appointments} appointments; the old way is one trip per appointment"))
        if old.draw_trips != old.blood_draws:
            out.append(Violation("metrics_mismatch", f"baselines.old_way has {old.draw_trips} draw trips for "
                                 f"{old.blood_draws} blood draws; the old way draws on a trip of its own"))
        if old.appointments != old.reviews_booked + old.blood_draws:
            out.append(Violation("metrics_mismatch", f"baselines.old_way has {old.appointments} appointments, "
                                 f"not {old.reviews_booked} reviews booked + {old.blood_draws} draws"))
    return out


@rule(codes=("metrics_mismatch",), shared=True)
def comparison_match(c: _Ctx) -> list[Violation]:
    """Metrics: every `comparison` field equals the checker's recomputation, old way minus plan.

    appointments_saved, trips_saved (visits) and blood_draws_saved are exact;
    patient_hours_saved is rounded to 2 decimals (so within 0.005 h); clinician_minutes_saved
    is `_shared_minutes_saved`. A plan without a comparison claims nothing and passes.
    """
    got = c.plan.comparison
    if got is None:
        return []
    recomputed = c.metrics
    old = c.plan.baselines.get("old_way")
    if old is None:
        return [Violation("metrics_mismatch",
                          "comparison is given but baselines has no old_way to compare against")]
    want: dict[str, float | int] = {
        "appointments_saved": old.appointments - recomputed.appointments,
        "trips_saved": old.visits - recomputed.visits,
        "blood_draws_saved": old.blood_draws - recomputed.blood_draws,
        "patient_hours_saved": old.patient_hours - recomputed.patient_hours,
        "clinician_minutes_saved": _shared_minutes_saved(c),
    }
    out = []
    for name, value in got.model_dump().items():
        expected = want[name]
        tolerance = COMPARISON_HOURS_ROUNDING + FLOAT_TOLERANCE if name == "patient_hours_saved" else 0
        if abs(value - expected) > tolerance:
            shown = f"{expected:.4f}" if isinstance(expected, float) else str(expected)
            out.append(Violation("metrics_mismatch",
                                 f"comparison.{name} is {value}, recomputed {shown} (old way minus plan)"))
    return out


# The registry, in definition order (the order of docs/plan-format.md's hard-rule table), and
# every code the checker can report, in that order (used to group reports). Both are derived:
# add a rule by defining it with `@rule(codes=...)` above, nowhere else.
RULES: tuple[Rule, ...] = tuple(_REGISTERED)
validate_rules(RULES)
CODES: tuple[str, ...] = codes_of(RULES)


# --------------------------------------------------------------------------------------------
# Metrics


def _recompute(c: _Ctx) -> Metrics:
    s, plan = c.scenario, c.plan
    n_patients = len(s.patients)
    unbooked_patients = {u.patient_id for u in plan.unbooked}
    fully_booked = [p for p in s.patients if p.id not in unbooked_patients]

    review_appt: dict[str, _Appt] = {}
    for x in c.appts:
        if x.a.kind in REVIEW_KINDS:
            for rid in x.a.review_ids:
                if rid in c.due:
                    review_appt.setdefault(rid, x)

    visit_patients = {v.patient_id for v in plan.visits}
    visits_per_patient = len(plan.visits) / len(visit_patients) if visit_patients else 0.0

    consolidating = [p for p in s.patients if not p.opt_out_consolidation]
    single = 0
    for p in fully_booked:
        if p.opt_out_consolidation:
            continue
        visit_ids = {x.a.visit_id for x in c.by_patient.get(p.id, []) if x.a.kind in REVIEW_KINDS}
        if len(visit_ids) == 1:
            single += 1
    single_visit_share = single / len(consolidating) if consolidating else 0.0
    visits_of: dict[str, int] = defaultdict(int)
    for v in plan.visits:
        visits_of[v.patient_id] += 1
    one_trip = sum(1 for p in fully_booked if not p.opt_out_consolidation and visits_of[p.id] == 1)
    one_trip_share = one_trip / len(consolidating) if consolidating else 0.0

    wanted = done = 0
    for p in s.patients:
        if p.named_clinician_id is None or not p.wants_continuity:
            continue
        for d in p.due_reviews:
            x = review_appt.get(p.review_id(d))
            if x is not None:
                wanted += 1
                done += p.named_clinician_id in x.a.clinician_ids
    continuity = done / wanted if wanted else 1.0

    travel = {
        (p.id, r.site_id): r.travel_minutes for p in s.patients for r in p.reachable_sites
    }
    prefs = {p.id: set(p.contact_preference) for p in s.patients}
    hours_minutes = 0.0
    wait = 0.0
    multi_step = 0
    for v in plan.visits:
        multi_step += len(_visit_members(c, v)) > 1
        hours_minutes += 2 * travel.get((v.patient_id, v.site_id), 0)
        hours_minutes += minutes(to_utc(v.end) - to_utc(v.start))
        wait += sum(gap for _, gap in _gaps(_visit_members(c, v)) if gap > 0)

    durations = [minutes(x.e - x.s) for x in c.appts]
    clinician_minutes = sum(d * len(x.a.clinician_ids) for d, x in zip(durations, c.appts))
    session_minutes = 0.0
    site_dates: dict[str, set[dt.date]] = defaultdict(set)
    for sess in s.sessions:
        if c.session_valid(sess):
            session_minutes += _clock_minutes(sess.start, sess.end)
            site_dates[sess.site_id].add(sess.date)
    rooms_at: dict[str, int] = defaultdict(int)
    for r in s.rooms:
        rooms_at[r.site_id] += 1
    room_capacity = sum(
        rooms_at[site.id] * _clock_minutes(site.opens, site.closes) * len(site_dates[site.id])
        for site in s.sites
    )

    groups = _session_groups(c)
    room_changes = sum(
        sum(1 for (a, _), (b, _) in pairwise(items) if a.a.room_id != b.a.room_id)
        for items in groups.values()
    )
    distinct_rooms = sum(len({x.a.room_id for x, _ in items}) for items in groups.values())

    return Metrics(
        patients=n_patients,
        patients_fully_booked=len(fully_booked),
        reviews=sum(len(p.due_reviews) for p in s.patients),
        reviews_booked=len(review_appt),
        appointments=len(plan.appointments),
        visits=len(plan.visits),
        blood_draws=sum(a.kind == "blood_draw" for a in plan.appointments),
        draw_trips=sum(v.purpose == "blood_draw_trip" for v in plan.visits),
        visits_per_patient=visits_per_patient,
        single_visit_share=single_visit_share,
        one_trip_share=one_trip_share,
        continuity_rate=continuity,
        patient_hours=hours_minutes / 60.0,
        patient_wait_minutes=int(round(wait)),
        multi_step_visits=multi_step,
        wait_minutes_per_multi_step_visit=int(round(wait)) / multi_step if multi_step else 0.0,
        clinician_minutes=int(round(clinician_minutes)),
        clinician_utilisation=clinician_minutes / session_minutes if session_minutes else 0.0,
        room_utilisation=sum(durations) / room_capacity if room_capacity else 0.0,
        clinician_sessions=len(groups),
        room_changes=room_changes,
        rooms_per_session_mean=distinct_rooms / len(groups) if groups else 0.0,
        # One message per visit per channel the patient chose (docs/plan-format.md), counted here
        # from the scenario's preferences and the plan's visits.
        messages_calendar=sum("calendar" in prefs.get(v.patient_id, ()) for v in plan.visits),
        messages_sms=sum("sms" in prefs.get(v.patient_id, ()) for v in plan.visits),
        messages_letter=sum("letter" in prefs.get(v.patient_id, ()) for v in plan.visits),
    )


def _clock_minutes(start: dt.time, end: dt.time) -> float:
    """Minutes between two local clock times on one day (0 if end is not after start)."""
    delta = (end.hour * 60 + end.minute + end.second / 60) - (
        start.hour * 60 + start.minute + start.second / 60
    )
    return max(delta, 0.0)


def recompute_metrics(scenario: Scenario, plan: Plan) -> Metrics:
    """The plan's metrics per docs/plan-format.md, from the scenario and appointments alone."""
    return _Ctx(scenario, plan).metrics


# --------------------------------------------------------------------------------------------
# Entry points


def check_plan(scenario: Scenario, plan: Plan) -> CheckReport:
    """Verify every hard rule, the metrics, the baselines' identities and the before/after
    comparison: run each rule of `RULES` in order and return all violations found (comparison
    and baseline problems are reported as `metrics_mismatch`, naming the field).

    A rule reporting a code it did not declare is a checker bug: UndeclaredCodeError is raised
    rather than a report that could not be grouped or trusted (ValueError for a registry that
    `validate_rules` refuses)."""
    rules = RULES
    validate_rules(rules)
    c = _Ctx(scenario, plan)
    violations: list[Violation] = []
    for r in rules:
        violations.extend(_run_rule(r, c))
    return CheckReport(violations, c.metrics)


def format_report(report: CheckReport) -> str:
    """One violation per line, grouped by code (in the doc's order), ending with a count."""
    by_code: dict[str, list[Violation]] = defaultdict(list)
    for v in report.violations:
        by_code[v.code].append(v)
    order = [code for code in CODES if code in by_code] + sorted(set(by_code) - set(CODES))
    lines: list[str] = []
    for code in order:
        lines.append(f"{code} ({len(by_code[code])}):")
        for v in by_code[code]:
            where = ", ".join(
                part
                for part in (
                    f"appointment {v.appointment_id}" if v.appointment_id else "",
                    f"patient {v.patient_id}" if v.patient_id else "",
                )
                if part
            )
            lines.append(f"  - {where + ': ' if where else ''}{v.message}")
    n = len(report.violations)
    lines.append("OK: no violations" if n == 0 else f"{n} violation{'s' if n != 1 else ''}")
    return "\n".join(lines)
