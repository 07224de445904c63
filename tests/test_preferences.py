"""Soft preferences: the patient's preferred time of day and continuity with the named clinician
are honoured when capacity allows, and give way (never leave a review unbooked) when it does not.

Each test is built so that only the preference tells the options apart, and so that dropping it
from one specific place in the engine makes the test fail:
- "day booking" tests: one day, both options free; the day book (scheduler/daybook.py) must
  choose by the preference, since every later stage takes the day book's earliest fit;
- "objective" tests: the preferred option is on a later day and the patient has priority 1, so
  waiting costs 10 a day: only the preference's own weight in the objective
  (scheduler/model/objective.py: 20 a visit for time of day, 50 a review for continuity)
  makes the later day cheaper.
Every plan goes through the independent checker (solve_checked).
"""

from __future__ import annotations

import datetime as dt

from scheduler.model import objective as w
from tests.builders import BASE, patient, scenario, session, solve_checked

MON, TUE = "2027-03-22", "2027-03-23"  # before the clocks change: local time is UTC
NURSE2 = {"id": "nurse2", "role": "practice_nurse", "review_type_ids": ["asthma"]}
CLINICIANS = [*BASE["clinicians"], NURSE2]


def only_review(plan, pid: str = "P1"):
    [review] = [a for a in plan.appointments if a.patient_id == pid and a.kind != "blood_draw"]
    return review


def one_asthma_visit_cost(priority: int = 0, days_waited: int = 0, misses: int = 0) -> int:
    """The objective of one patient's single asthma visit, 10 minutes' travel each way."""
    return (w.VISIT + w.REVIEW_VISIT + 2 * 10 * (1 + priority) * w.TRAVEL_MINUTE
            + w.PRIORITY_DAY * priority * days_waited + misses + w.SESSION_USED)


# --- time of day -------------------------------------------------------------------------------

def test_afternoon_preference_is_kept_on_a_day_free_morning_and_afternoon():
    # Day booking: the nurse is free all day, so the earliest fit (08:30) is what a day book that
    # ignored the preference would give; the patient asked for the afternoon (from 13:00).
    s = scenario([session("nurse", MON, "08:30", "17:00")],
                 [patient("P1", "asthma", first=MON, last=MON, preferred_time="afternoon")])
    plan = solve_checked(s)
    review = only_review(plan)
    assert review.start.time() == dt.time(13, 0)
    assert plan.solver.objective == one_asthma_visit_cost()


def test_afternoon_preference_outweighs_a_day_of_waiting():
    # Objective: Monday has only a morning session, Tuesday only an afternoon one. Waiting a day
    # costs 10 (priority 1); a visit outside the preferred time costs 20. Tuesday wins only
    # because of the preference term.
    s = scenario([session("nurse", MON, "08:30", "12:30"), session("nurse", TUE, "13:00", "17:00")],
                 [patient("P1", "asthma", first=MON, last=TUE, priority=1, preferred_time="afternoon")])
    plan = solve_checked(s)
    review = only_review(plan)
    assert (review.date, review.start.time()) == (dt.date(2027, 3, 23), dt.time(13, 0))
    assert plan.solver.objective == one_asthma_visit_cost(priority=1, days_waited=1)


def test_morning_preference_outweighs_a_day_of_waiting():
    # The mirror image: Monday afternoon only, Tuesday morning only, the patient wants mornings.
    s = scenario([session("nurse", MON, "13:00", "17:00"), session("nurse", TUE, "08:30", "12:30")],
                 [patient("P1", "asthma", first=MON, last=TUE, priority=1, preferred_time="morning")])
    plan = solve_checked(s)
    review = only_review(plan)
    assert (review.date, review.start.time()) == (dt.date(2027, 3, 23), dt.time(8, 30))
    assert plan.solver.objective == one_asthma_visit_cost(priority=1, days_waited=1)


def test_time_of_day_gives_way_when_only_the_other_half_of_the_day_is_free():
    # A preference, not a rule: with mornings only, the afternoon patient is still seen.
    s = scenario([session("nurse", MON, "08:30", "12:30")],
                 [patient("P1", "asthma", first=MON, last=MON, preferred_time="afternoon")])
    plan = solve_checked(s)
    assert not plan.unbooked and only_review(plan).start.time() == dt.time(8, 30)
    assert plan.solver.objective == one_asthma_visit_cost(misses=w.PREFERENCE_MISS)


# --- continuity with the named clinician -------------------------------------------------------

def test_named_clinician_is_chosen_over_an_equally_free_colleague():
    # Day booking: both nurses are free all morning and equally unbooked; without the named
    # clinician the tie goes to "nurse" (alphabetical), so only continuity picks "nurse2".
    s = scenario([session("nurse", TUE), session("nurse2", TUE)],
                 [patient("P1", "asthma", named_clinician_id="nurse2")], clinicians=CLINICIANS)
    plan = solve_checked(s)
    assert only_review(plan).clinician_ids == ["nurse2"]
    assert plan.metrics.continuity_rate == 1.0


def test_named_clinician_later_in_the_morning_beats_a_colleague_free_earlier():
    # Day booking: the earliest fit is 08:30 with "nurse"; the named nurse starts at 10:00. The
    # day book must try the named clinician first rather than take the earliest start.
    s = scenario([session("nurse", TUE, "08:30", "12:30"), session("nurse2", TUE, "10:00", "12:30")],
                 [patient("P1", "asthma", first=TUE, last=TUE, named_clinician_id="nurse2")],
                 clinicians=CLINICIANS)
    plan = solve_checked(s)
    review = only_review(plan)
    assert (review.clinician_ids, review.start.time()) == (["nurse2"], dt.time(10, 0))


def test_named_clinician_outweighs_a_day_of_waiting():
    # Objective: "nurse" works Monday, the named "nurse2" only Tuesday. A day's wait costs 10
    # (priority 1), a review without the named clinician 50: Tuesday wins only by continuity.
    s = scenario([session("nurse", MON), session("nurse2", TUE)],
                 [patient("P1", "asthma", priority=1, named_clinician_id="nurse2")], clinicians=CLINICIANS)
    plan = solve_checked(s)
    review = only_review(plan)
    assert (review.date, review.clinician_ids) == (dt.date(2027, 3, 23), ["nurse2"])
    assert plan.solver.objective == one_asthma_visit_cost(priority=1, days_waited=1)
    assert plan.metrics.continuity_rate == 1.0


def test_no_continuity_wanted_means_no_wait_for_the_named_clinician():
    # The same roster, but the patient does not want continuity: the earlier day is cheaper.
    s = scenario([session("nurse", MON), session("nurse2", TUE)],
                 [patient("P1", "asthma", priority=1, named_clinician_id="nurse2", wants_continuity=False)],
                 clinicians=CLINICIANS)
    plan = solve_checked(s)
    review = only_review(plan)
    assert (review.date, review.clinician_ids) == (dt.date(2027, 3, 22), ["nurse"])
    assert plan.solver.objective == one_asthma_visit_cost(priority=1)


def test_continuity_gives_way_when_the_named_clinician_is_full():
    # The named nurse has room for one 15-minute review; two patients name her. One gets her, the
    # other is still booked, with the colleague: continuity never leaves a review unbooked.
    s = scenario([session("nurse", MON, "08:30", "12:30"), session("nurse2", MON, "08:30", "08:45")],
                 [patient(pid, "asthma", first=MON, last=MON, named_clinician_id="nurse2") for pid in ("P1", "P2")],
                 clinicians=CLINICIANS)
    plan = solve_checked(s)
    assert not plan.unbooked
    assert sorted(only_review(plan, pid).clinician_ids[0] for pid in ("P1", "P2")) == ["nurse", "nurse2"]
    assert plan.metrics.continuity_rate == 0.5
