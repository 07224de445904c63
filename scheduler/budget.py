"""The wall-clock budget of one optimisation, shared out between its stages.

`solver.time_limit_seconds` is the time a manager or an API job waits for the whole optimisation
(greedy warm start and baselines, floors, master, timetabling, improvement, plan assembly), not
only CP-SAT's part of it. Each stage asks the budget for its own deadline; the anytime stages
(exact floors, the CP-SAT master, the improvement pass, compaction) stop at theirs and keep what they have,
so the plan is ready within the limit plus what the unstoppable stages (greedy, timetabling,
assembly) take beyond their share — measured by `benchmarks/solve_samples.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FLOOR_SHARE = 0.45
"""Exact standalone floors may use up to this share of the limit (they are anytime: a bundle not
reached keeps the floor 0, still a valid bound)."""

AFTER_MASTER_SHARE = 0.30
"""Share of the limit kept after the master for timetabling, improvement, compaction and
assembly: the improvement pass takes about 1 s per candidate on the practice month, 5–10 s on
the PCN month."""

COMPACT_SHARE = 0.12
"""Share of the limit kept for compacting the chosen plan's visits (`scheduler.compact`): its
waiting pass takes about 1 s on the practice month and 10 s on the PCN month."""

ASSEMBLY_SECONDS = 0.5
"""Kept after the improvement pass for unbooked reasons, metrics and the plan itself."""


@dataclass
class Budget:
    """Deadlines (`time.monotonic()` seconds) for the stages of one optimisation of
    `limit_seconds`, counted from `started`. A `deterministic` budget has no deadlines (each is
    None): every stage stops on work done (`SolverSettings.deterministic_seconds`)."""

    limit_seconds: float
    started: float = field(default_factory=time.monotonic)
    deterministic: bool = False

    def at(self, share: float) -> float:
        """The moment `share` (0 to 1) of the limit has passed."""
        return self.started + share * self.limit_seconds

    @property
    def end(self) -> float:
        return self.at(1.0)

    @property
    def floor_deadline(self) -> float | None:
        if self.deterministic:
            return None
        return self.at(FLOOR_SHARE)

    @property
    def master_deadline(self) -> float | None:
        if self.deterministic:
            return None
        return self.at(1.0 - AFTER_MASTER_SHARE)

    @property
    def improve_deadline(self) -> float | None:
        if self.deterministic:
            return None
        return max(self.started, self.at(1.0 - COMPACT_SHARE) - self._assembly)

    @property
    def compact_deadline(self) -> float | None:
        if self.deterministic:
            return None
        return max(self.started, self.end - self._assembly)

    @property
    def _assembly(self) -> float:
        return min(ASSEMBLY_SECONDS, 0.05 * self.limit_seconds)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @staticmethod
    def left(deadline: float | None) -> float:
        """Seconds until `deadline`, never negative; infinite for no deadline."""
        return float("inf") if deadline is None else max(0.0, deadline - time.monotonic())

    @staticmethod
    def passed(deadline: float | None) -> bool:
        return deadline is not None and time.monotonic() >= deadline


class StageClock:
    """Wall-clock seconds spent in each stage of one optimisation, lapped one after another from
    `started` (a `time.monotonic()` moment): `seconds` is the plan's `solver.stage_seconds`,
    `wall_seconds` its `solver.wall_seconds` (start to the last lap; ms precision)."""

    def __init__(self, started: float):
        self.started = self.last = started
        self.seconds: dict[str, float] = {}

    def lap(self, name: str) -> None:
        """The time since the previous lap goes to stage `name` (added, if it ran before)."""
        now = time.monotonic()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self.last, 3)
        self.last = now

    @property
    def wall_seconds(self) -> float:
        return round(self.last - self.started, 3)

