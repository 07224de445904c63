"""The before/after comparison (plan.comparison), computed by hand and checked independently.

A four-patient week small enough to work out on paper. Every figure asserted below was computed
by hand from the scenario and the rules in docs/plan-format.md (arithmetic in the comments); the
solver's plan is asserted to have the shape the arithmetic assumes. Saved figures are old way
minus plan: positive when the plan is better.

The old way (scheduler.baselines.old_way): every review its own appointment on its own trip, and
every review with blood markers its own draw, on a trip of its own before the review.
"""

from __future__ import annotations

import functools

import pytest

from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario
from scheduler.plan import Plan
from scheduler.planner import make_plan

WEEK = ("2027-05-10", "2027-05-14")  # Monday to Friday, no bank holiday, all +01:00


def _patient(pid: str, types: list[str], travel: int, **extra) -> dict:
    return {"id": pid, "reachable_sites": [{"site_id": "surgery", "travel_minutes": travel}],
            "due_reviews": [{"review_type_id": t, "window_start": WEEK[0], "window_end": WEEK[1]} for t in types],
            **extra}


SCENARIO = {
    "name": "comparison by hand",
    "horizon_start": WEEK[0],
    "horizon_end": WEEK[1],
    "solver": {"time_limit_seconds": 3, "workers": 1, "seed": 1},
    # No waiting between steps, so a visit lasts exactly the sum of its appointments.
    "visit_rules": {"max_wait_minutes": 0},  # slot 5 min, blood draw 10 min (defaults)
    "sites": [{"id": "surgery", "name": "Surgery", "address": "1 High St, Town, AB1 2CD"}],
    "rooms": [{"id": "room", "site_id": "surgery", "capabilities": ["phlebotomy"]}],
    # One nurse who can do everything, 09:00-17:00 every day: capacity never binds.
    "clinicians": [{"id": "nurse", "role": "practice_nurse", "takes_bloods": True,
                    "review_type_ids": ["htn", "ckd", "dm", "asthma"]}],
    "sessions": [{"clinician_id": "nurse", "date": f"2027-05-{day}", "start": "09:00", "end": "17:00",
                  "site_id": "surgery"} for day in range(10, 15)],
    "blood_markers": [{"id": "ue", "turnaround_working_days": 2}, {"id": "hba1c", "turnaround_working_days": 3}],
    "shared_components": [{"id": "bp", "minutes": 5}, {"id": "meds", "minutes": 10}],
    "review_types": [
        {"id": "htn", "name": "Hypertension", "roles": ["practice_nurse"], "duration_minutes": 20,
         "shared_component_ids": ["bp", "meds"]},
        {"id": "ckd", "name": "CKD", "roles": ["practice_nurse"], "duration_minutes": 20,
         "shared_component_ids": ["bp"], "blood_marker_ids": ["ue"]},
        {"id": "dm", "name": "Diabetes", "roles": ["practice_nurse"], "duration_minutes": 25,
         "shared_component_ids": ["bp", "meds"], "blood_marker_ids": ["hba1c", "ue"]},
        {"id": "asthma", "name": "Asthma", "roles": ["practice_nurse"], "duration_minutes": 15,
         "shared_component_ids": ["meds"]},
    ],
    "patients": [
        _patient("P1", ["htn", "ckd"], 12),
        _patient("P2", ["dm", "htn", "asthma"], 15),
        _patient("P3", ["ckd", "dm"], 20, needs={"extra_time_factor": 1.2}),
        _patient("P4", ["htn", "asthma"], 5, opt_out_consolidation=True),
    ],
}

# Per patient, by hand (minutes; ceil5 = round up to the 5-minute slot):
#
# P1 htn + ckd, travel 12.
#   Plan: one visit: draw [ue] 10 + combined review 20 + 20 - 5 (bp done once) = 35. Span 45.
#         hours: 2*12 + 45 = 69 min. 2 appointments, 1 trip, 1 draw.
#   Old:  draw trip 10, htn 20, ckd 20: 3 appointments, 3 trips, 1 draw.
#         hours: 3*(2*12) + 10 + 20 + 20 = 72 + 50 = 122 min.
#   Clinician minutes saved by combining: (20 + 20) - 35 = 5.
# P2 dm + htn + asthma, travel 15.
#   Plan: one visit: draw [hba1c, ue] 10 + combined review 25 + 20 + 15 - 5 (bp twice: once saved)
#         - 2*10 (meds three times: twice saved) = 35. Span 45. hours: 2*15 + 45 = 75 min.
#         2 appointments, 1 trip, 1 draw.
#   Old:  draw trip 10 (for dm), dm 25, htn 20, asthma 15: 4 appointments, 4 trips, 1 draw.
#         hours: 4*(2*15) + 10 + 25 + 20 + 15 = 120 + 70 = 190 min.
#   Clinician minutes saved: (25 + 20 + 15) - 35 = 25.
# P3 ckd + dm, travel 20, extra time x1.2.
#   Plan: one visit: draw [hba1c, ue] ceil5(10*1.2 = 12) = 15 + combined review
#         ceil5(1.2*(20 + 25 - 5)) = ceil5(48) = 50. Span 65. hours: 2*20 + 65 = 105 min.
#         2 appointments, 1 trip, 1 draw.
#   Old:  ckd's draw trip 15, ckd ceil5(24) = 25, dm's draw trip 15, dm ceil5(30) = 30:
#         4 appointments, 4 trips, 2 draws. hours: 4*(2*20) + 15 + 25 + 15 + 30 = 160 + 85 = 245 min.
#   Clinician minutes saved: each alone ceil5(24) + ceil5(30) = 25 + 30 = 55, together 50: 5.
# P4 htn + asthma, travel 5, opted out: the old way by choice, in the plan too.
#   Plan and old: htn 20 and asthma 15, each its own trip: 2 appointments, 2 trips, 0 draws.
#         hours: 2*(2*5) + 20 + 15 = 55 min. Nothing combined, nothing saved.
#
# Totals              old way                    plan                       saved (old - plan)
#   appointments      3 + 4 + 4 + 2 = 13          2 + 2 + 2 + 2 = 8           13 - 8 = 5
#   trips (visits)    3 + 4 + 4 + 2 = 13          1 + 1 + 1 + 2 = 5           13 - 5 = 8
#   blood draws       1 + 1 + 2 + 0 = 4           1 + 1 + 1 + 0 = 3           4 - 3 = 1
#   patient hours     (122+190+245+55)/60         (69+75+105+55)/60           612/60 - 304/60
#                     = 612/60 = 10.2             = 304/60 = 5.0666...        = 308/60 = 5.1333 -> 5.13
#   clinician minutes saved by combined reviews:  5 + 25 + 5 + 0 = 35
HAND = {
    "appointments_saved": 5,
    "trips_saved": 8,
    "blood_draws_saved": 1,
    "patient_hours_saved": 5.13,
    "clinician_minutes_saved": 35,
}


@functools.cache
def _solved() -> tuple[Scenario, Plan]:
    """The scenario solved for real once; the independent checker must pass it untouched."""
    scenario = Scenario.model_validate(SCENARIO)
    plan = make_plan(scenario)
    report = check_plan(scenario, plan)
    assert report.ok, format_report(report)
    return scenario, plan


def _fresh() -> tuple[Scenario, Plan]:
    scenario, plan = _solved()
    return scenario, plan.model_copy(deep=True)


def test_the_plan_has_the_shape_the_hand_arithmetic_assumes():
    _, plan = _solved()
    shape = {}
    for a in plan.appointments:
        minutes = int((a.end - a.start).total_seconds() // 60)
        step = (a.kind, sorted(a.review_type_ids), sorted(a.blood_marker_ids), minutes)
        shape.setdefault(a.patient_id, []).append(step)
    assert {pid: sorted(steps) for pid, steps in shape.items()} == {
        "P1": [("blood_draw", [], ["ue"], 10), ("review", ["ckd", "htn"], [], 35)],
        "P2": [("blood_draw", [], ["hba1c", "ue"], 10), ("review", ["asthma", "dm", "htn"], [], 35)],
        "P3": [("blood_draw", [], ["hba1c", "ue"], 15), ("review", ["ckd", "dm"], [], 50)],
        "P4": [("review", ["asthma"], [], 15), ("review", ["htn"], [], 20)],
    }
    assert sorted(v.patient_id for v in plan.visits) == ["P1", "P2", "P3", "P4", "P4"]
    assert plan.unbooked == []


def test_both_sides_of_the_comparison_match_the_hand_figures():
    _, plan = _solved()
    old, m = plan.baselines["old_way"], plan.metrics
    assert (old.appointments, old.visits, old.blood_draws, old.draw_trips, old.reviews_booked) == (13, 13, 4, 4, 9)
    assert old.patient_hours == pytest.approx(612 / 60, abs=1e-9)  # 10.2
    assert (m.appointments, m.visits, m.blood_draws, m.draw_trips, m.reviews_booked) == (8, 5, 3, 0, 9)
    assert m.patient_hours == pytest.approx(304 / 60, abs=1e-9)  # 5.0666...
    assert m.patient_wait_minutes == 0


@pytest.mark.parametrize("field", sorted(HAND))
def test_each_comparison_field_is_the_hand_computed_value(field):
    _, plan = _solved()
    assert getattr(plan.comparison, field) == HAND[field]


def test_every_comparison_field_is_covered():
    _, plan = _solved()
    assert set(plan.comparison.model_dump()) == set(HAND)


# --------------------------------------------------------------------------------------------
# The checker recomputes each field: tampering with any one is reported, naming it.

TAMPERED = []
for _field, _value in HAND.items():
    TAMPERED.append(pytest.param(_field, -_value, id=f"{_field}-sign-flipped"))
    _step = 0.01 if isinstance(_value, float) else 1
    TAMPERED.append(pytest.param(_field, _value + _step, id=f"{_field}-one-more"))
    TAMPERED.append(pytest.param(_field, _value - _step, id=f"{_field}-one-less"))
# A figure taken from the wrong field of the old way or of the plan.
TAMPERED += [
    pytest.param("trips_saved", 5, id="trips_saved-is-appointments_saved"),
    pytest.param("appointments_saved", 8, id="appointments_saved-is-trips_saved"),
    pytest.param("blood_draws_saved", 4, id="blood_draws_saved-is-old-way-draws"),
    pytest.param("patient_hours_saved", 10.2, id="patient_hours_saved-is-old-way-hours"),
    # All clinician minutes, old way minus plan: (50 + 70 + 85 + 35) - (45 + 45 + 65 + 35) = 240 - 190
    # = 50, which also counts P3's saved 15-minute draw, not only the combined reviews' 35.
    pytest.param("clinician_minutes_saved", 240 - 190, id="clinician_minutes_saved-is-old-minus-plan-minutes"),
]


@pytest.mark.parametrize(("field", "value"), TAMPERED)
def test_a_tampered_comparison_field_is_reported(field, value):
    scenario, plan = _fresh()
    assert check_plan(scenario, plan).ok  # the untampered plan passes first
    setattr(plan.comparison, field, value)
    report = check_plan(scenario, plan)
    assert [(v.code, v.message.split(" is ")[0]) for v in report.violations] == [
        ("metrics_mismatch", f"comparison.{field}")], format_report(report)


def test_patient_hours_saved_is_given_to_two_decimals():
    scenario, plan = _fresh()
    plan.comparison.patient_hours_saved = 308 / 60  # unrounded 5.1333...: within the rounding
    assert check_plan(scenario, plan).ok
    plan.comparison.patient_hours_saved = 5.14  # 0.0067 away: beyond it
    assert not check_plan(scenario, plan).ok


def test_a_comparison_without_the_old_way_it_is_measured_against_is_reported():
    scenario, plan = _fresh()
    del plan.baselines["old_way"]
    [v] = check_plan(scenario, plan).violations
    assert v.code == "metrics_mismatch" and "old_way" in v.message
    plan.comparison = None  # no comparison claims nothing
    assert check_plan(scenario, plan).ok


@pytest.mark.parametrize(("field", "value", "names"), [
    # One more old-way trip: no longer one trip per appointment, and trips_saved no longer 13 - 5.
    ("visits", 14, ["baselines.old_way has 14 visits", "comparison.trips_saved"]),
    # A draw the old way made on no trip of its own, and that no review accounts for.
    ("blood_draws", 5, ["baselines.old_way has 4 draw trips", "baselines.old_way has 13 appointments",
                        "comparison.blood_draws_saved"]),
    # Figures of another scenario.
    ("patients", 5, ["baselines.old_way.patients"]),
    ("reviews", 10, ["baselines.old_way.reviews"]),
])
def test_the_old_way_figures_keep_their_own_definition(field, value, names):
    scenario, plan = _fresh()
    setattr(plan.baselines["old_way"], field, value)
    report = check_plan(scenario, plan)
    messages = [v.message for v in report.violations]
    assert report.codes() == {"metrics_mismatch"} and len(messages) == len(names), format_report(report)
    assert all(any(m.startswith(n) for m in messages) for n in names), format_report(report)


def test_a_joint_sitting_saves_trips_but_no_clinician_minutes():
    # P5: asthma (nurse only, 15 min) and frailty (GP only, 30 min), joint consultation wanted,
    # travel 10. No single clinician may do both, so the plan sees nurse and GP together:
    # joint sitting max(15, 30) + 10 extra for the second review = 40 min, one trip.
    #   plan:  1 appointment, 1 trip, 0 draws; hours 2*10 + 40 = 60 min.
    #   old:   asthma 15 and frailty 30 on trips of their own: 2 appointments, 2 trips, 0 draws;
    #          hours 2*(2*10) + 15 + 30 = 85 min.
    #   saved: appointments 2 - 1 = 1, trips 2 - 1 = 1, draws 0 - 0 = 0,
    #          hours (85 - 60)/60 = 0.41666 -> 0.42, clinician minutes 0: shared components are
    #          saved only in a combined (one-clinician) review; a joint sitting costs 2 x 40 = 80
    #          clinician minutes against 45 alone, and is not counted as a saving.
    data = {**SCENARIO, "name": "joint sitting by hand"}
    data["rooms"] = [*SCENARIO["rooms"], {"id": "mdt", "site_id": "surgery", "capabilities": ["mdt"]}]
    data["clinicians"] = [*SCENARIO["clinicians"], {"id": "gp", "role": "gp", "review_type_ids": ["frailty"]}]
    data["sessions"] = [*SCENARIO["sessions"], *({**s, "clinician_id": "gp"} for s in SCENARIO["sessions"])]
    data["review_types"] = [*SCENARIO["review_types"],
                            {"id": "frailty", "name": "Frailty", "roles": ["gp"], "duration_minutes": 30}]
    data["patients"] = [_patient("P5", ["asthma", "frailty"], 10, joint_consultation=True)]
    scenario = Scenario.model_validate(data)
    plan = make_plan(scenario)
    report = check_plan(scenario, plan)
    assert report.ok, format_report(report)
    [joint] = plan.appointments
    assert (joint.kind, sorted(joint.clinician_ids), (joint.end - joint.start).total_seconds()) == (
        "joint_review", ["gp", "nurse"], 40 * 60)
    assert plan.comparison.model_dump() == {
        "appointments_saved": 1, "trips_saved": 1, "blood_draws_saved": 0,
        "patient_hours_saved": 0.42, "clinician_minutes_saved": 0}
    plan.comparison.clinician_minutes_saved = 30 + 15 - 40  # as if the joint sitting were a combined review
    assert [v.message.split(" is ")[0] for v in check_plan(scenario, plan).violations] == [
        "comparison.clinician_minutes_saved"]
