"""Why a review could not be booked, in the plan's machine-readable reasons and plain English."""

from __future__ import annotations

from scheduler.daybook import empty_book
from scheduler.instance import Instance
from scheduler.steps import Bundle, Step


def _reachable(inst: Instance, bundle: Bundle) -> set[str]:
    return {r.site_id for r in inst.patients[bundle.patient_id].reachable_sites}


def diagnose(inst: Instance, bundle: Bundle, step: Step) -> tuple[str, str]:
    """The first reason that explains the step on an empty roster, else capacity."""
    sites = _reachable(inst, bundle)
    days = range(max(step.first_day, 0), step.last_day + 1)
    kinds = ", ".join(step.review_type_ids) or "blood draw"
    if not days:
        return "patient_unavailable", f"The due window for {kinds} lies outside the planning period."
    limit = inst.scenario.visit_rules.max_visit_minutes
    if step.slots * inst.slot_minutes > limit:
        return (
            "longer_than_a_visit",
            f"{kinds} takes {step.slots * inst.slot_minutes} min with this patient's extra time, "
            f"longer than the {limit}-minute maximum visit.",
        )
    rostered = [
        (day, site) for day in days for site in sites
        if all(any(c in inst.on_shift.get((day, site), ()) for c in part) for part in step.parts)
    ]
    if not rostered:
        return (
            "no_clinician_rostered",
            f"No clinician allowed to do {kinds} works at a site the patient can reach in the window.",
        )
    empty = empty_book(inst)
    if not any(empty.rooms_for(step, site) for site in sites):
        needs = ", ".join(sorted(step.capabilities)) or "a room"
        return "no_room_with_capability", f"No room with {needs} for this patient at a reachable site."
    if empty.room_rule == "hard" and step.kind != "joint_review" and not any(
        all(any(empty.has_session_room_for(c, d, s, step) for c in part) for part in step.parts)
        for d, s in rostered
    ):
        needs = ", ".join(sorted(step.capabilities)) or "a room"
        return (
            "no_room_with_capability",
            f"No clinician allowed to do {kinds} holds a room with {needs} for a session at a site "
            "the patient can reach in the window (each clinician keeps one room per session).",
        )
    possible = [(d, s) for d, s in rostered if empty.step_starts(bundle, step, d, s)]
    if not possible:
        return (
            "patient_unavailable",
            f"The patient is unavailable whenever {kinds} could be done in the window.",
        )
    draw = bundle.draw
    if step.needs_draw and draw is not None:
        draws = [
            day for day in range(draw.first_day, draw.last_day + 1) for site in sites
            if empty.step_starts(bundle, draw, day, site)
        ]
        lag = step.lag_working_days
        latest = max(inst.ranks[d] for d, _ in possible)
        if not draws or min(inst.ranks[d] for d in draws) + lag > latest:
            return (
                "no_blood_draw_before_review",
                f"Blood results ({lag} working days) cannot be back before {kinds} inside the window.",
            )
        if not lag and not _draw_in_a_visit_possible(inst, bundle, step, possible):
            return (
                "no_blood_draw_before_review",
                f"The practice's policy puts the blood draw inside a visit with reviews, and nobody "
                f"who takes blood works at a reachable site on a day {kinds} or another of the "
                f"patient's reviews could be done, up to the last day for {kinds}.",
            )
    return "capacity_used_up", f"Possible for {kinds}, but the roster's capacity went to others."


def _draw_in_a_visit_possible(inst: Instance, bundle: Bundle, step: Step, possible: list) -> bool:
    """Under `draw_in_visit` (without results needed first) the draw shares a (day, site) with a
    review step of the bundle, on or before the last day `step` could happen; on an empty roster,
    is there any such place? Always true under `earlier_draw_trip_allowed`."""
    if inst.scenario.visit_rules.blood_draw_policy != "draw_in_visit":
        return True
    empty = empty_book(inst)
    latest = max(day for day, _site in possible)
    sites = _reachable(inst, bundle)
    for other in bundle.review_steps:
        for day in range(max(other.first_day, 0), min(other.last_day, latest) + 1):
            for site in sites:
                if empty.step_starts(bundle, other, day, site) and empty.step_starts(bundle, bundle.draw, day, site):
                    return True
    return False


def unbooked_reasons(inst: Instance, bundles: list[Bundle], booked: set[str]) -> dict[str, tuple[str, str]]:
    """(reason, plain-English detail) for every review of `bundles` not in `booked`."""
    reasons = {}
    for bundle in bundles:
        for step in bundle.review_steps:
            missing = [r for r in step.review_ids if r not in booked]
            if missing:
                reason = diagnose(inst, bundle, step)
                reasons.update({r: reason for r in missing})
    return reasons
