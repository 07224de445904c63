"""The independent plan diff (scheduler/diff.py): matching, statuses, what changed, and reasons.

Most tests edit the hand-built tutorial plan (tests/plan_builders.py): seven visits of five
patients, all at riverside. Times there: V-P003 Thu 25 Mar 14:00-14:45 (pn-ellis, rs-nurse);
V-P004 Tue 30 Mar 09:00-09:50 BST; V-P005-1 Mon 22 Mar 08:30 (pn-ellis); V-P005-2 Tue 30 Mar
11:00 (gp-khan); V-P006 Thu 1 Apr 08:30-09:45; V-P007-1 Mon 22 Mar 08:30 (draw trip);
V-P007-2 Wed 31 Mar 09:00 (pn-ellis). P004-diabetes is unbooked. One test runs the planner.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from scheduler.check import check_plan
from scheduler.diff import (
    COUNT_KEYS,
    ChangeReason,
    PlanDiff,
    VisitChange,
    diff_plans,
    format_diff,
)
from scheduler.disruptions import DisruptionError
from scheduler.domain import Patient, SolverSettings
from scheduler.plan import Appointment, Plan, ReplanRecord, StoredPlan, UnbookedReview
from scheduler.planner import make_plan
from tests.builders import patient, scenario, session
from tests.plan_builders import appt, drop, find, find_visit, local, move, resync, valid_plan, visit

ALL_UNCHANGED = {
    "moved": 0, "cancelled": 0, "newly_booked": 0, "unchanged": 7,
    "patients_moved": 0, "patients_cancelled": 0, "patients_newly_booked": 0, "patients_unchanged": 5,
}
EARLY = local("2027-03-22", "00:00")  # a freeze window that holds nothing
LONDON = ZoneInfo("Europe/London")


def copy(plan: Plan) -> Plan:
    return Plan.model_validate_json(plan.model_dump_json())


def record(plan: Plan, entries: list[dict], freeze_until: dt.datetime = EARLY,
           targets: dict[str, list[str]] | None = None, previous_plan_id: str | None = None) -> None:
    plan.replan = ReplanRecord(previous_plan_id=previous_plan_id, as_of=EARLY, freeze_until=freeze_until,
                               disruptions=entries, targets=targets or {})


def only_patient(diff: PlanDiff, patient_id: str) -> list[VisitChange]:
    """The changed visits of the one changed patient, who must be `patient_id`."""
    assert [p.patient_id for p in diff.patients] == [patient_id]
    return [c for c in diff.patients[0].visits if c.change != "unchanged"]


def move_p003_to_30_march() -> tuple[Plan, Plan]:
    old = valid_plan()
    new = copy(old)
    move(new, "P003-draw", "2027-03-30", "14:00")
    move(new, "P003-rev", "2027-03-30", "14:10")
    return old, new


def reason(code: str, entry: int | None, message: str) -> ChangeReason:
    return ChangeReason(code=code, entry=entry, message=message)


MADE_ROOM_MOVED = reason("made_room", None, "no disruption touched this visit; it moved to make room "
                         "for other changes")


# ---------------------------------------------------------------------------------------------
# Counts and unchanged plans


def test_unchanged_plan_gives_all_zero_change_counts():
    old = valid_plan()
    diff = diff_plans(old, copy(old))
    assert diff.counts == ALL_UNCHANGED
    assert diff.patients == []
    assert diff.old_plan_id is None and diff.new_plan_id is None
    assert format_diff(diff).splitlines()[-1] == "No visit changed."


def test_counts_keys_always_present_even_for_empty_plans():
    empty = valid_plan()
    empty.appointments, empty.visits = [], []
    diff = diff_plans(empty, copy(empty))
    assert list(diff.counts) == list(COUNT_KEYS)
    assert diff.counts == dict.fromkeys(COUNT_KEYS, 0)
    old, new = move_p003_to_30_march()
    assert list(diff_plans(old, new).counts) == list(COUNT_KEYS)


def test_plan_ids_come_from_stored():
    old = valid_plan()
    new = copy(old)
    old.stored = StoredPlan(plan_id="plan-1", scenario_id="s", scenario_version=1)
    new.stored = StoredPlan(plan_id="plan-2", scenario_id="s", scenario_version=2)
    diff = diff_plans(old, new)
    assert (diff.old_plan_id, diff.new_plan_id) == ("plan-1", "plan-2")
    assert format_diff(diff).splitlines()[0] == "Plan plan-1 -> plan-2"


# ---------------------------------------------------------------------------------------------
# What changed


def test_date_change_across_the_clock_change_is_not_a_time_change():
    # 25 March is GMT, 30 March BST: the same 14:00 local is a different UTC hour.
    old, new = move_p003_to_30_march()
    record(new, [])
    diff = diff_plans(old, new)
    [c] = only_patient(diff, "P003")
    assert c.change == "moved"
    assert c.what_changed == ["date"]
    assert (c.old_visit_id, c.new_visit_id) == ("V-P003", "V-P003")
    assert c.old_start == local("2027-03-25", "14:00") and c.new_start == local("2027-03-30", "14:00")
    assert c.review_ids == ["P003-asthma", "P003-hypertension"]
    assert c.reasons == [MADE_ROOM_MOVED]
    assert diff.counts == {**ALL_UNCHANGED, "moved": 1, "unchanged": 6, "patients_moved": 1,
                           "patients_unchanged": 4}


def test_same_instants_with_another_offset_are_unchanged():
    # Times written in UTC instead of London's summer offset are the same instants, at the same
    # local clock times: nothing changed. A move is shown in local time, and so is the freeze.
    old = valid_plan()
    new = copy(old)
    for a in new.appointments:
        a.start, a.end = a.start.astimezone(dt.UTC), a.end.astimezone(dt.UTC)
    resync(new)
    assert diff_plans(old, new).counts == ALL_UNCHANGED

    move(new, "P004-draw", hm="10:00")  # P004: 30 March, BST
    move(new, "P004-joint", hm="10:10")
    record(new, [], freeze_until=dt.datetime(2027, 3, 31, 23, 0, tzinfo=dt.UTC))
    diff = diff_plans(old, new)
    [c] = only_patient(diff, "P004")
    assert c.what_changed == ["time"]
    assert c.reasons[-1].message == ("inside the freeze window until 00:00 2027-04-01: moved only because "
                                     "it could not stand")
    assert "P004  moved         Tue 30 Mar 09:00 -> Tue 30 Mar 10:00  because " in format_diff(diff)


def test_time_room_clinician_site_changes():
    old = valid_plan()
    new = copy(old)
    move(new, "P003-draw", hm="15:00")
    move(new, "P003-rev", hm="15:10")
    for a in (find(new, "P003-draw"), find(new, "P003-rev")):
        a.room_id = "hs-room"
        a.site_id = "hillside"
        a.clinician_ids = ["dsn-patel"]
    resync(new)
    [c] = only_patient(diff_plans(old, new), "P003")
    assert c.what_changed == ["time", "site", "room", "clinician"]
    assert (c.old_site_id, c.new_site_id) == ("riverside", "hillside")
    assert (c.old_room_ids, c.new_room_ids) == (["rs-nurse"], ["hs-room"])
    assert (c.old_clinician_ids, c.new_clinician_ids) == (["pn-ellis"], ["dsn-patel"])


def test_only_room_changed():
    old = valid_plan()
    new = copy(old)
    find(new, "P003-rev").room_id = "rs-consult1"
    [c] = only_patient(diff_plans(old, new), "P003")
    assert c.what_changed == ["room"]
    assert (c.old_room_ids, c.new_room_ids) == (["rs-nurse"], ["rs-consult1", "rs-nurse"])


# ---------------------------------------------------------------------------------------------
# Matching


def test_matching_by_review_overlap_when_the_visit_id_changed():
    old = valid_plan()
    new = copy(old)
    # Same bookings under new visit and appointment ids: matched by reviews, then appointments
    # by kind and review ids, so nothing changed.
    v = find_visit(new, "V-P006")
    v.id = "V-P006-renamed"
    for a in new.appointments:
        if a.patient_id == "P006":
            v.appointment_ids[v.appointment_ids.index(a.id)] = a.id + "-x"
            a.id, a.visit_id = a.id + "-x", v.id
    assert diff_plans(old, new).counts == ALL_UNCHANGED

    move(new, "P006-htn-x", hm="09:30")
    [c] = only_patient(diff_plans(old, new), "P006")
    assert (c.old_visit_id, c.new_visit_id, c.change) == ("V-P006", "V-P006-renamed", "moved")
    assert c.what_changed == ["time"]


def test_most_shared_reviews_win_and_leftovers_are_cancelled_or_new():
    # P006's visit split in two under new ids: af+smr stays (2 shared reviews beat 1), the
    # hypertension sitting becomes a visit of its own the next day.
    old = valid_plan()
    new = copy(old)
    v = find_visit(new, "V-P006")
    v.id = "V-P006-a"
    v.appointment_ids = ["P006-draw", "P006-rev"]
    find(new, "P006-draw").visit_id = find(new, "P006-rev").visit_id = "V-P006-a"
    htn = find(new, "P006-htn")
    htn.visit_id = "V-P006-b"
    new.visits.append(visit("V-P006-b", "consolidated", [htn]))
    move(new, "P006-htn", "2027-04-02", "09:00")
    record(new, [])
    diff = diff_plans(old, new)
    changes = only_patient(diff, "P006")
    assert [(c.change, c.old_visit_id, c.new_visit_id) for c in changes] == [
        ("moved", "V-P006", "V-P006-a"), ("newly_booked", None, "V-P006-b")]
    assert changes[0].what_changed == ["time", "reviews"]
    assert changes[1].reasons == [reason(
        "made_room", None, "no disruption named this patient; P006-hypertension was in another visit "
        "of the previous plan, regrouped to make room for other changes")]
    assert diff.patients[0].status == "moved"


def test_draw_only_trip_matches_a_draw_only_trip():
    old = valid_plan()
    new = copy(old)
    v = find_visit(new, "V-P007-1")
    v.id = "V-P007-draw"
    find(new, "P007-draw").visit_id = "V-P007-draw"
    move(new, "P007-draw", "2027-03-23")
    [c] = only_patient(diff_plans(old, new), "P007")
    assert (c.change, c.old_visit_id, c.new_visit_id) == ("moved", "V-P007-1", "V-P007-draw")
    assert c.what_changed == ["date"]
    assert c.review_ids == []


def test_draw_only_trip_does_not_match_a_visit_with_reviews():
    # The draw moved into the review visit: the draw trip is cancelled, the visit gains a step.
    old = valid_plan()
    new = copy(old)
    drop(new, "P007-draw")
    draw = appt("P007-draw", "P007", "V-P007-2", "blood_draw", "2027-03-31", "08:50", 10, "rs-treatment",
                ["hca-osei"], markers=["hba1c"])
    new.appointments.append(draw)
    find_visit(new, "V-P007-2").appointment_ids.insert(0, "P007-draw")
    resync(new)
    record(new, [])
    diff = diff_plans(old, new)
    changes = only_patient(diff, "P007")
    assert [(c.change, c.old_visit_id, c.new_visit_id) for c in changes] == [
        ("cancelled", "V-P007-1", None), ("moved", "V-P007-2", "V-P007-2")]
    assert changes[0].reasons == [reason("made_room", None, "no disruption touched this blood-draw "
                                         "trip; it is no longer needed as a trip of its own")]
    assert changes[1].what_changed == ["time", "reviews"]
    assert diff.patients[0].status == "cancelled"
    assert diff.counts["patients_cancelled"] == 1


# ---------------------------------------------------------------------------------------------
# Reasons for moved and cancelled visits, one disruption kind at a time


ABSENCE = {"kind": "clinician_absence", "clinician": "pn-ellis",
           "start": "2027-03-25T00:00:00", "end": "2027-03-26T00:00:00"}


def test_clinician_absence():
    old, new = move_p003_to_30_march()
    record(new, [ABSENCE])
    [c] = only_patient(diff_plans(old, new), "P003")
    assert c.reasons == [reason("clinician_absence", 1, "entry 1 (clinician_absence): pn-ellis is absent "
                                "2027-03-25 00:00 to 2027-03-26 00:00")]


def test_absence_that_only_touches_the_visit_is_not_its_reason():
    old, new = move_p003_to_30_march()
    # Ends at 14:00, when P003's draw starts: touching is not overlapping. Another clinician's
    # absence over the visit is not its reason either.
    record(new, [{**ABSENCE, "start": "2027-03-25T08:00:00", "end": "2027-03-25T14:00:00"},
                 {**ABSENCE, "clinician": "gp-khan"}])
    [c] = only_patient(diff_plans(old, new), "P003")
    assert c.reasons == [MADE_ROOM_MOVED]


def test_room_closure():
    old, new = move_p003_to_30_march()
    record(new, [{"kind": "room_closure", "room": "rs-nurse", "start": "2027-03-25T14:30:00",
                  "end": "2027-03-25T18:00:00", "reason": "leak"}])
    [c] = only_patient(diff_plans(old, new), "P003")
    assert c.reasons == [reason("room_closure", 1, "entry 1 (room_closure): room rs-nurse is closed "
                                "2027-03-25 14:30 to 2027-03-25 18:00 (leak)")]


def test_site_closure_given_in_summer_time():
    # The closure is 09:00-09:30 local on 30 March (BST): P004's visit (09:00 BST = 08:00Z) is
    # inside it, P005's 11:00 visit that day is not.
    old = valid_plan()
    new = copy(old)
    move(new, "P004-draw", "2027-03-31", "09:00")
    move(new, "P004-joint", "2027-03-31", "09:10")
    move(new, "P005-smr", "2027-03-31", "11:00")
    record(new, [{"kind": "site_closure", "site": "riverside", "start": "2027-03-30T09:00:00",
                  "end": "2027-03-30T09:30:00"}])
    diff = diff_plans(old, new)
    assert [p.patient_id for p in diff.patients] == ["P004", "P005"]
    p004 = next(c for c in diff.patients[0].visits if c.change == "moved")
    p005 = next(c for c in diff.patients[1].visits if c.change == "moved")
    assert p004.reasons == [reason("site_closure", 1, "entry 1 (site_closure): site riverside is closed "
                                   "2027-03-30 09:00 to 2027-03-30 09:30")]
    assert p005.reasons == [MADE_ROOM_MOVED]


def test_session_removed():
    old, new = move_p003_to_30_march()
    gone = {"clinician_id": "pn-ellis", "date": "2027-03-25", "start": "14:00", "end": "18:00",
            "site_id": "riverside"}
    elsewhere = {**gone, "date": "2027-03-24", "start": "08:30", "end": "12:30"}
    record(new, [{"kind": "session_removed", "session": elsewhere},
                 {"kind": "session_removed", "session": gone}])
    [c] = only_patient(diff_plans(old, new), "P003")
    assert c.reasons == [reason("session_removed", 2, "entry 2 (session_removed): pn-ellis's session at "
                                "riverside on 2027-03-25 14:00-18:00 was taken off the roster")]


def test_patient_cancelled_without_rebooking():
    old = valid_plan()
    new = copy(old)
    drop(new, "P005-copd")
    drop(new, "P005-smr")
    record(new, [{"kind": "patient_cancelled", "patient": "P005", "rebook": False, "reason": "moved away"}])
    diff = diff_plans(old, new)
    changes = only_patient(diff, "P005")
    expected = reason("patient_cancelled", 1, "entry 1 (patient_cancelled): P005 cancelled; their reviews "
                      "are taken out of this period (moved away)")
    assert [(c.change, c.old_visit_id, c.reasons) for c in changes] == [
        ("cancelled", "V-P005-1", [expected]), ("cancelled", "V-P005-2", [expected])]
    assert diff.patients[0].status == "cancelled"
    assert diff.counts == {**ALL_UNCHANGED, "cancelled": 2, "unchanged": 5, "patients_cancelled": 1,
                           "patients_unchanged": 4}


def test_patient_cancelled_and_rebooked():
    old = valid_plan()
    new = copy(old)
    move(new, "P005-smr", "2027-04-01", "14:00")
    record(new, [{"kind": "patient_cancelled", "patient": "P005"}])
    [c] = only_patient(diff_plans(old, new), "P005")
    assert c.what_changed == ["date", "time"]
    assert c.reasons == [reason("patient_cancelled", 1, "entry 1 (patient_cancelled): P005 cancelled and "
                                "is booked again on other days")]


def test_patient_did_not_attend_names_only_the_visit_on_that_date():
    old = valid_plan()
    new = copy(old)
    # P007 missed the 31 March visit: booked again on 1 April under a new visit id.
    drop(new, "P007-rev")
    rebooked = appt("P007-rev2", "P007", "V-P007-3", "review", "2027-04-01", "10:00", 35, "rs-consult1",
                    ["pn-ellis"], reviews=["ckd", "diabetes"])
    new.appointments.append(rebooked)
    new.visits.append(visit("V-P007-3", "consolidated", [rebooked]))
    move(new, "P007-draw", "2027-03-23")  # the draw trip moved too, but not for the DNA
    record(new, [{"kind": "patient_did_not_attend", "patient": "P007", "date": "2027-03-31"}])
    changes = only_patient(diff_plans(old, new), "P007")
    assert [(c.old_visit_id, c.new_visit_id, c.what_changed) for c in changes] == [
        ("V-P007-1", "V-P007-1", ["date"]), ("V-P007-2", "V-P007-3", ["date", "time"])]
    assert changes[0].reasons == [MADE_ROOM_MOVED]
    assert changes[1].reasons == [reason("patient_did_not_attend", 1, "entry 1 (patient_did_not_attend): "
                                         "P007 did not attend on 2027-03-31 and is booked again")]


def test_review_removed():
    old = valid_plan()
    new = copy(old)
    drop(new, "P006-htn")
    record(new, [{"kind": "review_removed", "patient": "P006", "review_type": "copd"},
                 {"kind": "review_removed", "patient": "P006", "review_type": "hypertension"}])
    [c] = only_patient(diff_plans(old, new), "P006")
    assert (c.change, c.what_changed) == ("moved", ["time", "reviews"])
    assert c.review_ids == ["P006-af", "P006-hypertension", "P006-smr"]
    assert c.reasons == [reason("review_removed", 2, "entry 2 (review_removed): P006's hypertension review "
                                "is no longer needed")]


def test_booking_moved_by_its_targets_and_pinned_is_never_a_reason():
    old = valid_plan()
    new = copy(old)
    move(new, "P005-smr", "2027-03-31", "11:00")
    entries = [
        {"kind": "booking_pinned", "appointment": "P005-smr"},
        {"kind": "booking_moved", "appointment": "P003-rev", "date": "2027-03-31", "start": "11:00"},
        {"kind": "booking_moved", "reference": "OV-7K3P9Q", "date": "2027-03-31", "start": "11:00",
         "clinician": "gp-khan", "room": "rs-consult1"},
    ]
    record(new, entries, targets={"1": ["P005-smr"], "2": ["P003-rev"], "3": ["P005-smr"]})
    [c] = only_patient(diff_plans(old, new), "P005")
    assert c.reasons == [reason("booking_moved", 3, "entry 3 (booking_moved): moved by the practice manager "
                                "to 2027-03-31 11:00 with gp-khan in room rs-consult1")]


@pytest.mark.hazard("HAZ-011")
def test_freeze_window_is_an_extra_reason_for_visits_that_started_before_it():
    old, new = move_p003_to_30_march()
    move(new, "P006-htn", hm="09:30")  # 1 April: after the freeze window
    record(new, [ABSENCE], freeze_until=local("2027-03-26", "12:00"))
    diff = diff_plans(old, new)
    assert [p.patient_id for p in diff.patients] == ["P003", "P006"]
    [p003] = diff.patients[0].visits
    assert p003.reasons == [
        reason("clinician_absence", 1, "entry 1 (clinician_absence): pn-ellis is absent 2027-03-25 00:00 "
               "to 2027-03-26 00:00"),
        reason("freeze_window", None, "inside the freeze window until 12:00 2027-03-26: moved only because "
               "it could not stand"),
    ]
    p006 = next(c for c in diff.patients[1].visits if c.change == "moved")
    assert p006.reasons == [MADE_ROOM_MOVED]


def test_cancelled_with_no_entry_quotes_the_unbooked_reason():
    old = valid_plan()
    new = copy(old)
    drop(new, "P003-draw")
    drop(new, "P003-rev")
    for review_type in ("asthma", "hypertension"):
        new.unbooked.append(UnbookedReview(patient_id="P003", review_id=f"P003-{review_type}",
                                           review_type_id=review_type, reason="capacity_used_up",
                                           detail="Every slot went to patients with higher priority."))
    record(new, [ABSENCE | {"clinician": "gp-khan"}], freeze_until=local("2027-03-25", "14:00"))
    [c] = only_patient(diff_plans(old, new), "P003")
    assert c.change == "cancelled"
    assert (c.new_visit_id, c.new_start, c.new_room_ids) == (None, None, [])
    assert c.reasons == [
        reason("unbooked", None, "P003-asthma is now unbooked (capacity_used_up): Every slot went to "
               "patients with higher priority."),
        reason("unbooked", None, "P003-hypertension is now unbooked (capacity_used_up): Every slot went "
               "to patients with higher priority."),
    ]  # 14:00 is not before the freeze window's end: no freeze_window reason


def test_cancelled_with_no_entry_whose_review_is_booked_in_another_visit():
    old = valid_plan()
    new = copy(old)
    copd = find(new, "P005-copd")
    find_visit(new, "V-P005-1").appointment_ids = []
    new.visits = [v for v in new.visits if v.id != "V-P005-1"]
    copd.visit_id = "V-P005-2"
    find_visit(new, "V-P005-2").appointment_ids.insert(0, "P005-copd")
    move(new, "P005-copd", "2027-03-30", "10:30")
    record(new, [ABSENCE])
    changes = only_patient(diff_plans(old, new), "P005")
    assert [(c.change, c.old_visit_id, c.new_visit_id) for c in changes] == [
        ("cancelled", "V-P005-1", None), ("moved", "V-P005-2", "V-P005-2")]
    assert changes[0].reasons == [reason("made_room", None, "no disruption touched this visit; P005-copd "
                                         "is now booked in another visit (2027-03-30)")]
    assert changes[1].what_changed == ["time", "reviews"]
    assert changes[1].review_ids == ["P005-copd", "P005-smr"]


def test_no_replan_record_means_not_recorded():
    old, new = move_p003_to_30_march()
    drop(new, "P005-smr")
    diff = diff_plans(old, new)
    not_recorded = [reason("not_recorded", None, "the new plan has no re-plan record for this step, so "
                           "the cause is not known")]
    assert [p.patient_id for p in diff.patients] == ["P003", "P005"]
    assert diff.patients[0].visits[0].reasons == not_recorded
    assert [c.reasons for c in diff.patients[1].visits if c.change == "cancelled"] == [not_recorded]


def test_a_record_of_another_plan_is_not_used():
    old, new = move_p003_to_30_march()
    old.stored = StoredPlan(plan_id="plan-1", scenario_id="s", scenario_version=1)
    record(new, [ABSENCE], previous_plan_id="plan-0")
    [c] = only_patient(diff_plans(old, new), "P003")
    assert [r.code for r in c.reasons] == ["not_recorded"]
    record(new, [ABSENCE], previous_plan_id="plan-1")
    [c] = only_patient(diff_plans(old, new), "P003")
    assert [r.code for r in c.reasons] == ["clinician_absence"]


def test_an_invalid_recorded_entry_raises():
    old, new = move_p003_to_30_march()
    record(new, [{"kind": "clinician_absence", "clinician": "pn-ellis"}])
    with pytest.raises(DisruptionError):
        diff_plans(old, new)


# ---------------------------------------------------------------------------------------------
# Reasons for newly booked visits


def add_visit(plan: Plan, a: Appointment) -> None:
    plan.appointments.append(a)
    plan.visits.append(visit(a.visit_id, "consolidated", [a]))


def test_newly_booked_freed_capacity():
    old = valid_plan()
    new = copy(old)
    add_visit(new, appt("P004-dm", "P004", "V-P004-dm", "review", "2027-04-02", "09:00", 25, "rs-nurse",
                        ["pn-ellis"], reviews=["diabetes"]))
    new.unbooked = []
    record(new, [ABSENCE])
    diff = diff_plans(old, new)
    [c] = only_patient(diff, "P004")
    assert (c.change, c.old_visit_id, c.new_visit_id) == ("newly_booked", None, "V-P004-dm")
    assert c.reasons == [reason("freed_capacity", None, "P004-diabetes could not be booked in the previous "
                                "plan and is booked now")]
    assert diff.patients[0].status == "newly_booked"
    assert diff.counts["newly_booked"] == 1 and diff.counts["patients_newly_booked"] == 1


@pytest.mark.parametrize(("entry", "code", "message"), [
    ({"kind": "patient_did_not_attend", "patient": "P008", "date": "2027-03-22"}, "patient_did_not_attend",
     "entry 1 (patient_did_not_attend): P008 did not attend on 2027-03-22 and is booked again"),
    ({"kind": "patient_cancelled", "patient": "P008"}, "patient_cancelled",
     "entry 1 (patient_cancelled): P008 cancelled and is booked again on other days"),
    ({"kind": "patient_added", "patient": patient("P008", "asthma")}, "patient_added",
     "entry 1 (patient_added): P008 was added to the plan"),
])
def test_newly_booked_by_a_patient_entry(entry, code, message):
    old = valid_plan()
    new = copy(old)
    add_visit(new, appt("P008-rev", "P008", "V-P008", "review", "2027-04-02", "09:00", 15, "rs-nurse",
                        ["pn-ellis"], reviews=["asthma"]))
    record(new, [entry])
    [c] = only_patient(diff_plans(old, new), "P008")
    assert c.reasons == [reason(code, 1, message)]


def test_newly_booked_not_named_made_room_and_cancelled_not_rebooked_is_no_reason():
    old = valid_plan()
    new = copy(old)
    add_visit(new, appt("P008-rev", "P008", "V-P008", "review", "2027-04-02", "09:00", 15, "rs-nurse",
                        ["pn-ellis"], reviews=["asthma"]))
    record(new, [{"kind": "patient_cancelled", "patient": "P008", "rebook": False}])
    [c] = only_patient(diff_plans(old, new), "P008")
    assert c.reasons == [reason("made_room", None, "no disruption named this patient; booked to make room "
                                "for other changes")]


# ---------------------------------------------------------------------------------------------
# Text


def test_format_diff_mentions_each_changed_patient():
    old, new = move_p003_to_30_march()
    drop(new, "P005-smr")
    record(new, [ABSENCE])
    text = format_diff(diff_plans(old, new))
    lines = text.splitlines()
    assert lines[1] == ("Visits: 1 moved, 1 cancelled, 0 newly booked, 5 unchanged. Patients: 1 moved, "
                        "1 cancelled, 0 newly booked, 3 unchanged.")
    assert lines[2] == ("P003  moved         Thu 25 Mar 14:00 -> Tue 30 Mar 14:00  because entry 1 "
                        "(clinician_absence): pn-ellis is absent 2027-03-25 00:00 to 2027-03-26 00:00")
    assert lines[3] == "P005  unchanged     Mon 22 Mar 08:30 at riverside"
    assert lines[4] == ("P005  cancelled     was Tue 30 Mar 11:00 at riverside  because P005-smr is no "
                        "longer in the new plan (neither booked nor listed as unbooked)")
    assert len(lines) == 5
    for unchanged in ("P004", "P006", "P007"):
        assert unchanged not in text
    assert "\x1b" not in text


def test_format_diff_shows_site_room_and_clinician_changes():
    old = valid_plan()
    new = copy(old)
    for a in (find(new, "P003-draw"), find(new, "P003-rev")):
        a.site_id, a.room_id, a.clinician_ids = "hillside", "hs-room", ["dsn-patel"]
    resync(new)
    line = format_diff(diff_plans(old, new)).splitlines()[2]
    assert line.startswith("P003  moved         Thu 25 Mar 14:00 -> Thu 25 Mar 14:00 (site riverside -> "
                           "hillside; room rs-nurse -> hs-room; clinician pn-ellis -> dsn-patel)  because ")


# ---------------------------------------------------------------------------------------------
# On a real plan from the planner


DAYS = ("2027-03-22", "2027-03-23", "2027-03-24", "2027-03-25", "2027-03-30", "2027-03-31")


@pytest.fixture(scope="module")
def planned() -> Plan:
    s = scenario(
        [session(c, d) for c in ("nurse", "hca", "gp") for d in DAYS],
        [patient("P1", "asthma", "hypertension"), patient("P2", "copd"), patient("P3", "diabetes"),
         patient("P4", "frailty")],
    )
    plan = make_plan(s, SolverSettings(time_limit_seconds=2, workers=1, seed=1))
    assert check_plan(s, plan).ok  # every plan a test makes passes the independent checker
    return plan


def test_on_a_real_plan(planned):
    old = copy(planned)
    old.stored = StoredPlan(plan_id="v1", scenario_id="s1", scenario_version=1)
    assert diff_plans(old, copy(old)).counts == {
        "moved": 0, "cancelled": 0, "newly_booked": 0, "unchanged": len(old.visits),
        "patients_moved": 0, "patients_cancelled": 0, "patients_newly_booked": 0, "patients_unchanged": 4}

    def visits_of(plan: Plan, patient_id: str):
        return [v for v in plan.visits if v.patient_id == patient_id]

    [p1_visit] = visits_of(old, "P1")
    [p1_review] = [a for a in old.appointments if a.patient_id == "P1"]
    [p2_visit] = visits_of(old, "P2")
    p3_visits = visits_of(old, "P3")
    assert sorted(v.purpose for v in p3_visits) == ["blood_draw_trip", "consolidated"]  # results first

    new = copy(old)
    new.stored = StoredPlan(plan_id="v2", scenario_id="s1", scenario_version=2)
    # P1's clinician is absent for exactly P1's appointment: it moves a day and half an hour on.
    shift = dt.timedelta(days=1, minutes=30)
    moved = next(a for a in new.appointments if a.patient_id == "P1")
    moved.start, moved.end, moved.date = moved.start + shift, moved.end + shift, moved.date + dt.timedelta(days=1)
    resync(new)
    # P2 cancelled, not rebooked.
    new.appointments = [a for a in new.appointments if a.patient_id != "P2"]
    new.visits = [v for v in new.visits if v.patient_id != "P2"]
    # P3's visits renamed (as a new bundle would): matched by reviews and as draw-only trips.
    for v in visits_of(new, "P3"):
        v.id = v.id + "-renamed"
        for a in new.appointments:
            if a.id in v.appointment_ids:
                a.visit_id = v.id
    # P5 added and booked.
    p5 = Appointment(id="ap-p5", patient_id="P5", visit_id="vi-p5", kind="review", date=dt.date(2027, 3, 31),
                     start=local("2027-03-31", "11:00"), end=local("2027-03-31", "11:30"), site_id="surgery",
                     room_id="consult", clinician_ids=["gp"], review_ids=["P5-frailty"],
                     review_type_ids=["frailty"])
    new.appointments.append(p5)
    new.visits.append(visit("vi-p5", "consolidated", [p5]))
    start = p1_review.start.astimezone(LONDON).replace(tzinfo=None)
    end = p1_review.end.astimezone(LONDON).replace(tzinfo=None)
    entries = [
        {"kind": "clinician_absence", "clinician": p1_review.clinician_ids[0],
         "start": start.isoformat(), "end": end.isoformat()},
        {"kind": "patient_cancelled", "patient": "P2", "rebook": False},
        {"kind": "patient_added", "patient": Patient.model_validate(patient("P5", "frailty")).model_dump(mode="json")},
    ]
    record(new, entries, previous_plan_id="v1")

    diff = diff_plans(old, new)
    assert (diff.old_plan_id, diff.new_plan_id) == ("v1", "v2")
    assert diff.counts == {
        "moved": 1, "cancelled": 1, "newly_booked": 1, "unchanged": len(old.visits) - 2,
        "patients_moved": 1, "patients_cancelled": 1, "patients_newly_booked": 1, "patients_unchanged": 2}
    assert [(p.patient_id, p.status) for p in diff.patients] == [
        ("P1", "moved"), ("P2", "cancelled"), ("P5", "newly_booked")]
    [p1], [p2], [p5_change] = (p.visits for p in diff.patients)
    assert (p1.old_visit_id, p1.new_visit_id) == (p1_visit.id, p1_visit.id)
    assert p1.what_changed == ["date", "time"]
    assert p1.review_ids == ["P1-asthma", "P1-hypertension"]
    assert p1.reasons == [reason(
        "clinician_absence", 1, f"entry 1 (clinician_absence): {p1_review.clinician_ids[0]} is absent "
        f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}")]
    assert (p2.change, p2.old_visit_id, p2.review_ids) == ("cancelled", p2_visit.id, ["P2-copd"])
    assert p2.reasons == [reason("patient_cancelled", 2, "entry 2 (patient_cancelled): P2 cancelled; their "
                                 "reviews are taken out of this period")]
    assert (p5_change.change, p5_change.new_visit_id) == ("newly_booked", "vi-p5")
    assert p5_change.reasons == [reason("patient_added", 3, "entry 3 (patient_added): P5 was added to the plan")]
    text = format_diff(diff)
    for patient_id in ("P1", "P2", "P5"):
        assert f"\n{patient_id}  " in text
    assert "P3" not in text and "P4" not in text
