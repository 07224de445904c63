"""Capacity study files (issue 15): variants and sweeps expanded into scenarios, every change
applied as written, and a bad study refused before any solve, naming variant and field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from scheduler.capacity.study import (
    StudyError,
    expand,
    load_study,
    study_from_data,
    study_json_schema,
)
from scheduler.scenario_io import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "sample_rosters" / "tutorial.yaml"
BASE = load_scenario(TUTORIAL)


def study(*variants: dict, sweeps: list[dict] | None = None, **extra):
    return study_from_data({"name": "what-ifs", "base": "tutorial.yaml", "variants": list(variants),
                            "sweeps": sweeps or [], **extra}, "study.yaml")


def scenarios(*variants: dict, **extra) -> dict:
    return {v.name: v.scenario for v in expand(study(*variants, **extra), BASE, "study.yaml")}


def test_the_base_comes_first_unchanged_and_each_variant_applies_its_changes():
    made = scenarios(
        {"name": "a second nurse room", "changes": [
            {"kind": "room_added", "room": {"id": "rs-nurse2", "site_id": "riverside", "capabilities": ["phlebotomy"]}}]},
        {"name": "no consulting room 1", "changes": [{"kind": "room_removed", "room": "rs-consult1"}]},
        {"name": "joint MDT for all", "changes": [{"kind": "consolidation_mode", "mode": "joint"}]},
        {"name": "short visits", "changes": [{"kind": "max_visit_minutes", "minutes": 60}]},
        {"name": "HbA1c at the point of care", "changes": [
            {"kind": "blood_draw_policy", "policy": "earlier_draw_trip_allowed", "point_of_care_markers": ["hba1c"]}]},
    )
    assert list(made) == ["base", "a second nurse room", "no consulting room 1", "joint MDT for all", "short visits",
                          "HbA1c at the point of care"]
    assert made["base"] == BASE
    assert "rs-nurse2" in {r.id for r in made["a second nurse room"].rooms}
    assert "rs-consult1" not in {r.id for r in made["no consulting room 1"].rooms}
    joint = {p.id for p in made["joint MDT for all"].patients if p.joint_consultation}
    assert joint == {p.id for p in BASE.patients if len(p.due_reviews) >= 2}
    assert made["short visits"].visit_rules.max_visit_minutes == 60
    poc = made["HbA1c at the point of care"]
    assert poc.visit_rules.blood_draw_policy == "earlier_draw_trip_allowed"
    assert next(m for m in poc.blood_markers if m.id == "hba1c").point_of_care


def test_sessions_are_added_removed_and_moved_for_a_clinician_or_a_role():
    made = scenarios(
        {"name": "nurse afternoons", "changes": [{"kind": "sessions_added", "role": "practice_nurse", "site": "riverside",
                                                  "weekdays": ["mon", "wed"], "start": "13:30", "end": "17:30"}]},
        {"name": "no GP on Fridays", "changes": [{"kind": "sessions_removed", "clinician": "gp-khan", "weekdays": ["fri"]}]},
    )
    added = [s for s in made["nurse afternoons"].sessions if s not in BASE.sessions]
    # Mondays and Wednesdays of the fortnight, Easter Monday (29 March) aside, for a new sessional nurse
    assert sorted(s.date for s in added) == [dt.date(2027, 3, 22), dt.date(2027, 3, 24), dt.date(2027, 3, 31)]
    (extra,) = [c for c in made["nurse afternoons"].clinicians if c.id not in {c.id for c in BASE.clinicians}]
    assert extra.role == "practice_nurse" and {s.clinician_id for s in added} == {extra.id}
    assert not [s for s in made["no GP on Fridays"].sessions if s.clinician_id == "gp-khan" and s.date.weekday() == 4]
    assert len(made["no GP on Fridays"].sessions) < len(BASE.sessions)


def test_demand_is_scaled_reproducibly_from_the_base_mix():
    change = {"kind": "demand_scaled", "factor": 2, "clusters": [["diabetes"]]}
    first = scenarios({"name": "twice the diabetes", "changes": [change]})["twice the diabetes"]
    again = scenarios({"name": "twice the diabetes", "changes": [change]})["twice the diabetes"]
    other = scenarios({"name": "twice the diabetes", "changes": [change]}, seed=9)["twice the diabetes"]
    diabetic = [p for p in BASE.patients if "diabetes" in {d.review_type_id for d in p.due_reviews}]
    new = [p for p in first.patients if p.id not in {q.id for q in BASE.patients}]
    assert len(new) == len(diabetic) and all("diabetes" in {d.review_type_id for d in p.due_reviews} for p in new)
    assert first == again
    assert other != first  # another seed draws other patients from the mix


def test_a_site_opens_for_the_patients_near_another():
    made = scenarios({"name": "a hub", "changes": [{
        "kind": "site_opened", "near": "riverside", "travel_minutes": 20,
        "site": {"id": "hub", "name": "PCN hub", "kind": "pcn_hub", "address": "1 Hub Road"},
        "rooms": [{"id": "hub-mdt", "site_id": "hub", "capabilities": ["mdt"], "capacity_people": 6}]}]})["a hub"]
    assert "hub" in {s.id for s in made.sites} and "hub-mdt" in {r.id for r in made.rooms}
    assert all({"site_id": "hub", "travel_minutes": 20} in [r.model_dump() for r in p.reachable_sites]
               for p in made.patients)


def test_a_site_opens_for_named_patients_with_their_own_travel_times():
    made = scenarios({"name": "a hub", "changes": [{
        "kind": "site_opened", "patient_travel": {"P001": 5, "P002": 40},
        "site": {"id": "hub", "name": "PCN hub", "kind": "pcn_hub", "address": "1 Hub Road"}}]})["a hub"]
    reach = {p.id: {r.site_id: r.travel_minutes for r in p.reachable_sites} for p in made.patients}
    assert reach["P001"]["hub"] == 5 and reach["P002"]["hub"] == 40 and "hub" not in reach["P003"]
    with pytest.raises(StudyError):
        study_from_data({"name": "s", "base": "t.yaml", "variants": [{"name": "v", "changes": [
            {"kind": "site_opened", "site": {"id": "hub", "name": "Hub", "address": "x"}}]}]}, "s.yaml")


def test_a_sweep_makes_one_variant_per_value():
    made = scenarios(sweeps=[{"name": "extra nurse sessions", "values": [0, 1, 2], "changes": [
        {"kind": "sessions_added", "role": "practice_nurse", "site": "riverside", "weekdays": ["tue"],
         "start": "13:30", "end": "17:30", "count": "$value"}]}])
    assert list(made) == ["base", "extra nurse sessions = 0", "extra nurse sessions = 1", "extra nurse sessions = 2"]
    extra = [len(made[name].sessions) - len(BASE.sessions) for name in list(made)[1:]]
    assert extra == [0, 2, 4]  # Tuesdays 23 and 30 March, one session each per added nurse


def test_a_bad_study_is_refused_before_any_solve_naming_variant_and_field():
    with pytest.raises(StudyError) as refused:
        expand(study(
            {"name": "room at a site that is not there", "changes": [
                {"kind": "room_added", "room": {"id": "x1", "site_id": "rivrside"}}]},
            {"name": "moves an unknown clinician", "changes": [
                {"kind": "sessions_moved", "clinician": "gp-kahn", "from_site": "riverside", "to_site": "riverside"}]},
            {"name": "closes the only site", "changes": [{"kind": "site_closed", "site": "riverside"}]},
            {"name": "sessions ending before they start", "changes": [
                {"kind": "sessions_added", "clinician": "gp-khan", "site": "riverside", "weekdays": ["sat"],
                 "start": "12:00", "end": "09:00"}]},
            {"name": "closes the only site", "changes": []},
            {"name": "an invalid scenario", "changes": [
                {"kind": "room_removed", "room": "rs-treatment"}, {"kind": "room_removed", "room": "rs-nurse"}]},
            bottlenecks=["base", "no such variant"]), BASE, "study.yaml")
    said = {p.location: p.message for p in refused.value.problems}
    assert said["variant 'room at a site that is not there': changes[0] (room_added).room.site_id"] == "unknown site 'rivrside'"
    assert said["variant 'moves an unknown clinician': changes[0] (sessions_moved).clinician"] == "unknown clinician 'gp-kahn'"
    assert "the only site" in said["variant 'closes the only site': changes[0] (site_closed).site"]
    assert "end at or before" in said["variant 'sessions ending before they start': changes[0] (sessions_added).end"]
    assert "two variants have this name" in said["variant 'closes the only site'"]
    assert "invalid" in said["variant 'an invalid scenario'"] and "phlebotomy" in said["variant 'an invalid scenario'"]
    assert said["bottlenecks[1]"] == "no variant named 'no such variant'"


def test_a_sweep_with_no_steps_and_unknown_fields_are_refused_by_name():
    with pytest.raises(StudyError) as refused:
        study_from_data({"name": "s", "base": "tutorial.yaml", "sweeps": [{"name": "empty", "values": [], "changes": [{}]}],
                         "variants": [{"name": "v", "changes": [{"kind": "room_added", "rom": {}}]}]}, "study.yaml")
    said = {p.location: p.message for p in refused.value.problems}
    assert "sweeps[0].values" in said and "at least 1" in said["sweeps[0].values"]
    assert any(location.startswith("variants[0].changes[0]") for location in said)


def test_a_study_file_loads_with_its_base_beside_it(tmp_path):
    (tmp_path / "tutorial.yaml").write_text(TUTORIAL.read_text())
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({"name": "s", "base": "tutorial.yaml", "time_limit_seconds": 5}))
    loaded, base = load_study(tmp_path / "study.yaml")
    assert loaded.time_limit_seconds == 5 and base == BASE
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"name": "s", "base": "nowhere.yaml"}))
    with pytest.raises(StudyError) as refused:
        load_study(tmp_path / "bad.yaml")
    assert refused.value.problems[0].location == "base"
    assert study_json_schema()["title"] == "OneVisit capacity study"


def test_an_oversized_study_is_refused_by_name_before_anything_is_expanded():
    with pytest.raises(StudyError) as refused:
        study_from_data({"name": "s", "base": "t.yaml", "sweeps": [
            {"name": "huge", "values": list(range(100_000)), "changes": [{"kind": "max_visit_minutes", "minutes": "$value"}]}]},
            "study.yaml")
    assert refused.value.problems[0].location == "sweeps[0].values"
    many = study(sweeps=[{"name": f"s{i}", "values": list(range(60)), "changes": [
        {"kind": "max_visit_minutes", "minutes": 60}]} for i in range(20)])
    with pytest.raises(StudyError) as refused:
        expand(many, BASE, "study.yaml")
    assert refused.value.problems[0].location == "variants" and "at most 1,000" in refused.value.problems[0].message
