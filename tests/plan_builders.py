"""Hand-built scenario and plan for the checker tests (no optimiser involved).

The scenario is sample_rosters/tutorial.yaml cut down to five patients (P003-P007). The valid plan
below was worked out by hand against docs/plan-format.md; see the comments on each booking.
Bank holidays in the horizon: Good Friday 26 March and Easter Monday 29 March 2027. Clocks go
forward on Sunday 28 March, so bookings up to the 26th are +00:00 and from the 30th +01:00.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pendulum
import yaml

from scheduler.domain import Scenario
from scheduler.plan import Appointment, Metrics, Plan, SolverStats, UnbookedReview, Visit

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "sample_rosters" / "tutorial.yaml"
KEEP = ("P003", "P004", "P005", "P006", "P007")


def load_tutorial() -> Scenario:
    return Scenario.model_validate(yaml.safe_load(TUTORIAL.read_text()))


def base_scenario() -> Scenario:
    s = load_tutorial()
    return s.model_copy(update={"patients": [p for p in s.patients if p.id in KEEP]})


def local(day: str, hm: str) -> dt.datetime:
    """London wall-clock time as a plain aware datetime with a fixed offset (as JSON parses)."""
    d = dt.date.fromisoformat(day)
    h, m = map(int, hm.split(":"))
    p = pendulum.datetime(d.year, d.month, d.day, h, m, tz="Europe/London")
    return dt.datetime(d.year, d.month, d.day, h, m, tzinfo=dt.timezone(p.utcoffset()))


def appt(
    id: str,
    patient: str,
    visit: str,
    kind: str,
    day: str,
    hm: str,
    mins: int,
    room: str,
    clinicians: list[str],
    reviews: list[str] = (),
    markers: list[str] = (),
    site: str = "riverside",
) -> Appointment:
    """An appointment; `reviews` are review type ids, review ids being '<patient>-<type>'."""
    start = local(day, hm)
    return Appointment(
        id=id,
        patient_id=patient,
        visit_id=visit,
        kind=kind,
        date=dt.date.fromisoformat(day),
        start=start,
        end=start + dt.timedelta(minutes=mins),
        site_id=site,
        room_id=room,
        clinician_ids=list(clinicians),
        review_ids=[f"{patient}-{t}" for t in reviews],
        review_type_ids=list(reviews),
        blood_marker_ids=list(markers),
    )


def visit(id: str, purpose: str, appts: list[Appointment]) -> Visit:
    first = min(appts, key=lambda a: a.start)
    last = max(appts, key=lambda a: a.end)
    return Visit(
        id=id,
        patient_id=first.patient_id,
        date=first.date,
        site_id=first.site_id,
        purpose=purpose,
        start=first.start,
        end=last.end,
        appointment_ids=[a.id for a in appts],
    )


# Hand-computed metrics of valid_plan() on base_scenario():
EXPECTED_METRICS = Metrics(
    patients=5,  # P003..P007
    patients_fully_booked=4,  # all but P004 (its diabetes review is unbooked)
    reviews=12,  # 2 + 3 + 2 + 3 + 2 due reviews
    reviews_booked=11,  # 12 minus P004-diabetes
    appointments=11,  # P003 2, P004 2, P005 2, P006 3, P007 2
    visits=7,  # P003 1, P004 1, P005 2 (separate), P006 1, P007 2 (draw trip + visit)
    blood_draws=4,  # P003, P004, P006, P007
    draw_trips=1,  # P007's trip on 22 March
    visits_per_patient=7 / 5,  # every patient has at least one visit
    # Consolidating: P003, P004, P006, P007. Single visit: P003, P006, P007 (its draw trip is
    # allowed); P004 is not fully booked. 3 / 4.
    single_visit_share=0.75,
    # One trip in all (the draw included): P003 and P006; P007's draw trip makes two. 2 / 4.
    one_trip_share=0.5,
    # Only P006 names a clinician (ph-wright, wants continuity): af and smr with ph-wright,
    # hypertension with pn-ellis. 2 / 3.
    continuity_rate=2 / 3,
    # 2 x travel + visit length, minutes: P003 2*8+45=61, P004 2*15+50=80, P005 2*12+20=44 and
    # 2*12+30=54, P006 2*6+75=87, P007 2*20+10=50 and 2*20+35=75. Sum 451 min = 451/60 h.
    patient_hours=451 / 60,
    patient_wait_minutes=5,  # P006: af+smr ends 09:20, hypertension starts 09:25
    # Two or more steps: P003 (draw, review), P004 (draw, joint), P006 (draw, two sittings); P005's
    # two separate visits and P007's draw trip and review visit have one step each.
    multi_step_visits=3,
    wait_minutes_per_multi_step_visit=5 / 3,
    # durations x clinicians: P003 10+35, P004 10+40*2, P005 20+30, P006 10+40+20, P007 10+35
    clinician_minutes=300,
    # Valid sessions: 30 rostered, 240 min each, minus gp-khan on Good Friday 26 March (not
    # flagged) and on 31 March (leave) = 28 * 240 = 6720 min. 300 / 6720.
    clinician_utilisation=300 / 6720,
    # Appointment minutes 45+50+50+70+45 = 260. One site, 5 rooms, open 08:00-18:30 = 630 min,
    # dates with a valid session: 22-25 March and 30 March-2 April = 8 (26th: only gp-khan's
    # unflagged Good Friday session; 29th: none). 260 / (5 * 630 * 8) = 260 / 25200.
    room_utilisation=260 / 25200,
    # Clinician sessions holding a draw or review (joint sittings aside), each in one room:
    # pn-ellis 22, 25 (afternoon), 31 March and 1 April (rs-nurse, rs-nurse, rs-consult1,
    # rs-nurse); hca-osei 22 March, 30 March, 1 April; gp-khan 30 March (P005-smr; the joint
    # sitting with P004 in rs-mdt is left out); ph-wright 1 April (ph-wright's 30 March session
    # holds only the joint sitting). 9 sessions, no change, 1 room each.
    clinician_sessions=9,
    room_changes=0,
    rooms_per_session_mean=1.0,
    # Every patient of base_scenario() has the default contact_preference, calendar only: one
    # invite per visit (7), no SMS or letter.
    messages_calendar=7,
    messages_sms=0,
    messages_letter=0,
)


def valid_plan() -> Plan:
    appointments = [
        # P003 (works 09:00-12:00 weekdays): pn-ellis's Thursday afternoon. Draw 10 min first
        # (ue_egfr, urine_acr for hypertension), then asthma + hypertension combined:
        # 15 + 20 - smoking(2) shared = 33 -> 35 min.
        appt("P003-draw", "P003", "V-P003", "blood_draw", "2027-03-25", "14:00", 10, "rs-nurse",
             ["pn-ellis"], markers=["ue_egfr", "urine_acr"]),
        appt("P003-rev", "P003", "V-P003", "review", "2027-03-25", "14:10", 35, "rs-nurse",
             ["pn-ellis"], reviews=["asthma", "hypertension"]),
        # P004 (wheelchair, joint consultation): Tuesday after the clock change, 09:00 BST =
        # 08:00Z. Draw for heart failure (ue_egfr, fbc) in the wheelchair-accessible nurse room,
        # then a joint MDT review: heart failure (ph-wright) + frailty (gp-khan):
        # max(25, 30) + 10 = 40 min. Diabetes (results before review) is left unbooked.
        appt("P004-draw", "P004", "V-P004", "blood_draw", "2027-03-30", "09:00", 10, "rs-nurse",
             ["hca-osei"], markers=["ue_egfr", "fbc"]),
        appt("P004-joint", "P004", "V-P004", "joint_review", "2027-03-30", "09:10", 40, "rs-mdt",
             ["gp-khan", "ph-wright"], reviews=["heart_failure", "frailty"]),
        # P005 opted out: two separate visits, one review each, no bloods needed.
        appt("P005-copd", "P005", "V-P005-1", "review", "2027-03-22", "08:30", 20, "rs-nurse",
             ["pn-ellis"], reviews=["copd"]),
        appt("P005-smr", "P005", "V-P005-2", "review", "2027-03-30", "11:00", 30, "rs-consult1",
             ["gp-khan"], reviews=["smr"]),
        # P006 (window 29 March - 2 April): one draw for af + hypertension (fbc, lft, ue_egfr,
        # urine_acr), af + smr with the named pharmacist: 15 + 30 - meds_rec(5) = 40 min in the
        # ECG room, then hypertension with pn-ellis after a 5 min wait.
        appt("P006-draw", "P006", "V-P006", "blood_draw", "2027-04-01", "08:30", 10, "rs-treatment",
             ["hca-osei"], markers=["fbc", "lft", "ue_egfr", "urine_acr"]),
        appt("P006-rev", "P006", "V-P006", "review", "2027-04-01", "08:40", 40, "rs-consult2",
             ["ph-wright"], reviews=["af", "smr"]),
        appt("P006-htn", "P006", "V-P006", "review", "2027-04-01", "09:25", 20, "rs-nurse",
             ["pn-ellis"], reviews=["hypertension"]),
        # P007 (dialysis 23 and 25 March): ckd and diabetes need results first (3 working days).
        # Draw trip Monday 22 March -> results by Thursday 25th; review Wednesday 31 March:
        # 20 + 25 - bp(5) - meds_rec(5) = 35 min.
        appt("P007-draw", "P007", "V-P007-1", "blood_draw", "2027-03-22", "08:30", 10, "rs-treatment",
             ["hca-osei"], markers=["hba1c", "lipids", "ue_egfr", "urine_acr"]),
        appt("P007-rev", "P007", "V-P007-2", "review", "2027-03-31", "09:00", 35, "rs-consult1",
             ["pn-ellis"], reviews=["ckd", "diabetes"]),
    ]
    by_id = {a.id: a for a in appointments}

    def v(id: str, purpose: str, *ids: str) -> Visit:
        return visit(id, purpose, [by_id[i] for i in ids])

    visits = [
        v("V-P003", "consolidated", "P003-draw", "P003-rev"),
        v("V-P004", "consolidated", "P004-draw", "P004-joint"),
        v("V-P005-1", "separate", "P005-copd"),
        v("V-P005-2", "separate", "P005-smr"),
        v("V-P006", "consolidated", "P006-draw", "P006-rev", "P006-htn"),
        v("V-P007-1", "blood_draw_trip", "P007-draw"),
        v("V-P007-2", "consolidated", "P007-rev"),
    ]
    unbooked = [
        UnbookedReview(
            patient_id="P004",
            review_id="P004-diabetes",
            review_type_id="diabetes",
            reason="no_blood_draw_before_review",
            detail="No draw trip fits three working days before a joint session.",
        )
    ]
    plan = Plan(
        scenario_name="Tutorial - Riverside Surgery, two weeks",
        appointments=appointments,
        visits=visits,
        unbooked=unbooked,
        metrics=EXPECTED_METRICS,
        solver=SolverStats(
            status="FEASIBLE", method="hand", objective=0, best_bound=0, gap=0.0,
            wall_seconds=0.0, time_limit_seconds=10.0, workers=1, seed=0,
        ),
    )
    # Round-trip through JSON so the tests see exactly what a plan.json file gives.
    return Plan.model_validate_json(plan.model_dump_json())


# ---------------------------------------------------------------------------------------------
# Mutation helpers


def find(plan: Plan, appointment_id: str) -> Appointment:
    return next(a for a in plan.appointments if a.id == appointment_id)


def find_visit(plan: Plan, visit_id: str) -> Visit:
    return next(v for v in plan.visits if v.id == visit_id)


def move(plan: Plan, appointment_id: str, day: str | None = None, hm: str | None = None) -> None:
    """Move an appointment (keeping its length) to a local date and/or time; resync its visit."""
    a = find(plan, appointment_id)
    old_local = pendulum.instance(a.start).in_timezone("Europe/London")
    day = day or old_local.date().isoformat()
    hm = hm or old_local.strftime("%H:%M")
    length = a.end - a.start
    a.start = local(day, hm)
    a.end = a.start + length
    a.date = dt.date.fromisoformat(day)
    resync(plan)


def resync(plan: Plan) -> None:
    """Recompute every visit's date, site, start and end from its appointments."""
    by_id = {a.id: a for a in plan.appointments}
    for v in plan.visits:
        xs = [by_id[i] for i in v.appointment_ids if i in by_id]
        if xs:
            first = min(xs, key=lambda a: a.start)
            v.date, v.site_id, v.start = first.date, first.site_id, first.start
            v.end = max(xs, key=lambda a: a.end).end


def drop(plan: Plan, appointment_id: str) -> None:
    """Remove an appointment, and its visit if that becomes empty."""
    plan.appointments = [a for a in plan.appointments if a.id != appointment_id]
    for v in plan.visits:
        v.appointment_ids = [i for i in v.appointment_ids if i != appointment_id]
    plan.visits = [v for v in plan.visits if v.appointment_ids]
    resync(plan)


def add(plan: Plan, a: Appointment) -> None:
    """Add an appointment to the visit it names."""
    plan.appointments.append(a)
    find_visit(plan, a.visit_id).appointment_ids.append(a.id)
    resync(plan)


def update_patient(s: Scenario, patient_id: str, **changes) -> Scenario:
    patients = [p.model_copy(update=changes) if p.id == patient_id else p for p in s.patients]
    return s.model_copy(update={"patients": patients})
