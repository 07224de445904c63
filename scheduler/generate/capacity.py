"""Measuring a scenario: rostered capacity against what its due reviews need, and the load.

Capacity is the minutes of *valid* sessions (inside the horizon, outside the clinician's leave,
on a working day unless the session is marked for a bank holiday) of clinicians who can do at
least one review or take bloods. Demand is the standalone minutes of every due review and blood
draw (`scheduler.generate.rosters.demand_items`: each review's catalogue duration x the
patient's extra-time factor, rounded up to a slot, plus one draw per patient with markers, one
per such review after an opt-out). The load is demand / capacity.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from scheduler.domain import Leave, RosterSession, Scenario
from scheduler.generate.figures import minute_of_day
from scheduler.generate.rosters import DRAW, demand_items, usual_role
from scheduler.timegrid import is_working_day


@dataclass(frozen=True)
class RoleCapacity:
    """Minutes a role is rostered for (valid sessions) against the minutes of the reviews (and,
    for HCAs, blood draws) whose usual role it is, counted the old way (no shared savings)."""

    role: str
    clinicians: int
    sessions: int
    supply_minutes: int
    demand_minutes: int

    @property
    def headroom(self) -> float | None:
        return self.supply_minutes / self.demand_minutes if self.demand_minutes else None


@dataclass(frozen=True)
class CapacityReport:
    roles: dict[str, RoleCapacity]
    demand_minutes: int
    supply_minutes: int
    flow_headroom: float
    """Largest factor by which every demand could grow and still fit into valid session minutes,
    respecting who may do what and which sites each patient reaches (a max-flow bound; rooms,
    times of day and visit shapes are ignored)."""

    @property
    def load(self) -> float:
        """Demand as a share of capacity (see the module docstring)."""
        return self.demand_minutes / self.supply_minutes if self.supply_minutes else math.inf

    def table(self) -> str:
        lines = ["| role | clinicians | sessions | rostered min | needed min | headroom |",
                 "|---|---:|---:|---:|---:|---:|"]
        for rc in self.roles.values():
            h = f"{rc.headroom:.2f}x" if rc.headroom is not None else "-"
            lines.append(f"| {rc.role} | {rc.clinicians} | {rc.sessions} | {rc.supply_minutes} | "
                         f"{rc.demand_minutes} | {h} |")
        lines.append(f"| all | | | {self.supply_minutes} | {self.demand_minutes} | "
                     f"{self.supply_minutes / max(1, self.demand_minutes):.2f}x |")
        return "\n".join(lines)


def _valid_session(s: RosterSession, sc: Scenario, leave: dict[str, list[Leave]]) -> bool:
    if not sc.horizon_start <= s.date <= sc.horizon_end:
        return False
    if any(lv.start_date <= s.date <= lv.end_date for lv in leave.get(s.clinician_id, [])):
        return False
    if s.date.weekday() >= 5:
        return True
    return is_working_day(s.date) or s.on_bank_holiday


def _valid_sessions(scenario: Scenario) -> list[RosterSession]:
    """Valid sessions of clinicians who can do a review or take bloods."""
    leave: dict[str, list[Leave]] = defaultdict(list)
    for lv in scenario.leave:
        leave[lv.clinician_id].append(lv)
    useful = {c.id for c in scenario.clinicians if c.review_type_ids or c.takes_bloods}
    return [s for s in scenario.sessions
            if s.clinician_id in useful and _valid_session(s, scenario, leave)]


def _supply(sessions: list[RosterSession]) -> dict[tuple[str, str], int]:
    """(clinician id, site id) -> session minutes."""
    supply: dict[tuple[str, str], int] = defaultdict(int)
    for s in sessions:
        supply[(s.clinician_id, s.site_id)] += minute_of_day(s.end) - minute_of_day(s.start)
    return supply


def _demand(scenario: Scenario) -> dict[tuple[tuple[str, ...], str], int]:
    """(reachable site ids, review type id or ``DRAW``) -> standalone minutes needed."""
    types = {t.id: t for t in scenario.review_types}
    demand: dict[tuple[tuple[str, ...], str], int] = defaultdict(int)
    for p in scenario.patients:
        sites = tuple(sorted(r.site_id for r in p.reachable_sites))
        for item, minutes in demand_items([d.review_type_id for d in p.due_reviews],
                                          p.needs.extra_time_factor, p.opt_out_consolidation,
                                          types, scenario.visit_rules):
            demand[(sites, item)] += minutes
    return demand


def scenario_load(scenario: Scenario) -> float:
    """Standalone minutes the due reviews and draws need / valid rostered minutes (module
    docstring); about 0.55-0.6 for the default generated scenarios (headroom 1.6x and more)."""
    supply = sum(_supply(_valid_sessions(scenario)).values())
    return sum(_demand(scenario).values()) / supply if supply else math.inf


def capacity_report(scenario: Scenario) -> CapacityReport:
    """Measure rostered LTC capacity against what the due reviews and draws need (see
    `RoleCapacity` and `CapacityReport.flow_headroom`)."""
    types = {t.id: t for t in scenario.review_types}
    clin = {c.id: c for c in scenario.clinicians}
    valid = _valid_sessions(scenario)
    supply, demand = _supply(valid), _demand(scenario)

    role_sessions: dict[str, int] = defaultdict(int)
    role_supply: dict[str, int] = defaultdict(int)
    for s in valid:
        role_sessions[clin[s.clinician_id].role] += 1
    for (cid, _), m in supply.items():
        role_supply[clin[cid].role] += m
    role_demand: dict[str, int] = defaultdict(int)
    for (_, item), minutes in demand.items():
        role_demand[usual_role(item, types)] += minutes

    role_heads: dict[str, int] = defaultdict(int)
    for c in scenario.clinicians:
        role_heads[c.role] += 1
    roles = {role: RoleCapacity(role, role_heads.get(role, 0), role_sessions.get(role, 0),
                                role_supply.get(role, 0), role_demand.get(role, 0))
             for role in [*role_heads, *(r for r in role_demand if r not in role_heads)]}
    return CapacityReport(roles, sum(demand.values()), sum(supply.values()),
                          _flow_headroom(types, demand, supply, clin))


def _flow_headroom(types, demand, supply, clin) -> float:
    from ortools.graph.python import max_flow

    if not demand:
        return math.inf
    dkeys = list(demand)
    pkeys = [k for k, m in supply.items() if m > 0]
    edges: list[tuple[int, int]] = []
    for i, (sites, item) in enumerate(dkeys):
        for j, (cid, site) in enumerate(pkeys):
            c = clin[cid]
            if site not in sites:
                continue
            ok = c.takes_bloods if item == DRAW else (
                c.role in types[item].roles and item in c.review_type_ids)
            if ok:
                edges.append((i, j))
    nd, src = len(dkeys), len(dkeys) + len(pkeys)
    sink = src + 1

    def fits(lam: float) -> bool:
        g = max_flow.SimpleMaxFlow()
        need = 0
        for i, k in enumerate(dkeys):
            cap = int(math.ceil(demand[k] * lam))
            need += cap
            g.add_arc_with_capacity(src, i, cap)
        for j, k in enumerate(pkeys):
            g.add_arc_with_capacity(nd + j, sink, supply[k])
        for i, j in edges:
            g.add_arc_with_capacity(i, nd + j, 10**9)
        g.solve(src, sink)
        return g.optimal_flow() >= need

    lo, hi = 0.0, sum(supply.values()) / max(1, sum(demand.values())) + 1e-9
    if not fits(1e-6):
        return 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return round(lo, 3)
