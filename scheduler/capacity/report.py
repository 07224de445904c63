"""The report of a capacity study: one self-contained HTML file a commissioner can read, the
figures as CSV and JSON, and three plots as PNG (issue 15).

`write_report(outcome, out)` writes, into the folder `out`:

- `report.html`: the study's name and settings; a table of every variant's key figures and its
  change against the base on the same patients; the variants that failed, with their error; the
  bottleneck ranking of each subject (top 10); the three plots, embedded as
  `data:image/png;base64,...` (no external resource of any kind); how to read it. Every text that
  comes from the study or a scenario is escaped with `html.escape`.
- `figures.csv`: `figures_table` (one row per solved variant) plus the comparison with the base
  in `vs_base.<field>` columns (`vs_base.unbooked_by_reason_change.<reason>` for the dict one);
  empty for the base and where a variant lacks a column.
- `report.json`: the study's name and settings; per variant its name, changes, capacity counts,
  error, figures (`VariantFigures.model_dump()` without `travel_minutes_by_patient`) and
  comparison; the bottlenecks of each subject. Numbers are in the units of
  scheduler/capacity/figures.py (fractions 0-1, minutes, counts); a non-finite number is null.
- `capacity_curve.png`, `utilisation_heatmap.png`, `equity.png`: the plots below.

The plot builders return a `matplotlib.figure.Figure` built without pyplot (no backend, no global
state, safe in a server), so tests and the API can inspect or render them.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from scheduler.capacity.figures import (
    HEATMAP_WEEKDAYS,
    QUINTILES,
    UNBOOKED_REASONS,
    VariantComparison,
    VariantFigures,
    figures_table,
)
from scheduler.capacity.outcome import StudyOutcome, VariantOutcome
from scheduler.plan import Plan

FIGSIZE = (8.0, 4.5)
"""Inches: every plot (the heat map grows taller with many sites)."""
DPI = 110
TOP_BOTTLENECKS = 10
"""Bottlenecks shown per subject in the HTML report (JSON has them all)."""
PLOT_FILES = ("capacity_curve.png", "utilisation_heatmap.png", "equity.png")
CAPACITY_CURVE_Y = "patients fully booked in one visit (count)"
"""The capacity curve's y axis (`one_visit_patients`): patients with nothing unbooked whose review and joint-review
appointments all carry one visit id (a separate blood-draw trip allowed), counted from the plan;
the count behind `one_visit_share`, over every patient (opted-out ones included) rather than as a
share of consolidating patients."""
CAPACITY_CURVE_X = "clinician sessions in the horizon (count of valid roster sessions)"
_WEEKDAY_NAMES = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri"}
_QUINTILE_NAMES = {"1": "1\n(most\ndeprived)", "2": "2", "3": "3", "4": "4", "5": "5\n(least\ndeprived)",
                   "unknown": "unknown"}
_BASE = "base"


# --------------------------------------------------------------------------------------------
# Small helpers


def one_visit_patients(plan: Plan) -> int:
    """Patients fully booked (in the plan, nothing in `unbooked`) whose review and joint-review
    appointments all carry one visit id: the y value of the capacity curve (a count)."""
    unbooked = {u.patient_id for u in plan.unbooked}
    visits: dict[str, set[str]] = {}
    for a in plan.appointments:
        if a.kind in ("review", "joint_review") and a.review_ids:
            visits.setdefault(a.patient_id, set()).add(a.visit_id)
    return sum(1 for pid, ids in visits.items() if len(ids) == 1 and pid not in unbooked)


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _solved(outcome: StudyOutcome) -> list[VariantOutcome]:
    return [v for v in outcome.variants if v.figures is not None]


def _base(outcome: StudyOutcome) -> VariantOutcome | None:
    return next((v for v in outcome.variants if v.name == _BASE), outcome.variants[0] if outcome.variants else None)


def best_variant(outcome: StudyOutcome) -> VariantOutcome | None:
    """The solved variant (not the base) that did most for the base's own patients: the most
    of them gained full booking, less those who lost it; on a tie, the most patients fully booked
    (where a variant that adds patients can win by its size); then the first. None when no
    variant solved."""
    base = _base(outcome)
    others = [v for v in _solved(outcome) if v is not base]
    if not others:
        return None

    def gain(v: VariantOutcome) -> tuple[int, int]:
        c = v.comparison
        net = c.patients_gained_full_booking - c.patients_lost_full_booking if c is not None else 0
        return net, v.figures.patients_fully_booked

    return max(others, key=gain)  # max keeps the first of equals


def sweep_lines(outcome: StudyOutcome) -> dict[str, list[VariantOutcome]]:
    """Per sweep of the study, its solved variants (named `<sweep> = <value>`) in study order."""
    lines: dict[str, list[VariantOutcome]] = {}
    for sweep in outcome.study.sweeps:
        prefix = f"{sweep.name} = "
        members = [v for v in _solved(outcome) if v.name.startswith(prefix) and v.plan is not None]
        if members:
            lines[sweep.name] = members
    return lines


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="0.35")


# --------------------------------------------------------------------------------------------
# Plots


def capacity_curve(outcome: StudyOutcome) -> Figure:
    """Patients fully booked with all reviews in one visit (CAPACITY_CURVE_Y, a count) against
    clinician sessions (`VariantOutcome.clinician_sessions`), one point per solved variant labelled
    with its (shortened) name; the base highlighted; each sweep's variants joined by a line."""
    fig = Figure(figsize=(FIGSIZE[0] + 3, FIGSIZE[1]), dpi=DPI, layout="tight")  # room for the key
    ax = fig.add_subplot()
    ax.set_title("Capacity curve: one-visit patients against clinician sessions")
    ax.set_xlabel(CAPACITY_CURVE_X)
    ax.set_ylabel(CAPACITY_CURVE_Y)
    points = [(v, v.clinician_sessions, one_visit_patients(v.plan)) for v in _solved(outcome) if v.plan is not None]
    if not points:
        _no_data(ax, "no variant was solved")
        return fig
    for index, (name, members) in enumerate(sweep_lines(outcome).items()):
        xs = [m.clinician_sessions for m in members]
        ys = [one_visit_patients(m.plan) for m in members]
        ax.plot(xs, ys, "-", color=f"C{(index + 1) % 10}", linewidth=1.5, alpha=0.8, label=f"sweep: {_short(name, 40)}",
                zorder=1)
    base = _base(outcome)
    at: dict[tuple[int, int], list[VariantOutcome]] = {}
    for v, x, y in points:
        at.setdefault((x, y), []).append(v)
    others = [(x, y) for v, x, y in points if v is not base]
    if others:
        ax.scatter([x for x, _ in others], [y for _, y in others], s=40, color="C0", zorder=3, label="variant")
    for v, x, y in points:
        if v is base:
            ax.scatter([x], [y], s=160, marker="*", color="C3", edgecolors="black", zorder=4, label="base")
    # Points are numbered and the names listed in a key beside the plot: names written at the
    # points overlap wherever variants land close together.
    key = []
    for number, ((x, y), names) in enumerate(sorted(at.items()), start=1):
        ax.annotate(str(number), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8,
                    fontweight="bold" if base in names else "normal")
        shown = [_short(n.name, 34) for n in names[:3]] + ([f"+{len(names) - 3} more"] if len(names) > 3 else [])
        key += [f"{number}: {shown[0]}", *(f"    {name}" for name in shown[1:])]
    ax.text(1.02, 1.0, "\n".join(key), transform=ax.transAxes, fontsize=7, va="top", ha="left")
    ax.margins(x=0.12)
    ys = [y for _v, _x, y in points]
    ax.set_ylim(bottom=0, top=max(ys) * 1.15 + 1)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def utilisation_heatmap(figures: VariantFigures | None, title: str = "Room utilisation of the base") -> Figure:
    """`figures.utilisation_by_site_weekday` as a site x weekday (Mon-Fri) heat map, in percent
    of open room minutes, each cell annotated; a colour bar labelled "room utilisation (%)"."""
    sites = sorted(figures.utilisation_by_site_weekday) if figures is not None else []
    height = max(FIGSIZE[1], 1.5 + 0.4 * len(sites))
    fig = Figure(figsize=(FIGSIZE[0], height), dpi=DPI, layout="tight")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel("weekday (counted days of the horizon)")
    ax.set_ylabel("site")
    if not sites:
        _no_data(ax, "no utilisation figures (the scenario was not solved)")
        return fig
    values = [[100.0 * figures.utilisation_by_site_weekday[s].get(d, 0.0) for d in HEATMAP_WEEKDAYS] for s in sites]
    top = max(100.0, max(max(row) for row in values))
    image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=top, aspect="auto")
    ax.set_xticks(range(len(HEATMAP_WEEKDAYS)), [_WEEKDAY_NAMES[d] for d in HEATMAP_WEEKDAYS])
    ax.set_yticks(range(len(sites)), [_short(s, 30) for s in sites])
    for row, site_values in enumerate(values):
        for col, value in enumerate(site_values):
            ax.text(col, row, f"{value:.0f}%", ha="center", va="center", fontsize=9,
                    color="white" if value < top * 0.6 else "black")
    bar = fig.colorbar(image, ax=ax)
    bar.set_label("room utilisation (%)")
    return fig


def equity_chart(outcome: StudyOutcome) -> Figure:
    """Mean travel minutes (return, all visits) and mean minutes in clinic (all visits) per
    patient with a visit, by deprivation quintile (1 = most deprived .. 5, and unknown), as
    grouped bars: the base and, when a variant solved, the variant with the most patients fully
    booked (`best_variant`)."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="tight")
    travel_ax, clinic_ax = fig.subplots(1, 2, sharey=False)
    travel_ax.set_title("Travel per patient by deprivation")
    clinic_ax.set_title("Time in clinic per patient by deprivation")
    for ax in (travel_ax, clinic_ax):
        ax.set_xlabel("IMD quintile (1 = most deprived)")
    travel_ax.set_ylabel("mean travel, return (minutes)")
    clinic_ax.set_ylabel("mean time in clinic (minutes)")
    base = _base(outcome)
    series = [v for v in (base, best_variant(outcome)) if v is not None and v.figures is not None]
    if not series:
        for ax in (travel_ax, clinic_ax):
            _no_data(ax, "not solved")
        return fig
    width = 0.8 / len(series)
    positions = range(len(QUINTILES))
    for ax, field in ((travel_ax, "travel_minutes_by_quintile"), (clinic_ax, "clinic_minutes_by_quintile")):
        for index, v in enumerate(series):
            values = [getattr(v.figures, field).get(q, 0.0) for q in QUINTILES]
            offset = (index - (len(series) - 1) / 2) * width
            ax.bar([p + offset for p in positions], values, width, color=f"C{index}",
                   label=_short(v.name, 30) if v is not base else "base")
        ax.set_xticks(list(positions), [_QUINTILE_NAMES[q] for q in QUINTILES], fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    travel_ax.legend(fontsize=8)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# CSV and JSON


def _flat(prefix: str, value: Any, row: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}", inner, row)
    else:
        row[prefix] = value


def csv_rows(outcome: StudyOutcome) -> list[dict]:
    """`figures_table` of the solved variants, each row extended with the comparison with the
    base as `vs_base.<field>` columns (every row the same columns; None where a row has none)."""
    solved = _solved(outcome)
    rows = figures_table([(v.name, v.figures) for v in solved])
    extra: list[dict] = []
    for v in solved:
        part: dict = {}
        if v.comparison is not None:
            _flat("vs_base", v.comparison.model_dump(), part)
        extra.append(part)
    template = {f"vs_base.{f}": None for f in VariantComparison.model_fields if f != "unbooked_by_reason_change"}
    columns = list(dict.fromkeys([*template, *(c for part in extra for c in part)]))
    return [{**row, **{c: part.get(c) for c in columns}} for row, part in zip(rows, extra, strict=True)]


def _finite(value: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def report_data(outcome: StudyOutcome) -> dict:
    """The JSON report: study name and settings, every variant, the bottlenecks."""
    study = outcome.study
    return _finite({
        "study": study.name,
        "base_scenario": study.base,
        "settings": {
            "time_limit_seconds": outcome.time_limit_seconds or study.time_limit_seconds,
            "seed": study.seed,
            "variants": sum(1 for v in outcome.variants if v.name != _BASE),
            "bottleneck_subjects": list(study.bottlenecks),
            "bottleneck_roles": list(study.bottleneck_roles),
            "bottleneck_sites": list(study.bottleneck_sites),
        },
        "variants": [
            {
                "name": v.name,
                "changes": v.changes,
                "clinician_sessions": v.clinician_sessions,
                "rooms": v.rooms,
                "one_visit_patients": one_visit_patients(v.plan) if v.plan is not None else None,
                "error": v.error,
                "figures": v.figures.model_dump(exclude={"travel_minutes_by_patient"}) if v.figures else None,
                "comparison": v.comparison.model_dump() if v.comparison is not None else None,
            }
            for v in outcome.variants
        ],
        "bottlenecks": {
            subject: [
                {"label": b.label, "patients_gained": b.patients_gained, "reviews_gained": b.reviews_gained,
                 "one_visit_patients_gained": b.one_visit_patients_gained}
                for b in ranking
            ]
            for subject, ranking in outcome.bottlenecks.items()
        },
    })


# --------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#1b1b1b;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #c8c8c8;padding:.3em .5em;text-align:right;vertical-align:top}
th{background:#eef2f6}td.name,th.name{text-align:left}
tr.base td{background:#fff7e0;font-weight:600}
dl.settings{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dl.settings dt{font-weight:600}
dl.settings dd{margin:0}
pre.error{background:#fbeaea;border:1px solid #e0b4b4;padding:.6em;white-space:pre-wrap;font-size:.85em}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444}.note{color:#444;font-size:.9em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _signed(value: float, digits: int = 0) -> str:
    text = f"{value:+.{digits}f}"
    return "0" if text.strip("+-").replace(".", "").strip("0") == "" else text


def _variant_row(v: VariantOutcome, base: VariantOutcome | None) -> str:
    f, c = v.figures, v.comparison
    cls = ' class="base"' if v is base else ""
    if f is None:
        cells = '<td colspan="13" class="name">not solved (see "Variants that failed")</td>'
        return f'<tr{cls}><td class="name">{_e(v.name)}</td><td>{v.changes}</td>{cells}</tr>'
    unbooked = sum(f.unbooked_by_reason.values())
    reasons = ", ".join(f"{r.replace('_', ' ')}: {n}" for r, n in f.unbooked_by_reason.items() if n)
    unbooked_cell = f'{unbooked}' + (f'<br><span class="note">{_e(reasons)}</span>' if reasons else "")
    if c is None:
        vs = '<td colspan="4" class="name note">' + ("the base" if v is base else "no comparison") + "</td>"
    else:
        vs = (f"<td>{c.patients_gained_full_booking}</td><td>{c.patients_lost_full_booking}</td>"
              f"<td>{c.patients_moved_to_one_visit}</td><td>{_signed(c.travel_minutes_mean_change, 1)}</td>")
    return (
        f'<tr{cls}><td class="name">{_e(v.name)}</td><td>{v.changes}</td><td>{v.clinician_sessions}</td>'
        f"<td>{v.rooms}</td><td>{f.patients_fully_booked} / {f.patients}</td><td>{_pct(f.one_visit_share)}</td>"
        f"<td>{_pct(f.one_trip_share)}</td><td>{f.visits_per_patient:.2f}</td><td>{f.blood_draws}</td>"
        f"<td>{unbooked_cell}</td><td>{_pct(f.gap)}</td>{vs}</tr>"
    )


def _bottleneck_tables(outcome: StudyOutcome) -> str:
    if not outcome.bottlenecks:
        return '<p class="note">No bottleneck ranking (no subject was solved, or the study names none).</p>'
    parts = []
    for subject, ranking in outcome.bottlenecks.items():
        parts.append(f"<h3>{_e(subject)}</h3>")
        if not ranking:
            parts.append('<p class="note">No candidate was solved.</p>')
            continue
        rows = "".join(
            f'<tr><td>{i}</td><td class="name">{_e(b.label)}</td><td>{_signed(b.patients_gained)}</td>'
            f"<td>{_signed(b.reviews_gained)}</td><td>{_signed(b.one_visit_patients_gained)}</td></tr>"
            for i, b in enumerate(ranking[:TOP_BOTTLENECKS], start=1))
        parts.append(
            '<table><thead><tr><th>rank</th><th class="name">resource added</th><th>patients gained full booking</th>'
            "<th>reviews gained</th><th>one-visit patients gained</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            f'<p class="note">Top {min(TOP_BOTTLENECKS, len(ranking))} of {len(ranking)} candidates; '
            "all are in report.json.</p>")
        top = ranking[0]
        if top.patients_gained <= 0 and top.reviews_gained <= 0 and top.one_visit_patients_gained <= 0:
            parts.append('<p class="note">No single candidate books more: this scenario is not short of any one '
                         "of these resources (or the time limit is too short to show it).</p>")
    return "".join(parts)


def render_html(outcome: StudyOutcome, pngs: dict[str, bytes]) -> str:
    """The self-contained report page; `pngs` maps each PLOT_FILES name to its PNG bytes."""
    study = outcome.study
    base = _base(outcome)
    variants = sum(1 for v in outcome.variants if v.name != _BASE)
    failed = [v for v in outcome.variants if v.figures is None]
    best = best_variant(outcome)
    rows = "".join(_variant_row(v, base) for v in outcome.variants)
    failed_html = (
        "".join(f"<h3>{_e(v.name)}</h3><pre class=\"error\">{_e(v.error or 'no plan and no error given')}</pre>"
                for v in failed)
        if failed else '<p class="note">None: every variant was solved and its plan passed the independent check.</p>')

    def image(name: str, alt: str, caption: str) -> str:
        data = base64.b64encode(pngs[name]).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
                f"<figcaption>{caption}</figcaption></figure>")

    equity_caption = "The base" + (f" and <strong>{_e(best.name)}</strong>, the variant with the most patients "
                                   "fully booked" if best is not None else "") + \
        ": mean minutes per patient with at least one visit, by IMD quintile (1 = most deprived)."
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Capacity study: {_e(study.name)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Capacity study: {_e(study.name)}</h1>
<section id="settings"><h2>Settings</h2>
<dl class="settings">
<dt>Base scenario</dt><dd>{_e(study.base)}</dd>
<dt>Time limit per solve</dt><dd>{_e(f"{outcome.time_limit_seconds or study.time_limit_seconds:g}")} s</dd>
<dt>Seed</dt><dd>{study.seed}</dd>
<dt>Variants</dt><dd>{variants} besides the base ({len(failed)} not solved)</dd>
<dt>Bottlenecks ranked for</dt><dd>{_e(", ".join(study.bottlenecks) or "none")}</dd>
</dl></section>
<section id="how-to-read"><h2>How to read this</h2>
<p>Each variant is the base scenario with its changes applied, solved with the same seed and time limit.
Its figures are compared <strong>with the base, on the same patients</strong> (the patients present in both
plans): patients who gained or lost full booking, who moved from several visits to one, and the mean change
in their return travel. They are <em>not</em> compared with each run's own "old way" baseline, which misleads
when a variant changes the estate (closing a site can raise travel while "time saved against the old way"
rises). Shares are of consolidating patients; a gap above zero means the solve stopped at its time limit
before proving its plan optimal, so small differences between variants may be noise. Bottlenecks are
measured, not guessed: each candidate (one more session of a role at a site on a weekday, or one more room
of a capability at a site) was solved as its own variant of the subject.</p></section>
<section id="variants"><h2>Variants</h2>
<table><thead><tr><th class="name" rowspan="2">variant</th><th rowspan="2">changes</th>
<th rowspan="2">clinician sessions</th><th rowspan="2">rooms</th><th rowspan="2">patients fully booked</th>
<th rowspan="2">one-visit share</th><th rowspan="2">one-trip share</th><th rowspan="2">visits per patient</th>
<th rowspan="2">blood draws</th><th rowspan="2">unbooked reviews</th><th rowspan="2">gap</th>
<th colspan="4">against the base, same patients</th></tr>
<tr><th>gained full booking</th><th>lost full booking</th><th>moved to one visit</th>
<th>mean travel change (min)</th></tr></thead>
<tbody>{rows}</tbody></table>
<p class="note">Unbooked reasons: {_e(", ".join(r.replace("_", " ") for r in UNBOOKED_REASONS))}.
Every figure, per role, room capability, site and quintile, is in figures.csv and report.json.</p>
</section>
<section id="failed"><h2>Variants that failed</h2>{failed_html}</section>
<section id="bottlenecks"><h2>Bottlenecks</h2>
<p class="note">For each subject, the single extra resource that books the most more patients (then reviews,
then one-visit patients) when added to it.</p>
{_bottleneck_tables(outcome)}</section>
<section id="plots"><h2>Plots</h2>
{image("capacity_curve.png", "Capacity curve",
       "Patients fully booked with all their reviews in one visit (a count) against clinician sessions in the "
       "horizon, one point per solved variant; the base is the star; a sweep's variants are joined by a line.")}
{image("utilisation_heatmap.png", "Room utilisation heat map",
       "Booked room minutes as a percentage of open room minutes in the base, by site and weekday.")}
{image("equity.png", "Equity by deprivation quintile", equity_caption)}
</section>
</body></html>
"""


# --------------------------------------------------------------------------------------------
# Everything


def write_report(outcome: StudyOutcome, out: Path) -> list[Path]:
    """Write report.html, figures.csv, report.json and the three PNG plots into the folder
    `out` (created with its parents if missing; existing files of these names are replaced).
    Returns the paths written, in that order."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = _base(outcome)
    base_title = "Room utilisation of the base by site and weekday"
    figures = {
        "capacity_curve.png": capacity_curve(outcome),
        "utilisation_heatmap.png": utilisation_heatmap(base.figures if base is not None else None, base_title),
        "equity.png": equity_chart(outcome),
    }
    pngs = {name: _png(fig) for name, fig in figures.items()}

    html_path = out / "report.html"
    html_path.write_text(render_html(outcome, pngs), encoding="utf-8")

    csv_path = out / "figures.csv"
    rows = csv_rows(outcome)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        if rows:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        else:
            csv.writer(handle).writerow(["variant"])

    json_path = out / "report.json"
    json_path.write_text(json.dumps(report_data(outcome), indent=2, allow_nan=False) + "\n", encoding="utf-8")

    written = [html_path, csv_path, json_path]
    for name in PLOT_FILES:
        path = out / name
        path.write_bytes(pngs[name])
        written.append(path)
    return written
