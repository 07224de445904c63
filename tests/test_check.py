"""The independent plan checker against a hand-built valid plan and one hand-broken copy per code."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import inspect
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import pytest

import scheduler.check as check_module
from scheduler.check import (
    CODES,
    RULES,
    CheckReport,
    Rule,
    UndeclaredCodeError,
    Violation,
    add_working_days,
    check_plan,
    codes_of,
    format_report,
    recompute_metrics,
    rule,
    validate_rules,
)
from scheduler.domain import ReachableSite, Room, RosterSession, Site
from scheduler.plan import UnbookedReview
from tests.plan_builders import (
    EXPECTED_METRICS,
    ROOT,
    add,
    appt,
    base_scenario,
    drop,
    find,
    find_visit,
    move,
    resync,
    update_patient,
    valid_plan,
    visit,
)

UTC = dt.timezone.utc


def codes(report: CheckReport) -> set[str]:
    return {v.code for v in report.violations}


# ---------------------------------------------------------------------------------------------
# The valid plan


def test_valid_plan_has_no_violations():
    report = check_plan(base_scenario(), valid_plan())
    assert report.ok, format_report(report)
    assert report.violations == []
    assert format_report(report).endswith("OK: no violations")


def test_recomputed_metrics_equal_hand_computed_values():
    # EXPECTED_METRICS in tests/plan_builders.py is worked out by hand, field by field.
    got = recompute_metrics(base_scenario(), valid_plan())
    for name, want in EXPECTED_METRICS.model_dump().items():
        assert getattr(got, name) == pytest.approx(want, abs=1e-9), name
    # The same numbers written out, so a slip in EXPECTED_METRICS cannot hide one here.
    assert (got.patients, got.patients_fully_booked, got.reviews, got.reviews_booked) == (5, 4, 12, 11)
    assert (got.appointments, got.visits, got.blood_draws, got.draw_trips) == (11, 7, 4, 1)
    assert got.visits_per_patient == pytest.approx(1.4)
    assert got.single_visit_share == pytest.approx(0.75)
    assert got.continuity_rate == pytest.approx(0.6666666667)
    assert got.patient_hours == pytest.approx(7.5166666667)
    assert (got.patient_wait_minutes, got.clinician_minutes) == (5, 300)
    assert got.clinician_utilisation == pytest.approx(0.0446428571)
    assert got.room_utilisation == pytest.approx(0.0103174603)


@pytest.mark.hazard("HAZ-004")
def test_dst_offsets_in_the_valid_plan():
    plan = valid_plan()
    # Tuesday 30 March 2027, after the clocks went forward: 09:00 local is 08:00Z (+01:00).
    after = find(plan, "P004-draw").start
    assert after.utcoffset() == dt.timedelta(hours=1)
    assert after.astimezone(UTC) == dt.datetime(2027, 3, 30, 8, 0, tzinfo=UTC)
    # Thursday 25 March, before the change: 14:00 local is 14:00Z (+00:00).
    before = find(plan, "P003-draw").start
    assert before.utcoffset() == dt.timedelta(0)
    assert before.astimezone(UTC) == dt.datetime(2027, 3, 25, 14, 0, tzinfo=UTC)


def test_good_friday_session_is_valid_only_when_flagged():
    # 2027-03-26 is Good Friday: gp-khan's session that day is ignored unless flagged.
    scenario, plan = base_scenario(), valid_plan()
    move(plan, "P005-smr", "2027-03-26", "09:00")
    plan.metrics = recompute_metrics(scenario, plan)
    assert find(plan, "P005-smr").start.astimezone(UTC) == dt.datetime(2027, 3, 26, 9, 0, tzinfo=UTC)
    assert codes(check_plan(scenario, plan)) == {"clinician_not_rostered"}

    sessions = [
        s.model_copy(update={"on_bank_holiday": True}) if s.date == dt.date(2027, 3, 26) else s
        for s in scenario.sessions
    ]
    flagged = scenario.model_copy(update={"sessions": sessions})
    plan.metrics = recompute_metrics(flagged, plan)
    report = check_plan(flagged, plan)
    assert report.ok, format_report(report)
    # The flagged session now counts: 29 valid sessions and 9 dates with a session.
    assert report.metrics.clinician_utilisation == pytest.approx(300 / (29 * 240))
    assert report.metrics.room_utilisation == pytest.approx(260 / (5 * 630 * 9))


def july_scenario_and_plan(offset_hours: int):
    """A July copy: one opted-out patient, one COPD review at 09:00 with the given UTC offset."""
    base = base_scenario()
    p5 = next(p for p in base.patients if p.id == "P005")
    due = p5.due_reviews[0].model_copy(
        update={"window_start": dt.date(2027, 7, 1), "window_end": dt.date(2027, 7, 31)}
    )
    scenario = base.model_copy(
        update={
            "horizon_start": dt.date(2027, 7, 1),
            "horizon_end": dt.date(2027, 7, 31),
            "sessions": [
                RosterSession(clinician_id="pn-ellis", date=dt.date(2027, 7, 6),
                              start=dt.time(8, 30), end=dt.time(12, 30), site_id="riverside")
            ],
            "leave": [],
            "patients": [p5.model_copy(update={"due_reviews": [due]})],
        }
    )
    plan = valid_plan()
    a = appt("P005-copd", "P005", "V-1", "review", "2027-07-06", "09:00", 20, "rs-nurse",
             ["pn-ellis"], reviews=["copd"])
    wall = dt.datetime(2027, 7, 6, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=offset_hours)))
    a.start, a.end = wall, wall + dt.timedelta(minutes=20)
    plan.appointments = [a]
    plan.visits = [visit("V-1", "separate", [a])]
    plan.unbooked = []
    plan.metrics = recompute_metrics(scenario, plan)
    return scenario, plan


def test_july_needs_plus_one_hour():
    report = check_plan(*july_scenario_and_plan(offset_hours=1))
    assert report.ok, format_report(report)


def test_july_with_plus_zero_is_bad_times():
    report = check_plan(*july_scenario_and_plan(offset_hours=0))
    # The appointment's start and end, and its visit's start and end, all carry +00:00.
    assert codes(report) == {"bad_times"}, format_report(report)
    assert len(report.violations) == 4


@pytest.mark.parametrize(
    "day, n, expected",
    [
        ("2027-03-22", 3, "2027-03-25"),  # Mon + 3 = Thu
        ("2027-03-24", 3, "2027-03-31"),  # Wed: Thu 25, (Good Fri, weekend, Easter Mon), Tue 30, Wed 31
        ("2027-03-25", 1, "2027-03-30"),  # Thu + 1 skips Good Friday to Easter Monday
        ("2027-03-27", 1, "2027-03-30"),  # from a Saturday
        ("2027-03-30", 0, "2027-03-30"),  # zero turnaround: the same day
        ("2027-12-23", 2, "2027-12-29"),  # Fri 24, then 27 and 28 December are observed holidays
    ],
)
def test_add_working_days(day, n, expected):
    assert add_working_days(dt.date.fromisoformat(day), n) == dt.date.fromisoformat(expected)


@pytest.mark.hazard("HAZ-002")
def test_fasting_draw_at_the_latest_start_is_fine():
    scenario, plan = base_scenario(), valid_plan()
    move(plan, "P007-draw", hm="10:30")
    find(plan, "P007-draw").blood_marker_ids.append("fasting_glucose")
    plan.metrics = recompute_metrics(scenario, plan)
    assert check_plan(scenario, plan).ok


# ---------------------------------------------------------------------------------------------
# One hand-broken copy per violation code


@dataclass
class Case:
    code: str
    mutate: Callable  # (scenario, plan) -> scenario | None; may change plan in place
    also: frozenset[str] = field(default_factory=frozenset)  # unavoidable companions
    refresh_metrics: bool = True  # recompute metrics after the mutation (isolates the rule)


def _set(obj, **changes):
    for k, v in changes.items():
        setattr(obj, k, v)


def _shrink_horizon(s, p):
    # P006's three appointments on 1 April fall outside; so do the sessions that held them.
    return s.model_copy(update={"horizon_end": dt.date(2027, 3, 31)})


def _utc_offset_in_summer(s, p):
    a = find(p, "P004-draw")  # same instant, written 08:00+00:00 instead of 09:00+01:00
    a.start, a.end = a.start.astimezone(UTC), a.end.astimezone(UTC)


def _wrong_date_field(s, p):
    find(p, "P003-rev").date = dt.date(2027, 3, 24)


def _five_minutes_long(s, p):
    a = find(p, "P005-smr")
    a.end += dt.timedelta(minutes=5)
    resync(p)


def _extra_time_ignored(s, p):
    # factor 1.5: draw ceil_slot(15) = 15, review ceil_slot(1.5 * 33 = 49.5) = 50; plan keeps 10, 35.
    return update_patient(s, "P003", needs=next(x for x in s.patients if x.id == "P003").needs.model_copy(update={"extra_time_factor": 1.5}))


def _remove_smr_skill(s, p):
    clinicians = [
        c.model_copy(update={"review_type_ids": ["heart_failure", "af"]}) if c.id == "ph-wright" else c
        for c in s.clinicians
    ]
    return s.model_copy(update={"clinicians": clinicians})


def _hub(s, p):
    site = Site(id="hub", name="PCN hub", address="1 Hub Road")
    room = Room(id="hub-phleb", site_id="hub", capabilities=["phlebotomy"])
    find(p, "P003-draw").room_id = "hub-phleb"
    return s.model_copy(update={"sites": [*s.sites, site], "rooms": [*s.rooms, room]})


def _closes_early(s, p):
    return s.model_copy(update={"sites": [s.sites[0].model_copy(update={"closes": dt.time(14, 30)})]})


def _small_mdt_room(s, p):
    rooms = [r.model_copy(update={"capacity_people": 2}) if r.id == "rs-mdt" else r for r in s.rooms]
    return s.model_copy(update={"rooms": rooms})


def _unreachable(s, p):
    return update_patient(s, "P003", reachable_sites=[ReachableSite(site_id="elsewhere", travel_minutes=5)])


def _p003_mornings(s, p):
    move(p, "P003-draw", "2027-03-23", "10:00")
    move(p, "P003-rev", "2027-03-23", "10:10")


def _also_unbooked(s, p):
    p.unbooked.append(UnbookedReview(patient_id="P003", review_id="P003-asthma",
                                     review_type_id="asthma", reason="capacity_used_up", detail="x"))


def _unbooked_twice(s, p):
    p.unbooked.append(p.unbooked[0].model_copy())


def _unknown_unbooked(s, p):
    p.unbooked.append(UnbookedReview(patient_id="P003", review_id="P003-diabetes",
                                     review_type_id="diabetes", reason="capacity_used_up", detail="x"))


def _booked_twice(s, p):
    add(p, appt("P006-htn2", "P006", "V-P006", "review", "2027-04-01", "09:45", 20, "rs-nurse",
                ["pn-ellis"], reviews=["hypertension"]))


def _window_ends_early(s, p):
    p3 = next(x for x in s.patients if x.id == "P003")
    dues = [d.model_copy(update={"window_end": dt.date(2027, 3, 24)}) if d.review_type_id == "asthma" else d
            for d in p3.due_reviews]
    return update_patient(s, "P003", due_reviews=dues)


def _draw_after_review(s, p):
    move(p, "P003-rev", hm="14:00")
    move(p, "P003-draw", hm="14:35")


def _easter_turnaround(s, p):
    # Draw Wed 24 March, review Tue 30 March: 4 weekdays but only 2 working days (Easter).
    move(p, "P007-draw", "2027-03-24", "08:30")
    move(p, "P007-rev", "2027-03-30", "10:00")


def _fasting_at_eleven(s, p):
    move(p, "P007-draw", hm="11:00")
    find(p, "P007-draw").blood_marker_ids.append("fasting_glucose")


def _second_draw(s, p):
    add(p, appt("P007-draw2", "P007", "V-P007-2", "blood_draw", "2027-03-31", "08:50", 10, "rs-nurse",
                ["pn-ellis"], markers=["hba1c"]))


def _draw_trip_with_no_results_needed(s, p):
    """P007's draw trip serves ckd and diabetes; without results needed first it is a draw-only
    trip the default draw_in_visit policy does not allow."""
    types = [t.model_copy(update={"results_before_review": False}) if t.id in ("ckd", "diabetes") else t
             for t in s.review_types]
    return s.model_copy(update={"review_types": types})


def _trip_split_in_two(s, p):
    """P006's hypertension review moved into a visit of its own, same patient, day and site."""
    visit_ = find_visit(p, "V-P006")
    visit_.appointment_ids.remove("P006-htn")
    a = find(p, "P006-htn")
    a.visit_id = "V-P006-b"
    p.visits.append(visit("V-P006-b", "consolidated", [a]))
    resync(p)


def _second_site_same_day(s, p):
    """P005's SMR review moved to 22 March, the day of their COPD review at riverside, at a
    second site (hilltop) where gp-khan is rostered that day and P005 can go: two trips."""
    riverside = next(x for x in s.sites if x.id == "riverside")
    room = next(r for r in s.rooms if r.id == "rs-consult1")
    session = next(x for x in s.sessions if x.clinician_id == "gp-khan")
    patients = [x.model_copy(update={"reachable_sites": [*x.reachable_sites, x.reachable_sites[0].model_copy(
                    update={"site_id": "hilltop"})]}) if x.id == "P005" else x for x in s.patients]
    s = s.model_copy(update={
        "sites": [*s.sites, riverside.model_copy(update={"id": "hilltop", "name": "Hilltop"})],
        "rooms": [*s.rooms, room.model_copy(update={"id": "ht-consult", "site_id": "hilltop"})],
        "sessions": [*s.sessions, session.model_copy(update={
            "site_id": "hilltop", "date": dt.date(2027, 3, 22), "room_id": None,
            "start": dt.time(13, 30), "end": dt.time(17, 0)})],
        "patients": patients,
    })
    a = find(p, "P005-smr")
    a.site_id, a.room_id = "hilltop", "ht-consult"
    move(p, "P005-smr", "2027-03-22", "14:00")
    return s


def _named_room_elsewhere(s, p):
    """pn-ellis's 22 March session names rs-consult2; P005's COPD review is in rs-nurse."""
    sessions = [x.model_copy(update={"room_id": "rs-consult2"})
                if (x.clinician_id, x.date) == ("pn-ellis", dt.date(2027, 3, 22)) else x
                for x in s.sessions]
    return s.model_copy(update={"sessions": sessions})


def _opted_out_combined(s, p):
    drop(p, "P005-smr")
    a = find(p, "P005-copd")  # copd 20 + smr 30, nothing shared = 50 min, with the GP
    _set(a, clinician_ids=["gp-khan"], review_ids=["P005-copd", "P005-smr"],
         review_type_ids=["copd", "smr"], end=a.start + dt.timedelta(minutes=50))
    resync(p)


def _not_listed(s, p):
    find_visit(p, "V-P006").appointment_ids.remove("P006-htn")


def _visit_end_off(s, p):
    find_visit(p, "V-P004").end += dt.timedelta(minutes=5)


def _metrics_off_by_one(s, p):
    p.metrics = EXPECTED_METRICS.model_copy(update={"appointments": 12})


def _metrics_float_off(s, p):
    p.metrics = EXPECTED_METRICS.model_copy(update={"patient_hours": 451 / 60 + 0.01})


CASES = [
    pytest.param(Case("outside_horizon", _shrink_horizon, frozenset({"clinician_not_rostered"})),
                 id="outside_horizon-horizon-ends-before-1-april"),
    pytest.param(Case("bad_times", _utc_offset_in_summer), id="bad_times-plus-zero-after-clock-change"),
    pytest.param(Case("bad_times", _wrong_date_field), id="bad_times-date-not-local-date"),
    pytest.param(Case("wrong_duration", _five_minutes_long), id="wrong_duration-five-minutes-long"),
    pytest.param(Case("wrong_duration", _extra_time_ignored), id="wrong_duration-extra-time-factor-ignored"),
    pytest.param(Case("clinician_not_rostered", lambda s, p: move(p, "P005-smr", "2027-03-26", "09:00")),
                 id="clinician_not_rostered-review-on-good-friday-session"),
    pytest.param(Case("clinician_not_rostered", lambda s, p: move(p, "P005-smr", hm="12:15")),
                 id="clinician_not_rostered-runs-past-session-end"),
    pytest.param(Case("clinician_on_leave", lambda s, p: move(p, "P005-smr", "2027-03-31", "11:00")),
                 id="clinician_on_leave-gp-training-day"),
    pytest.param(Case("role_not_allowed", lambda s, p: _set(find(p, "P006-htn"), clinician_ids=["ph-wright"]), frozenset({"clinician_changed_room"})),
                 id="role_not_allowed-pharmacist-hypertension"),
    pytest.param(Case("role_not_allowed", lambda s, p: _set(find(p, "P006-draw"), clinician_ids=["ph-wright"]), frozenset({"clinician_changed_room"})),
                 id="role_not_allowed-draw-by-non-bleeder"),
    pytest.param(Case("role_not_allowed", lambda s, p: _set(find(p, "P004-joint"), clinician_ids=["gp-khan"])),
                 id="role_not_allowed-joint-review-one-clinician"),
    pytest.param(Case("role_not_allowed", _remove_smr_skill), id="role_not_allowed-type-not-in-clinician-list"),
    pytest.param(Case("clinician_double_booked", lambda s, p: move(p, "P005-smr", hm="09:30")),
                 id="clinician_double_booked-gp-overlaps-joint"),
    pytest.param(Case("room_double_booked", lambda s, p: _set(find(p, "P007-draw"), room_id="rs-nurse")),
                 id="room_double_booked-nurse-room"),
    pytest.param(Case("patient_double_booked", lambda s, p: move(p, "P006-htn", hm="09:10")),
                 id="patient_double_booked-overlapping-steps"),
    pytest.param(Case("room_wrong_site", _hub, frozenset({"clinician_changed_room"})), id="room_wrong_site-hub-room-at-practice"),
    pytest.param(Case("room_closed", _closes_early), id="room_closed-site-closes-14-30"),
    pytest.param(Case("room_capability_missing", lambda s, p: _set(find(p, "P007-draw"), room_id="rs-consult1")),
                 id="room_capability_missing-draw-without-phlebotomy"),
    pytest.param(Case("room_capability_missing", lambda s, p: _set(find(p, "P004-draw"), room_id="rs-treatment")),
                 id="room_capability_missing-wheelchair"),
    pytest.param(Case("room_capability_missing", lambda s, p: _set(find(p, "P005-copd"), room_id="rs-consult1")),
                 id="room_capability_missing-spirometry"),
    pytest.param(Case("room_over_capacity", _small_mdt_room), id="room_over_capacity-mdt-room-holds-two"),
    # pn-ellis's 25 March afternoon: the draw in rs-nurse, then the review moved to the free rs-consult1.
    pytest.param(Case("clinician_changed_room", lambda s, p: _set(find(p, "P003-rev"), room_id="rs-consult1")),
                 id="clinician_changed_room-second-room-in-session"),
    pytest.param(Case("clinician_changed_room", _named_room_elsewhere), id="clinician_changed_room-not-the-named-room"),
    pytest.param(Case("site_not_reachable", _unreachable), id="site_not_reachable"),
    pytest.param(Case("patient_unavailable", lambda s, p: move(p, "P007-draw", "2027-03-23")),
                 id="patient_unavailable-dialysis-day"),
    pytest.param(Case("patient_unavailable", _p003_mornings), id="patient_unavailable-weekly-work-hours"),
    pytest.param(Case("review_not_accounted", lambda s, p: drop(p, "P005-smr")),
                 id="review_not_accounted-missing-review"),
    pytest.param(Case("review_not_accounted", _booked_twice), id="review_not_accounted-booked-twice"),
    pytest.param(Case("review_not_accounted", _also_unbooked), id="review_not_accounted-booked-and-unbooked"),
    pytest.param(Case("review_not_accounted", _unbooked_twice), id="review_not_accounted-unbooked-twice"),
    pytest.param(Case("review_not_accounted", _unknown_unbooked), id="review_not_accounted-unknown-review"),
    pytest.param(Case("outside_due_window", _window_ends_early), id="outside_due_window"),
    pytest.param(Case("marker_not_drawn", lambda s, p: find(p, "P003-draw").blood_marker_ids.remove("urine_acr")),
                 id="marker_not_drawn-marker-missing"),
    pytest.param(Case("marker_not_drawn", _draw_after_review), id="marker_not_drawn-draw-after-review"),
    pytest.param(Case("results_not_back", lambda s, p: move(p, "P007-draw", "2027-03-30", "08:30"), frozenset({"clinician_changed_room"})),
                 id="results_not_back-one-working-day"),
    pytest.param(Case("results_not_back", _easter_turnaround), id="results_not_back-easter"),
    pytest.param(Case("fasting_draw_too_late", _fasting_at_eleven), id="fasting_draw_too_late-11-00"),
    pytest.param(Case("more_than_one_draw", _second_draw, frozenset({"clinician_changed_room"})), id="more_than_one_draw"),
    pytest.param(Case("draw_trip_not_needed", _draw_trip_with_no_results_needed),
                 id="draw_trip_not_needed-no-results-first"),
    pytest.param(Case("trip_split", _trip_split_in_two), id="trip_split-one-day-two-visits"),
    pytest.param(Case("second_trip_same_day", _second_site_same_day), id="second_trip_same_day-two-sites"),
    pytest.param(Case("opted_out_combined", _opted_out_combined), id="opted_out_combined"),
    pytest.param(Case("visit_inconsistent", lambda s, p: _set(find_visit(p, "V-P003"), purpose="separate")),
                 id="visit_inconsistent-wrong-purpose"),
    pytest.param(Case("visit_inconsistent", lambda s, p: _set(find_visit(p, "V-P007-1"), purpose="consolidated")),
                 id="visit_inconsistent-draw-trip-called-consolidated"),
    pytest.param(Case("visit_inconsistent", _not_listed), id="visit_inconsistent-appointment-not-in-visit"),
    pytest.param(Case("visit_inconsistent", _visit_end_off), id="visit_inconsistent-end-mismatch"),
    pytest.param(Case("visit_too_long", lambda s, p: s.model_copy(update={
        "visit_rules": s.visit_rules.model_copy(update={"max_visit_minutes": 60})})),
                 id="visit_too_long-75-over-60"),
    pytest.param(Case("wait_too_long", lambda s, p: move(p, "P006-htn", hm="09:45")),
                 id="wait_too_long-25-minutes"),
    pytest.param(Case("metrics_mismatch", _metrics_off_by_one, refresh_metrics=False),
                 id="metrics_mismatch-appointments-off-by-one"),
    pytest.param(Case("metrics_mismatch", _metrics_float_off, refresh_metrics=False),
                 id="metrics_mismatch-patient-hours"),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.hazard("HAZ-001", "HAZ-002", "HAZ-003", "HAZ-004", "HAZ-007", "HAZ-008", "HAZ-016", "HAZ-017")
def test_each_mutation_reports_its_code(case: Case):
    scenario, plan = base_scenario(), valid_plan()
    # Untampered first: the pair passes, so whatever is reported below comes from the mutation.
    untampered = check_plan(scenario, plan)
    assert untampered.ok, format_report(untampered)
    scenario = case.mutate(scenario, plan) or scenario
    if case.refresh_metrics:
        plan.metrics = recompute_metrics(scenario, plan)
    report = check_plan(scenario, plan)
    assert case.code in codes(report), format_report(report)
    assert codes(report) == {case.code} | case.also, format_report(report)


def test_visit_too_long_covers_separate_visits():
    """An opted-out patient's separate appointment is a visit like any other: at most
    max_visit_minutes (P005's SMR review lasts 30 minutes; the limit is set to 25)."""
    scenario, plan = base_scenario(), valid_plan()
    scenario = scenario.model_copy(update={
        "visit_rules": scenario.visit_rules.model_copy(update={"max_visit_minutes": 25})})
    report = check_plan(scenario, plan)
    too_long = {v.patient_id for v in report.violations if v.code == "visit_too_long"}
    assert "P005" in too_long and find_visit(plan, "V-P005-2").purpose == "separate", format_report(report)


def test_metrics_mismatch_names_the_field():
    scenario, plan = base_scenario(), valid_plan()
    _metrics_off_by_one(scenario, plan)
    [v] = check_plan(scenario, plan).violations
    assert "appointments" in v.message and "12" in v.message and "11" in v.message


def test_specific_details():
    scenario, plan = base_scenario(), valid_plan()
    move(plan, "P006-htn", hm="09:45")
    plan.metrics = recompute_metrics(scenario, plan)
    [v] = check_plan(scenario, plan).violations
    assert (v.code, v.appointment_id, v.patient_id) == ("wait_too_long", "P006-htn", "P006")
    assert "25" in v.message


def test_every_code_in_the_doc_is_known_and_tested():
    doc = (ROOT / "docs" / "plan-format.md").read_text()
    table = doc.split("## Hard rules")[1].split("## Metrics")[0]
    doc_codes = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            first_cell, rule = line.split("|")[1:3]
            doc_codes |= set(re.findall(r"`([a-z_]+)`", first_cell))
            doc_codes |= {c for c in re.findall(r"`([a-z_]+)`", rule) if c == "wrong_duration"}
    assert doc_codes == set(CODES)
    tested = {p.values[0].code for p in CASES}
    assert tested == doc_codes


def test_format_report_groups_by_code_and_counts():
    report = CheckReport(
        violations=[
            Violation("wait_too_long", "waits 25 min", "A1", "P1"),
            Violation("bad_times", "offset", "A2", "P2"),
            Violation("wait_too_long", "waits 30 min", "A3", "P1"),
        ],
        metrics=EXPECTED_METRICS,
    )
    text = format_report(report)
    lines = text.splitlines()
    assert lines[0] == "bad_times (1):"
    assert lines[1] == "  - appointment A2, patient P2: offset"
    assert lines[2] == "wait_too_long (2):"
    assert lines[3:5] == ["  - appointment A1, patient P1: waits 25 min",
                          "  - appointment A3, patient P1: waits 30 min"]
    assert lines[-1] == "3 violations"
    assert not report.ok


@pytest.mark.hazard("HAZ-015")
def test_checker_imports_only_allowed_modules():
    tree = ast.parse((ROOT / "scheduler" / "check.py").read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module)
    scheduler_modules = {m for m in modules if m.split(".")[0] == "scheduler"}
    assert scheduler_modules <= {"scheduler.domain", "scheduler.plan"}
    third_party = {m.split(".")[0] for m in modules} - {"scheduler", "__future__"}
    import sys

    assert third_party - set(sys.stdlib_module_names) <= {"pendulum", "holidays"}


# ---------------------------------------------------------------------------------------------
# The rule registry: each rule declared once with its codes; CODES derived; check_plan runs it


METRIC_RULES = ("metrics_match", "baselines_consistent", "comparison_match")


def _doc_codes_in_order() -> list[str]:
    """The hard-rule table's codes, in the doc's order (read as the test above reads them)."""
    doc = (ROOT / "docs" / "plan-format.md").read_text()
    table = doc.split("## Hard rules")[1].split("## Metrics")[0]
    found: list[str] = []
    for line in table.splitlines():
        if line.startswith("| `"):
            first_cell, rule_text = line.split("|")[1:3]
            found += re.findall(r"`([a-z_]+)`", first_cell)
            found += [c for c in re.findall(r"`([a-z_]+)`", rule_text) if c == "wrong_duration"]
    return list(dict.fromkeys(found))


def test_registry_holds_every_rule_function_once_in_definition_order():
    # A rule function is one whose docstring starts "Hard" or "Metrics:"; every one is registered
    # (a forgotten decorator would silently drop a rule), once, in the order the file defines them.
    defined = [
        fn for name, fn in vars(check_module).items()
        if inspect.isfunction(fn) and fn.__module__ == check_module.__name__
        and (fn.__doc__ or "").startswith(("Hard", "Metrics:"))
    ]
    assert len(RULES) == len(defined) == 32
    assert [r.fn for r in RULES] == sorted(defined, key=lambda fn: fn.__code__.co_firstlineno)
    assert [r.name for r in RULES] == [r.fn.__name__ for r in RULES]
    assert len({r.name for r in RULES}) == len(RULES)
    assert [r.name for r in RULES][-3:] == list(METRIC_RULES)


def test_codes_are_derived_from_the_registry_in_the_doc_order():
    assert CODES == codes_of(RULES)
    assert len(set(CODES)) == len(CODES)
    # The registry's order is the doc table's, so reports group codes in the doc's order.
    assert list(CODES) == _doc_codes_in_order()


def test_only_the_metric_rules_share_a_code():
    owners: dict[str, list[str]] = defaultdict(list)
    for r in RULES:
        for code in r.codes:
            owners[code].append(r.name)
    shared = {code: names for code, names in owners.items() if len(names) > 1}
    assert shared == {"metrics_mismatch": list(METRIC_RULES)}
    assert {r.name for r in RULES if r.shared} == set(METRIC_RULES)
    validate_rules(RULES)


def _emitted_codes(fn) -> list[object]:
    """The first argument of every `_v(...)` / `Violation(...)` call in the function's source."""
    tree = ast.parse(inspect.getsource(fn))
    return [
        node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        and node.func.id in ("_v", "Violation")
    ]


@pytest.mark.parametrize("r", RULES, ids=lambda r: r.name)
def test_each_rule_reports_exactly_the_codes_it_declares(r: Rule):
    # Statically, so that a branch no mutation reaches cannot report an undeclared code either.
    emitted = _emitted_codes(r.fn)
    assert all(isinstance(code, str) for code in emitted), f"{r.name} builds a code at run time"
    assert set(emitted) == set(r.codes), r.name


def test_violations_are_made_only_inside_rules():
    # Outside the registered rules, only `_v` itself builds a Violation: a helper reporting one
    # would be reporting for a rule that did not declare its code.
    tree = ast.parse(inspect.getsource(check_module))
    rule_names = {r.name for r in RULES}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name not in rule_names | {"_v"}:
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                     and n.func.id in ("_v", "Violation")]
            assert not calls, f"{node.name} builds a Violation but is not a registered rule"


def test_check_plan_refuses_a_code_the_rule_did_not_declare(monkeypatch):
    # The real wait rule, declared with the wrong code: it runs fine while it finds nothing...
    rules = tuple(dataclasses.replace(r, codes=("wait_too_long_typo",))
                  if r.name == "wait_not_too_long" else r for r in RULES)
    monkeypatch.setattr(check_module, "RULES", rules)
    scenario, plan = base_scenario(), valid_plan()
    assert check_plan(scenario, plan).ok
    # ...and the first time it reports, check_plan raises instead of returning a report.
    move(plan, "P006-htn", hm="09:45")
    plan.metrics = recompute_metrics(scenario, plan)
    with pytest.raises(UndeclaredCodeError, match="wait_not_too_long reported wait_too_long"):
        check_plan(scenario, plan)


def test_check_plan_refuses_a_rule_reporting_another_rules_code(monkeypatch):
    def mislabelled(c) -> list[Violation]:
        return [Violation("bad_times", "reported under another rule's code")]

    rogue = Rule("rogue", ("outside_horizon_extra",), mislabelled)
    monkeypatch.setattr(check_module, "RULES", RULES + (rogue,))
    with pytest.raises(UndeclaredCodeError, match="rogue reported bad_times"):
        check_plan(base_scenario(), valid_plan())


def _no_violations(c) -> list[Violation]:
    return []


@pytest.mark.parametrize(
    "rules, problem",
    [
        pytest.param((Rule("a", ("x",), _no_violations), Rule("b", ("x",), _no_violations)),
                     "code x is declared by a, b", id="same-code-two-rules"),
        pytest.param((Rule("a", ("x",), _no_violations, shared=True), Rule("b", ("y", "x"), _no_violations)),
                     "code x is declared by a, b", id="same-code-only-one-shared"),
        pytest.param((Rule("a", ("x",), _no_violations), Rule("a", ("y",), _no_violations)),
                     "rule a is registered 2 times", id="same-name-twice"),
        pytest.param((Rule("a", (), _no_violations),), "rule a declares no code", id="no-code"),
        pytest.param((Rule("a", ("x", "x"), _no_violations),), "rule a declares a code twice",
                     id="code-twice"),
    ],
)
def test_registry_refuses_codes_declared_twice(rules, problem):
    with pytest.raises(ValueError, match=problem):
        validate_rules(rules)


def test_registry_allows_a_code_shared_by_shared_rules_only():
    validate_rules((Rule("a", ("x",), _no_violations, shared=True),
                    Rule("b", ("x",), _no_violations, shared=True)))


def test_check_plan_refuses_a_registry_with_a_code_declared_twice(monkeypatch):
    # A second rule claiming an existing code, not marked shared: the registry is refused.
    twin = Rule("room_open_again", ("room_closed",), _no_violations)
    monkeypatch.setattr(check_module, "RULES", RULES + (twin,))
    with pytest.raises(ValueError, match="code room_closed is declared by room_open, room_open_again"):
        check_plan(base_scenario(), valid_plan())


def test_rule_decorator_registers_in_order_and_returns_the_function(monkeypatch):
    monkeypatch.setattr(check_module, "_REGISTERED", [])

    @rule(codes=("first_code",))
    def first(c) -> list[Violation]:
        return []

    @rule(codes=("metrics_mismatch",), shared=True)
    def second(c) -> list[Violation]:
        return []

    assert check_module._REGISTERED == [Rule("first", ("first_code",), first),
                                        Rule("second", ("metrics_mismatch",), second, shared=True)]
    assert first(None) == [] and callable(second)
    with pytest.raises(TypeError):
        rule(codes="first_code")  # a bare string would declare one code per letter


# ---------------------------------------------------------------------------------------------
# Size: ~1,000 patients / 5,000 appointments are checked, and in one pass (no hang)


def test_large_plan_is_checked_without_hanging():
    base = base_scenario()
    days = [dt.date(2027, 3, 22) + dt.timedelta(days=i) for i in range(12)]
    days = [d for d in days if d.weekday() < 5 and d not in (dt.date(2027, 3, 26), dt.date(2027, 3, 29))]
    rooms = [Room(id=f"r{i}", site_id="riverside", capabilities=["phlebotomy"]) for i in range(100)]
    nurses = [base.clinicians[1].model_copy(update={"id": f"n{i}"}) for i in range(100)]
    sessions = [RosterSession(clinician_id=c.id, date=d, start=dt.time(8, 0), end=dt.time(18, 0),
                              site_id="riverside") for c in nurses for d in days]
    template = next(p for p in base.patients if p.id == "P003").model_copy(update={"unavailable": []})
    patients = [template.model_copy(update={"id": f"Q{i:04d}"}) for i in range(1000)]
    scenario = base.model_copy(update={"rooms": rooms, "clinicians": nurses, "sessions": sessions,
                                       "patients": patients, "leave": []})
    plan = valid_plan()
    plan.appointments, plan.visits, plan.unbooked = [], [], []
    for i, p in enumerate(patients):
        day = days[i % len(days)].isoformat()
        k = (i // len(days)) % 100  # room and nurse
        slot = i // (len(days) * 100)
        hm = f"{8 + slot:02d}:00"
        xs = [appt(f"{p.id}-draw", p.id, f"V-{p.id}", "blood_draw", day, hm, 10, f"r{k}", [f"n{k}"],
                   markers=["ue_egfr", "urine_acr"])]
        xs.append(appt(f"{p.id}-rev", p.id, f"V-{p.id}", "review", day, f"{8 + slot:02d}:10", 35,
                       f"r{k}", [f"n{k}"], reviews=["asthma", "hypertension"]))
        # three more short draws per patient (extra draws: more_than_one_draw)
        for j in range(3):
            xs.append(appt(f"{p.id}-x{j}", p.id, f"V-{p.id}", "blood_draw", day,
                           f"{8 + slot:02d}:{45 + 5 * j:02d}", 10, f"r{k}", [f"n{k}"], markers=["fbc"]))
        plan.appointments += xs
        plan.visits.append(visit(f"V-{p.id}", "consolidated", xs))
    assert len(plan.appointments) == 5000
    plan.metrics = recompute_metrics(scenario, plan)
    started = time.monotonic()
    report = check_plan(scenario, plan)
    # A hang bound, not a speed test: the check takes about a second here, and a loaded 2-core
    # machine can make that several. Only something quadratic or stuck (pairwise over 5,000
    # appointments) comes near a minute.
    assert time.monotonic() - started < 60
    # Each of the 1,000 patients has four draws: one more_than_one_draw each, so every patient
    # was looked at (the overlapping extra draws also give double bookings).
    assert sum(v.code == "more_than_one_draw" for v in report.violations) == len(patients)
