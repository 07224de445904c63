"""docs/capacity.md stays true to the code: its JSON Schema block is `study_json_schema()`, every
change kind has a section naming every field of its model, and the example study
(sample_rosters/pcn-capacity-study.yaml) loads and expands cleanly to the variant count the doc
states. Nothing is solved here (the example takes minutes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scheduler.capacity.bottlenecks import candidates
from scheduler.capacity.study import CHANGE_KINDS, Change, expand, load_study, study_json_schema

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "capacity.md"
EXAMPLE = ROOT / "sample_rosters" / "pcn-capacity-study.yaml"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _section(doc: str, heading: str) -> str:
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#{{1,3}} |\Z)", doc, re.MULTILINE | re.DOTALL)
    assert match, f"docs/capacity.md has no section '{heading}'"
    return match.group(1)


def test_the_json_schema_block_is_study_json_schema(doc):
    blocks = re.findall(r"```json\n(.*?)\n```", _section(doc, "## JSON Schema"), re.DOTALL)
    assert len(blocks) == 1, "one ```json block under '## JSON Schema'"
    assert json.loads(blocks[0]) == study_json_schema()
    assert blocks[0] == json.dumps(study_json_schema(), indent=2)


def _models() -> dict[str, type]:
    union = Change.__origin__ if hasattr(Change, "__origin__") else Change  # Annotated[Union, ...]
    return {m.model_fields["kind"].annotation.__args__[0]: m for m in union.__args__}


def test_every_change_kind_has_a_section_naming_every_field(doc):
    models = _models()
    assert set(models) == set(CHANGE_KINDS)
    for kind in CHANGE_KINDS:
        section = _section(doc, f"### {kind}")
        for field in models[kind].model_fields:
            assert f"`{field}`" in section, f"'### {kind}' does not name its field `{field}`"


def test_the_example_study_loads_and_expands_to_the_stated_variants(doc):
    study, base = load_study(EXAMPLE)
    variants = expand(study, base, EXAMPLE.name)
    stated = re.search(r"\*\*(\d+) variants\*\* plus the base", doc)
    assert stated, "docs/capacity.md states the example's variant count as '**N variants** plus the base'"
    assert len(variants) - 1 == int(stated.group(1))
    assert variants[0].name == "base"
    # The doc's bottleneck candidate count for the example, and the solves in all.
    found = candidates(base, study.bottleneck_roles, study.bottleneck_sites)
    assert f"That gives {len(found)} candidates" in doc
    assert f"In all there are {len(variants) + len(found)} solves" in doc
    assert f"at {study.time_limit_seconds:g} s each" in doc
