"""The blood-draw policy (visit_rules.blood_draw_policy) and trips counted honestly.

Hand-checked scenarios on the tests.builders week (Monday 22 March 2027 onwards; Good Friday
26th and Easter Monday 29th are bank holidays). Every solved plan goes through the independent
checker (solve_checked); hand-made broken plans show the checker catches each rule.
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from scheduler.baselines import old_way
from scheduler.check import check_plan, format_report, recompute_metrics
from scheduler.domain import Scenario
from scheduler.instance import Instance
from scheduler.plan import Plan
from tests.builders import BASE, patient, session, solve_checked
from tests.plan_builders import appt, base_scenario, find, find_visit, resync, valid_plan, visit

MON, TUE, WED, THU = "2027-03-22", "2027-03-23", "2027-03-24", "2027-03-25"

# Review types for these tests: "kidney" needs a blood test but not its result first (the draw
# can be the first step of the visit), "frail" too, with the GP only; "breath" needs no blood.
TYPES = [
    {"id": "kidney", "name": "Kidney review", "roles": ["practice_nurse", "gp"], "duration_minutes": 20,
     "blood_marker_ids": ["ue_egfr"]},
    {"id": "frail", "name": "Frailty review", "roles": ["gp"], "duration_minutes": 30,
     "blood_marker_ids": ["ue_egfr"]},
    {"id": "breath", "name": "Breathing review", "roles": ["practice_nurse"], "duration_minutes": 15},
    {"id": "sugar", "name": "Diabetes review", "roles": ["practice_nurse", "gp"], "duration_minutes": 25,
     "blood_marker_ids": ["hba1c"], "results_before_review": True},
]
CLINICIANS = [
    {"id": "gp", "role": "gp", "review_type_ids": ["kidney", "frail", "sugar"]},
    {"id": "nurse", "role": "practice_nurse", "review_type_ids": ["kidney", "breath", "sugar"]},
    {"id": "hca", "role": "hca", "takes_bloods": True},
]


def policy_scenario(sessions: list[dict], patients: list[dict], policy: str = "draw_in_visit",
                    markers: list[dict] | None = None) -> Scenario:
    """The builders' base with these types, clinicians and the draw policy; the room rule off,
    so that only the draw policy decides where blood is taken."""
    data = copy.deepcopy(BASE)
    data.update(sessions=sessions, patients=patients, review_types=TYPES, clinicians=CLINICIANS,
                shared_components=[])
    if markers is not None:
        data["blood_markers"] = markers
    data["visit_rules"] = {"blood_draw_policy": policy, "clinician_room_per_session": "off"}
    return Scenario.model_validate(data)


def of(plan: Plan, pid: str, kind: str | None = None):
    """The patient's appointments (of one kind: 'blood_draw', or 'review' for any review)."""
    xs = [a for a in plan.appointments if a.patient_id == pid]
    if kind == "blood_draw":
        return [a for a in xs if a.kind == "blood_draw"]
    if kind == "review":
        return [a for a in xs if a.kind != "blood_draw"]
    return xs


def honest_bound(plan: Plan) -> None:
    """The master stays a relaxation of what the day book makes: its bound never passes the plan."""
    assert plan.solver.best_bound <= plan.solver.objective


# --- draw_in_visit (the default) -------------------------------------------------------------


def test_default_policy_is_draw_in_visit():
    assert Scenario.model_validate({**copy.deepcopy(BASE)}).visit_rules.blood_draw_policy == "draw_in_visit"


def test_the_draw_is_the_first_step_of_the_visit_not_a_trip_of_its_own():
    # The phlebotomist works Monday and Tuesday, the GP only Tuesday: the draw goes with the
    # review on Tuesday (one trip), never a Monday draw trip.
    sessions = [session("hca", MON), session("hca", TUE), session("gp", TUE)]
    plan = solve_checked(policy_scenario(sessions, [patient("P1", "frail")]))
    [draw], [review] = of(plan, "P1", "blood_draw"), of(plan, "P1", "review")
    assert draw.visit_id == review.visit_id and draw.end <= review.start
    assert (plan.metrics.visits, plan.metrics.draw_trips, plan.metrics.one_trip_share) == (1, 0, 1.0)
    honest_bound(plan)


def test_a_split_patient_has_one_draw_in_a_visit_with_reviews():
    # Frailty (GP, bloods) only on Monday, breathing (nurse, no bloods) only on Tuesday: two
    # visits, and the one draw sits in Monday's, first, serving the frailty review.
    sessions = [session("hca", MON), session("hca", TUE), session("gp", MON), session("nurse", TUE)]
    plan = solve_checked(policy_scenario(sessions, [patient("P1", "frail", "breath")]))
    [draw] = of(plan, "P1", "blood_draw")
    reviews = of(plan, "P1", "review")
    assert len(reviews) == 2 and len({a.visit_id for a in reviews}) == 2
    frail = next(a for a in reviews if a.review_type_ids == ["frail"])
    assert draw.visit_id == frail.visit_id and draw.end <= frail.start
    assert (plan.metrics.visits, plan.metrics.blood_draws, plan.metrics.draw_trips) == (2, 1, 0)
    assert plan.metrics.single_visit_share == 0.0 and plan.metrics.one_trip_share == 0.0
    honest_bound(plan)


def test_one_draw_in_the_first_visit_serves_a_later_one():
    # Kidney (bloods) with the GP on Monday and frailty (bloods) with the GP on Wednesday: the
    # GP's Monday session is too short for both (20 + 30 min + the draw in 50 min), so two
    # visits; one draw on Monday serves both reviews ("one blood test for all markers").
    sessions = [session("hca", MON), session("hca", WED),
                session("gp", MON, "08:30", "09:20"), session("gp", WED, "08:30", "09:20")]
    plan = solve_checked(policy_scenario(sessions, [patient("P1", "kidney", "frail")]))
    [draw] = of(plan, "P1", "blood_draw")
    reviews = sorted(of(plan, "P1", "review"), key=lambda a: a.start)
    assert len(reviews) == 2 and reviews[0].date < reviews[1].date
    assert draw.visit_id == reviews[0].visit_id and draw.end <= reviews[0].start
    assert plan.metrics.draw_trips == 0 and plan.metrics.visits == 2
    honest_bound(plan)


@pytest.mark.hazard("HAZ-003")
def test_results_needed_first_still_makes_an_earlier_draw_trip():
    sessions = [session("hca", MON), session("nurse", TUE), session("nurse", "2027-03-31")]
    plan = solve_checked(policy_scenario(sessions, [patient("P1", "sugar")]))
    [draw], [review] = of(plan, "P1", "blood_draw"), of(plan, "P1", "review")
    assert draw.visit_id != review.visit_id and draw.date == dt.date(2027, 3, 22)
    assert plan.metrics.draw_trips == 1 and plan.metrics.visits == 2
    honest_bound(plan)


def test_a_point_of_care_marker_keeps_the_draw_in_the_visit_even_when_results_come_first():
    markers = [{"id": "hba1c", "point_of_care": True}, {"id": "ue_egfr"}]
    sessions = [session("hca", MON), session("hca", TUE), session("nurse", TUE)]
    plan = solve_checked(policy_scenario(sessions, [patient("P1", "sugar")], markers=markers))
    [draw], [review] = of(plan, "P1", "blood_draw"), of(plan, "P1", "review")
    assert draw.visit_id == review.visit_id and plan.metrics.draw_trips == 0


# --- a busy phlebotomy roster: the two policies side by side --------------------------------


BUSY = [session("hca", MON), session("gp", TUE)]  # blood only on Monday, the GP only on Tuesday


def test_busy_phlebotomy_roster_books_more_with_an_earlier_draw_trip():
    # The frailty review needs blood (not its result first). Taking it on Monday and reviewing
    # on Tuesday books the review, at the price of a draw-only trip.
    plan = solve_checked(policy_scenario(BUSY, [patient("P1", "frail")], "earlier_draw_trip_allowed"))
    assert plan.metrics.reviews_booked == 1
    assert (plan.metrics.visits, plan.metrics.draw_trips) == (2, 1)
    assert plan.metrics.single_visit_share == 1.0 and plan.metrics.one_trip_share == 0.0
    honest_bound(plan)


def test_busy_phlebotomy_roster_under_draw_in_visit_books_fewer_and_says_why():
    # The same roster under the default: no day has both the phlebotomist and the GP, so the
    # review cannot be booked without a draw-only trip. The cost is reported, not hidden.
    plan = solve_checked(policy_scenario(BUSY, [patient("P1", "frail")]))
    assert plan.metrics.reviews_booked == 0 and plan.metrics.draw_trips == 0
    [why] = plan.unbooked
    assert why.reason == "no_blood_draw_before_review" and "policy" in why.detail
    honest_bound(plan)


def test_busy_phlebotomy_roster_under_draw_in_visit_keeps_the_review_that_needs_no_blood():
    # Breathing (no blood) with the nurse on Monday could hold the draw (hca Monday), and the
    # GP's frailty review on Tuesday uses that draw: two visits, no draw-only trip.
    sessions = [*BUSY, session("nurse", MON)]
    plan = solve_checked(policy_scenario(sessions, [patient("P1", "frail", "breath")]))
    assert plan.metrics.reviews_booked == 2 and plan.metrics.draw_trips == 0
    [draw] = of(plan, "P1", "blood_draw")
    breath = next(a for a in of(plan, "P1", "review") if a.review_type_ids == ["breath"])
    assert draw.visit_id == breath.visit_id
    honest_bound(plan)


def test_a_plan_made_with_draw_trips_fails_the_check_under_draw_in_visit():
    s = policy_scenario(BUSY, [patient("P1", "frail")], "earlier_draw_trip_allowed")
    plan = solve_checked(s)
    strict = s.model_copy(update={"visit_rules": s.visit_rules.model_copy(update={"blood_draw_policy": "draw_in_visit"})})
    report = check_plan(strict, plan)
    assert {v.code for v in report.violations} == {"draw_trip_not_needed"}, format_report(report)


# --- opted-out patients: separate days, each its own trip ------------------------------------


def test_opted_out_reviews_fall_on_separate_days_each_its_own_trip():
    # The nurse works long days on Monday and Tuesday: everything would fit on Monday morning,
    # but an opted-out patient's reviews are separate appointments on separate days, as the old
    # way books them, and each is a trip with its travel.
    sessions = [session(c, d, "08:30", "17:00") for c in ("nurse", "hca") for d in (MON, TUE)]
    plan = solve_checked(policy_scenario(sessions, [patient("P1", "breath", "kidney", opt_out_consolidation=True)]))
    reviews = of(plan, "P1", "review")
    assert len(reviews) == 2 and len({a.date for a in reviews}) == 2
    assert plan.metrics.visits == 2 == len({(v.date, v.site_id) for v in plan.visits})
    # The kidney review's own draw is the first step of its own visit (draw_in_visit).
    [draw] = of(plan, "P1", "blood_draw")
    kidney = next(a for a in reviews if a.review_type_ids == ["kidney"])
    assert draw.visit_id == kidney.visit_id
    assert plan.metrics.patient_hours == sum(
        (2 * 10 + (v.end - v.start).total_seconds() / 60) / 60 for v in plan.visits)
    honest_bound(plan)


def test_opted_out_reviews_with_one_day_left_book_one_and_say_so():
    # One day only: the second review cannot have a day of its own, so it is left unbooked
    # rather than counted as a second trip on the same morning.
    sessions = [session(c, MON, "08:30", "17:00") for c in ("nurse", "hca")]
    p = patient("P1", "breath", "kidney", first=MON, last=MON, opt_out_consolidation=True)
    plan = solve_checked(policy_scenario(sessions, [p]))
    assert plan.metrics.reviews_booked == 1 and plan.metrics.visits == 1
    assert len(plan.unbooked) == 1


def test_the_old_way_puts_each_appointment_on_a_day_of_its_own():
    # The baseline's one-trip-per-appointment count is only true if no two of a patient's
    # appointments share a day. Breathing, kidney and frailty with a draw each for the last
    # two: five appointments need five days.
    days = (MON, TUE, WED, THU, "2027-03-30", "2027-03-31")
    sessions = [session(c, d, "08:30", "17:00") for c in ("nurse", "hca", "gp") for d in days]
    s = policy_scenario(sessions, [patient("P1", "breath", "kidney", "frail")])
    book, _bundles = old_way(Instance(s))
    booked_days = [b.day for b in book.bookings]
    assert len(booked_days) == 5 and len(set(booked_days)) == 5
    plan = solve_checked(s)
    old = plan.baselines["old_way"]
    assert (old.appointments, old.visits, old.blood_draws, old.reviews_booked) == (5, 5, 2, 3)
    # With four days only, the fifth appointment has no day of its own: the old way books less
    # rather than count two appointments on one day as two trips.
    short = policy_scenario([x for x in sessions if x["date"] in days[:4]], [patient("P1", "breath", "kidney", "frail")])
    book, _bundles = old_way(Instance(short))
    assert len(book.bookings) == len({b.day for b in book.bookings}) == 3


# --- hand-made broken plans the checker catches ----------------------------------------------


def test_checker_rejects_a_draw_only_trip_when_no_review_needs_results_first():
    # The valid hand plan's P007 draw trip serves results-first reviews (ckd, diabetes); move
    # P003's in-visit draw to a trip of its own on the day before: asthma and hypertension do
    # not need results first, so under draw_in_visit that trip is not allowed.
    scenario, plan = base_scenario(), valid_plan()
    draw = find(plan, "P003-draw")
    find_visit(plan, "V-P003").appointment_ids.remove("P003-draw")
    moved = appt("P003-draw", "P003", "V-P003-0", "blood_draw", "2027-03-24", "14:00", 10, "rs-nurse",
                 ["pn-ellis"], markers=list(draw.blood_marker_ids))
    plan.appointments = [a for a in plan.appointments if a.id != "P003-draw"] + [moved]
    plan.visits.append(visit("V-P003-0", "blood_draw_trip", [moved]))
    resync(plan)
    plan.metrics = recompute_metrics(scenario, plan)
    plan.comparison = None
    codes = {v.code for v in check_plan(scenario, plan).violations}
    assert "draw_trip_not_needed" in codes, codes
    # The same plan is fine where the practice allows earlier draw trips.
    relaxed = scenario.model_copy(update={"visit_rules": scenario.visit_rules.model_copy(
        update={"blood_draw_policy": "earlier_draw_trip_allowed"})})
    assert "draw_trip_not_needed" not in {v.code for v in check_plan(relaxed, plan).violations}


def test_checker_rejects_a_draw_trip_for_point_of_care_markers():
    # P007's draw trip is justified by laboratory results; if every marker it takes is
    # point-of-care, the result is ready in minutes and the draw belongs in the visit.
    scenario, plan = base_scenario(), valid_plan()
    markers = [m.model_copy(update={"point_of_care": True}) for m in scenario.blood_markers]
    scenario = scenario.model_copy(update={"blood_markers": markers})
    codes = {v.code for v in check_plan(scenario, plan).violations}
    assert "draw_trip_not_needed" in codes, codes


def test_checker_counts_an_opted_out_patients_draws_per_review():
    # P005 opted out of copd and smr, neither needs blood: a draw in either visit is one more
    # than the reviews that need blood (0).
    scenario, plan = base_scenario(), valid_plan()
    extra = appt("P005-draw", "P005", "V-P005-1", "blood_draw", "2027-03-22", "08:20", 10, "rs-treatment",
                 ["hca-osei"], markers=["fbc"])
    copd_visit = find_visit(plan, "V-P005-1")
    plan.appointments.append(extra)
    copd_visit.appointment_ids.insert(0, extra.id)
    resync(plan)
    codes = {v.code for v in check_plan(scenario, plan).violations}
    assert "more_than_one_draw" in codes, codes


def test_checker_rejects_two_visits_for_one_trip():
    # P005's two separate reviews on one morning at one site, listed as two visits, would be
    # counted as two trips: one patient, one date, one site is one visit.
    scenario, plan = base_scenario(), valid_plan()
    smr = find(plan, "P005-smr")
    length = smr.end - smr.start
    smr.date = find(plan, "P005-copd").date
    smr.start = find(plan, "P005-copd").end
    smr.end = smr.start + length
    resync(plan)
    codes = {v.code for v in check_plan(scenario, plan).violations}
    assert "trip_split" in codes, codes
