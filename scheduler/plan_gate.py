"""The safety net: no plan is stored or written unless the independent checker passes it.

Every path that keeps a plan (the service's solve job in `api.jobs`, the command line in
`scheduler.cli` and `api.cli`) calls `gate_plan` after the optimiser and before anything is stored
or written. Callers reach it as `plan_gate.gate_plan(...)` (an attribute of this module, not a
name imported into theirs) so there is exactly one function to read, review and test.
"""

from __future__ import annotations

from scheduler.check import CheckReport, check_plan, format_report
from scheduler.domain import Scenario
from scheduler.plan import Plan


class PlanRejected(Exception):
    """The plan failed the independent check; `report` holds every violation found."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        n = len(report.violations)
        super().__init__(f"the plan failed the independent check ({n} violation{'s' if n != 1 else ''})")

    def details(self) -> str:
        """The violations as text, one per line, grouped by code (`scheduler.check.format_report`)."""
        return format_report(self.report)


def gate_plan(scenario: Scenario, plan: Plan) -> CheckReport:
    """Run the independent checker on `plan` against the `scenario` it was made from.

    Returns the (clean) report, whose `metrics` are the checker's own recomputation. Raises
    `PlanRejected`, carrying the full report, when any hard rule, metric or comparison figure is
    violated: the caller must then store and write nothing.
    """
    report = check_plan(scenario, plan)
    if not report.ok:
        raise PlanRejected(report)
    return report
