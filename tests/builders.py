"""Tiny hand-built scenarios for engine tests, and a solve that always runs the checker."""

from __future__ import annotations

import copy

from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario
from scheduler.plan import Plan
from scheduler.planner import make_plan

# Monday 22 March 2027 to Friday 2 April 2027: Good Friday (26th) and Easter Monday (29th) are
# bank holidays; clocks go forward on Sunday 28th.
BASE: dict = {
    "name": "test",
    "horizon_start": "2027-03-22",
    "horizon_end": "2027-04-02",
    "solver": {"time_limit_seconds": 5, "workers": 1, "seed": 3},
    "sites": [{"id": "surgery", "name": "Surgery", "address": "1 High St, Town, AB1 2CD"}],
    "rooms": [
        {"id": "treatment", "site_id": "surgery", "capabilities": ["phlebotomy"]},
        {"id": "nurse-room", "site_id": "surgery", "capabilities": ["spirometry", "ecg"]},
        {"id": "consult", "site_id": "surgery", "capabilities": ["wheelchair_access"]},
    ],
    "clinicians": [
        {"id": "gp", "role": "gp", "review_type_ids": ["frailty", "hypertension", "diabetes"]},
        {"id": "nurse", "role": "practice_nurse", "takes_bloods": True,
         "review_type_ids": ["asthma", "hypertension", "diabetes", "copd"]},
        {"id": "hca", "role": "hca", "takes_bloods": True},
    ],
    "sessions": [],
    "blood_markers": [
        {"id": "hba1c", "turnaround_working_days": 3},
        {"id": "ue_egfr", "turnaround_working_days": 3},
        {"id": "glucose_fasting", "fasting": True, "turnaround_working_days": 3},
    ],
    "shared_components": [
        {"id": "bp", "minutes": 5},
        {"id": "smoking", "minutes": 2},
    ],
    "review_types": [
        {"id": "asthma", "name": "Asthma review", "roles": ["practice_nurse"], "duration_minutes": 15,
         "shared_component_ids": ["smoking"]},
        {"id": "hypertension", "name": "Hypertension review", "roles": ["practice_nurse", "gp"],
         "duration_minutes": 20, "shared_component_ids": ["bp", "smoking"]},
        {"id": "copd", "name": "COPD review", "roles": ["practice_nurse"], "duration_minutes": 20,
         "room_capabilities": ["spirometry"], "shared_component_ids": ["smoking"]},
        {"id": "diabetes", "name": "Diabetes review", "roles": ["practice_nurse", "gp"],
         "duration_minutes": 25, "blood_marker_ids": ["hba1c", "ue_egfr"],
         "results_before_review": True, "shared_component_ids": ["bp"]},
        {"id": "frailty", "name": "Frailty assessment", "roles": ["gp"], "duration_minutes": 30},
    ],
    "patients": [],
}


def session(clinician: str, date: str, start: str = "08:30", end: str = "12:30", **extra) -> dict:
    return {"clinician_id": clinician, "date": date, "start": start, "end": end, "site_id": "surgery", **extra}


def patient(pid: str, *types: str, first: str = "2027-03-22", last: str = "2027-04-02", **extra) -> dict:
    return {
        "id": pid,
        "reachable_sites": [{"site_id": "surgery", "travel_minutes": 10}],
        "due_reviews": [{"review_type_id": t, "window_start": first, "window_end": last} for t in types],
        **extra,
    }


def scenario(sessions: list[dict], patients: list[dict], **changes) -> Scenario:
    data = copy.deepcopy(BASE)
    data["sessions"] = sessions
    data["patients"] = patients
    for key, value in changes.items():
        data[key] = value
    return Scenario.model_validate(data)


def solve_checked(s: Scenario) -> Plan:
    """Plan, then insist the independent checker finds nothing wrong."""
    plan = make_plan(s)
    report = check_plan(s, plan)
    assert report.ok, format_report(report)
    return plan
