"""Master model constraints: one function per rule, one registry (`RULES`), one entry point
(`add_constraints`), in the manner of PyJobShop's `add_constraints()` and Timefold's
`define_constraints()`.

Capacities are aggregated per (day, site): they are necessary conditions for any detailed
timetable, so the master is a relaxation and its bound is a true lower bound on every plan.
Every rule is one that every plan the day book can make satisfies (tests/test_master_rules.py
checks each against checked plans: too strict a rule would make the bound a lie).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from ortools.sat.python import cp_model

from scheduler.daybook import empty_book
from scheduler.instance import Instance, bits, span_mask
from scheduler.model.variables import MasterVars


def step_opens_visit(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    """Hard: a step at a (day, site) means the patient travels there that day."""
    for (b, _k, opt), x in v.x.items():
        model.add_implication(x, v.visit[(b, opt)])
    for (b, opt), visit in v.visit.items():
        steps = [v.x[(b, k, opt)] for k in range(len(v.bundles[b].steps)) if (b, k, opt) in v.x]
        model.add_bool_or(steps).only_enforce_if(visit)


def one_site_per_day(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    """Hard: a patient makes at most one trip a day: one site, and one bundle.

    Grouped by patient, not bundle: an opted-out patient's bundles (one per review) go on
    different days, each its own trip, as the old way books them. The day book keeps the same
    rule (`GreedyBooker.fit`), so the master stays a relaxation of what it can make."""
    per_day = defaultdict(list)
    for (b, (day, _site)), visit in v.visit.items():
        per_day[(v.bundles[b].patient_id, day)].append(visit)
    for visits in per_day.values():
        if len(visits) > 1:
            model.add_at_most_one(visits)


def draw_before_review(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    """Hard: a review needing bloods follows the combined draw, by the turnaround when results
    must be back (working days), or the same day or later otherwise."""
    for b, bundle in enumerate(v.bundles):
        if bundle.draw is None:
            continue
        draw_day = sum(opt[0] * v.x[(b, 0, opt)] for opt in v.options[(b, 0)])
        draw_rank = sum(inst.ranks[opt[0]] * v.x[(b, 0, opt)] for opt in v.options[(b, 0)])
        for k, step in enumerate(bundle.steps[1:], start=1):
            if not step.needs_draw:
                continue
            booked = v.booked[(b, k)]
            model.add_implication(booked, v.booked[(b, 0)])
            if step.lag_working_days:
                rank = sum(inst.ranks[opt[0]] * v.x[(b, k, opt)] for opt in v.options[(b, k)])
                model.add(rank >= draw_rank + step.lag_working_days).only_enforce_if(booked)
            else:
                day = sum(opt[0] * v.x[(b, k, opt)] for opt in v.options[(b, k)])
                model.add(day >= draw_day).only_enforce_if(booked)


def draw_in_review_visit(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    """Hard under `draw_in_visit`: the draw's (day, site) also holds a review step of its
    bundle, unless a review of the bundle that needs results back first is booked (then the
    draw is the earlier trip those results need).

    Exactly what the day book makes under the policy (the greedy's draw trips are only for a
    booked results-first review), so the master stays a relaxation and its bound honest."""
    if inst.scenario.visit_rules.blood_draw_policy != "draw_in_visit":
        return
    for b, bundle in enumerate(v.bundles):
        if bundle.draw is None:
            continue
        results_first = [v.booked[(b, k)] for k, step in enumerate(bundle.steps[1:], start=1)
                         if step.needs_draw and step.lag_working_days]
        for opt in v.options[(b, 0)]:
            with_reviews = [v.x[(b, k, opt)] for k in range(1, len(bundle.steps)) if (b, k, opt) in v.x]
            holders = with_reviews + results_first
            if holders:
                model.add_bool_or(holders).only_enforce_if(v.x[(b, 0, opt)])
            else:
                model.add(v.x[(b, 0, opt)] == 0)


def draw_trip_is_a_trip(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    """Hard (implied, tightens the bound): a draw that must precede a review by working days is
    on another day, so the patient makes at least two trips."""
    for b, bundle in enumerate(v.bundles):
        if bundle.draw is None:
            continue
        visits = [v.visit[(b, opt)] for opt in v.options_of_bundle(b)]
        for k, step in enumerate(bundle.steps[1:], start=1):
            if step.needs_draw and step.lag_working_days:
                model.add(sum(visits) >= v.booked[(b, 0)] + v.booked[(b, k)])


def visit_room(inst: Instance, patient_id: str, day: int, site: str) -> int:
    """Most slots one visit can hold: within any `max_visit_minutes` stretch, the slots the patient
    is free, the site open and someone rostered there.

    Every step of a visit lies in such slots (patient free, a room open, a clinician's session)
    and the visit lasts at most `max_visit_minutes`, so its steps fit in one such stretch. A
    patient who works 9 to 5 has an hour before and after: the two are never one visit.
    """
    cache = inst.cache.setdefault("visit_room", {})
    key = (patient_id, day, site)
    if key not in cache:
        limit = inst.scenario.visit_rules.max_visit_minutes // inst.slot_minutes
        rostered = 0
        for c in inst.on_shift.get((day, site), ()):
            for mask in inst.shift_masks.get((c, day, site), ()):
                rostered |= mask
        free = inst.patient_mask(patient_id, day) & inst.open_mask(site) & rostered
        window = span_mask(0, limit)
        cache[key] = max((bin((free >> start) & window).count("1") for start in bits(free)), default=0)
    return cache[key]


def visit_fits_length(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    """Hard: the steps of one visit fit in the maximum visit length and the patient's free time."""
    for (b, opt), _visit in v.visit.items():
        bundle = v.bundles[b]
        terms = [bundle.steps[k].slots * v.x[(b, k, opt)]
                 for k in range(len(bundle.steps)) if (b, k, opt) in v.x]
        model.add(sum(terms) <= visit_room(inst, bundle.patient_id, *opt))


def _hall_capacity(model, demands: list[tuple[frozenset, int, object]], supply: dict) -> None:
    """For every set S of resources some demand is limited to: demand confined to S fits in S."""
    limit_sets = {d[0] for d in demands} | {frozenset().union(*(d[0] for d in demands))}
    for limit_set in sorted(limit_sets, key=sorted):  # fixed order: hash order varies by process
        confined = [slots * x for allowed, slots, x in demands if allowed <= limit_set]
        capacity = sum(supply[r] for r in limit_set)
        if confined:
            model.add(sum(confined) <= capacity)


def clinician_capacity(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    """Hard (relaxed to minutes): clinicians' rostered time at a site covers the steps booked there.

    Under `clinician_room_per_session: hard` a draw or review can only be done by a clinician
    whose session room there has its capabilities and room for everyone: the rooms are allocated
    before solving (`scheduler.rooms`) and the day book books no one else, so leaving the others
    out of the step's set removes no plan the day book could make.
    """
    book = empty_book(inst) if inst.scenario.visit_rules.clinician_room_per_session == "hard" else None
    for (day, site), members in v.at_option.items():
        on_shift = inst.on_shift.get((day, site), [])
        supply = {c: inst.rostered_slots(c, day, site) for c in on_shift}
        demands = []
        for b, k in members:
            step = v.bundles[b].steps[k]
            own_room = book is not None and step.kind != "joint_review"
            for part in step.parts:
                allowed = frozenset(c for c in part if c in supply and (
                    not own_room or book.has_session_room_for(c, day, site, step)))
                demands.append((allowed, step.slots, v.x[(b, k, (day, site))]))
        _hall_capacity(model, demands, supply)


def room_capacity(model: cp_model.CpModel, inst: Instance, v: MasterVars) -> None:
    """Hard (relaxed to minutes): rooms with the right capabilities are open long enough."""
    rooms = {site: list(rs) for site, rs in inst.rooms_at.items()}
    for (day, site), members in v.at_option.items():
        open_slots = bin(inst.open_mask(site)).count("1")
        supply = {r.id: open_slots for r in rooms.get(site, [])}
        demands = []
        for b, k in members:
            step = v.bundles[b].steps[k]
            allowed = frozenset(
                r.id for r in rooms.get(site, [])
                if step.capabilities <= set(r.capabilities) and r.capacity_people >= step.people
            )
            demands.append((allowed, step.slots, v.x[(b, k, (day, site))]))
        _hall_capacity(model, demands, supply)


@dataclass(frozen=True)
class Rule:
    """One master rule. `shared` rules couple patients through capacity; each bundle's exact
    standalone floor (`scheduler.model.floor`) leaves them out, the master keeps them all."""

    name: str
    add: Callable[[cp_model.CpModel, Instance, MasterVars], None]
    shared: bool = False


RULES: tuple[Rule, ...] = (
    Rule("step_opens_visit", step_opens_visit),
    Rule("one_site_per_day", one_site_per_day),
    Rule("draw_before_review", draw_before_review),
    Rule("draw_in_review_visit", draw_in_review_visit),
    Rule("draw_trip_is_a_trip", draw_trip_is_a_trip),
    Rule("visit_fits_length", visit_fits_length),
    Rule("clinician_capacity", clinician_capacity, shared=True),
    Rule("room_capacity", room_capacity, shared=True),
)


def add_constraints(model: cp_model.CpModel, inst: Instance, v: MasterVars, *, shared: bool = True,
                    still_in_time: Callable[[], bool] = lambda: True) -> bool:
    """Add every rule of `RULES` to `model` (without the shared-capacity ones when `shared` is
    False), in the registry's fixed order. Before each rule `still_in_time()` is asked; when it
    says no, nothing more is added and False is returned (the model is then incomplete and must
    not be solved as the master). Returns True when every rule was added."""
    for rule in RULES:
        if rule.shared and not shared:
            continue
        if not still_in_time():
            return False
        rule.add(model, inst, v)
    return True
