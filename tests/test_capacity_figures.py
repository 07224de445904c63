"""Capacity-study figures (scheduler/capacity/figures.py), recomputed from real, checked plans."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from scheduler.capacity.figures import (
    QUINTILES,
    SCALAR_FIGURES,
    UNBOOKED_REASONS,
    VariantComparison,
    VariantFigures,
    compare_to_base,
    figures_of,
    figures_table,
)
from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario, SolverSettings
from scheduler.instance import Instance
from scheduler.plan import Plan, UnbookedReason
from scheduler.planner import make_plan
from scheduler.scenario_io import load_scenario
from tests.builders import patient, scenario, session

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = SolverSettings(time_limit_seconds=3, workers=1, seed=1)
SITE_OPEN_MINUTES = 10 * 60 + 30  # default opens 08:00, closes 18:30
# 22 March - 2 April 2027 less Good Friday (26th) and Easter Monday (29th): 8 working days,
# two of each weekday but Friday (one) and Monday (one).
WORKING_DAYS = 8
ROOMS = 3  # treatment, nurse-room, consult in tests/builders.BASE


def solve(s: Scenario) -> Plan:
    plan = make_plan(s, SETTINGS)
    report = check_plan(s, plan)
    assert report.ok, format_report(report)
    return plan


def minutes(a) -> float:
    return (a.end - a.start).total_seconds() / 60


@pytest.fixture(scope="module")
def tiny():
    """One nurse session (Tuesday 08:30-12:30, 240 minutes), two patients: asthma (15 minutes)
    in IMD quintile 1 and hypertension (20 minutes) with no quintile."""
    s = scenario(
        [session("nurse", "2027-03-23")],
        [patient("p1", "asthma", deprivation_quintile=1), patient("p2", "hypertension")],
    )
    plan = solve(s)
    return s, plan, figures_of(s, plan)


def test_tiny_scenario_hand_computed(tiny):
    s, plan, f = tiny
    assert not plan.unbooked
    assert sorted(minutes(a) for a in plan.appointments) == [15, 20]
    assert (f.patients, f.patients_fully_booked, f.reviews, f.reviews_booked) == (2, 2, 2, 2)
    assert f.blood_draws == 0
    assert f.one_visit_share == f.one_trip_share == 1.0
    assert f.visits_per_patient == 1.0
    # Clinicians: 35 booked minutes of the nurse's 240 rostered; the GP and HCA have no session.
    assert f.utilisation_by_role == {"gp": 0.0, "practice_nurse": 35 / 240, "hca": 0.0}
    # Rooms: 3 rooms x 630 open minutes x 8 working days at the one site.
    assert f.utilisation_by_site == {"surgery": pytest.approx(35 / (ROOMS * SITE_OPEN_MINUTES * WORKING_DAYS))}
    tuesday = 35 / (ROOMS * SITE_OPEN_MINUTES * 2)  # 23 and 30 March
    assert f.utilisation_by_site_weekday == {
        "surgery": {"mon": 0.0, "tue": pytest.approx(tuesday), "wed": 0.0, "thu": 0.0, "fri": 0.0}
    }
    room_minutes = {}
    for a in plan.appointments:
        room_minutes[a.room_id] = room_minutes.get(a.room_id, 0) + minutes(a)
    caps = {r.id: r.capabilities for r in s.rooms}
    expected = {}
    for cap in ("phlebotomy", "spirometry", "ecg", "wheelchair_access"):
        booked = sum(m for room, m in room_minutes.items() if cap in caps[room])
        expected[cap] = pytest.approx(booked / (SITE_OPEN_MINUTES * WORKING_DAYS))  # one room each
    assert f.utilisation_by_room_capability == expected
    # Equity: each patient travels 10 minutes each way to one visit; the visit lasts its review.
    assert f.patients_by_quintile == {"1": 1, "2": 0, "3": 0, "4": 0, "5": 0, "unknown": 1}
    assert f.travel_minutes_by_quintile == {"1": 20.0, "2": 0.0, "3": 0.0, "4": 0.0, "5": 0.0, "unknown": 20.0}
    assert f.clinic_minutes_by_quintile == {"1": 15.0, "2": 0.0, "3": 0.0, "4": 0.0, "5": 0.0, "unknown": 20.0}
    assert f.fully_booked_share_by_quintile == {"1": 1.0, "2": 0.0, "3": 0.0, "4": 0.0, "5": 0.0, "unknown": 1.0}
    assert f.travel_minutes_by_patient == {"p1": 20, "p2": 20}
    assert f.gap == plan.solver.gap and f.objective == plan.solver.objective


def test_every_unbooked_reason_is_a_key(tiny):
    _, _, f = tiny
    assert tuple(f.unbooked_by_reason) == UNBOOKED_REASONS
    assert set(UNBOOKED_REASONS) == set(UnbookedReason.__args__)
    assert all(v == 0 for v in f.unbooked_by_reason.values())


def test_unbooked_reasons_counted_and_unknown_quintile():
    # A 30-minute session cannot hold 15 + 20 minutes: one review goes unbooked for capacity;
    # a frailty review (GP only) has no GP session at all. Nobody has a quintile.
    s = scenario(
        [session("nurse", "2027-03-23", "08:30", "09:00")],
        [patient("p1", "asthma"), patient("p2", "hypertension"), patient("p3", "frailty")],
    )
    plan = solve(s)
    f = figures_of(s, plan)
    counts = {r: sum(1 for u in plan.unbooked if u.reason == r) for r in UNBOOKED_REASONS}
    assert f.unbooked_by_reason == counts
    assert counts["capacity_used_up"] == 1 and counts["no_clinician_rostered"] == 1
    assert f.patients_by_quintile["unknown"] == 3
    assert sum(f.patients_by_quintile.values()) == f.patients
    assert f.fully_booked_share_by_quintile["unknown"] == pytest.approx(1 / 3)
    assert f.travel_minutes_by_quintile["unknown"] == 20.0  # mean over the one patient with a visit
    assert f.fully_booked_share_by_quintile["1"] == 0.0  # an empty quintile reads 0
    assert f.patients_fully_booked == plan.metrics.patients_fully_booked == 1


def test_closures_and_weekend_sessions_change_open_minutes():
    # The consult room is closed 08:00-10:00 on Wednesday 24 March, the whole site 17:30-19:00 on
    # Thursday 25th (30 minutes past closing do not count); a Saturday clinic opens the site on
    # the 27th, which is not a working day.
    closures = [
        {"room_id": "consult", "start": "2027-03-24T08:00", "end": "2027-03-24T10:00"},
        {"room_id": "consult", "start": "2027-03-24T09:00", "end": "2027-03-24T09:30"},  # overlaps
        {"site_id": "surgery", "start": "2027-03-25T17:30", "end": "2027-03-25T19:00"},
    ]
    s = scenario(
        [session("nurse", "2027-03-23"), session("nurse", "2027-03-27", "09:00", "11:00")],
        [patient("p1", "asthma")],
        closures=closures,
    )
    plan = solve(s)
    f = figures_of(s, plan)
    booked = sum(minutes(a) for a in plan.appointments)
    days = WORKING_DAYS + 1
    open_minutes = ROOMS * SITE_OPEN_MINUTES * days - 120 - ROOMS * 60
    assert f.utilisation_by_site["surgery"] == pytest.approx(booked / open_minutes)
    assert f.utilisation_by_role["practice_nurse"] == pytest.approx(booked / (240 + 120))
    thursday_open = ROOMS * SITE_OPEN_MINUTES * 2 - ROOMS * 60
    thursday_booked = sum(minutes(a) for a in plan.appointments if a.date.weekday() == 3)
    assert f.utilisation_by_site_weekday["surgery"]["thu"] == pytest.approx(thursday_booked / thursday_open)
    assert set(f.utilisation_by_site_weekday["surgery"]) == {"mon", "tue", "wed", "thu", "fri"}


def test_leave_and_unflagged_bank_holiday_sessions_are_not_rostered():
    s = scenario(
        [session("nurse", "2027-03-23"), session("nurse", "2027-03-24"),
         session("nurse", "2027-03-26"),  # Good Friday, not flagged: not a valid session
         session("gp", "2027-03-29", on_bank_holiday=True)],  # Easter Monday, flagged: valid
        [patient("p1", "asthma")],
        leave=[{"clinician_id": "nurse", "start_date": "2027-03-24", "end_date": "2027-03-24"}],
    )
    plan = solve(s)
    f = figures_of(s, plan)
    booked = sum(minutes(a) for a in plan.appointments)
    assert plan.appointments and all(a.date == dt.date(2027, 3, 23) for a in plan.appointments)
    assert f.utilisation_by_role["practice_nurse"] == pytest.approx(booked / 240)
    assert f.utilisation_by_role["gp"] == 0.0
    # The flagged bank holiday opens the site that day: 9 counted days.
    assert f.utilisation_by_site["surgery"] == pytest.approx(booked / (ROOMS * SITE_OPEN_MINUTES * 9))


@pytest.fixture(scope="module")
def tutorial():
    s = load_scenario(ROOT / "sample_rosters" / "tutorial.yaml")
    # Quintiles 1, 2, 3, 4, 5, unknown, 1, ... so that every group has patients.
    patients = [p.model_copy(update={"deprivation_quintile": (i % 6 + 1) if i % 6 < 5 else None})
                for i, p in enumerate(s.patients)]
    s = s.model_copy(update={"patients": patients})
    plan = solve(s)
    return s, plan, figures_of(s, plan)


def test_tutorial_figures_agree_with_the_plans_own_metrics(tutorial):
    s, plan, f = tutorial
    m = plan.metrics
    assert f.one_visit_share == pytest.approx(m.single_visit_share, abs=1e-9)
    assert f.one_trip_share == pytest.approx(m.one_trip_share, abs=1e-9)
    assert f.visits_per_patient == pytest.approx(m.visits_per_patient, abs=1e-9)
    assert f.blood_draws == m.blood_draws
    assert (f.patients, f.patients_fully_booked, f.reviews, f.reviews_booked) == (
        m.patients, m.patients_fully_booked, m.reviews, m.reviews_booked)
    assert sum(f.unbooked_by_reason.values()) == len(plan.unbooked)
    # Clinician minutes by role add up to the plan's clinician minutes.
    # (The engine's own valid sessions: the tutorial has a GP on leave for a day.)
    assert s.leave
    rostered: dict[str, int] = {}
    roles = {c.id: c.role for c in s.clinicians}
    for x in Instance(s).valid_sessions:
        rostered[roles[x.clinician_id]] = rostered.get(roles[x.clinician_id], 0) + (
            x.end.hour * 60 + x.end.minute - x.start.hour * 60 - x.start.minute)
    assert sum(f.utilisation_by_role[r] * rostered.get(r, 0) for r in f.utilisation_by_role) == pytest.approx(
        m.clinician_minutes, abs=0.5)
    # Patient hours = travel + time in clinic, summed over patients with a visit.
    with_visit = {q: 0 for q in QUINTILES}
    for p in s.patients:
        if any(v.patient_id == p.id for v in plan.visits):
            with_visit[str(p.deprivation_quintile) if p.deprivation_quintile else "unknown"] += 1
    total = sum((f.travel_minutes_by_quintile[q] + f.clinic_minutes_by_quintile[q]) * with_visit[q]
                for q in QUINTILES)
    assert total / 60 == pytest.approx(m.patient_hours, abs=1e-6)
    assert all(0.0 <= u <= 1.0 for u in f.utilisation_by_site.values())
    assert all(0.0 <= u <= 1.0 for u in f.utilisation_by_room_capability.values())
    assert all(0.0 <= u <= 1.0 for u in f.utilisation_by_role.values())
    assert "plain" not in f.utilisation_by_room_capability or any(not r.capabilities for r in s.rooms)
    assert f.gap == plan.solver.gap and f.objective == plan.solver.objective
    assert sum(f.patients_by_quintile.values()) == f.patients
    assert all(f.patients_by_quintile[q] >= 1 for q in QUINTILES)
    for q in QUINTILES:
        group = [p.id for p in s.patients
                 if (str(p.deprivation_quintile) if p.deprivation_quintile else "unknown") == q]
        fully = [pid for pid in group if pid not in {u.patient_id for u in plan.unbooked}]
        assert f.fully_booked_share_by_quintile[q] == pytest.approx(len(fully) / len(group))


def test_figures_round_trip_as_json(tutorial):
    _, _, f = tutorial
    assert VariantFigures.model_validate_json(f.model_dump_json()) == f


def test_comparison_with_itself_is_all_zero(tutorial):
    _, plan, f = tutorial
    c = compare_to_base(f, plan, f, plan)
    assert all(getattr(c, f"{name}_change") == 0 for name in SCALAR_FIGURES)
    assert c.same_patients == f.patients
    assert (c.patients_gained_full_booking, c.patients_lost_full_booking, c.patients_moved_to_one_visit,
            c.patients_moved_to_several_visits, c.travel_minutes_mean_change) == (0, 0, 0, 0, 0.0)


def test_one_more_session_on_the_same_patients():
    patients = [patient("p1", "asthma", deprivation_quintile=2), patient("p2", "hypertension"),
                patient("p3", "asthma", deprivation_quintile=5)]
    short = [session("nurse", "2027-03-23", "08:30", "09:00")]
    base_s = scenario(short, patients)
    variant_s = scenario(short + [session("nurse", "2027-03-24", "08:30", "09:30")], patients)
    base_plan, variant_plan = solve(base_s), solve(variant_s)
    base, variant = figures_of(base_s, base_plan), figures_of(variant_s, variant_plan)
    c = compare_to_base(base, base_plan, variant, variant_plan)
    assert isinstance(c, VariantComparison)
    for name in SCALAR_FIGURES:
        assert getattr(c, f"{name}_change") == pytest.approx(getattr(variant, name) - getattr(base, name))
    assert c.unbooked_by_reason_change == {
        r: variant.unbooked_by_reason[r] - base.unbooked_by_reason[r] for r in UNBOOKED_REASONS}
    assert c.same_patients == 3
    assert c.patients_gained_full_booking >= 0
    assert base.patients_fully_booked < 3 and variant.patients_fully_booked == 3
    assert c.patients_gained_full_booking - c.patients_lost_full_booking == c.patients_fully_booked_change
    assert c.patients_gained_full_booking == 3 - base.patients_fully_booked
    assert c.patients_lost_full_booking == 0
    # Same travel for everyone booked in both (one site, one visit each).
    assert c.patients_with_visits_in_both == base.patients_fully_booked
    assert c.travel_minutes_mean_change == 0.0


def test_split_visits_become_one_visit_with_a_longer_session():
    # Asthma with COPD sits for 15 + 20 - 2 = 33 -> 35 minutes: too long for 20-minute sessions,
    # so the base splits the two reviews over two days; a 60-minute session holds them in one.
    patients = [patient("p1", "asthma", "copd", deprivation_quintile=3)]
    base_s = scenario([session("nurse", "2027-03-23", "08:30", "08:50"),
                       session("nurse", "2027-03-24", "08:30", "08:50")], patients)
    variant_s = scenario([session("nurse", "2027-03-23", "08:30", "09:30")], patients)
    base_plan, variant_plan = solve(base_s), solve(variant_s)
    base, variant = figures_of(base_s, base_plan), figures_of(variant_s, variant_plan)
    assert len(base_plan.visits) == 2 and len(variant_plan.visits) == 1
    c = compare_to_base(base, base_plan, variant, variant_plan)
    assert c.patients_moved_to_one_visit == 1 and c.patients_moved_to_several_visits == 0
    assert c.one_visit_share_change == 1.0 and c.visits_per_patient_change == -1.0
    assert c.travel_minutes_mean_change == -20.0  # one round trip of 2 x 10 minutes fewer
    assert base.travel_minutes_by_quintile["3"] == 40.0 and variant.travel_minutes_by_quintile["3"] == 20.0
    reverse = compare_to_base(variant, variant_plan, base, base_plan)
    assert reverse.patients_moved_to_several_visits == 1 and reverse.patients_moved_to_one_visit == 0


def test_only_patients_in_both_are_compared(tiny):
    s, plan, f = tiny
    more = scenario([session("nurse", "2027-03-23")],
                    [patient("p1", "asthma", deprivation_quintile=1), patient("p2", "hypertension"),
                     patient("p9", "asthma")])
    more_plan = solve(more)
    c = compare_to_base(f, plan, figures_of(more, more_plan), more_plan)
    assert c.same_patients == 2 and c.patients_change == 1
    assert c.patients_gained_full_booking == 0  # p9 is new, not a gain on the same patients


def test_figures_table_is_flat_with_one_set_of_columns(tiny, tutorial):
    _, _, small = tiny
    _, _, big = tutorial
    rows = figures_table([("base", small), ("tutorial", big)])
    assert [r["variant"] for r in rows] == ["base", "tutorial"]
    assert list(rows[0]) == list(rows[1])
    columns = list(rows[0])
    assert columns[:len(SCALAR_FIGURES) - 1] == ["variant", *SCALAR_FIGURES[:len(SCALAR_FIGURES) - 2]]
    assert rows[0]["utilisation_by_role.practice_nurse"] == small.utilisation_by_role["practice_nurse"]
    assert rows[0]["utilisation_by_site_weekday.surgery.tue"] == small.utilisation_by_site_weekday["surgery"]["tue"]
    assert rows[0]["unbooked_by_reason.capacity_used_up"] == 0
    assert rows[0]["travel_minutes_by_quintile.unknown"] == 20.0
    assert rows[1]["utilisation_by_site.surgery"] is None  # the tutorial has no such site
    assert rows[0]["utilisation_by_site.riverside"] is None
    assert not any(c.startswith("travel_minutes_by_patient") for c in columns)
    assert all(not isinstance(v, dict) for row in rows for v in row.values())
    assert rows[0]["gap"] == small.gap and rows[1]["objective"] == big.objective
