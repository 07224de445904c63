"""Property: any small valid scenario yields a plan the independent checker accepts."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.domain import WEEKDAYS
from tests.builders import BASE, scenario, session, solve_checked

HORIZON = [dt.date(2027, 3, 22) + dt.timedelta(days=i) for i in range(12)]
TYPES = [t["id"] for t in BASE["review_types"]]
TIMES = ["08:00", "08:30", "09:00", "10:00", "12:00", "13:30", "14:00", "16:00", "18:00"]


@st.composite
def sessions(draw):
    result = []
    for clinician in ("gp", "nurse", "hca"):
        days = draw(st.lists(st.sampled_from(HORIZON), min_size=0, max_size=6, unique=True))
        for day in days:
            start, end = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2, unique=True)))
            result.append(session(clinician, day.isoformat(), start, end,
                                  on_bank_holiday=draw(st.booleans())))
    return result


@st.composite
def patients(draw):
    result = []
    for i in range(draw(st.integers(1, 6))):
        first, last = sorted(draw(st.lists(st.sampled_from(HORIZON), min_size=2, max_size=2)))
        types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True))
        away = []
        if draw(st.booleans()):
            start, end = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2, unique=True)))
            away.append({"weekdays": draw(st.lists(st.sampled_from(WEEKDAYS), max_size=3, unique=True)) or ["mon"],
                         "start": start, "end": end})
        result.append({
            "id": f"P{i}",
            "reachable_sites": [{"site_id": "surgery", "travel_minutes": draw(st.integers(0, 40))}],
            "due_reviews": [{"review_type_id": t, "window_start": first.isoformat(), "window_end": last.isoformat()}
                            for t in types],
            "unavailable": away,
            "priority": draw(st.integers(0, 3)),
            "opt_out_consolidation": draw(st.booleans()),
            "joint_consultation": draw(st.booleans()),
            "named_clinician_id": draw(st.sampled_from([None, "gp", "nurse"])),
            "preferred_time": draw(st.sampled_from(["any", "morning", "afternoon"])),
            "needs": {"extra_time_factor": draw(st.sampled_from([1.0, 1.25, 1.5])),
                      "carer_attending": draw(st.booleans()),
                      "wheelchair": draw(st.booleans())},
        })
    return result


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions(), patients(), st.booleans(), st.sampled_from([0, 10, 30]))
def test_random_scenarios_always_give_checker_valid_plans(roster, people, mdt_room, max_wait):
    rooms = list(BASE["rooms"])
    if mdt_room:
        rooms.append({"id": "mdt", "site_id": "surgery", "capacity_people": 5,
                      "capabilities": ["mdt", "phlebotomy", "wheelchair_access"]})
    s = scenario(
        roster,
        people,
        rooms=rooms,
        visit_rules={"max_wait_minutes": max_wait, "max_visit_minutes": 120},
        solver={"time_limit_seconds": 2, "workers": 1, "seed": 5},
    )
    plan = solve_checked(s)
    assert plan.metrics.reviews_booked + len(plan.unbooked) == plan.metrics.reviews
    assert plan.solver.best_bound <= plan.solver.objective
