"""The capacity study report (issue 15): one self-contained HTML file, CSV, JSON and three PNGs."""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from scheduler.capacity.outcome import StudyOutcome, run_study
from scheduler.capacity.report import (
    capacity_curve,
    equity_chart,
    one_visit_patients,
    utilisation_heatmap,
    write_report,
)
from scheduler.capacity.study import study_from_data
from scheduler.scenario_io import load_scenario

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNIT = re.compile(r"\((count|minutes|%|[^)]*sessions?[^)]*|[^)]*deprived[^)]*)\)|= most deprived")


@pytest.fixture(scope="module")
def outcome() -> StudyOutcome:
    base = load_scenario(ROOT / "sample_rosters" / "tutorial.yaml")
    study = study_from_data({
        "name": "Tutorial what-ifs",
        "base": "tutorial.yaml",
        "time_limit_seconds": 5,
        "variants": [{"name": "without consulting room 1",
                      "changes": [{"kind": "room_removed", "room": "rs-consult1"}]}],
        "sweeps": [{"name": "extra nurse", "values": [0, 1],
                    "changes": [{"kind": "sessions_added", "role": "practice_nurse", "site": "riverside",
                                 "weekdays": ["tue"], "start": "13:30", "end": "17:30", "count": "$value"}]}],
        "bottleneck_roles": ["practice_nurse"],
    }, "test")
    return run_study(study, base, processes=2)


@pytest.fixture(scope="module")
def written(outcome: StudyOutcome, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("report") / "study"
    return out, write_report(outcome, out)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    parser.close()
    return parser


def test_the_study_solved(outcome: StudyOutcome) -> None:
    assert [v.name for v in outcome.variants] == [
        "base", "without consulting room 1", "extra nurse = 0", "extra nurse = 1"]
    assert all(v.figures is not None for v in outcome.variants)
    assert outcome.bottlenecks["base"]


def test_every_file_is_written(written: tuple[Path, list[Path]]) -> None:
    out, paths = written
    names = ["report.html", "figures.csv", "report.json", "capacity_curve.png", "utilisation_heatmap.png",
             "equity.png"]
    assert paths == [out / n for n in names]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0
    for name in names[3:]:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE


def test_the_html_is_self_contained(written: tuple[Path, list[Path]], outcome: StudyOutcome) -> None:
    out, _ = written
    text = (out / "report.html").read_text(encoding="utf-8")
    parsed = _parse(text)
    images = [attrs for tag, attrs in parsed.tags if tag == "img"]
    assert len(images) == 3
    for attrs in images:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)[:8] == PNG_SIGNATURE
        assert attrs.get("alt")
    assert "http://" not in text and "https://" not in text
    for tag, attrs in parsed.tags:
        assert tag not in ("script", "link", "iframe")
        for name in ("src", "href"):
            assert not attrs.get(name) or attrs[name].startswith("data:") or attrs[name].startswith("#")
    body = " ".join(parsed.text)
    assert outcome.study.name in body
    for variant in outcome.variants:
        assert variant.name in body
    assert outcome.bottlenecks["base"][0].label in body
    assert "5 s" in body and "Seed" in body and "3 besides the base" in body
    assert "How to read this" in body and "same patients" in body


def test_a_failed_variant_is_listed_with_its_error(outcome: StudyOutcome, tmp_path: Path) -> None:
    broken = dataclasses.replace(outcome.variants[1], name="broken one", plan=None, figures=None, comparison=None,
                                 error="ValueError: the <solver> stopped")
    changed = dataclasses.replace(outcome, variants=[*outcome.variants, broken])
    write_report(changed, tmp_path)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "ValueError: the &lt;solver&gt; stopped" in text
    with (tmp_path / "figures.csv").open(newline="", encoding="utf-8") as handle:
        assert [r["variant"] for r in csv.DictReader(handle)] == [v.name for v in outcome.variants]
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data["variants"][-1] == {**data["variants"][-1], "name": "broken one", "figures": None,
                                    "error": "ValueError: the <solver> stopped"}


def test_names_from_the_study_are_escaped(outcome: StudyOutcome, tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    variants = [outcome.variants[0], dataclasses.replace(outcome.variants[1], name=evil), *outcome.variants[2:]]
    study = outcome.study.model_copy(update={"name": "Hub <b>A</b> & co"})
    write_report(dataclasses.replace(outcome, study=study, variants=variants), tmp_path)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>A</b>" not in text
    assert html_escaped(evil) in text
    assert "Hub &lt;b&gt;A&lt;/b&gt; &amp; co" in text
    parsed = _parse(text)
    assert not any(tag in ("script", "b") for tag, _ in parsed.tags)
    assert evil in " ".join(parsed.text)


def html_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _labelled(fig, *, axes: int = 0) -> None:
    ax = fig.axes[axes]
    assert ax.get_title().strip()
    assert UNIT.search(ax.get_xlabel()), ax.get_xlabel()
    assert UNIT.search(ax.get_ylabel()), ax.get_ylabel()


def test_the_capacity_curve(outcome: StudyOutcome) -> None:
    fig = capacity_curve(outcome)
    _labelled(fig)
    ax = fig.axes[0]
    assert "clinician sessions" in ax.get_xlabel()
    texts = "\n".join(t.get_text() for t in ax.texts)
    for variant in outcome.variants:
        assert variant.name[:20] in texts  # long names are shortened with an ellipsis
    lines = [line for line in ax.get_lines() if "extra nurse" in line.get_label()]
    assert len(lines) == 1
    xs, ys = lines[0].get_data()
    sweep = [v for v in outcome.variants if v.name.startswith("extra nurse = ")]
    assert list(xs) == [v.clinician_sessions for v in sweep]
    assert list(ys) == [one_visit_patients(v.plan) for v in sweep]
    assert "base" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_one_visit_patients_is_bounded_by_the_figures(outcome: StudyOutcome) -> None:
    for v in outcome.variants:
        assert 0 <= one_visit_patients(v.plan) <= v.figures.patients_fully_booked


def test_the_utilisation_heatmap(outcome: StudyOutcome) -> None:
    figures = outcome.variants[0].figures
    fig = utilisation_heatmap(figures, "Room utilisation of the base")
    ax = fig.axes[0]
    assert ax.get_title() == "Room utilisation of the base"
    assert ax.get_xlabel().startswith("weekday") and ax.get_ylabel() == "site"
    assert fig.axes[1].get_ylabel() == "room utilisation (%)"  # the colour bar
    cells = [t.get_text() for t in ax.texts]
    expected = [f"{100 * figures.utilisation_by_site_weekday[s][d]:.0f}%"
                for s in sorted(figures.utilisation_by_site_weekday) for d in ("mon", "tue", "wed", "thu", "fri")]
    assert cells == expected
    empty = utilisation_heatmap(None, "nothing")
    assert empty.axes[0].get_title() == "nothing"


def test_the_equity_chart(outcome: StudyOutcome) -> None:
    fig = equity_chart(outcome)
    for index in (0, 1):
        _labelled(fig, axes=index)
        assert "minutes" in fig.axes[index].get_ylabel()
    travel = fig.axes[0]
    legend = [t.get_text() for t in travel.get_legend().get_texts()]
    best = max(outcome.variants[1:], key=lambda v: v.figures.patients_fully_booked)
    assert legend == ["base", best.name]
    heights = [round(p.get_height(), 6) for p in travel.patches]
    base_travel = outcome.variants[0].figures.travel_minutes_by_quintile
    assert heights[:6] == [round(base_travel[q], 6) for q in ("1", "2", "3", "4", "5", "unknown")]
    only_base = equity_chart(dataclasses.replace(outcome, variants=outcome.variants[:1]))
    assert [t.get_text() for t in only_base.axes[0].get_legend().get_texts()] == ["base"]


def test_the_csv(written: tuple[Path, list[Path]], outcome: StudyOutcome) -> None:
    out, _ = written
    with (out / "figures.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["variant"] for r in rows] == [v.name for v in outcome.variants if v.figures is not None]
    assert "vs_base.patients_gained_full_booking" in rows[0]
    assert "vs_base.unbooked_by_reason_change.capacity_used_up" in rows[0]
    assert rows[0]["vs_base.patients_gained_full_booking"] == ""  # the base has no comparison
    for row, v in zip(rows, outcome.variants, strict=True):
        assert int(row["patients_fully_booked"]) == v.figures.patients_fully_booked
        assert float(row["one_visit_share"]) == v.figures.one_visit_share
        if v.comparison is not None:
            assert int(row["vs_base.patients_gained_full_booking"]) == v.comparison.patients_gained_full_booking
            assert float(row["vs_base.travel_minutes_mean_change"]) == v.comparison.travel_minutes_mean_change
    assert not any(c.startswith("travel_minutes_by_patient") for c in rows[0])


def test_the_json(written: tuple[Path, list[Path]], outcome: StudyOutcome) -> None:
    out, _ = written
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["study"] == outcome.study.name
    assert data["settings"]["time_limit_seconds"] == 5
    assert data["settings"]["seed"] == outcome.study.seed
    assert data["settings"]["variants"] == 3
    assert [v["name"] for v in data["variants"]] == [v.name for v in outcome.variants]
    for stored, v in zip(data["variants"], outcome.variants, strict=True):
        assert stored["error"] == v.error
        assert stored["figures"] == v.figures.model_dump(exclude={"travel_minutes_by_patient"})
        assert "travel_minutes_by_patient" not in stored["figures"]
        assert stored["comparison"] == (v.comparison.model_dump() if v.comparison is not None else None)
        assert stored["clinician_sessions"] == v.clinician_sessions
    assert data["bottlenecks"]["base"] == [
        {"label": b.label, "patients_gained": b.patients_gained, "reviews_gained": b.reviews_gained,
         "one_visit_patients_gained": b.one_visit_patients_gained}
        for b in outcome.bottlenecks["base"]]
