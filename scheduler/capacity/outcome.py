"""A study run end to end: every variant solved and checked, its figures against the base on the
same patients, and the bottlenecks of the variants the study names (issue 15)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.capacity.bottlenecks import Bottleneck, candidates, marginal_variants, rank
from scheduler.capacity.figures import (
    VariantComparison,
    VariantFigures,
    compare_to_base,
    figures_of,
)
from scheduler.capacity.run import Solved, run_variants, solve_settings
from scheduler.capacity.study import Study, StudyVariant, expand
from scheduler.domain import Scenario
from scheduler.instance import Instance
from scheduler.plan import Plan


@dataclass(frozen=True)
class VariantOutcome:
    """One variant (or the base) solved: its plan and figures, or the error that stopped it.

    `clinician_sessions` and `rooms` (valid roster sessions and rooms of its scenario) are the
    x axes of the capacity curve; `comparison` is against the base (None for the base itself).
    """

    name: str
    changes: int
    clinician_sessions: int
    rooms: int
    plan: Plan | None
    figures: VariantFigures | None
    comparison: VariantComparison | None = None
    error: str | None = None


@dataclass(frozen=True)
class StudyOutcome:
    """Everything a study report shows."""

    study: Study
    variants: list[VariantOutcome]
    bottlenecks: dict[str, list[Bottleneck]] = field(default_factory=dict)
    time_limit_seconds: float = 0.0


def _outcome(variant: StudyVariant, solved: Solved) -> VariantOutcome:
    scenario: Scenario = variant.scenario
    figures = figures_of(scenario, solved.plan) if solved.plan is not None else None
    return VariantOutcome(variant.name, len(variant.changes), len(Instance(scenario).shifts), len(scenario.rooms),
                          solved.plan, figures, None, solved.error)


def run_study(study: Study, base: Scenario, *, time_limit_seconds: float | None = None, processes: int = 2,
              dask: str | None = None, on_progress: Callable[[int, int, str], None] | None = None,
              source: str = "study") -> StudyOutcome:
    """Expand, solve and compare the study; `on_progress(done, total, variant name)` after each solve.

    `time_limit_seconds` overrides the study's per-solve limit. Raises StudyError (before any
    solve) for a bad study, and DaskMissing when `dask` is asked for without Dask installed.
    """
    limit = time_limit_seconds or study.time_limit_seconds
    variants = expand(study, base, source)
    by_name = {v.name: v for v in variants}
    subjects = [by_name[name] for name in study.bottlenecks]
    marginal: dict[str, list] = {}
    for subject in subjects:
        found = candidates(subject.scenario, study.bottleneck_roles, study.bottleneck_sites)
        marginal[subject.name] = list(zip(found, marginal_variants(subject, found, study.seed)))
    everything = variants + [v for pairs in marginal.values() for _c, v in pairs]
    total, done = len(everything), [0]

    def tick(solved: Solved) -> None:
        done[0] += 1
        if on_progress:
            on_progress(done[0], total, solved.name)

    settings = solve_settings(limit, study.seed, study.deterministic_seconds)
    # The base first: every variant is also planned from the base's plan, and each bottleneck
    # candidate from its subject's, so that more capacity never books fewer (run.solve_variant).
    solved = dict(zip(["base"], run_variants(variants[:1], settings, processes=processes, dask=dask, on_done=tick)))
    base_plan = solved["base"].plan
    starts = {v.name: base_plan for v in variants[1:]} if base_plan is not None else {}
    solved |= dict(zip((v.name for v in variants[1:]), run_variants(
        variants[1:], settings, processes=processes, dask=dask, on_done=tick, starts=starts)))
    marginals = [(subject.name, v) for subject in subjects for _c, v in marginal[subject.name]]
    starts = {v.name: solved[s].plan for s, v in marginals if solved[s].plan is not None}
    solved |= dict(zip((v.name for _s, v in marginals), run_variants(
        [v for _s, v in marginals], settings, processes=processes, dask=dask, on_done=tick, starts=starts)))
    outcomes = [_outcome(v, solved[v.name]) for v in variants]
    base_outcome = outcomes[0]
    if base_outcome.figures is not None:
        outcomes = [o if o is base_outcome or o.figures is None else VariantOutcome(
            o.name, o.changes, o.clinician_sessions, o.rooms, o.plan, o.figures,
            compare_to_base(base_outcome.figures, base_outcome.plan, o.figures, o.plan), o.error) for o in outcomes]
    ranking = {}
    for subject in subjects:
        subject_plan = solved[subject.name].plan
        if subject_plan is None:
            continue
        ranking[subject.name] = rank(subject_plan, [(c, solved[v.name].plan) for c, v in marginal[subject.name]
                                                    if solved[v.name].plan is not None])
    return StudyOutcome(study, outcomes, ranking, limit)
