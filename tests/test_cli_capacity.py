"""`onevisit capacity` as a planner runs it: a study file beside its base scenario, a real
process, the report written; a bad study exits 2 naming variant and field, and nothing is solved."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "capacity", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_a_study_runs_and_writes_its_report(tmp_path):
    shutil.copy(ROOT / "sample_rosters" / "tutorial.yaml", tmp_path / "tutorial.yaml")
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "Riverside what-ifs", "base": "tutorial.yaml", "time_limit_seconds": 3, "seed": 1,
        "bottleneck_roles": ["hca"],
        "variants": [{"name": "no consulting room 1", "changes": [{"kind": "room_removed", "room": "rs-consult1"}]}]}))
    result = run(str(tmp_path / "study.yaml"), "--out", str(tmp_path / "report"), "--workers", "2")
    assert result.returncode == 0, result.stderr
    written = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"report.html", "report.json", "figures.csv", "capacity_curve.png", "utilisation_heatmap.png",
            "equity.png"} <= written
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [v["name"] for v in report["variants"]] == ["base", "no consulting room 1"]
    assert all(v["error"] is None for v in report["variants"])
    assert "Solved 2 variant(s) (0 failed)" in result.stdout


def test_a_bad_study_exits_2_naming_variant_and_field(tmp_path):
    shutil.copy(ROOT / "sample_rosters" / "tutorial.yaml", tmp_path / "tutorial.yaml")
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "s", "base": "tutorial.yaml",
        "variants": [{"name": "a room nowhere", "changes": [{"kind": "room_added", "room": {"id": "x", "site_id": "nowhere"}}]}],
        "sweeps": [{"name": "empty", "values": [], "changes": [{"kind": "max_visit_minutes", "minutes": "$value"}]}]}))
    result = run(str(tmp_path / "study.yaml"), "--out", str(tmp_path / "report"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "sweeps[0].values" in result.stderr
    assert not (tmp_path / "report").exists()
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "name": "s", "base": "tutorial.yaml",
        "variants": [{"name": "a room nowhere", "changes": [{"kind": "room_added", "room": {"id": "x", "site_id": "nowhere"}}]}]}))
    result = run(str(tmp_path / "study.yaml"), "--out", str(tmp_path / "report"))
    assert result.returncode == 2
    assert "variant 'a room nowhere': changes[0] (room_added).room.site_id: unknown site 'nowhere'" in result.stderr
    assert not (tmp_path / "report").exists()
