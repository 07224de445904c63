"""The explanation printed for a person (rich) and the file-only form of `onevisit explain`.

`render` prints an `Explanation`; `explain_files` reads a plan file and its scenario and explains
one patient, raising ExplainError with a sentence for anything wrong. The command itself,
`onevisit explain PLAN PATIENT` (which also finds stored plans in the database), is
`api.cli_explain.explain`; it uses both.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from scheduler.domain import Scenario
from scheduler.explain.explain import BUDGET_SECONDS, explain_patient
from scheduler.explain.model import Explanation
from scheduler.explain.probe import ExplainError
from scheduler.plan import Plan


def read_plan_file(path: Path) -> Plan:
    """plan.json, or the folder holding it; ExplainError when it cannot be read."""
    if path.is_dir():
        path = path / "plan.json"
    try:
        return Plan.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExplainError(f"{path}: not a readable plan: {str(exc).splitlines()[0]}") from None


def explain_files(plan: Path, scenario: Scenario, patient_id: str,
                  budget_seconds: float = BUDGET_SECONDS) -> Explanation:
    return explain_patient(scenario, read_plan_file(plan), patient_id, budget_seconds=budget_seconds)


def render(e: Explanation, console: Console) -> None:
    """Print the explanation: the summary, each visit with why, the rules, the alternatives with
    their cost in the objective's terms, and the change that would give one visit."""
    console.print(f"[bold]{e.patient_id}[/]: {e.status.replace('_', ' ')}")
    console.print(e.summary, markup=False, highlight=False)
    for review in e.reviews:
        state = f"visit {review.visit_id}" if review.booked else f"unbooked ({review.unbooked_reason or 'no reason'})"
        console.print(f"  {review.review_id}: due {review.window_start} to {review.window_end}, {state}",
                      markup=False, highlight=False)
    for visit in e.visits:
        console.print()
        console.print(f"[bold]Visit {visit.visit_id}[/]: {visit.date:%a %d %b %Y} at {visit.site_id}, "
                      f"{visit.start:%H:%M}-{visit.end:%H:%M}, rooms {', '.join(visit.room_ids)}", highlight=False)
        for line in visit.why:
            console.print(f"  - {line}", markup=False, highlight=False)
        for a in visit.appointments:
            what = ", ".join(a.review_type_ids) or "blood draw"
            console.print(f"  {a.start:%H:%M}-{a.end:%H:%M} {what} with {', '.join(a.clinician_ids)} in {a.room_id}",
                          markup=False, highlight=False)
            console.print(f"      clinician: {a.why_clinician}", markup=False, highlight=False)
            console.print(f"      room: {a.why_room}", markup=False, highlight=False)
    console.print()
    console.print("[bold]What limited the choice[/]")
    for rule in e.rules:
        console.print(f"  - [{rule.code}] {rule.text}", markup=False, highlight=False)
    console.print()
    if e.alternatives:
        table = Table(title=f"Alternatives, everything else fixed (plan: {e.cost.total:,} points for this patient)")
        for column in ("where", "points", "trips", "travel min", "continuity", "wait min", "terms"):
            table.add_column(column)
        for alt in e.alternatives:
            where = "; ".join(f"{v.date:%a %d %b} {v.site_id} {v.start:%H:%M}" for v in alt.visits)
            table.add_row(where, f"{alt.cost_delta:+,}", f"{alt.trips_delta:+}", f"{alt.travel_minutes_delta:+}",
                          f"{alt.continuity_delta:+}", f"{alt.wait_minutes_delta:+}",
                          ", ".join(f"{k} {v:+}" for k, v in alt.delta_by_term.items()))
        console.print(table)
    else:
        console.print("No alternative: no other day or site takes the visit with the rest of the plan as it is.")
    if e.change is not None or e.changes_tried:
        console.print()
        console.print("[bold]What would give one visit[/]")
        for change in e.changes_tried:
            mark = "yes" if change.gives_one_visit else "no"
            cost = f", {change.cost_delta:+,} points for the patient" if change.cost_delta is not None else ""
            moved = f", unsettles {change.others_moved} other visit(s)" if change.others_moved else ""
            console.print(f"  - {change.description}: {mark}{cost}{moved}", markup=False, highlight=False)
    for note in e.notes:
        console.print(f"Note: {note}", markup=False, highlight=False)
    console.print(f"({len(e.ruled_out)} of {e.options_considered} day/site options ruled out; "
                  f"computed in {e.seconds:.3f} s)", highlight=False)
