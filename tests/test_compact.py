"""Compacting visits (scheduler/compact.py): the same bookings, re-timed so patients wait less.

Every plan here goes through the independent checker. The scenarios are tiny and solved with
one worker, so each test is quick and the same in any process.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import pytest

from scheduler.assemble import appointments_and_visits, booked_review_ids, unbooked_entries
from scheduler.baselines import greedy_consolidate, old_way
from scheduler.bundles import BundleBuilder
from scheduler.check import check_plan, format_report
from scheduler.compact import ExactWaiting, compact, exact_day_waiting
from scheduler.daybook import Booking
from scheduler.domain import Scenario, SolverSettings
from scheduler.instance import Instance
from scheduler.metrics import compare, compute_metrics
from scheduler.model.objective import evaluate
from scheduler.plan import Plan, SolverStats
from scheduler.planner import make_plan, shared_minutes_saved
from scheduler.reasons import unbooked_reasons
from scheduler.steps import Bundle
from tests.builders import BASE, patient, scenario, session

MON, TUE = "2027-03-22", "2027-03-23"


def review_types_with_ckd() -> list[dict]:
    """The base catalogue plus a CKD review (GP or nurse) that needs bloods drawn in the same
    visit (no results first), so the draw and the review meet in one visit."""
    types = copy.deepcopy(BASE["review_types"])
    types.append({"id": "ckd", "name": "CKD review", "roles": ["gp", "practice_nurse"], "duration_minutes": 20,
                  "blood_marker_ids": ["ue_egfr"]})
    return types


def clinicians_with_ckd() -> list[dict]:
    clinicians = copy.deepcopy(BASE["clinicians"])
    for c in clinicians:
        if c["id"] in ("gp", "nurse"):
            c["review_type_ids"].append("ckd")
    return clinicians


def ckd_scenario(sessions: list[dict], patients: list[dict], **rules) -> Scenario:
    return scenario(sessions, patients, review_types=review_types_with_ckd(), clinicians=clinicians_with_ckd(),
                    visit_rules=rules)


def greedy(s: Scenario) -> tuple[Instance, list[Bundle], list[Booking]]:
    inst = Instance(s)
    bundles = BundleBuilder(inst).bundles()
    return inst, bundles, greedy_consolidate(inst, bundles).bookings


def checked(s: Scenario, inst: Instance, bundles: list[Bundle], bookings: list[Booking]) -> Plan:
    """The bookings as a plan, assembled as `planner.make_plan` does, passed by the checker."""
    old_book, old_bundles = old_way(inst)

    def metrics_of(bundles: list[Bundle], bookings: list[Booking]):
        appointments, visits = appointments_and_visits(inst, bundles, bookings)
        return compute_metrics(inst, appointments, visits, unbooked_entries(inst, bookings, {}))

    old_metrics = metrics_of(old_bundles, old_book.bookings)
    appointments, visits = appointments_and_visits(inst, bundles, bookings)
    reasons = unbooked_reasons(inst, bundles, booked_review_ids(bookings))
    unbooked = unbooked_entries(inst, bookings, reasons)
    metrics = compute_metrics(inst, appointments, visits, unbooked)
    objective = evaluate(inst, bundles, bookings).total
    plan = Plan(
        scenario_name=s.name, appointments=appointments, visits=visits, unbooked=unbooked, metrics=metrics,
        baselines={"greedy": metrics_of(bundles, greedy_consolidate(inst, bundles).bookings),
                   "old_way": old_metrics},
        comparison=compare(metrics, old_metrics, shared_minutes_saved(inst, bookings)),
        solver=SolverStats(status="FEASIBLE", method="compact test", objective=objective, best_bound=0,
                           gap=1.0 if objective else 0.0, wall_seconds=0.0, time_limit_seconds=5,
                           workers=1, seed=0),
    )
    report = check_plan(s, plan)
    assert report.ok, format_report(report)
    return plan


def unchanged_but_times(before: list[Booking], after: list[Booking]) -> None:
    """Same steps, day, site, visit, clinicians and room, booking for booking."""
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert replace(b, start=a.start) == a


def slot(inst: Instance, hm: str) -> int:
    h, m = map(int, hm.split(":"))
    return (h * 60 + m) // inst.slot_minutes


def run(inst, bundles, bookings, **kw) -> list[Booking]:
    return compact(inst, bundles, bookings, workers=1, seed=0, deadline=None, **kw)


def test_draw_waiting_for_the_review_is_closed_up():
    """Hand-checked. The phlebotomist starts at 08:30, the GP at 09:00. The greedy books the draw
    at the earliest start, 08:30-08:40, and the CKD review when the GP starts, 09:00: 20 minutes
    waiting. Nothing else is booked, so the draw can move to 08:50: no waiting."""
    s = ckd_scenario([session("hca", MON, "08:30", "12:30"), session("gp", MON, "09:00", "12:30")],
                     [patient("P1", "ckd", first=MON, last=MON)])
    inst, bundles, before = greedy(s)
    by_kind = {b.step.kind: b for b in before}
    assert (by_kind["blood_draw"].start, by_kind["review"].start) == (slot(inst, "08:30"), slot(inst, "09:00"))
    assert evaluate(inst, bundles, before).wait == 20
    checked(s, inst, bundles, before)

    after = run(inst, bundles, before)
    unchanged_but_times(before, after)
    by_kind = {b.step.kind: b for b in after}
    assert evaluate(inst, bundles, after).wait == 0
    assert by_kind["blood_draw"].end == by_kind["review"].start  # the draw first, back to back
    assert evaluate(inst, bundles, after).total == evaluate(inst, bundles, before).total - 20
    checked(s, inst, bundles, after)


def test_make_plan_gives_a_two_step_visit_no_waiting_when_none_is_needed():
    """Hand-checked, end to end: the same patient and roster through make_plan. The draw and the
    CKD review can run back to back (the phlebotomist from 08:30, the GP from 09:00), so the
    plan's visit has zero waiting, whatever the stage that chose the day."""
    s = ckd_scenario([session("hca", MON, "08:30", "12:30"), session("gp", MON, "09:00", "12:30")],
                     [patient("P1", "ckd", first=MON, last=MON)])
    plan = make_plan(s, SolverSettings(time_limit_seconds=5, workers=1, seed=0))
    report = check_plan(s, plan)
    assert report.ok, format_report(report)
    [visit] = plan.visits
    assert len(visit.appointment_ids) == 2 and plan.metrics.patient_wait_minutes == 0
    steps = sorted((a for a in plan.appointments if a.visit_id == visit.id), key=lambda a: a.start)
    assert steps[0].kind == "blood_draw" and steps[0].end == steps[1].start
    assert plan.metrics.multi_step_visits == 1 and plan.metrics.wait_minutes_per_multi_step_visit == 0


def busy_practice(rule: str) -> Scenario:
    """Two mornings and an afternoon of phlebotomist, nurse and GP, eight patients with draws,
    combined reviews, a fasting-free CKD draw in the visit and time-of-day preferences."""
    sessions = [
        session("hca", MON, "08:30", "12:30"), session("nurse", MON, "09:00", "12:30"),
        session("gp", MON, "09:30", "12:30"),
        session("nurse", TUE, "08:30", "12:30"), session("gp", TUE, "08:30", "10:30"),
        session("gp", TUE, "13:30", "17:00"), session("hca", TUE, "13:30", "16:00"),
    ]
    patients = [
        patient("P1", "ckd"),
        patient("P2", "ckd", "asthma", preferred_time="morning"),
        patient("P3", "copd", "hypertension"),
        patient("P4", "frailty", "ckd", preferred_time="afternoon"),
        patient("P5", "asthma", preferred_time="afternoon"),
        patient("P6", "ckd", "hypertension", priority=2),
        patient("P7", "ckd", "frailty", named_clinician_id="gp"),
        patient("P8", "ckd", "copd", preferred_time="morning"),
    ]
    return ckd_scenario(sessions, patients, clinician_room_per_session=rule)


@pytest.mark.parametrize("rule", ["hard", "soft", "off"])
def test_never_worse_same_bookings_and_checked(rule):
    s = busy_practice(rule)
    inst, bundles, before = greedy(s)
    checked(s, inst, bundles, before)
    after = run(inst, bundles, before)
    unchanged_but_times(before, after)
    was, now = evaluate(inst, bundles, before), evaluate(inst, bundles, after)
    assert now.total <= was.total
    assert now.preference <= was.preference
    assert now.wait < was.wait  # the greedy leaves 110-120 minutes of waiting here; none is needed
    # Only waiting and the time of day can change.
    assert replace(now, wait=0, preference=0) == replace(was, wait=0, preference=0)
    checked(s, inst, bundles, after)
    # A second pass finds nothing more to gain for the patients.
    assert evaluate(inst, bundles, run(inst, bundles, after)).wait == now.wait


def forced_wait() -> tuple[Scenario, Instance, list[Bundle], list[Booking]]:
    """The phlebotomist is there 08:30-08:40 only; Q's frailty review holds the GP 08:40-09:10,
    so P (draw, then a CKD review that only the GP works for) waits at least 30 minutes
    while Q stays where it is. P's review is put at 09:20 (40 minutes waiting, the most allowed)."""
    s = ckd_scenario([session("hca", MON, "08:30", "08:40"), session("gp", MON, "08:30", "11:00")],
                     [patient("P", "ckd", first=MON, last=MON), patient("Q", "frailty", first=MON, last=MON)],
                     max_wait_minutes=40)
    inst, bundles, bookings = greedy(s)
    at = {"P": {"blood_draw": "08:30", "review": "09:20"}, "Q": {"review": "08:40"}}
    bookings = [replace(b, start=slot(inst, at[b.patient_id][b.step.kind])) for b in bookings]
    assert {b.patient_id: b.clinician_ids for b in bookings if b.step.kind == "review"} == {"P": ("gp",), "Q": ("gp",)}
    assert evaluate(inst, bundles, bookings).wait == 40
    checked(s, inst, bundles, bookings)
    return s, inst, bundles, bookings


def test_forced_waiting_is_kept_but_no_more():
    s, inst, bundles, before = forced_wait()
    p_bundle = next(b.id for b in bundles if b.patient_id == "P")
    after = run(inst, bundles, before, movable={p_bundle})
    unchanged_but_times(before, after)
    assert [b.start for b in after if b.patient_id == "Q"] == [slot(inst, "08:40")]  # not movable
    assert evaluate(inst, bundles, after).wait == 30  # the GP is busy until 09:10
    review = next(b for b in after if b.patient_id == "P" and b.step.kind == "review")
    assert review.start == slot(inst, "09:10")
    checked(s, inst, bundles, after)


def test_movable_all_lets_the_other_visit_make_way():
    """With Q free to move too, Q's review goes after P's and nobody waits."""
    s, inst, bundles, before = forced_wait()
    after = run(inst, bundles, before)
    unchanged_but_times(before, after)
    assert evaluate(inst, bundles, after).wait == 0
    checked(s, inst, bundles, after)


def test_nothing_movable_or_deadline_passed_changes_nothing():
    s, inst, bundles, before = forced_wait()
    assert run(inst, bundles, before, movable=set()) == before
    assert compact(inst, bundles, before, workers=1, seed=0, deadline=time.monotonic() - 1) == before


def test_preferred_part_of_the_day_is_kept():
    """The GP works all day; P wants mornings and is booked at 11:00 after a draw at 10:40.
    Closing the gap must not take the visit past 12:30, and it stays a morning visit."""
    s = ckd_scenario([session("hca", MON, "08:30", "17:00"), session("gp", MON, "08:30", "17:00")],
                     [patient("P", "ckd", first=MON, last=MON, preferred_time="morning")])
    inst, bundles, before = greedy(s)
    at = {"blood_draw": "10:40", "review": "11:00"}
    before = [replace(b, start=slot(inst, at[b.step.kind])) for b in before]
    checked(s, inst, bundles, before)
    after = run(inst, bundles, before)
    now = evaluate(inst, bundles, after)
    assert (now.wait, now.preference) == (0, 0)
    assert min(b.start for b in after) < slot(inst, "12:30")
    checked(s, inst, bundles, after)


def test_exact_waiting_bounds_compact():
    s = busy_practice("hard")
    inst, bundles, before = greedy(s)
    after = run(inst, bundles, before)
    exact = exact_day_waiting(inst, bundles, before, workers=1, seed=0, time_limit_per_day_seconds=10)
    assert isinstance(exact, ExactWaiting)
    assert exact.days_total >= 1
    assert exact.days_optimal == exact.days_total  # tiny days: proven
    assert 0 <= exact.bound_minutes <= exact.wait_minutes
    assert exact.wait_minutes <= evaluate(inst, bundles, after).wait
    # The forced case with everyone movable: Q makes way, so no waiting is needed at all.
    s, inst, bundles, forced = forced_wait()
    exact = exact_day_waiting(inst, bundles, forced, workers=1, seed=0, time_limit_per_day_seconds=10)
    assert exact == ExactWaiting(wait_minutes=0, bound_minutes=0, days_optimal=1, days_total=1)


def test_soft_room_changes_kept_and_steps_reordered():
    """Under `soft` the nurse moves between the treatment room and the spirometry room three
    times; compaction keeps those moves (the objective prices them) and still closes P2's and
    P4's 25 minutes of waiting, the draw staying each visit's first step."""
    sessions = [session("nurse", MON, "08:30", "12:30"), session("gp", MON, "09:30", "12:30")]
    patients = [patient("P1", "ckd", "copd", first=MON, last=MON), patient("P2", "ckd", "asthma", first=MON, last=MON),
                patient("P3", "copd", first=MON, last=MON), patient("P4", "ckd", "frailty", first=MON, last=MON),
                patient("P5", "ckd", first=MON, last=MON)]
    s = ckd_scenario(sessions, patients, clinician_room_per_session="soft")
    inst, bundles, before = greedy(s)
    was = evaluate(inst, bundles, before)
    assert (was.wait, was.room_changes) == (25, 15)
    checked(s, inst, bundles, before)
    after = run(inst, bundles, before)
    unchanged_but_times(before, after)
    now = evaluate(inst, bundles, after)
    assert (now.wait, now.room_changes) == (0, 15)
    p2 = sorted((b for b in after if b.patient_id == "P2"), key=lambda b: b.start)
    assert p2[0].step.kind == "blood_draw"  # the draw first, as the day book places it
    checked(s, inst, bundles, after)
