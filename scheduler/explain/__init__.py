"""Why this visit: each patient's place in a plan explained by the rules that limited it, the
next-best alternatives with their objective cost, and for a split or unbooked patient the
smallest change that gives one visit (docs/explain.md). Engine side: no web or database imports.
"""

from scheduler.explain.explain import BUDGET_SECONDS, explain_patient
from scheduler.explain.model import Explanation
from scheduler.explain.probe import ExplainError

__all__ = ["BUDGET_SECONDS", "ExplainError", "Explanation", "explain_patient"]
