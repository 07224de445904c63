"""Repeated re-plans, published one after another, on the real database (SQLite and PostgreSQL):
each patient's calendar event keeps its UID and booking reference across versions, SEQUENCE
rises only for a visit that changed, and each publication sends an update only to a patient
whose visit changed and a cancellation only to one whose visit went (issue 14)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api.db import make_engine, make_sessionmaker, transaction, upgrade
from api.keys import organisation
from api.models import CalendarEvent, PlanRecord, Publication, ScenarioRecord
from api.publish import publish
from api.store import (
    add_plan,
    add_scenario,
    add_version,
    booking_references,
    plan_of,
    scenario_version,
)
from scheduler.check import check_plan, format_report
from scheduler.diff import diff_plans
from scheduler.disruptions import disruptions_from_data
from scheduler.planner import make_plan
from scheduler.replan import prepare, replan
from tests.test_replan import EARLY, SETTINGS, busy_week


def _events(session, scenario_id: str) -> dict[str, tuple[str, str, int, str]]:
    """visit id -> (uid, reference, sequence, status) of every event the scenario has."""
    rows = session.scalars(select(CalendarEvent).where(CalendarEvent.scenario_id == scenario_id)).all()
    return {e.visit_id: (e.uid, e.reference, e.sequence, e.status) for e in rows}


def _actions(session, plan_id: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for pub in session.scalars(select(Publication).where(Publication.plan_id == plan_id)).all():
        found.setdefault(pub.action, set()).add(pub.patient_id)
    return found


@pytest.mark.hazard("HAZ-005")
def test_repeated_replans_keep_uids_and_message_only_the_patients_whose_visit_changed(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    s = busy_week()
    first = make_plan(s, SETTINGS)
    assert check_plan(s, first).ok
    with transaction(factory) as session:
        org = organisation(session, "north")
        version = add_scenario(session, org.id, s, "test")
        record = add_plan(session, version, org.id, first)
        publish(session, record)
        scenario_id, plan_id = version.scenario_id, record.id
    disruptions = [
        [{"kind": "clinician_absence", "clinician": "nurse", "start": "2027-03-23T00:00:00", "end": "2027-03-24T00:00:00"}],
        [{"kind": "patient_cancelled", "patient": "P8", "rebook": False},
         {"kind": "clinician_absence", "clinician": "gp", "start": "2027-03-22T00:00:00", "end": "2027-03-23T00:00:00"}],
    ]
    scenario, previous = s, first
    for entries in disruptions:
        with factory() as session:
            before = _events(session, scenario_id)
            references = booking_references(session, scenario_id)
            previous = plan_of(session.get(PlanRecord, plan_id))
        prepared = prepare(scenario, previous, disruptions_from_data(entries, "d.yaml"), as_of=EARLY,
                           references=references)
        new = replan(prepared, previous, SETTINGS, previous_plan_id=plan_id)
        report = check_plan(prepared.scenario, new)
        assert report.ok, format_report(report)
        with transaction(factory) as session:
            record = session.get(ScenarioRecord, scenario_id)
            version = add_version(session, record, prepared.scenario, "replan")
            stored = add_plan(session, version, record.organisation_id, new)
            assert scenario_version(session, record).version == version.version  # the versions chain
            result = publish(session, stored)
            new_id = stored.id
        with factory() as session:
            after = _events(session, scenario_id)
            actions = _actions(session, new_id)
            new = plan_of(session.get(PlanRecord, new_id))
        diff = diff_plans(previous, new)
        moved = {p.patient_id for p in diff.patients if any(v.change == "moved" for v in p.visits)}
        gone = {p.patient_id for p in diff.patients if p.status == "cancelled"}
        unchanged = {v.patient_id for v in new.visits} - moved - gone - {
            p.patient_id for p in diff.patients if p.status == "newly_booked"}
        assert moved, "each disruption moves someone"
        assert actions.get("update", set()) <= moved
        assert actions.get("cancel", set()) <= gone | moved  # a visit split or merged cancels one event
        assert gone <= actions.get("cancel", set())
        assert not (actions.get("update", set()) | actions.get("cancel", set())) & unchanged
        assert result.counts["update"] + result.counts["cancel"] >= len(moved | gone) > 0
        for visit in new.visits:
            if visit.id in before and before[visit.id][3] == "active":
                uid, reference, sequence, _ = after[visit.id]
                assert (uid, reference) == before[visit.id][:2]  # one event per visit, across versions
                updated = visit.patient_id in actions.get("update", set())
                assert sequence == before[visit.id][2] + (1 if updated else 0)  # rises only with a change
        assert new.replan.previous_plan_id == plan_id and new.stored.plan_id == new_id
        scenario, plan_id = prepared.scenario, new_id
    engine.dispose()
