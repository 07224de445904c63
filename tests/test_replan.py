"""Re-planning with the fewest changes (issue 14), on small scenarios whose answers can be
checked by hand: which visits a disruption touches, what must stay, what may move.

Every plan the engine returns here goes through the independent checker against the scenario
version it belongs to; what changed is read with the independent diff (scheduler.diff).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from scheduler.check import check_plan, format_report
from scheduler.diff import diff_plans
from scheduler.disruptions import DisruptionError, disruptions_from_data
from scheduler.domain import Scenario, SolverSettings
from scheduler.plan import Plan
from scheduler.planner import make_plan
from scheduler.replan import FREEZE_WORKING_DAYS, freeze_until, prepare, replan
from tests.builders import patient, scenario, session

LONDON = ZoneInfo("Europe/London")
SETTINGS = SolverSettings(time_limit_seconds=3, workers=1, seed=5)
EARLY = dt.datetime(2027, 3, 15, 8, 0)  # a week before the horizon: no freeze inside it
WEEK = ["2027-03-22", "2027-03-23", "2027-03-24", "2027-03-25"]


def checked(s: Scenario, plan: Plan) -> Plan:
    report = check_plan(s, plan)
    assert report.ok, format_report(report)
    return plan


def first_plan(s: Scenario) -> Plan:
    return checked(s, make_plan(s, SETTINGS))


def replanned(s: Scenario, plan: Plan, entries: list[dict], as_of: dt.datetime = EARLY, references=None):
    prepared = prepare(s, plan, disruptions_from_data(entries, "disruptions.yaml"), as_of=as_of,
                       references=references)
    new = replan(prepared, plan, SETTINGS)
    return prepared, checked(prepared.scenario, new)


def busy_week() -> Scenario:
    """A nurse and a GP every morning Monday to Thursday and on Tuesday and Wednesday of the
    next week; eight patients of one or two reviews, whose windows open on different days of
    the first week and who wait at a cost (priority 1), so that each of its days holds visits."""
    sessions = [session(c, d) for d in (*WEEK, "2027-03-30", "2027-03-31") for c in ("nurse", "gp")]
    opens = dict(zip(range(1, 9), [WEEK[0], WEEK[0], WEEK[1], WEEK[1], WEEK[2], WEEK[2], WEEK[3], WEEK[3]]))
    patients = [patient(f"P{i}", "hypertension", first=opens[i], priority=1) for i in range(1, 5)]
    patients += [patient(f"P{i}", "asthma", "copd", first=opens[i], priority=1) for i in range(5, 8)]
    patients += [patient("P8", "frailty", "hypertension", first=opens[8], priority=1)]
    return scenario(sessions, patients)


def visits_with(plan: Plan, clinician: str, start: dt.datetime, end: dt.datetime) -> set[str]:
    start, end = start.replace(tzinfo=LONDON), end.replace(tzinfo=LONDON)
    return {a.visit_id for a in plan.appointments
            if clinician in a.clinician_ids and a.start < end and start < a.end}


def changed_visits(old: Plan, new: Plan) -> dict[str, list[str]]:
    """Old visit id -> reason codes, for every visit of `old` moved or cancelled."""
    found = {}
    for patient_change in diff_plans(old, new).patients:
        for v in patient_change.visits:
            if v.change in ("moved", "cancelled"):
                found[v.old_visit_id] = [r.code for r in v.reasons]
    return found


# --- the fewest changes -----------------------------------------------------------------------

@pytest.mark.parametrize("clinician,day", [("nurse", "2027-03-23"), ("gp", "2027-03-23"), ("nurse", "2027-03-24"), ("gp", "2027-03-25")])
def test_an_absence_moves_exactly_the_visits_it_touches(clinician, day):
    s = busy_week()
    plan = first_plan(s)
    start = dt.datetime.fromisoformat(day)
    end = start + dt.timedelta(days=1)
    touched = visits_with(plan, clinician, start, end)
    assert touched, f"{clinician} has visits on {day}"
    prepared, new = replanned(s, plan, [{"kind": "clinician_absence", "clinician": clinician,
                                         "start": start.isoformat(), "end": end.isoformat()}])
    changed = changed_visits(plan, new)
    assert set(changed) == touched  # every touched visit moved, and no other
    assert all(codes[0] == "clinician_absence" for codes in changed.values())
    assert new.metrics.reviews_booked == plan.metrics.reviews_booked  # three other mornings have room
    assert not visits_with(new, clinician, start, end)
    assert new.replan is not None and new.replan.disruptions[0]["clinician"] == clinician
    # the absence is in the new scenario version: the clinician's sessions that day are gone
    assert not [x for x in prepared.scenario.sessions if x.clinician_id == clinician and x.date.isoformat() == day]


def test_a_part_day_absence_keeps_the_rest_of_the_session():
    s = busy_week()
    plan = first_plan(s)
    start, end = dt.datetime(2027, 3, 23, 10, 0), dt.datetime(2027, 3, 23, 11, 0)
    prepared, new = replanned(s, plan, [{"kind": "clinician_absence", "clinician": "nurse",
                                         "start": start.isoformat(), "end": end.isoformat()}])
    pieces = sorted((x.start, x.end) for x in prepared.scenario.sessions
                    if x.clinician_id == "nurse" and x.date == dt.date(2027, 3, 23))
    assert pieces == [(dt.time(8, 30), dt.time(10, 0)), (dt.time(11, 0), dt.time(12, 30))]
    assert set(changed_visits(plan, new)) == visits_with(plan, "nurse", start, end)


def test_a_moved_visit_stays_on_its_day_when_it_can():
    s = busy_week()
    plan = first_plan(s)
    visit = next(v for v in plan.visits if v.patient_id == "P2")  # the nurse at 08:30 on Monday
    start = visit.start.astimezone(LONDON).replace(tzinfo=None)
    _, new = replanned(s, plan, [{"kind": "clinician_absence", "clinician": "nurse", "start": start.isoformat(),
                                  "end": (start + dt.timedelta(minutes=30)).isoformat()}])
    assert set(changed_visits(plan, new)) == {visit.id}
    (again,) = [v for v in new.visits if v.patient_id == "P2"]
    assert again.date == visit.date and again.start != visit.start


def test_a_room_closure_moves_only_what_was_in_that_room_then():
    s = busy_week()
    plan = first_plan(s)
    used = next(a for a in plan.appointments if a.date == dt.date(2027, 3, 24))
    start, end = dt.datetime(2027, 3, 24, 0, 0), dt.datetime(2027, 3, 25, 0, 0)
    touched = {a.visit_id for a in plan.appointments if a.room_id == used.room_id and a.date == dt.date(2027, 3, 24)}
    prepared, new = replanned(s, plan, [{"kind": "room_closure", "room": used.room_id,
                                         "start": start.isoformat(), "end": end.isoformat(), "reason": "leak"}])
    assert not [a for a in new.appointments if a.room_id == used.room_id and a.date == dt.date(2027, 3, 24)]
    changed = changed_visits(plan, new)
    assert touched <= set(changed)
    # Under the hard room rule a session whose room is closed moves to another room whole, so
    # the visits of those sessions may change room too; nothing on another day moves.
    sessions = {(c, a.date) for a in plan.appointments if a.visit_id in touched for c in a.clinician_ids}
    for visit_id in set(changed) - touched:
        appointments = [a for a in plan.appointments if a.visit_id == visit_id]
        assert any((c, a.date) in sessions for a in appointments for c in a.clinician_ids), visit_id
    assert prepared.scenario.closures[0].room_id == used.room_id


# --- the freeze window ---------------------------------------------------------------------------

@pytest.mark.hazard("HAZ-011")
def test_the_freeze_window_is_the_rest_of_the_day_and_the_next_two_working_days():
    assert FREEZE_WORKING_DAYS == 2
    monday = dt.datetime(2027, 3, 22, 9, 0, tzinfo=LONDON)
    assert freeze_until(monday) == dt.datetime(2027, 3, 25, 0, 0, tzinfo=LONDON)
    thursday = dt.datetime(2027, 3, 25, 9, 0, tzinfo=LONDON)  # Good Friday and Easter Monday are not working days
    assert freeze_until(thursday) == dt.datetime(2027, 4, 1, 0, 0, tzinfo=LONDON)  # Tue 30 and Wed 31


@pytest.mark.hazard("HAZ-011")
def test_inside_the_freeze_window_only_what_cannot_stand_moves_and_the_reason_says_so():
    s = busy_week()
    plan = first_plan(s)
    as_of = dt.datetime(2027, 3, 22, 7, 0)  # freeze until Thursday 00:00
    frozen_end = dt.datetime(2027, 3, 25, 0, 0, tzinfo=LONDON)
    start, end = dt.datetime(2027, 3, 23, 0, 0), dt.datetime(2027, 3, 24, 0, 0)
    touched = visits_with(plan, "nurse", start, end)
    assert touched, "the nurse has visits on Tuesday"
    _, new = replanned(s, plan, [{"kind": "clinician_absence", "clinician": "nurse",
                                  "start": start.isoformat(), "end": end.isoformat()}], as_of=as_of)
    changed = changed_visits(plan, new)
    assert set(changed) == touched
    assert all("freeze_window" in codes for codes in changed.values())
    old_ids = {v.id for v in plan.visits}
    for v in new.visits:
        if v.start < frozen_end:
            assert v.id in old_ids  # nothing new inside the freeze window
    kept = {v.id: v for v in plan.visits if v.start < frozen_end and v.id not in touched}
    now = {v.id: v for v in new.visits}
    for visit_id, v in kept.items():
        assert now[visit_id] == v


@pytest.mark.hazard("HAZ-011")
def test_capacity_freed_inside_the_freeze_window_is_not_given_to_someone_new():
    sessions = [session("nurse", "2027-03-23", "08:30", "09:30"), session("nurse", "2027-03-30", "08:30", "09:30")]
    patients = [patient(f"P{i}", "hypertension") for i in range(1, 8)]
    s = scenario(sessions, patients)
    plan = first_plan(s)
    assert plan.metrics.reviews_booked == 6 and len(plan.unbooked) == 1
    tuesday = next(v for v in plan.visits if v.date == dt.date(2027, 3, 23))
    _, new = replanned(s, plan, [{"kind": "patient_cancelled", "patient": tuesday.patient_id, "rebook": False}],
                       as_of=dt.datetime(2027, 3, 22, 9, 0))
    assert not [v for v in new.visits if v.date == dt.date(2027, 3, 23) and v.id not in {x.id for x in plan.visits}]
    assert len(new.unbooked) == 1  # the slot on Tuesday is inside the freeze; next week is full


# --- cancelled, did not attend, added ------------------------------------------------------------

def test_a_cancelled_patients_capacity_goes_to_a_waiting_patient():
    sessions = [session("nurse", "2027-03-30", "08:30", "09:30")]
    patients = [patient(f"P{i}", "hypertension") for i in range(1, 5)]
    s = scenario(sessions, patients)
    plan = first_plan(s)
    (waiting,) = plan.unbooked
    leaving = plan.visits[0].patient_id
    prepared, new = replanned(s, plan, [{"kind": "patient_cancelled", "patient": leaving, "rebook": False}])
    assert leaving not in {p.id for p in prepared.scenario.patients}
    assert not new.unbooked and waiting.patient_id in {v.patient_id for v in new.visits}
    diff = diff_plans(plan, new)
    waited = next(p for p in diff.patients if p.patient_id == waiting.patient_id)
    assert waited.status == "newly_booked" and waited.visits[0].reasons[0].code == "freed_capacity"
    assert changed_visits(plan, new) == {plan.visits[0].id: ["patient_cancelled"]}


def test_a_patient_who_cancels_and_wants_rebooking_gets_another_day():
    s = busy_week()
    plan = first_plan(s)
    visit = plan.visits[-1]
    _, new = replanned(s, plan, [{"kind": "patient_cancelled", "patient": visit.patient_id, "rebook": True}])
    mine = [v for v in new.visits if v.patient_id == visit.patient_id]
    assert mine and all(v.date != visit.date for v in mine)
    assert set(changed_visits(plan, new)) == {v.id for v in plan.visits if v.patient_id == visit.patient_id}


def test_a_patient_who_did_not_attend_is_rebooked_after_the_freeze_with_raised_priority():
    sessions = [session(c, d) for d in ("2027-03-22", "2027-03-23", "2027-03-30", "2027-03-31") for c in ("nurse", "gp")]
    s = scenario(sessions, [patient("P1", "hypertension", last="2027-03-23"), patient("P2", "asthma")])
    plan = first_plan(s)
    missed = next(v for v in plan.visits if v.patient_id == "P1")
    as_of = dt.datetime.combine(missed.date + dt.timedelta(days=1), dt.time(12, 0))
    prepared, new = replanned(s, plan, [{"kind": "patient_did_not_attend", "patient": "P1",
                                         "date": missed.date.isoformat()}], as_of=as_of)
    p1 = next(p for p in prepared.scenario.patients if p.id == "P1")
    assert p1.priority == 1 and p1.due_reviews[0].window_end == s.horizon_end  # due again, to the horizon's end
    again = [v for v in new.visits if v.patient_id == "P1"]
    assert len(again) == 1 and again[0].start >= freeze_until(as_of.replace(tzinfo=LONDON))
    assert changed_visits(plan, new)[missed.id][0] == "patient_did_not_attend"


def test_an_urgent_patient_is_fitted_in_without_moving_anyone():
    s = busy_week()
    plan = first_plan(s)
    urgent = patient("P9", "hypertension", priority=3)
    _, new = replanned(s, plan, [{"kind": "patient_added", "patient": urgent}])
    assert "P9" in {v.patient_id for v in new.visits}
    assert changed_visits(plan, new) == {}


def test_a_visit_that_stands_moves_only_when_that_books_someone_who_would_go_without():
    days = ("2027-03-30", "2027-03-31", "2027-04-01")
    sessions = [session("nurse", d, "09:00", "09:20") for d in days]  # one hypertension review a day
    s = scenario(sessions, [patient("X", "hypertension", first=days[0], last=days[1]),
                            patient("Y", "hypertension", first=days[1], last=days[2], priority=1)])
    plan = first_plan(s)
    on = {v.patient_id: v.date.isoformat() for v in plan.visits}
    assert on == {"X": days[0], "Y": days[1]}  # Y as early as it can, X the day before
    _, new = replanned(s, plan, [{"kind": "clinician_absence", "clinician": "nurse",
                                  "start": f"{days[0]}T00:00:00", "end": f"{days[1]}T00:00:00"}])
    assert {v.patient_id: v.date.isoformat() for v in new.visits} == {"X": days[1], "Y": days[2]}
    changed = changed_visits(plan, new)
    y = next(v.id for v in plan.visits if v.patient_id == "Y")
    assert changed[y] == ["made_room"] and len(changed) == 2


# --- the manager's own decisions ----------------------------------------------------------------

def test_a_pinned_booking_never_moves_even_when_its_patient_is_placed_again():
    sessions = [session(c, d) for d in WEEK for c in ("nurse", "gp", "hca")]
    s = scenario(sessions, [patient("P1", "diabetes"), patient("P2", "hypertension"), patient("P3", "asthma")])
    plan = first_plan(s)
    draw = next(a for a in plan.appointments if a.patient_id == "P1" and a.kind == "blood_draw")
    review = next(a for a in plan.appointments if a.patient_id == "P1" and a.kind == "review")
    assert draw.visit_id != review.visit_id  # results first: a draw trip, then the review
    _, new = replanned(s, plan, [
        {"kind": "booking_pinned", "appointment": draw.id},
        {"kind": "clinician_absence", "clinician": review.clinician_ids[0],
         "start": f"{review.date}T00:00:00", "end": f"{review.date + dt.timedelta(days=1)}T00:00:00"}])
    assert next(a for a in new.appointments if a.id == draw.id) == draw
    again = next(a for a in new.appointments if a.id == review.id)
    assert review.clinician_ids[0] not in again.clinician_ids or again.date != review.date  # it had to move
    assert new.replan.targets == {"1": [draw.id]}


def test_a_pinned_booking_that_cannot_stand_is_refused_with_the_reason():
    s = busy_week()
    plan = first_plan(s)
    a = next(a for a in plan.appointments if "nurse" in a.clinician_ids)
    with pytest.raises(DisruptionError) as refused:
        prepare(s, plan, disruptions_from_data([
            {"kind": "booking_pinned", "appointment": a.id},
            {"kind": "clinician_absence", "clinician": "nurse", "start": f"{a.date}T00:00:00",
             "end": f"{a.date + dt.timedelta(days=1)}T00:00:00"}], "d.yaml"), as_of=EARLY)
    (problem,) = refused.value.problems
    assert problem.location == "entry 1 (booking_pinned): appointment"
    assert "cannot stand: clinician_not_rostered" in problem.message


def _free_start(plan: Plan, clinician: str, day: dt.date) -> dt.time:
    """A start on `day` at least an hour clear of the clinician's other appointments."""
    busy = [(a.start.astimezone(LONDON).time(), a.end.astimezone(LONDON).time()) for a in plan.appointments
            if clinician in a.clinician_ids and a.date == day]
    for hour in (11, 10, 9):
        start, end = dt.time(hour, 0), dt.time(hour + 1, 0)
        if all(e <= start or end <= s for s, e in busy):
            return start
    raise AssertionError("no free hour")


def test_a_valid_manual_move_is_honoured_exactly():
    s = busy_week()
    plan = first_plan(s)
    visit = next(v for v in plan.visits if len(v.appointment_ids) == 1)
    a = next(x for x in plan.appointments if x.id == visit.appointment_ids[0])
    target = next(d for d in (dt.date(2027, 3, 25), dt.date(2027, 3, 24)) if d != a.date)
    start = _free_start(plan, a.clinician_ids[0], target)
    _, new = replanned(s, plan, [{"kind": "booking_moved", "reference": "OV-MOVE01", "date": target.isoformat(),
                                  "start": start.strftime("%H:%M")}], references={"OV-MOVE01": visit.id})
    moved = next(x for x in new.appointments if x.id == a.id)
    assert moved.date == target and moved.start.astimezone(LONDON).time() == start
    assert moved.clinician_ids == a.clinician_ids and moved.room_id == a.room_id
    changed = changed_visits(plan, new)
    assert changed == {visit.id: ["booking_moved"]}


@pytest.mark.parametrize("how,rule", [("onto_another", "clinician_double_booked"),
                                       ("no_session", "clinician_not_rostered"),
                                       ("bad_clinician", "role_not_allowed")])
def test_an_invalid_manual_move_is_refused_with_the_rule_it_breaks(how, rule):
    s = busy_week()
    plan = first_plan(s)
    nurse = [a for a in plan.appointments if a.clinician_ids == ["nurse"] and a.kind == "review"]
    a, other = nurse[0], next(x for x in nurse if x.visit_id != nurse[0].visit_id)
    entry = {"kind": "booking_moved", "appointment": a.id}
    if how == "onto_another":
        entry |= {"date": other.date.isoformat(), "start": other.start.astimezone(LONDON).strftime("%H:%M")}
    elif how == "no_session":
        entry |= {"date": "2027-04-01", "start": "09:00"}  # nobody works on Thursday next week
    else:
        entry |= {"date": a.date.isoformat(), "start": a.start.astimezone(LONDON).strftime("%H:%M"), "clinician": "hca"}
    with pytest.raises(DisruptionError) as refused:
        prepare(s, plan, disruptions_from_data([entry], "d.yaml"), as_of=EARLY)
    (problem,) = refused.value.problems
    assert problem.location.startswith("entry 1 (booking_moved): ")
    assert f"breaks {rule}" in problem.message


# --- repeated re-plans --------------------------------------------------------------------------

def test_repeated_replans_keep_appointment_and_visit_ids_and_chain_scenario_versions():
    s = busy_week()
    plan = first_plan(s)
    first, second = replanned(s, plan, [{"kind": "clinician_absence", "clinician": "gp",
                                         "start": "2027-03-23T00:00:00", "end": "2027-03-24T00:00:00"}])
    _, third = replanned(first.scenario, second, [{"kind": "clinician_absence", "clinician": "nurse",
                                                   "start": "2027-03-25T00:00:00", "end": "2027-03-26T00:00:00"}])
    for old, new in ((plan, second), (second, third)):
        assert {a.id for a in old.appointments} == {a.id for a in new.appointments}  # same steps, same ids
        assert {v.id for v in old.visits} == {v.id for v in new.visits}
    # the second re-plan starts from the first's scenario version: the GP is still away on Tuesday
    assert not visits_with(third, "gp", dt.datetime(2027, 3, 23), dt.datetime(2027, 3, 24))
    assert set(changed_visits(second, third)) == visits_with(second, "nurse", dt.datetime(2027, 3, 25),
                                                               dt.datetime(2027, 3, 26))


# --- refused disruptions -------------------------------------------------------------------------

def test_bad_disruptions_are_refused_naming_each_entry_and_field():
    s = busy_week()
    plan = first_plan(s)
    entries = [
        {"kind": "clinician_absence", "clinician": "nures", "start": "2027-03-23T00:00:00", "end": "2027-03-24T00:00:00"},
        {"kind": "clinician_absence", "clinician": "nurse", "start": "2027-04-02T00:00:00", "end": "2027-04-06T00:00:00"},
        {"kind": "room_closure", "room": "consult", "start": "2027-03-24T00:00:00", "end": "2027-03-25T00:00:00"},
        {"kind": "room_closure", "room": "consult", "start": "2027-03-24T12:00:00", "end": "2027-03-24T13:00:00"},
        {"kind": "session_removed", "session": session("gp", "2027-04-01")},
        {"kind": "patient_did_not_attend", "patient": "P1", "date": "2027-04-01"},
        {"kind": "booking_pinned", "reference": "OV-NOSUCH"},
    ]
    with pytest.raises(DisruptionError) as refused:
        prepare(s, plan, disruptions_from_data(entries, "d.yaml"), as_of=EARLY)
    said = {p.location: p.message for p in refused.value.problems}
    assert "unknown clinician 'nures'" in said["entry 1 (clinician_absence): clinician"]
    assert "did you mean" in said["entry 1 (clinician_absence): clinician"]
    assert "outside the plan's horizon" in said["entry 2 (clinician_absence): end"]
    assert "already closed" in said["entry 4 (room_closure): room"] and "entry 3" in said["entry 4 (room_closure): room"]
    assert "no session of gp on 2027-04-01" in said["entry 5 (session_removed): session"]
    assert "no visit on 2027-04-01" in said["entry 6 (patient_did_not_attend): date"]
    assert "not a booking reference" in said["entry 7 (booking_pinned): reference"]
    assert len(said) == 6  # entry 3 is sound


def test_an_added_patients_problems_name_the_entry():
    s = busy_week()
    plan = first_plan(s)
    bad = patient("P9", "hypertensoin")
    with pytest.raises(DisruptionError) as refused:
        prepare(s, plan, disruptions_from_data([{"kind": "patient_added", "patient": bad}], "d.yaml"), as_of=EARLY)
    (problem,) = refused.value.problems
    assert problem.location.startswith("entry 1 (patient_added): patient.due_reviews[0]")
    assert "hypertensoin" in problem.message


def test_a_did_not_attend_after_as_of_is_refused():
    s = busy_week()
    plan = first_plan(s)
    visit = plan.visits[0]
    entry = {"kind": "patient_did_not_attend", "patient": visit.patient_id, "date": visit.date.isoformat()}
    with pytest.raises(DisruptionError) as refused:
        prepare(s, plan, disruptions_from_data([entry], "d.yaml"), as_of=EARLY)
    assert refused.value.problems[0].location == "entry 1 (patient_did_not_attend): date"


def test_field_problems_are_named_by_entry_before_anything_is_applied():
    with pytest.raises(DisruptionError) as refused:
        disruptions_from_data([
            {"kind": "clinician_absence", "clinician": "nurse", "start": "2027-03-24T00:00:00", "end": "2027-03-23T00:00:00"},
            {"kind": "room_closure", "room": "consult", "start": "tomorrow", "end": "2027-03-24T00:00:00"},
            {"kind": "booking_moved", "reference": "OV-ABCDEF", "appointment": "ap-1", "date": "2027-03-24", "start": "09:00"},
            {"kind": "volcano"},
            "not a mapping",
        ], "d.yaml")
    said = [str(p) for p in refused.value.problems]
    assert said[0].startswith("d.yaml: entry 1 (clinician_absence): ") and "must be after start" in said[0]
    assert said[1].startswith("d.yaml: entry 2 (room_closure): start: ")
    assert "exactly one of reference" in said[2]
    assert "'volcano' is not a kind of disruption" in said[3]
    assert said[4] == "d.yaml: entry 5: expected a mapping with a 'kind'"


def test_the_checker_refuses_a_booking_in_a_closed_room():
    s = busy_week()
    plan = first_plan(s)
    a = plan.appointments[0]
    local = a.start.astimezone(LONDON).replace(tzinfo=None)
    closed = Scenario.model_validate({**s.model_dump(), "closures": [
        {"room_id": a.room_id, "start": local, "end": local + dt.timedelta(minutes=5)}]})
    codes = {(v.code, v.appointment_id) for v in check_plan(closed, plan).violations}
    assert ("room_closed", a.id) in codes


def test_a_kept_draw_trip_whose_review_can_no_longer_follow_it_goes_too():
    sessions = [session("hca", "2027-03-22"), session("nurse", "2027-03-25")]
    s = scenario(sessions, [patient("P1", "diabetes")])
    plan = first_plan(s)
    kinds = {(a.kind, a.date.isoformat()) for a in plan.appointments}
    assert kinds == {("blood_draw", "2027-03-22"), ("review", "2027-03-25")}  # results first: three working days
    _, new = replanned(s, plan, [{"kind": "clinician_absence", "clinician": "nurse", "start": "2027-03-25T00:00:00",
                                  "end": "2027-03-26T00:00:00"}], as_of=dt.datetime(2027, 3, 22, 7, 0))
    # The draw is inside the freeze window, but with no review after it, it cannot stand either.
    assert not new.appointments and [u.review_id for u in new.unbooked] == ["P1-diabetes"]
    changed = changed_visits(plan, new)
    draw_trip = next(v.id for v in plan.visits if v.date == dt.date(2027, 3, 22))
    assert set(changed) == {v.id for v in plan.visits} and "freeze_window" in changed[draw_trip]


def test_entries_apply_in_file_order():
    s = busy_week()
    plan = first_plan(s)
    gp_monday = session("gp", "2027-03-22")
    with pytest.raises(DisruptionError) as refused:
        prepare(s, plan, disruptions_from_data([
            {"kind": "session_removed", "session": gp_monday},
            {"kind": "session_removed", "session": gp_monday}], "d.yaml"), as_of=EARLY)
    assert [p.location for p in refused.value.problems] == ["entry 2 (session_removed): session"]
    prepared = prepare(s, plan, disruptions_from_data([
        {"kind": "patient_added", "patient": patient("P9", "hypertension", "asthma")},
        {"kind": "review_removed", "patient": "P9", "review_type": "asthma"}], "d.yaml"), as_of=EARLY)
    (p9,) = [p for p in prepared.scenario.patients if p.id == "P9"]
    assert [d.review_type_id for d in p9.due_reviews] == ["hypertension"]


def test_closing_a_site_whose_room_is_closed_then_is_closing_it_twice():
    s = busy_week()
    plan = first_plan(s)
    with pytest.raises(DisruptionError) as refused:
        prepare(s, plan, disruptions_from_data([
            {"kind": "room_closure", "room": "consult", "start": "2027-03-24T09:00:00", "end": "2027-03-24T10:00:00"},
            {"kind": "site_closure", "site": "surgery", "start": "2027-03-24T00:00:00", "end": "2027-03-25T00:00:00"}],
            "d.yaml"), as_of=EARLY)
    assert [p.location for p in refused.value.problems] == ["entry 2 (site_closure): site"]


def test_a_manual_move_into_the_past_is_refused_and_one_inside_the_freeze_is_the_managers_choice():
    s = busy_week()
    plan = first_plan(s)
    a = next(x for x in plan.appointments if x.patient_id == "P7")  # Thursday
    as_of = dt.datetime(2027, 3, 24, 7, 0)
    past = {"kind": "booking_moved", "appointment": a.id, "date": "2027-03-23", "start": "11:00"}
    with pytest.raises(DisruptionError) as refused:
        prepare(s, plan, disruptions_from_data([past], "d.yaml"), as_of=as_of)
    assert refused.value.problems[0].location == "entry 1 (booking_moved): start"
    start = _free_start(plan, a.clinician_ids[0], a.date)
    _, new = replanned(s, plan, [{"kind": "booking_moved", "appointment": a.id, "date": a.date.isoformat(),
                                  "start": start.strftime("%H:%M")}], as_of=as_of)
    assert changed_visits(plan, new) == {a.visit_id: ["booking_moved"]}  # no "could not stand" for a choice


def test_a_draw_trip_that_stands_is_kept_exactly_when_its_review_moves():
    sessions = [session("hca", "2027-03-22"), session("nurse", "2027-03-25"), session("nurse", "2027-03-30"),
                session("gp", "2027-03-22")]
    s = scenario(sessions, [patient("P1", "diabetes"), patient("P2", "hypertension"), patient("P3", "frailty")])
    plan = first_plan(s)
    draw = next(a for a in plan.appointments if a.patient_id == "P1" and a.kind == "blood_draw")
    review = next(a for a in plan.appointments if a.patient_id == "P1" and a.kind == "review")
    assert (draw.date.isoformat(), review.date.isoformat()) == ("2027-03-22", "2027-03-25")
    _, new = replanned(s, plan, [{"kind": "clinician_absence", "clinician": "nurse", "start": "2027-03-25T00:00:00",
                                  "end": "2027-03-26T00:00:00"}])
    assert next(a for a in new.appointments if a.id == draw.id) == draw
    assert next(a for a in new.appointments if a.id == review.id).date == dt.date(2027, 3, 30)
    assert set(changed_visits(plan, new)) == {review.visit_id}
