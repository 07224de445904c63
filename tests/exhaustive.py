"""Helpers for the bound tests: plans from bookings, bookings from plans, the master with an
assignment fixed, and an exhaustive solve of tiny scenarios.

Used by tests/test_master_rules.py (each master rule keeps every checked plan feasible) and
tests/test_bound_exhaustive.py (the bound against the exact optimum). Everything a plan is
judged by here is the independent checker (`scheduler.check.check_plan`) and the full objective
(`scheduler.model.objective.evaluate`); the enumeration below only prunes by rules the checker
itself enforces, and the last word on every candidate is the checker's.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from scheduler.assemble import appointments_and_visits, booked_review_ids, unbooked_entries
from scheduler.baselines import old_way
from scheduler.check import check_plan, format_report
from scheduler.daybook import Booking
from scheduler.domain import Scenario
from scheduler.instance import Instance
from scheduler.metrics import compare, compute_metrics
from scheduler.model import constraints
from scheduler.model.objective import SESSION_USED, add_objective, evaluate
from scheduler.model.variables import Option, build_variables
from scheduler.plan import Plan, SolverStats
from scheduler.planner import hint_from, shared_minutes_saved
from scheduler.reasons import unbooked_reasons
from scheduler.steps import Bundle, Step

Assignment = dict[tuple[int, int], Option]

# --------------------------------------------------------------------------------------------
# Plans and bookings


def plan_of(inst: Instance, bundles: list[Bundle], bookings: list[Booking], *, full: bool = True) -> Plan:
    """The plan `make_plan` would write for these bookings (appointments, visits, unbooked
    reviews with reasons, metrics, and with `full` the greedy/old-way baselines and the
    comparison). Without `full` the baselines and reasons are left out: the checker then judges
    the hard rules and the metrics only, which is all the enumeration needs, and much quicker."""
    appointments, visits = appointments_and_visits(inst, bundles, bookings)
    reasons = unbooked_reasons(inst, bundles, booked_review_ids(bookings)) if full else {}
    unbooked = unbooked_entries(inst, bookings, reasons)
    metrics = compute_metrics(inst, appointments, visits, unbooked)
    baselines, comparison = {}, None
    if full:
        old_book, old_bundles = old_way(inst)
        old_a, old_v = appointments_and_visits(inst, old_bundles, old_book.bookings)
        old_metrics = compute_metrics(inst, old_a, old_v, unbooked_entries(inst, old_book.bookings, {}))
        baselines = {"old_way": old_metrics}
        comparison = compare(metrics, old_metrics, shared_minutes_saved(inst, bookings))
    objective = evaluate(inst, bundles, bookings).total
    return Plan(
        scenario_name=inst.scenario.name, appointments=appointments, visits=visits, unbooked=unbooked,
        metrics=metrics, baselines=baselines, comparison=comparison,
        solver=SolverStats(status="FEASIBLE", method="test", objective=objective, best_bound=0, gap=0.0,
                           wall_seconds=0.0, time_limit_seconds=1, workers=1, seed=0),
    )


def assert_checked(s: Scenario, plan: Plan, what: str) -> None:
    report = check_plan(s, plan)
    assert report.ok, f"{what}: the checker refuses the plan\n{format_report(report)}"


def _slot_of(inst: Instance, moment: dt.datetime) -> int:
    minute = moment.hour * 60 + moment.minute  # plans are written in London wall-clock time
    assert minute % inst.slot_minutes == 0, moment
    return minute // inst.slot_minutes


def bookings_of(inst: Instance, bundles: list[Bundle], plan: Plan) -> list[Booking]:
    """The day-book bookings behind a plan's appointments: each appointment is matched to its
    bundle's step by the stable id `scheduler.assemble` gives it (bundle, kind, reviews), and
    each of its visits becomes one visit key."""
    probe = {}
    for bundle in bundles:
        for step in bundle.steps:
            bk = Booking(bundle.id, bundle.patient_id, 0, step, 0, "", 0, (), "")
            [a], _ = appointments_and_visits(inst, bundles, [bk])
            probe[a.id] = (bundle, step)
    visit_keys = {v.id: i for i, v in enumerate(plan.visits, start=1)}
    result = []
    for a in plan.appointments:
        assert a.id in probe, f"appointment {a.id} matches no step of the planner's bundles"
        bundle, step = probe[a.id]
        result.append(Booking(bundle.id, bundle.patient_id, visit_keys[a.visit_id], step, inst.day_of[a.date],
                              a.site_id, _slot_of(inst, a.start), tuple(a.clinician_ids), a.room_id))
    return result


# --------------------------------------------------------------------------------------------
# The master with a plan's assignment fixed


@dataclass
class FixedSolve:
    status: str
    objective: int | None
    missing: list[tuple[int, int, Option]]  # steps placed where the master has no variable


def solve_fixed(inst: Instance, bundles: list[Bundle], assignment: Assignment,
                rules: Iterable[constraints.Rule] | None = None, objective: bool = False,
                extra: Callable[[cp_model.CpModel, object], None] | None = None) -> FixedSolve:
    """Build the master's variables, add `rules` (every rule of the registry when None) and,
    with `objective`, the master's objective; fix x, booked and visit to the assignment (the
    auxiliary variables stay free) and solve. A step placed at a (day, site) the master has no
    variable for is reported in `missing` (the variables themselves would then be too strict)."""
    model = cp_model.CpModel()
    v = build_variables(model, inst, bundles)
    for rule in constraints.RULES if rules is None else rules:
        rule.add(model, inst, v)
    if extra is not None:
        extra(model, v)
    if objective:
        add_objective(model, inst, v)
    missing = [(b, k, opt) for (b, k), opt in assignment.items() if (b, k, opt) not in v.x]
    for (b, k, opt), x in v.x.items():
        model.add(x == int(assignment.get((b, k)) == opt))
    for (b, k), booked in v.booked.items():
        model.add(booked == int((b, k) in assignment))
    visits = {(b, opt) for (b, _k), opt in assignment.items()}
    for key, visit in v.visit.items():
        model.add(visit == int(key in visits))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_time_in_seconds = 60
    status = solver.solve(model)
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    value = round(solver.objective_value) if found and objective else None
    return FixedSolve(solver.status_name(status), value, missing)


def assignment_of(bundles: list[Bundle], bookings: list[Booking]) -> Assignment:
    return hint_from(bundles, bookings)


# --------------------------------------------------------------------------------------------
# Exhaustive solve of a tiny scenario


@dataclass
class Exhaustive:
    """The exact optimum over every timetable of the given bundles the checker accepts."""

    optimum: int
    bookings: list[Booking]
    timetables: dict[str, int]  # per patient: timetables the checker accepts
    candidates: dict[str, int]  # per patient: timetables enumerated (before the checker)
    plans_checked: int = 0  # whole plans given to the checker in the search
    notes: list[str] = field(default_factory=list)


class TooBig(Exception):
    """The enumeration would exceed its cap: the caller skips the example."""


def _slots(inst: Instance, t: dt.time, up: bool) -> int:
    minute = t.hour * 60 + t.minute
    return -(-minute // inst.slot_minutes) if up else minute // inst.slot_minutes


def _sessions(inst: Instance) -> dict[tuple[str, int, str], list[tuple[int, int, str | None]]]:
    """(clinician, day, site) -> (first slot, end slot, room named) of each roster session, read
    straight from the scenario (the tiny scenarios have no leave and no bank-holiday sessions)."""
    out: dict[tuple[str, int, str], list] = defaultdict(list)
    for sess in inst.scenario.sessions:
        if sess.date in inst.day_of:
            out[(sess.clinician_id, inst.day_of[sess.date], sess.site_id)].append(
                (_slots(inst, sess.start, True), _slots(inst, sess.end, False), sess.room_id))
    return out


def _may_do(inst: Instance, clinician_id: str, type_id: str) -> bool:
    c, t = inst.clinicians[clinician_id], inst.review_types[type_id]
    return c.role in t.roles and t.id in c.review_type_ids


def step_places(inst: Instance, bundle: Bundle, step: Step, visit_key: Callable[[str, int, str], int]) -> list[Booking]:
    """Every way to place one step: (day, start slot, a clinician for each part, room), pruned by
    necessary conditions the checker enforces: the clinician allowed (reviews: role and review
    type; draws: takes bloods; a joint sitting: one of the planner's clinicians for each part,
    all different), rostered at the site in one session covering the step, the room at the site
    with the capabilities and holding everyone, open, the patient free, the day in every review's
    due window and a fasting draw early enough. Under `clinician_room_per_session: hard` a draw
    or review is in the room `scheduler.rooms` gave its clinician's session (the bound covers
    plans with that allocation, docs/optimiser.md)."""
    s = inst.scenario
    rules = s.visit_rules
    patient = inst.patients[bundle.patient_id]
    dues = {patient.review_id(d): d for d in patient.due_reviews}
    sessions = _sessions(inst)
    hard = rules.clinician_room_per_session == "hard"
    if hard:
        from scheduler.rooms import session_rooms
        held = session_rooms(inst)
    if step.kind == "blood_draw":
        parts = [[c.id for c in s.clinicians if c.takes_bloods]]
        need = {"phlebotomy"}
    elif step.kind == "review":
        parts = [[c.id for c in s.clinicians if all(_may_do(inst, c.id, t) for t in step.review_type_ids)]]
        need = {cap for t in step.review_type_ids for cap in inst.review_types[t].room_capabilities}
    else:
        parts = [list(p) for p in step.parts]
        need = {"mdt"} | {cap for t in step.review_type_ids for cap in inst.review_types[t].room_capabilities}
    if patient.needs.wheelchair:
        need.add("wheelchair_access")
    carer = 1 if patient.needs.carer_attending else 0
    latest = _slots(inst, rules.fasting_draw_latest_start, False) if any(
        inst.markers[m].fasting for m in step.marker_ids) else None
    out = []
    for day, date in enumerate(inst.days):
        if any(not (dues[r].window_start <= date <= dues[r].window_end) for r in step.review_ids):
            continue
        free = inst.patient_mask(patient.id, day)
        for reach in patient.reachable_sites:
            site = inst.sites[reach.site_id]
            opens, closes = _slots(inst, site.opens, True), _slots(inst, site.closes, False)
            for who in itertools.product(*parts):
                if len(set(who)) != len(who):
                    continue
                spans = [sessions.get((c, day, site.id), []) for c in who]
                for start in range(opens, closes - step.slots + 1):
                    end = start + step.slots
                    if latest is not None and start > latest:
                        continue
                    if (free >> start) & ((1 << step.slots) - 1) != (1 << step.slots) - 1:
                        continue
                    if not all(any(a <= start and end <= b for a, b, _ in mine) for mine in spans):
                        continue
                    rooms = [r for r in inst.rooms_at.get(site.id, [])
                             if need <= set(r.capabilities) and r.capacity_people >= 1 + carer + len(who)]
                    if hard and step.kind != "joint_review":
                        own = {room for mask, room in held.get((who[0], day, site.id), ())
                               if room is not None and mask >> start & ((1 << step.slots) - 1) == (1 << step.slots) - 1}
                        rooms = [r for r in rooms if r.id in own]
                    for room in rooms:
                        out.append(Booking(bundle.id, patient.id, visit_key(bundle.id, day, site.id), step, day,
                                           site.id, start, who, room.id))
    return out


def _overlap(a: Booking, b: Booking) -> bool:
    return a.day == b.day and a.start < b.end and b.start < a.end


def _clash(a: Booking, b: Booking) -> bool:
    """Two bookings the checker can never both accept: a clinician, room or patient twice."""
    return _overlap(a, b) and (a.patient_id == b.patient_id or a.room_id == b.room_id
                               or bool(set(a.clinician_ids) & set(b.clinician_ids)))


def _visits_ok(inst: Instance, bookings: list[Booking], separate: dict[str, bool]) -> bool:
    """The checker's visit rules: a consolidated visit (one with a review) spans at most
    `max_visit_minutes`; every visit waits at most `max_wait_minutes` before each step; one trip
    (patient, day, site) is one visit (so one bundle)."""
    rules = inst.scenario.visit_rules
    visits: dict[tuple[str, int, str], list[Booking]] = defaultdict(list)
    for bk in bookings:
        visits[(bk.bundle_id, bk.day, bk.site_id)].append(bk)
    trips = defaultdict(set)
    for (bundle_id, day, site), items in visits.items():
        trips[(items[0].patient_id, day, site)].add(bundle_id)
        items.sort(key=lambda bk: (bk.start, bk.end))
        if not separate[bundle_id] and any(bk.step.reviews for bk in items):
            if (max(bk.end for bk in items) - items[0].start) * inst.slot_minutes > rules.max_visit_minutes:
                return False
        latest = items[0].end
        for bk in items[1:]:
            if (bk.start - latest) * inst.slot_minutes > rules.max_wait_minutes:
                return False
            latest = max(latest, bk.end)
    return all(len(bundle_ids) == 1 for bundle_ids in trips.values())


def _markers_ok(inst: Instance, bookings: list[Booking]) -> bool:
    """The checker's `markers_drawn`: each marker of a booked review drawn before it starts."""
    draws = [bk for bk in bookings if bk.step.kind == "blood_draw"]
    for bk in bookings:
        for t in bk.step.review_type_ids:
            for m in inst.review_types[t].blood_marker_ids:
                if not any(m in d.step.marker_ids and (d.day, d.end) <= (bk.day, bk.start) for d in draws):
                    return False
    return True


def exhaustive_optimum(inst: Instance, bundles: list[Bundle], cap: int = 20_000,
                       groupings: dict[str, list[list[Bundle]]] | None = None) -> Exhaustive:
    """The exact optimum of the full objective over every plan of these bundles the checker
    accepts (under `hard`, with the session rooms of `scheduler.rooms`). With `groupings`
    (patient -> alternative lists of that patient's bundles), over every plan of any of them.

    1. Each step's places (`step_places`). 2. Each patient's timetables: every choice of place or
    unbooked for each of their steps, without two of their bookings clashing, with their visits'
    length, waits and markers as the checker requires; each is then put to the checker alone (a
    part of a plan the checker accepts is accepted too: every rule is about one patient, or
    about two appointments sharing a clinician or room). 3. Branch and bound over the patients'
    accepted timetables (cheapest first), with no clinician or room clash between patients; the
    objective is the patients' own costs plus sessions (and room changes under `soft`), and the
    patients' own costs plus the sessions so far bound it from below. Each plan cheaper than the
    best so far goes to the checker whole; the cheapest it accepts is the optimum.
    Raises TooBig when a patient has more than `cap` candidate timetables."""
    s = inst.scenario
    keys: dict[tuple[str, int, str], int] = {}

    def visit_key(bundle_id: str, day: int, site: str) -> int:
        return keys.setdefault((bundle_id, day, site), len(keys) + 1)

    by_patient: dict[str, list[Bundle]] = defaultdict(list)
    for b in bundles:
        by_patient[b.patient_id].append(b)
    options = {pid: [mine] for pid, mine in by_patient.items()}
    for pid, alternatives in (groupings or {}).items():
        options[pid] = alternatives
    separate = {b.id: b.separate for alternatives in options.values() for mine in alternatives for b in mine}
    result = Exhaustive(0, [], {}, {})
    per_patient: list[list[tuple[int, frozenset, list[Booking], list[Bundle]]]] = []
    for pid, alternatives in options.items():
        timetables = []
        for mine in alternatives:
            timetables += _timetables(inst, mine, separate, visit_key, cap)
        result.candidates[pid] = len(timetables)
        timetables.sort(key=lambda t: t[0])
        per_patient.append(timetables)

    verdicts: dict[int, bool] = {}

    def accepted(bookings: list[Booking], grouping: list[Bundle]) -> bool:
        """The checker's verdict on one patient's timetable alone (asked once, when needed)."""
        if id(bookings) not in verdicts:
            verdicts[id(bookings)] = check_plan(s, plan_of(inst, grouping, bookings, full=False)).ok
            if bookings:
                pid = bookings[0].patient_id
                result.timetables[pid] = result.timetables.get(pid, 0) + verdicts[id(bookings)]
        return verdicts[id(bookings)]

    rest = [sum(p[0][0] for p in per_patient[i:]) for i in range(len(per_patient) + 1)]
    best: list = [None, None]  # value, bookings

    def search(i: int, cost: int, sessions: frozenset, chosen: list[Booking], used: list[Bundle]) -> None:
        if i == len(per_patient):
            total = evaluate(inst, used, chosen).total
            if best[0] is None or total < best[0]:
                result.plans_checked += 1
                if check_plan(s, plan_of(inst, used, chosen, full=False)).ok:
                    best[0], best[1] = total, list(chosen)
            return
        for own, mine, bookings, grouping in per_patient[i]:
            if best[0] is not None and cost + own + rest[i + 1] >= best[0]:
                break  # cheapest first: every later timetable costs at least as much
            union = sessions | mine
            if best[0] is not None and cost + own + rest[i + 1] + SESSION_USED * len(union) >= best[0]:
                continue
            if any(_clash(a, b) for a in bookings for b in chosen) or not accepted(bookings, grouping):
                continue
            search(i + 1, cost + own, union, chosen + bookings, used + grouping)

    search(0, 0, frozenset(), [], [])
    assert best[0] is not None, "no plan at all (even the empty one) was accepted"
    result.optimum, result.bookings = best
    return result


def _timetables(inst: Instance, mine: list[Bundle], separate: dict[str, bool], visit_key, cap: int):
    """One patient's timetables of these bundles: (own cost without sessions, sessions, bookings,
    bundles) for every choice of place or unbooked for each step, with no two bookings clashing
    and the visits' length, waits and markers as the checker requires."""
    steps = [(b, st) for b in mine for st in b.steps]
    choices = [[None, *step_places(inst, b, st, visit_key)] for b, st in steps]
    found: list[list[Booking]] = []
    nodes = [0]

    def dfs(i: int, chosen: list[Booking]) -> None:
        nodes[0] += 1
        if len(found) > cap or nodes[0] > 20 * cap:
            raise TooBig(f"patient {mine[0].patient_id}: more than {cap} timetables "
                         f"({[len(c) for c in choices]} choices per step)")
        if i == len(choices):
            if _visits_ok(inst, chosen, separate) and _markers_ok(inst, chosen):
                found.append(list(chosen))
            return
        for place in choices[i]:
            if place is None:
                dfs(i + 1, chosen)
            elif not any(_clash(place, other) for other in chosen):
                chosen.append(place)
                dfs(i + 1, chosen)
                chosen.pop()

    dfs(0, [])
    out = []
    for bookings in found:
        own = evaluate(inst, mine, bookings)
        sessions = frozenset((c, bk.day, bk.site_id) for bk in bookings for c in bk.clinician_ids)
        out.append((own.total - own.sessions - own.room_changes, sessions, bookings, mine))
    return out


def alternative_groupings(inst: Instance, bundles: list[Bundle]) -> dict[str, list[list[Bundle]]]:
    """For each consolidating patient, their bundle under every grouping of their reviews into
    sittings (every set partition, each sitting a combined review), the planner's own (which may
    be a joint sitting) first. Opted-out patients keep theirs: one bundle per review is the rule."""
    from scheduler.bundles import BundleBuilder, set_partitions

    builder = BundleBuilder(inst)
    out: dict[str, list[list[Bundle]]] = {}
    for bundle in bundles:
        if bundle.separate:
            continue
        patient = inst.patients[bundle.patient_id]
        carer = 1 if patient.needs.carer_attending else 0
        access = {"wheelchair_access"} if patient.needs.wheelchair else set()
        dues = [(patient.review_id(d), d) for d in patient.due_reviews]
        variants = [[bundle]]
        own = sorted(sorted(st.review_ids) for st in bundle.review_steps)
        joint = next((st for st in bundle.steps if st.kind == "joint_review"), None)
        for n, blocks in enumerate(set_partitions(dues)):
            if joint is None and sorted(sorted(r for r, _ in block) for block in blocks) == own:
                continue  # the planner's own grouping, already first
            steps = [builder._review_step(patient, f"g{n}r{i}", block, carer, access) for i, block in enumerate(blocks)]
            if bundle.draw is not None:
                draw = bundle.draw
                steps = [Step(**{**draw.__dict__, "last_day": max(st.last_day for st in steps)}), *steps]
            variants.append([Bundle(f"{bundle.id}~{n}", patient.id, False, patient.priority, tuple(steps))])
        out[patient.id] = variants
    return out


# --------------------------------------------------------------------------------------------
# Scenarios where a checker-accepted plan beats the bound (found by the exhaustive solve; issue 13)

LIPIDS = {"id": "lipids", "name": "Lipid review", "roles": ["practice_nurse", "gp"], "duration_minutes": 15,
          "blood_marker_ids": ["glucose_fasting"], "shared_component_ids": ["bp"]}
CLINICIANS = {
    "gp": {"id": "gp", "role": "gp", "review_type_ids": ["frailty", "hypertension", "diabetes", "lipids"]},
    "nurse": {"id": "nurse", "role": "practice_nurse", "takes_bloods": True,
              "review_type_ids": ["asthma", "hypertension", "diabetes", "copd", "lipids"]},
    "hca": {"id": "hca", "role": "hca", "takes_bloods": True},
}


def long_separate_visit() -> Scenario:
    """An opted-out patient's lipid review needs a fasting draw first, the same day; with extra
    time the draw (15 min) and review (30 min) take 45 minutes, over max_visit_minutes (30). The
    checker limits only consolidated visits (docs/plan-format.md), so it accepts that separate
    visit (objective 1,325); the master (`visit_fits_length`) and the day book refuse it, so the
    review is left unbooked and the bound is 100,000."""
    from tests.builders import BASE, patient, scenario, session

    return scenario([session("nurse", "2027-03-22", "09:00", "10:00")],
                    [patient("P0", "lipids", last="2027-03-25", opt_out_consolidation=True,
                             needs={"extra_time_factor": 1.5})],
                    horizon_end="2027-03-25", clinicians=list(CLINICIANS.values()),
                    review_types=[*BASE["review_types"], LIPIDS],
                    visit_rules={"slot_minutes": 15, "max_visit_minutes": 30, "max_wait_minutes": 15})


def two_sites_one_day() -> Scenario:
    """The GP works at the surgery in the morning, the nurse at the annex in the afternoon, on the
    only day of the window. Frailty with the GP and asthma with the nurse is two trips that day
    (objective 2,650), which the checker accepts (a visit is one site; nothing limits trips a
    day); the master's `one_site_per_day` allows one, so a review is left unbooked and the bound
    is 101,325."""
    from tests.builders import patient, scenario, session

    sites = [{"id": "surgery", "name": "Surgery", "address": "1 High St"},
             {"id": "annex", "name": "Annex", "address": "2 High St"}]
    rooms = [{"id": "consult", "site_id": "surgery"}, {"id": "consult2", "site_id": "annex"}]
    sessions = [session("gp", "2027-03-22", "09:00", "10:00"),
                {**session("nurse", "2027-03-22", "14:00", "15:00"), "site_id": "annex"}]
    person = patient("P0", "frailty", "asthma", last="2027-03-22")
    person["reachable_sites"] = [{"site_id": "surgery", "travel_minutes": 10},
                                 {"site_id": "annex", "travel_minutes": 10}]
    return scenario(sessions, [person], horizon_end="2027-03-22", sites=sites, rooms=rooms,
                    visit_rules={"slot_minutes": 15})
