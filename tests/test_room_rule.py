"""One room per clinician session (`visit_rules.clinician_room_per_session`), hand-checked.

Every plan a solve returns goes through the independent checker (`plan_under`). The scenarios
are tests/builders.py's one-site surgery on Monday 22 March 2027: rooms `treatment`
(phlebotomy), `nurse-room` (spirometry, ECG) and `consult` (wheelchair access); asthma (15 min)
and frailty (30 min) need no capability, COPD (20 min) needs spirometry.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from scheduler.baselines import greedy_consolidate
from scheduler.bundles import BundleBuilder
from scheduler.check import check_plan, format_report, recompute_metrics
from scheduler.domain import Scenario
from scheduler.instance import Instance
from scheduler.model.objective import ROOM_CHANGE, count_room_changes, evaluate
from scheduler.plan import Plan
from scheduler.planner import make_plan
from scheduler.rooms import allocate
from scheduler.scenario_io import ScenarioError, read_sessions_csv, scenario_from_dict
from scheduler.validate import validate
from tests.builders import BASE, patient, scenario, session

MONDAY = "2027-03-22"
SOLVER = {"time_limit_seconds": 3, "workers": 1, "seed": 3}


def with_rule(s: Scenario, rule: str) -> Scenario:
    return s.model_copy(update={"visit_rules": s.visit_rules.model_copy(
        update={"clinician_room_per_session": rule})})


def plan_under(s: Scenario, rule: str) -> Plan:
    """Solve under the room rule, and insist the checker finds nothing wrong."""
    s = with_rule(s, rule)
    plan = make_plan(s)
    report = check_plan(s, plan)
    assert report.ok, format_report(report)
    assert plan.solver.best_bound <= plan.solver.objective
    return plan


def only(*windows: tuple[str, str]) -> list[dict]:
    """Unavailability entries (every day) leaving the patient free only in the given windows."""
    edges = ["00:00", *(t for w in windows for t in w), "23:59"]
    return [{"start": a, "end": b} for a, b in zip(edges[::2], edges[1::2]) if a != b]


def rooms_of(plan: Plan, clinician: str, kinds=("blood_draw", "review")) -> list[str]:
    return [a.room_id for a in sorted(plan.appointments, key=lambda a: a.start)
            if clinician in a.clinician_ids and a.kind in kinds]


def nurse_morning() -> Scenario:
    """One nurse session; three asthma and two COPD patients (85 minutes of reviews)."""
    patients = [patient(pid, t) for pid, t in
                (("A1", "asthma"), ("A2", "asthma"), ("C1", "copd"), ("C2", "copd"), ("A3", "asthma"))]
    return scenario([session("nurse", MONDAY)], patients, solver=SOLVER)


# ---------------------------------------------------------------------------------------------
# hard (the default)


def test_hard_is_the_default():
    assert nurse_morning().visit_rules.clinician_room_per_session == "hard"


def test_a_nurse_keeps_one_room_all_session():
    plan = plan_under(nurse_morning(), "hard")
    assert plan.metrics.reviews_booked == 5
    # Only the nurse room has spirometry, and it hosts the asthma reviews too: one room all morning.
    assert rooms_of(plan, "nurse") == ["nurse-room"] * 5
    m = plan.metrics
    assert (m.clinician_sessions, m.room_changes, m.rooms_per_session_mean) == (1, 0, 1.0)


def test_off_is_todays_freedom_and_moves_the_nurse():
    # Today's day book takes the plainest free room for each step: asthma in `consult`,
    # COPD in the nurse room, so the nurse moves between rooms within the morning.
    plan = plan_under(nurse_morning(), "off")
    assert plan.metrics.reviews_booked == 5
    assert set(rooms_of(plan, "nurse")) == {"consult", "nurse-room"}
    assert plan.metrics.room_changes >= 1 and plan.metrics.rooms_per_session_mean == 2.0


def two_rooms_one_session() -> Scenario:
    """COPD needs spirometry, asthma (here) an ECG, in different rooms; one nurse session."""
    s = scenario([session("nurse", MONDAY)], [patient("P1", "copd"), patient("P2", "asthma")], solver=SOLVER)
    data = s.model_dump()
    data["review_types"][0]["room_capabilities"] = ["ecg"]  # asthma
    data["rooms"] = [{"id": "spiro", "site_id": "surgery", "capabilities": ["spirometry"]},
                     {"id": "ecg", "site_id": "surgery", "capabilities": ["ecg"]}]
    return Scenario.model_validate(data)


def test_off_books_what_hard_cannot():
    off = plan_under(two_rooms_one_session(), "off")
    assert off.metrics.reviews_booked == 2 and set(rooms_of(off, "nurse")) == {"spiro", "ecg"}
    hard = plan_under(two_rooms_one_session(), "hard")
    # The nurse holds the spirometry room (20 min of COPD against 15 of asthma), so asthma,
    # which needs the ECG room, cannot be done in this session; the plan says why.
    assert hard.metrics.reviews_booked == 1 and rooms_of(hard, "nurse") == ["spiro"]
    [unbooked] = hard.unbooked
    assert (unbooked.review_id, unbooked.reason) == ("P2-asthma", "no_room_with_capability")
    assert "one room per session" in unbooked.detail


def test_a_second_session_gets_the_room_the_first_could_not_give():
    # Two sessions: the first holds the spirometry room, the second the ECG room (work the
    # first session's room could not host weighs more), so both reviews are booked under hard.
    s = two_rooms_one_session()
    s = s.model_copy(update={"sessions": [*s.sessions, s.sessions[0].model_copy(update={"date": dt.date(2027, 3, 23)})]})
    rooms = {(sr.shift.day, sr.room_id) for sr in allocate(Instance(with_rule(s, "hard"))).values()}
    assert rooms == {(0, "spiro"), (1, "ecg")}
    plan = plan_under(s, "hard")
    assert plan.metrics.reviews_booked == 2 and plan.metrics.room_changes == 0


def joint_morning() -> Scenario:
    """A GP and a nurse all morning; J sees both together (10:00-11:00); the others see one of
    them before (08:30-09:30) or after (11:30-12:30)."""
    patients = [
        patient("B1", "asthma", unavailable=only(("08:30", "09:30"))),
        patient("B2", "frailty", unavailable=only(("08:30", "09:30"))),
        patient("J", "frailty", "asthma", joint_consultation=True, unavailable=only(("10:00", "11:00"))),
        patient("F1", "asthma", unavailable=only(("11:30", "12:30"))),
        patient("F2", "frailty", unavailable=only(("11:30", "12:30"))),
    ]
    rooms = [*BASE["rooms"], {"id": "mdt-room", "site_id": "surgery", "capacity_people": 6, "capabilities": ["mdt"]}]
    return scenario([session("gp", MONDAY), session("nurse", MONDAY)], patients, rooms=rooms, solver=SOLVER)


def test_a_joint_sitting_moves_both_to_the_mdt_room_and_back():
    plan = plan_under(joint_morning(), "hard")
    assert plan.metrics.reviews_booked == 6
    [joint] = [a for a in plan.appointments if a.kind == "joint_review"]
    assert joint.room_id == "mdt-room" and sorted(joint.clinician_ids) == ["gp", "nurse"]
    for clinician in ("gp", "nurse"):
        own = [a for a in sorted(plan.appointments, key=lambda a: a.start)
               if clinician in a.clinician_ids and a.kind == "review"]
        assert len({a.room_id for a in own}) == 1, own  # one room of their own all morning
        assert own[0].end <= joint.start and own[-1].start >= joint.end  # before and after it
    assert set(rooms_of(plan, "gp")).isdisjoint(rooms_of(plan, "nurse"))
    assert "mdt-room" not in rooms_of(plan, "gp") + rooms_of(plan, "nurse")
    # The joint sitting is not a room change.
    m = plan.metrics
    assert (m.clinician_sessions, m.room_changes, m.rooms_per_session_mean) == (2, 0, 1.0)


def test_a_named_session_room_is_the_clinicians_room():
    s = nurse_morning()
    s = s.model_copy(update={"rooms": [*s.rooms, s.rooms[1].model_copy(update={"id": "room-4", "capabilities": ["spirometry"]})]})
    # Unnamed, the plainest room hosting everything (room-4: spirometry only) is allocated ...
    [free] = allocate(Instance(s)).values()
    assert (free.room_id, free.named) == ("room-4", False)
    # ... but the manager says the nurse is in the nurse room on Monday mornings.
    named = s.model_copy(update={"sessions": [s.sessions[0].model_copy(update={"room_id": "nurse-room"})]})
    [held] = allocate(Instance(named)).values()
    assert (held.room_id, held.named) == ("nurse-room", True)
    plan = plan_under(named, "hard")
    assert rooms_of(plan, "nurse") == ["nurse-room"] * 5
    # Moving one review to the free room-4 breaks the named room.
    a = plan.appointments[0]
    a.room_id = "room-4"
    plan.metrics = recompute_metrics(named, plan)
    report = check_plan(named, plan)
    assert report.codes() == {"clinician_changed_room"}
    [v] = report.violations
    assert v.appointment_id == a.id and "names room nurse-room" in v.message


# ---------------------------------------------------------------------------------------------
# soft


def test_soft_books_both_with_a_penalised_change():
    plan = plan_under(two_rooms_one_session(), "soft")
    assert plan.metrics.reviews_booked == 2 and plan.metrics.room_changes == 1


def test_soft_keeps_the_session_room_when_it_can():
    plan = plan_under(nurse_morning(), "soft")
    assert plan.metrics.reviews_booked == 5 and rooms_of(plan, "nurse") == ["nurse-room"] * 5


def test_soft_prices_each_room_change_and_off_does_not():
    # The same bookings (today's freedom: the nurse moves), priced under each rule.
    s = nurse_morning()
    off = Instance(with_rule(s, "off"))
    bundles = BundleBuilder(off).bundles()
    bookings = greedy_consolidate(off, bundles).bookings
    changes = count_room_changes(off, bookings)
    assert changes >= 1
    soft = Instance(with_rule(s, "soft"))
    priced_off, priced_soft = evaluate(off, bundles, bookings), evaluate(soft, bundles, bookings)
    assert priced_off.room_changes == 0
    assert priced_soft.room_changes == ROOM_CHANGE * changes
    assert priced_soft.total - priced_off.total == ROOM_CHANGE * changes
    # Below continuity (50 a review) and at the level of a fragmented session (5).
    assert 0 < ROOM_CHANGE < 50


# ---------------------------------------------------------------------------------------------
# the checker on hand-broken plans


def test_a_review_moved_to_another_free_room_is_caught_only_under_hard():
    s = nurse_morning()
    plan = plan_under(s, "hard")
    moved = sorted(plan.appointments, key=lambda a: a.start)[2]
    moved.room_id = "consult"  # free all morning; the review needs no capability
    plan.metrics = recompute_metrics(s, plan)
    assert plan.metrics.room_changes in (1, 2) and plan.metrics.rooms_per_session_mean == 2.0
    report = check_plan(s, plan)
    assert report.codes() == {"clinician_changed_room"}, format_report(report)
    assert [v.appointment_id for v in report.violations] == [moved.id]
    for rule in ("off", "soft"):
        relaxed = with_rule(s, rule)
        assert check_plan(relaxed, plan).ok, format_report(check_plan(relaxed, plan))


def test_joint_sittings_are_exempt_in_the_checker():
    s = joint_morning()
    plan = plan_under(s, "hard")
    # Each clinician's session holds two rooms among their appointments (their own and the MDT
    # room), yet the plan is valid: the joint sitting does not count against the rule.
    [joint] = [a for a in plan.appointments if a.kind == "joint_review"]
    for clinician in ("gp", "nurse"):
        assert len(set(rooms_of(plan, clinician, kinds=("review", "joint_review")))) == 2
    assert joint.room_id not in rooms_of(plan, "nurse")
    assert check_plan(s, plan).ok


# ---------------------------------------------------------------------------------------------
# allocation, validation and the CSV column


def test_allocation_is_deterministic_and_ignores_session_order():
    s = joint_morning()
    s = s.model_copy(update={"sessions": [session_ for day in ("2027-03-22", "2027-03-23", "2027-03-24")
                                          for session_ in (s.sessions[0].model_copy(update={"date": dt.date.fromisoformat(day)}),
                                                           s.sessions[1].model_copy(update={"date": dt.date.fromisoformat(day)}))]})
    first = {(sh.clinician_id, sh.day): sr.room_id for sh, sr in allocate(Instance(s)).items()}
    shuffled = list(s.sessions)
    random.Random(7).shuffle(shuffled)
    again = {(sh.clinician_id, sh.day): sr.room_id
             for sh, sr in allocate(Instance(s.model_copy(update={"sessions": shuffled}))).items()}
    assert first == again
    # MDT rooms stay free for the joint sitting: nobody holds them, and GP and nurse differ.
    assert "mdt-room" not in first.values()
    assert all(first[("gp", d)] != first[("nurse", d)] for d in range(3))


def test_validation_of_named_rooms():
    data = scenario([], []).model_dump()
    data["sites"].append({"id": "hub", "name": "Hub", "address": "2 Hub Road"})
    data["rooms"].append({"id": "hub-room", "site_id": "hub"})
    data["sessions"] = [
        session("nurse", MONDAY, room_id="nurse-room"),
        session("gp", MONDAY, "10:00", "14:00", room_id="nurse-room"),  # overlaps the nurse's
        session("gp", "2027-03-23", room_id="nurse-rom"),
        session("hca", MONDAY, room_id="hub-room"),
        session("hca", "2027-03-23", "13:00", "17:00", room_id="nurse-room"),  # no overlap: fine
    ]
    found = [str(p) for p in validate(Scenario.model_validate(data), "t.yaml")]
    assert found == [
        "t.yaml: sessions[2].room_id: unknown room 'nurse-rom'; did you mean 'nurse-room'?",
        "t.yaml: sessions[3].room_id: room 'hub-room' is at site 'hub', not at the session's site 'surgery'",
        ("t.yaml: sessions[1].room_id: room 'nurse-room' is also named by sessions[0] ('nurse', 08:30-12:30) "
         "on 2027-03-22: a clinician holds their session's room for the whole session, so overlapping "
         "sessions need different rooms"),
    ]


def test_sessions_csv_room_id_column():
    rows, problems = read_sessions_csv(
        "clinician_id,date,start,end,site_id,room_id\n"
        "nurse,22/03/2027,08:30,12:30,surgery,nurse-room\n"
        "gp,22/03/2027,08:30,12:30,surgery,\n", "rota.csv")
    assert problems == [] and rows[0].values["room_id"] == "nurse-room" and "room_id" not in rows[1].values
    data = scenario([], [patient("A1", "asthma")]).model_dump(mode="json")
    s = scenario_from_dict(data, "t.yaml", sessions_csv_text=(
        "clinician_id,date,start,end,site_id,room_id\nnurse,22/03/2027,08:30,12:30,surgery,consult\n"))
    assert s.sessions[0].room_id == "consult"
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(data, "t.yaml", sessions_csv_text=(
            "clinician_id,date,start,end,site_id,room_id\nnurse,22/03/2027,08:30,12:30,surgery,room-9\n"),
            sessions_source="rota.csv")
    assert "rota.csv: row 2, column 'room_id': unknown room 'room-9'" in str(info.value)


@pytest.mark.parametrize("rule", ["hard", "off"])
def test_rule_round_trips_and_unknown_values_are_refused(rule):
    s = with_rule(nurse_morning(), rule)
    assert Scenario.model_validate(s.model_dump()).visit_rules.clinician_room_per_session == rule
    data = s.model_dump()
    data["visit_rules"]["clinician_room_per_session"] = "sometimes"
    with pytest.raises(ValueError):
        Scenario.model_validate(data)
