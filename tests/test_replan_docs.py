"""docs/replan.md against the code it documents (issue 14): the JSON Schema it publishes is the
disruptions models' own, every kind of disruption has its section naming every field, each
section's example is a valid entry of that kind, and the tutorial's disruptions file loads,
prepares cleanly against a real plan of the tutorial scenario and gives a re-plan the
independent checker accepts."""

from __future__ import annotations

import datetime as dt
import json
import re
import typing
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from scheduler.check import check_plan, format_report
from scheduler.disruptions import (
    KINDS,
    Disruption,
    disruptions_from_text,
    disruptions_json_schema,
    load_disruptions,
)
from scheduler.domain import SolverSettings
from scheduler.planner import make_plan
from scheduler.replan import prepare, replan
from scheduler.scenario_io import load_scenario

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "replan.md"
TUTORIAL = ROOT / "sample_rosters" / "tutorial.yaml"
TUTORIAL_DISRUPTIONS = ROOT / "sample_rosters" / "tutorial-disruptions.yaml"
LONDON = ZoneInfo("Europe/London")
AS_OF = dt.datetime(2027, 3, 22, 8, 0, tzinfo=LONDON)
SETTINGS = SolverSettings(time_limit_seconds=3, workers=1, seed=1)


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _part(text: str, heading: str) -> str:
    """The text under `heading` (a whole '## ...' line) up to the next '## ' heading."""
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    assert match, f"docs/replan.md has no '{heading}' section"
    return match.group(1)


def _kind_sections() -> dict[str, str]:
    """'### <name>' subsections of "The disruptions file", by name."""
    part = _part(_doc(), "## The disruptions file")
    pieces = re.split(r"^### (.+)$", part, flags=re.MULTILINE)
    return {name.strip(): body for name, body in zip(pieces[1::2], pieces[2::2], strict=True)}


def _models() -> dict[str, type]:
    """Kind -> its pydantic model, read from the discriminated union itself."""
    union = typing.get_args(Disruption)[0]
    models = {}
    for model in typing.get_args(union):
        (kind,) = typing.get_args(model.model_fields["kind"].annotation)
        models[kind] = model
    return models


def _fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)\n```$", text, re.DOTALL | re.MULTILINE)


def test_the_json_schema_block_is_the_models_schema():
    blocks = _fenced(_part(_doc(), "## JSON Schema"), "json")
    assert len(blocks) == 1, "the JSON Schema section should hold exactly one ```json block"
    assert json.loads(blocks[0]) == disruptions_json_schema()
    assert blocks[0] == json.dumps(disruptions_json_schema(), indent=2), "regenerate it with json.dumps(..., indent=2)"


def test_the_union_and_kinds_agree():
    # The doc is checked against KINDS; KINDS must be every kind the file format accepts.
    assert set(_models()) == set(KINDS)
    assert len(KINDS) == len(set(KINDS))


def test_every_kind_has_a_section_naming_every_field():
    sections = _kind_sections()
    assert set(sections) == set(KINDS), (
        f"missing: {sorted(set(KINDS) - set(sections))}, not a kind: {sorted(set(sections) - set(KINDS))}")
    for kind, model in _models().items():
        missing = [name for name in model.model_fields if f"`{name}`" not in sections[kind]]
        assert not missing, f"### {kind} does not mention {missing}"


def test_every_sections_example_is_a_valid_entry_of_its_kind():
    for kind, body in _kind_sections().items():
        examples = _fenced(body, "yaml")
        assert examples, f"### {kind} has no ```yaml example"
        for example in examples:
            entries = disruptions_from_text(example, f"{kind}-example.yaml")
            assert [e.kind for e in entries] == [kind] * len(entries) and entries, example


def test_the_tutorial_quotes_the_sample_disruptions_file():
    part = _part(_doc(), "## Tutorial: re-planning the tutorial practice")
    quoted = yaml.safe_load(_fenced(part, "yaml")[0])
    assert quoted == yaml.safe_load(TUTORIAL_DISRUPTIONS.read_text(encoding="utf-8"))
    for command in ("onevisit plan sample_rosters/tutorial.yaml --out out/tutorial",
                    ("onevisit replan out/tutorial --disruptions sample_rosters/tutorial-disruptions.yaml "
                     "--out out/tutorial-replan --as-of 2027-03-22T08:00"),
                    "onevisit diff out/tutorial out/tutorial-replan"):
        assert command in part


@pytest.fixture(scope="module")
def tutorial_replan():
    scenario = load_scenario(TUTORIAL)
    previous = make_plan(scenario, SETTINGS)
    report = check_plan(scenario, previous)
    assert report.ok, format_report(report)
    entries = load_disruptions(TUTORIAL_DISRUPTIONS)
    prepared = prepare(scenario, previous, entries, as_of=AS_OF)
    return scenario, previous, entries, prepared, replan(prepared, previous, SETTINGS)


def test_the_tutorial_disruptions_prepare_cleanly(tutorial_replan):
    scenario, _previous, entries, prepared, _new = tutorial_replan
    assert [e.kind for e in entries] == ["clinician_absence", "room_closure", "patient_cancelled", "patient_added"]
    assert prepared.freeze_until == dt.datetime(2027, 3, 25, 0, 0, tzinfo=LONDON)  # as the tutorial says
    # What the doc says each entry does to the next version.
    nurse = [(s.date, s.start, s.end) for s in prepared.scenario.sessions if s.clinician_id == "pn-ellis"]
    assert all(not dt.date(2027, 3, 25) <= day <= dt.date(2027, 3, 26) for day, _, _ in nurse)
    assert len(nurse) < sum(1 for s in scenario.sessions if s.clinician_id == "pn-ellis")
    assert [(c.room_id, c.reason) for c in prepared.scenario.closures] == [("rs-consult1", "leak")]
    assert "P009" in {p.id for p in prepared.scenario.patients}


def test_the_tutorial_replan_passes_the_checker(tutorial_replan):
    _scenario, previous, _entries, prepared, new = tutorial_replan
    report = check_plan(prepared.scenario, new)
    assert report.ok, format_report(report)
    assert new.replan is not None and new.replan.as_of == AS_OF
    assert len(new.replan.disruptions) == 4
    assert {a.patient_id for a in new.appointments} >= {"P009"}
    assert new.metrics.reviews_booked == new.metrics.reviews == previous.metrics.reviews + 2
