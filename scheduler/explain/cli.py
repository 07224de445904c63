"""The explanation printed for a person (rich) and the file-only form of `onevisit explain`.

`render` prints an `Explanation`. The command itself, `onevisit explain PLAN PATIENT` (a plan
file with --scenario, or a stored plan), is `api.cli_explain.explain`, which reads the plan and
its scenario and calls `render`.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from scheduler.explain.model import Explanation


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
