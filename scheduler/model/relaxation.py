"""The capacity-aware bound: the master's linear relaxation, solved by a dedicated LP solver.

CP-SAT's own relaxation of a month-sized master often does not finish on two workers, and the
standalone floors cannot see capacity shared between patients. This module reads the master
exactly as CP-SAT will solve it (its `CpModelProto`: one registry of rules,
`scheduler.model.constraints.RULES`, nothing restated here), writes every constraint as linear
inequalities over the variables relaxed to [0, 1], adds each bundle's standalone floor as a cut,
and solves the LP with PDLP through OR-Tools' MathOpt.

Why the figure is a lower bound on every plan (for the chosen bundles and room allocation, as
the master's own bound; docs/optimiser.md):
- every integer solution of the master satisfies each linear form written here: a Boolean
  clause `l1 ∨ … ∨ ln` enforced by `e` becomes `Σ l ≥ e`; an implication `e → l` becomes
  `l ≥ e`; a linear constraint `lb ≤ a·x ≤ ub` enforced by `e` becomes
  `a·x ≥ lb − (lb − min a·x)(1 − e)` (and likewise for ub), which is the constraint itself when
  `e = 1` and always true when `e = 0`; a constraint of another kind, or with a domain with
  holes, is left out, which can only lower the LP's optimum;
- each bundle's own objective terms are at least its exact standalone floor without session
  shares (`scheduler.model.floor`), in every plan, so adding that inequality removes no plan;
- the LP optimum is at most the master's integer optimum, which is at most every plan's
  objective, and the figure used is not the solver's own but a weak-duality bound computed
  here from its duals (`dual_bound`): valid for any multipliers, finished or not, whatever
  the solver's tolerances.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from array import array
from dataclasses import dataclass

import numpy as np
from ortools.math_opt import (
    callback_pb2,
    model_parameters_pb2,
    model_pb2,
    parameters_pb2,
    result_pb2,
)
from ortools.math_opt.core.python import solver as mathopt_core
from ortools.sat import cp_model_pb2
from ortools.sat.python import cp_model

from scheduler.budget import Budget
from scheduler.model.variables import MasterVars

LP_SOLVER = parameters_pb2.SOLVER_TYPE_PDLP
TOLERANCE = 1e-6  # relative: a margin for the rounding of the floating-point sums in `dual_bound`


@dataclass(frozen=True)
class LpBound:
    """The LP relaxation's outcome: `bound` (objective units, rounded down; None when the LP did
    not finish inside its time), PDLP's termination reason, the LP's size and its seconds."""

    bound: int | None
    termination: str
    variables: int
    constraints: int
    seconds: float


class _Rows:
    """A linear program's rows as flat arrays (MathOpt's sparse matrix), built row by row.
    Typed arrays, not lists: a 2,000-patient master has millions of entries."""

    def __init__(self) -> None:
        self.lower = array("d")
        self.upper = array("d")
        self.row_ids = array("q")
        self.column_ids = array("q")
        self.coefficients = array("d")

    def add(self, terms: dict[int, float], lower: float, upper: float) -> None:
        row = len(self.lower)
        for column in sorted(terms):  # MathOpt wants each row's columns in order
            if terms[column]:
                self.row_ids.append(row)
                self.column_ids.append(column)
                self.coefficients.append(terms[column])
        self.lower.append(lower)
        self.upper.append(upper)


def _literal(lit: int, terms: dict[int, float], constant: float, sign: float = 1.0) -> float:
    """Add sign × literal to `terms`; a negated literal ¬x is 1 − x. Returns the new constant."""
    if lit >= 0:
        terms[lit] = terms.get(lit, 0.0) + sign
        return constant
    terms[-lit - 1] = terms.get(-lit - 1, 0.0) - sign
    return constant + sign


def _enforcement_slack(enforcement, terms: dict[int, float], constant: float, big_m: float) -> float:
    """Add big_m × Σ (1 − e) over the enforcement literals, so the row relaxes when any is off."""
    for e in enforcement:
        # 1 − lit(e): +big_m − big_m × lit(e)
        constant = _literal(e, terms, constant + big_m, -big_m)
    return constant


def _affine(refs, coeffs) -> tuple[dict[int, float], float]:
    """Σ coef × ref as (terms over variables, constant); a negative ref is the negation 1 − x."""
    terms: dict[int, float] = {}
    constant = 0.0
    for ref, coef in zip(refs, coeffs):
        constant = _literal(ref, terms, constant, float(coef))
    return terms, constant


def _variable_bounds(proto: cp_model_pb2.CpModelProto) -> tuple[list[int], list[int]]:
    """Each variable's lowest and highest value (a domain with holes relaxed to its hull)."""
    return [x.domain[0] for x in proto.variables], [x.domain[-1] for x in proto.variables]


def cp_proto(model: cp_model.CpModel) -> cp_model_pb2.CpModelProto:
    """The model as a protobuf message. CP-SAT's Python model keeps its own C++ proto, whose
    fields are slow to walk from Python (7 s on a 30,000-variable master); written out and read
    back as a message it takes 0.06 s."""
    with tempfile.TemporaryDirectory(prefix="onevisit-lp-") as folder:
        path = os.path.join(folder, "master.pb")
        model.export_to_file(path)
        with open(path, "rb") as handle:
            return cp_model_pb2.CpModelProto.FromString(handle.read())


def _linearise(proto: cp_model_pb2.CpModelProto, rows: _Rows) -> None:
    """Every constraint of `proto` that has a linear form, as rows (see the module docstring)."""
    lows, highs = _variable_bounds(proto)
    for ct in proto.constraints:
        kind = ct.WhichOneof("constraint")
        enforcement = list(ct.enforcement_literal)
        if kind == "bool_or":
            terms, constant = _affine(ct.bool_or.literals, [1] * len(ct.bool_or.literals))
            constant = _enforcement_slack(enforcement, terms, constant, 1.0)
            rows.add(terms, 1.0 - constant, math.inf)
        elif kind == "bool_and":
            for lit in ct.bool_and.literals:
                terms, constant = _affine([lit], [1])
                constant = _enforcement_slack(enforcement, terms, constant, 1.0)
                rows.add(terms, 1.0 - constant, math.inf)
        elif kind in ("at_most_one", "exactly_one") and not enforcement:
            literals = getattr(ct, kind).literals
            terms, constant = _affine(literals, [1] * len(literals))
            rows.add(terms, -math.inf if kind == "at_most_one" else 1.0 - constant, 1.0 - constant)
        elif kind == "linear":
            terms, constant = _affine(ct.linear.vars, ct.linear.coeffs)
            low = sum(min(c * lows[v], c * highs[v]) for v, c in terms.items())
            high = sum(max(c * lows[v], c * highs[v]) for v, c in terms.items())
            # A domain with holes is relaxed to its hull.
            lb, ub = ct.linear.domain[0] - constant, ct.linear.domain[-1] - constant
            _linear_rows(rows, terms, lb, ub, low, high, enforcement)
        # Anything else is left out: dropping a constraint only lowers the LP's optimum.


def _linear_rows(rows: _Rows, terms: dict[int, float], lb: float, ub: float, low: float, high: float,
                 enforcement) -> None:
    """`lb ≤ a·x ≤ ub`, where a·x ranges over [low, high], relaxed by big-M when enforced."""
    if not enforcement:
        if lb > low or ub < high:
            rows.add(terms, lb if lb > low else -math.inf, ub if ub < high else math.inf)
        return
    if lb > low:  # a·x ≥ lb − (lb − low) Σ (1 − e)
        row = dict(terms)
        constant = _enforcement_slack(enforcement, row, 0.0, lb - low)
        rows.add(row, lb - constant, math.inf)
    if ub < high:  # a·x ≤ ub + (high − ub) Σ (1 − e)
        row = dict(terms)
        constant = _enforcement_slack(enforcement, row, 0.0, -(high - ub))
        rows.add(row, -math.inf, ub - constant)


def _objective(proto: cp_model_pb2.CpModelProto) -> tuple[dict[int, float], float, float]:
    """The objective as (terms, constant, scale): its value is scale × (terms + constant)."""
    terms, constant = _affine(proto.objective.vars, proto.objective.coeffs)
    scale = proto.objective.scaling_factor or 1.0
    return terms, constant + proto.objective.offset, scale


def owners(v: MasterVars) -> dict[int, int]:
    """The bundle index owning each master variable (sessions' `used` variables own none)."""
    owner: dict[int, int] = {}
    for (b, _k, _opt), x in v.x.items():
        owner[x.index] = b
    for (b, _opt), var in list(v.visit.items()) + list(v.review_visit.items()):
        owner[var.index] = b
    for (b, _k), booked in v.booked.items():
        owner[booked.index] = b
    return owner


def dual_bound(lp: model_pb2.ModelProto, row_duals: dict[int, float]) -> float:
    """A lower bound on `lp`'s minimum from any row multipliers, by weak (Lagrangian) duality.

    For min c·x + offset subject to l ≤ A x ≤ u and lx ≤ x ≤ ux, any y gives
    offset + Σ_i y_i·(l_i if y_i > 0 else u_i) + Σ_j min over x_j in [lx_j, ux_j] of (c − Aᵀy)_j x_j.
    A multiplier whose side is infinite is set to 0, which keeps the bound valid; so the figure
    does not rely on the solver's tolerances or on its having finished, only on these sums.
    Returns -inf when some variable is unbounded in the direction its reduced cost favours.
    """
    rows = len(lp.linear_constraints.ids)
    lower = np.asarray(lp.linear_constraints.lower_bounds, dtype=float)
    upper = np.asarray(lp.linear_constraints.upper_bounds, dtype=float)
    y = np.zeros(rows)
    for i, value in row_duals.items():
        y[i] = value
    y[(y > 0) & ~np.isfinite(lower)] = 0.0
    y[(y < 0) & ~np.isfinite(upper)] = 0.0
    side = np.where(y > 0, lower, np.where(y < 0, upper, 0.0))
    total = lp.objective.offset + float(np.dot(y[y != 0], side[y != 0]))
    n = len(lp.variables.ids)
    reduced = np.zeros(n)
    reduced[np.asarray(lp.objective.linear_coefficients.ids, dtype=int)] = lp.objective.linear_coefficients.values
    matrix = lp.linear_constraint_matrix
    np.subtract.at(reduced, np.asarray(matrix.column_ids, dtype=int),
                   np.asarray(matrix.coefficients) * y[np.asarray(matrix.row_ids, dtype=int)])
    lows = np.asarray(lp.variables.lower_bounds, dtype=float)
    highs = np.asarray(lp.variables.upper_bounds, dtype=float)
    at = np.where(reduced > 0, lows, np.where(reduced < 0, highs, 0.0))
    if not np.all(np.isfinite(at)):
        return -math.inf
    return total + float(np.dot(reduced, at))


def linear_program(model: cp_model.CpModel, v: MasterVars, own_floors: list[int],
                   unbooked_costs: list[int]) -> model_pb2.ModelProto:
    """The master's linear relaxation with the bundles' floor cuts, as a MathOpt model.

    `own_floors[b]` is a lower bound on bundle b's own objective terms (sessions aside) in every
    plan, and `unbooked_costs[b]` its cost with nothing booked, which the master writes as a
    constant (`weight − weight × booked`); together they give the cut
    `unbooked_costs[b] + Σ (b's terms) ≥ own_floors[b]`.
    """
    proto = cp_proto(model)
    rows = _Rows()
    _linearise(proto, rows)
    terms, constant, scale = _objective(proto)
    owner = owners(v)
    per_bundle: dict[int, dict[int, float]] = {}
    for var, coef in terms.items():
        b = owner.get(var)
        if b is not None:
            per_bundle.setdefault(b, {})[var] = coef * scale
    for b, floor in enumerate(own_floors):
        if floor:
            rows.add(per_bundle.get(b, {}), floor - unbooked_costs[b], math.inf)
    lp = model_pb2.ModelProto(name="master-lp")
    lows, highs = _variable_bounds(proto)
    lp.variables.ids.extend(range(len(lows)))
    lp.variables.lower_bounds.extend(map(float, lows))
    lp.variables.upper_bounds.extend(map(float, highs))
    lp.variables.integers.extend([False] * len(lows))
    lp.objective.offset = constant * scale
    objective_ids = sorted(terms)
    lp.objective.linear_coefficients.ids.extend(objective_ids)
    lp.objective.linear_coefficients.values.extend(terms[i] * scale for i in objective_ids)
    lp.linear_constraints.ids.extend(range(len(rows.lower)))
    lp.linear_constraints.lower_bounds.extend(rows.lower)
    lp.linear_constraints.upper_bounds.extend(rows.upper)
    lp.linear_constraint_matrix.row_ids.extend(rows.row_ids)
    lp.linear_constraint_matrix.column_ids.extend(rows.column_ids)
    lp.linear_constraint_matrix.coefficients.extend(rows.coefficients)
    return lp


def lp_bound(model: cp_model.CpModel, v: MasterVars, own_floors: list[int], unbooked_costs: list[int],
             deadline: float | None, threads: int = 1) -> LpBound:
    """Solve the linear relaxation of the master `model` (built with `v`, objective set).

    The LP (`linear_program`) is solved by PDLP, OR-Tools' first-order LP solver, through
    MathOpt: on two cores it finishes where GLOP's simplex does not (the sample practice month:
    PDLP 9 s, GLOP's primal and dual simplex unfinished at 60 s). It stops at `deadline` (a
    `time.monotonic()` moment). The bound is computed here from whatever duals PDLP returns
    (`dual_bound`), so an unfinished LP still gives a valid figure; it is rounded down less a
    relative 1e-6 for floating-point sums. Never raises for a solver failure: it is reported in
    `termination` with `bound` None.
    """
    started = time.monotonic()
    if deadline is not None and Budget.passed(deadline):  # before building: no time, no LP
        return LpBound(None, "NOT_SEARCHED", 0, 0, 0.0)
    lp = linear_program(model, v, own_floors, unbooked_costs)
    size = (len(lp.variables.ids), len(lp.linear_constraints.ids))
    left = max(Budget.left(deadline), 0.001) if deadline is not None else 3600.0
    params = parameters_pb2.SolveParametersProto(threads=threads)
    params.time_limit.FromNanoseconds(int(left * 1e9))
    try:
        result = mathopt_core.solve(lp, LP_SOLVER, parameters_pb2.SolverInitializerProto(), params,
                                    model_parameters_pb2.ModelSolveParametersProto(), None,
                                    callback_pb2.CallbackRegistrationProto(), None, None)
    except Exception as exc:  # noqa: BLE001 - a solver failure costs the bound, never the plan
        return LpBound(None, f"ERROR: {exc}", *size, time.monotonic() - started)
    reason = result_pb2.TerminationReasonProto.Name(result.termination.reason).removeprefix("TERMINATION_REASON_")
    best = -math.inf
    for solution in result.solutions:
        if solution.HasField("dual_solution"):
            duals = solution.dual_solution.dual_values
            best = max(best, dual_bound(lp, dict(zip(duals.ids, duals.values))))
    bound = math.floor(best - TOLERANCE * max(1.0, abs(best))) if math.isfinite(best) else None
    return LpBound(bound, reason, *size, time.monotonic() - started)
