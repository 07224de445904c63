"""Controls of the clinical safety case that no earlier test proved on its own.

Each test carries the hazard it is evidence for (docs/clinical-safety/hazard-log.md); each was
shown to fail when its control is removed (docs/clinical-safety/mutations.md). Planner tests use
real solves through `tests.builders.solve_checked`, so the independent checker runs on every plan;
checker tests feed it a hand-broken copy of the valid plan of `tests.plan_builders`.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.calendar.render import takes_calendar_invites
from api.web.book import needs_of
from scheduler.check import check_plan
from scheduler.domain import Needs, Patient, Scenario
from scheduler.validate import validate
from tests.builders import patient, scenario, session, solve_checked
from tests.plan_builders import base_scenario, update_patient, valid_plan


def _codes(s, plan) -> set[str]:
    return {v.code for v in check_plan(s, plan).violations}


# HAZ-001: never outside the window, never missing without a reason ---------------------------


@pytest.mark.hazard("HAZ-001")
def test_a_review_whose_window_has_no_session_is_unbooked_with_a_reason_never_booked_outside_it():
    # The nurse works only after the asthma review's window has closed.
    s = scenario([session("nurse", "2027-03-30")], [patient("P1", "asthma", last="2027-03-25")])
    plan = solve_checked(s)
    assert plan.appointments == []
    [unbooked] = plan.unbooked
    assert unbooked.patient_id == "P1" and unbooked.reason and unbooked.detail


@pytest.mark.hazard("HAZ-001")
def test_the_checker_refuses_a_due_review_left_out_of_the_plan_without_an_unbooked_entry():
    s, plan = base_scenario(), valid_plan()
    assert _codes(s, plan) == set()
    review = next(a for a in plan.appointments if a.kind == "review")
    plan.appointments.remove(review)
    assert "review_not_accounted" in _codes(s, plan)


# HAZ-002: a fasting blood test only in the morning --------------------------------------------


@pytest.mark.hazard("HAZ-002")
def test_a_fasting_draw_is_never_booked_in_the_afternoon_even_when_only_afternoons_are_free():
    # Bloods are taken only on Monday afternoon; the diabetes review needs a fasting marker and
    # its results back first, so the draw would have to be that afternoon.
    sessions = [session("hca", "2027-03-22", "14:00", "18:00"), session("nurse", "2027-03-31", "14:00", "18:00")]
    s = scenario(sessions, [patient("P1", "diabetes")])
    data = s.model_dump()
    [diabetes] = [t for t in data["review_types"] if t["id"] == "diabetes"]
    diabetes["blood_marker_ids"] = ["hba1c", "glucose_fasting"]
    fasting = Scenario.model_validate(data)
    plan = solve_checked(fasting)
    assert plan.appointments == []
    [unbooked] = plan.unbooked
    assert unbooked.patient_id == "P1" and unbooked.reason and unbooked.detail
    # Without the fasting marker the same afternoon draw is booked: fasting alone kept it out.
    plan = solve_checked(s)
    assert [a.kind for a in plan.appointments] == ["blood_draw", "review"]


# HAZ-007: wheelchair access and a carer's place ------------------------------------------------


@pytest.mark.hazard("HAZ-007")
def test_a_wheelchair_user_is_never_booked_into_a_room_without_wheelchair_access():
    # The nurse's only session names the nurse room, which has no wheelchair access.
    named = session("nurse", "2027-03-22", room_id="nurse-room")
    plan = solve_checked(scenario([named], [patient("P1", "asthma", needs={"wheelchair": True})]))
    assert plan.appointments == []
    [unbooked] = plan.unbooked
    assert unbooked.patient_id == "P1" and unbooked.reason and unbooked.detail
    # The same patient without the need is booked there: the need, not the room, kept them out.
    plan = solve_checked(scenario([named], [patient("P1", "asthma")]))
    assert [a.room_id for a in plan.appointments] == ["nurse-room"]


@pytest.mark.hazard("HAZ-007")
def test_a_patient_with_a_carer_is_never_booked_into_a_room_too_small_for_the_carer():
    rooms = [{"id": "small", "site_id": "surgery", "capabilities": [], "capacity_people": 2}]
    named = session("nurse", "2027-03-22", room_id="small")
    plan = solve_checked(scenario([named], [patient("P1", "asthma", needs={"carer_attending": True})], rooms=rooms))
    assert plan.appointments == []
    [unbooked] = plan.unbooked
    assert unbooked.patient_id == "P1" and unbooked.reason and unbooked.detail
    plan = solve_checked(scenario([named], [patient("P1", "asthma")], rooms=rooms))
    assert [a.room_id for a in plan.appointments] == ["small"]


@pytest.mark.hazard("HAZ-007")
def test_the_checker_refuses_a_wheelchair_user_or_a_carer_in_a_room_that_does_not_fit_them():
    s, plan = base_scenario(), valid_plan()
    # P006's draw is in the treatment room (no wheelchair access), their reviews in rooms for 3.
    wheelchair = update_patient(s, "P006", needs=Needs(wheelchair=True))
    assert {(v.code, v.appointment_id) for v in check_plan(wheelchair, plan).violations} >= {
        ("room_capability_missing", "P006-draw")}
    small = s.model_copy(update={"rooms": [r.model_copy(update={"capacity_people": 2}) if r.id == "rs-consult2"
                                           else r for r in s.rooms]})
    assert _codes(small, plan) == set()  # the patient and the pharmacist fit
    carer = update_patient(small, "P006", needs=Needs(carer_attending=True))
    assert {(v.code, v.appointment_id) for v in check_plan(carer, plan).violations} == {
        ("room_over_capacity", "P006-rev")}


# HAZ-008: clinicians inside their roster and competence ---------------------------------------


@pytest.mark.hazard("HAZ-008")
def test_a_review_only_an_unrostered_clinician_may_do_is_not_given_to_a_rostered_one():
    # Only the GP may do a frailty assessment; only the nurse is rostered.
    plan = solve_checked(scenario([session("nurse", "2027-03-22")], [patient("P1", "frailty")]))
    assert plan.appointments == []
    assert [u.reason for u in plan.unbooked] == ["no_clinician_rostered"]


# HAZ-012: a real NHS number as a patient id -----------------------------------------------------


@pytest.mark.hazard("HAZ-012")
def test_the_validator_refuses_a_patient_id_that_is_an_nhs_number_without_repeating_it():
    s = scenario([], [patient("P-943-476-5919", "asthma")])
    problems = validate(s, "scenario.yaml")
    [problem] = [p for p in problems if "NHS number" in p.message]
    assert problem.location == "patients[0].id"
    assert "943" not in problem.message and "5919" not in problem.message
    allowed = s.model_copy(update={"privacy": s.privacy.model_copy(update={"allow_nhs_number_ids": True})})
    assert not [p for p in validate(allowed, "scenario.yaml") if "NHS number" in p.message]


# HAZ-013: every patient is told, on the channel they chose --------------------------------------


@pytest.mark.hazard("HAZ-013")
def test_a_patient_must_have_a_contact_channel_and_calendar_invites_follow_the_preference():
    def made(**extra) -> Patient:
        return Patient.model_validate(patient("P1", "asthma", **extra))

    with pytest.raises(ValidationError):
        made(contact_preference=[])
    assert takes_calendar_invites(made())  # the default is a calendar invite
    assert takes_calendar_invites(made(contact_preference=["sms", "calendar"]))
    assert not takes_calendar_invites(made(contact_preference=["letter"]))


# HAZ-018: an interpreter is needed ----------------------------------------------------------------
# The planner does not plan interpreters (the open item of HAZ-018): the product's control is that
# the need is shown wherever a booking is looked at, for the practice to book one.


@pytest.mark.hazard("HAZ-018")
def test_the_appointment_book_shows_the_interpreter_need_beside_the_visit():
    s = scenario([session("nurse", "2027-03-22")],
                 [patient("P1", "asthma", needs={"interpreter_language": "Polish", "wheelchair": True}),
                  patient("P2", "asthma")])
    assert needs_of(s, "P1") == ["interpreter (Polish)", "wheelchair access"]
    assert needs_of(s, "P2") == []
