"""PRODUCT.md's order of goals, each trade shown on a tiny scenario where only it decides.

1. reviews booked (count first; priority only among equal counts), 2. fewest trips,
3. equity, 4. continuity, 5. patient burden, 6. fragmentation. docs/optimiser.md gives the
weights and the exact exchange rates. Every plan goes through the independent checker.
"""

from __future__ import annotations

import datetime as dt

from scheduler.model import objective as w
from scheduler.plan import Plan
from tests.builders import BASE, patient, scenario, session, solve_checked

MON, TUE, THU = "2027-03-22", "2027-03-23", "2027-04-01"  # days 0, 1 and 10 of the horizon
NURSE2 = {"id": "nurse2", "role": "practice_nurse", "review_type_ids": ["hypertension"]}
ROOMS_OFF = {"clinician_room_per_session": "off"}  # only the trade under test decides


def solve(sessions: list[dict], patients: list[dict]) -> Plan:
    """Solve with a second nurse in the roster and check the plan."""
    plan = solve_checked(scenario(sessions, patients, clinicians=[*BASE["clinicians"], NURSE2],
                                  visit_rules=ROOMS_OFF))
    assert plan.solver.best_bound <= plan.solver.objective
    return plan


def booked(plan: Plan) -> dict[str, list]:
    """Review appointments by patient."""
    out: dict[str, list] = {}
    for a in plan.appointments:
        if a.kind != "blood_draw":
            out.setdefault(a.patient_id, []).append(a)
    return out


def test_the_count_of_reviews_booked_comes_before_priority():
    # The GP has 40 minutes. A priority-3 patient's frailty review (30 min) or two routine
    # hypertension reviews (20 min each) fit, not both. Two reviews beat one of any priority.
    # (With the old weight, 100,000 x (1 + priority), the priority-3 review was worth four
    # routine ones and took the session.)
    plan = solve([session("gp", MON, "08:30", "09:10")],
                  [patient("URGENT", "frailty", priority=3), patient("R1", "hypertension"),
                   patient("R2", "hypertension")])
    assert plan.metrics.reviews_booked == 2
    assert sorted(booked(plan)) == ["R1", "R2"]
    assert [u.patient_id for u in plan.unbooked] == ["URGENT"]


def test_among_equal_counts_priority_decides():
    plan = solve([session("nurse", MON, "08:30", "08:50")],
                 [patient("ROUTINE", "hypertension"), patient("URGENT", "hypertension", priority=3)])
    assert list(booked(plan)) == ["URGENT"]
    assert w.unbooked_weight(3) - w.unbooked_weight(0) == 3 * w.UNBOOKED_PRIORITY


def test_fewer_trips_beat_equity():
    # A priority-3 patient: asthma (nurse, Monday or Thursday 1 April) and frailty (GP, Thursday
    # only). Asthma on Monday saves 10 days x 10 x 3 = 300 of waiting (equity), but costs a
    # second trip (1,000 + 300 + travel): one visit on Thursday.
    plan = solve([session("nurse", MON), session("nurse", THU), session("gp", THU)],
                 [patient("P1", "asthma", "frailty", priority=3)])
    reviews = booked(plan)["P1"]
    assert len(reviews) == 2 and {a.date for a in reviews} == {dt.date(2027, 4, 1)}
    assert plan.metrics.visits == 1


def test_equity_beats_continuity():
    # nurse2 has one 20-minute slot on Monday; the nurse works on Thursday 1 April. A routine
    # patient wants nurse2 (continuity); a priority-3 patient would wait 10 days for Thursday
    # (10 x 3 x 10 = 300) if the routine one kept nurse2 (a miss costs 50). Equity first: the
    # priority patient is seen on Monday, the routine one on Thursday by the other nurse.
    plan = solve([session("nurse2", MON, "08:30", "08:50"), session("nurse", THU)],
                 [patient("ROUTINE", "hypertension", named_clinician_id="nurse2"),
                  patient("URGENT", "hypertension", priority=3)])
    reviews = booked(plan)
    assert reviews["URGENT"][0].date == dt.date(2027, 3, 22) and reviews["URGENT"][0].clinician_ids == ["nurse2"]
    assert reviews["ROUTINE"][0].clinician_ids == ["nurse"]
    assert plan.metrics.continuity_rate == 0.0


def test_continuity_beats_patient_burden():
    # The patient prefers mornings; the named nurse2 works on Monday afternoon, the other nurse
    # on Tuesday morning. Keeping nurse2 misses the preferred time (20); Tuesday morning misses
    # continuity (50). Continuity first. (Different days, so the choice is the objective's, not
    # the day book's habit of trying the named clinician first on a day.)
    plan = solve([session("nurse2", MON, "13:30", "17:30"), session("nurse", TUE, "08:30", "12:30")],
                 [patient("P1", "hypertension", named_clinician_id="nurse2", preferred_time="morning")])
    [review] = booked(plan)["P1"]
    assert review.clinician_ids == ["nurse2"] and review.start.hour >= 13
    assert plan.metrics.continuity_rate == 1.0


def test_patient_burden_beats_fragmentation():
    # A prefers afternoons, B mornings; the nurse works on Monday morning, nurse2 on Tuesday
    # afternoon. Both with the nurse on Monday uses one session but misses A's preferred time
    # (20); A with nurse2 on Tuesday afternoon opens a second session (5). Burden first.
    plan = solve([session("nurse", MON, "08:30", "12:30"), session("nurse2", TUE, "13:30", "17:30")],
                 [patient("A", "hypertension", preferred_time="afternoon"),
                  patient("B", "hypertension", preferred_time="morning")])
    reviews = booked(plan)
    assert reviews["A"][0].clinician_ids == ["nurse2"] and reviews["A"][0].start.hour >= 13
    assert reviews["B"][0].clinician_ids == ["nurse"] and reviews["B"][0].start.hour < 12
