"""Probing the engine for one patient with the rest of the plan fixed (docs/explain.md).

The plan is read back into the engine's own day book (`scheduler.replan.standing.PreviousPlan`,
the re-plan's reader), every other patient's visits are committed, and the patient's bundle is
asked of the greedy booker (`scheduler.baselines.GreedyBooker`, through the re-plan's `_Placer`)
at each (day, site): the same code, hence the same hard rules, every plan is booked with. What
does not fit is classified by the first rule that stops it, tested on the empty day book
(`scheduler.daybook.empty_book`) as `scheduler.reasons.diagnose` does for unbooked reviews.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, replace

from scheduler.baselines import GreedyBooker
from scheduler.daybook import Booking, Daybook, empty_book, static_options
from scheduler.domain import Scenario
from scheduler.instance import Instance, run_starts
from scheduler.model.objective import SESSION_USED, WAIT_MINUTE, evaluate
from scheduler.plan import Plan
from scheduler.replan.placing import _Placer, consistent
from scheduler.replan.standing import PreviousPlan
from scheduler.replan.window import LONDON, Prepared
from scheduler.steps import Bundle, Step

Visit = list[Booking]


class ExplainError(ValueError):
    """The question cannot be answered: an unknown patient, or a plan that does not read back
    into the scenario given (another scenario's plan)."""


def read_plan(scenario: Scenario, plan: Plan, strict: bool = True) -> PreviousPlan:
    """The plan read into the engine: bundles grouped as the plan grouped them, every visit as
    day-book bookings and checked to stand (`why_not`). `strict`: raise ExplainError when a
    visit does not read or stand (the plan is not of this scenario)."""
    at = dt.datetime.combine(scenario.horizon_start, dt.time(0), tzinfo=LONDON)
    try:
        reading = PreviousPlan(Prepared(scenario, [], at, at), plan)
    except (KeyError, ValueError, IndexError) as exc:
        raise ExplainError(f"the plan does not read back into the scenario: {exc}") from None
    if strict:
        unread = [v_id for v_id, bookings in reading.old.items() if bookings is None]
        if unread:
            raise ExplainError(f"the plan does not match the scenario: visit {unread[0]} books reviews or dates "
                               "the scenario does not have (is it another scenario's plan?)")
        if reading.fallen:
            v_id, (code, words) = next(iter(reading.fallen.items()))
            raise ExplainError(f"the plan does not match the scenario: visit {v_id} breaks {code}: {words}")
    return reading


def placer_without(reading: PreviousPlan, bundle_ids: set[str]) -> _Placer:
    """A day book holding every visit of the plan that stands except those of `bundle_ids`, and
    the pricing of the re-plan (objective terms plus SESSION_USED per clinician session opened;
    no stability cost: nothing was published to move)."""
    stays: dict[str, list[Visit]] = defaultdict(list)
    for bookings in reading.standing.values():
        if bookings and bookings[0].bundle_id not in bundle_ids:
            stays[bookings[0].bundle_id].append(bookings)
    return _Placer(reading.inst, reading.bundles, stays, {}, dt.datetime.min, set())


def lagged(bundle: Bundle) -> bool:
    """The draw is a trip of its own: a review needs its laboratory results back first."""
    return bundle.draw is not None and any(s.needs_draw and s.lag_working_days for s in bundle.review_steps)


def visit_steps(bundle: Bundle) -> list[Step]:
    """The steps of the bundle's one visit (the draw too, unless it is a results-first trip)."""
    reviews = list(bundle.review_steps)
    return reviews if lagged(bundle) or bundle.draw is None else [bundle.draw, *reviews]


@dataclass
class Priced:
    """A placement's own objective terms (points) and plain figures."""

    terms: dict[str, int]
    trips: int
    travel_minutes: int  # both ways
    continuity_misses: int
    wait_minutes: int
    reviews_unbooked: int

    @property
    def total(self) -> int:
        return sum(self.terms.values())

    def __add__(self, other: Priced) -> Priced:
        return Priced({k: self.terms.get(k, 0) + other.terms.get(k, 0) for k in {*self.terms, *other.terms}},
                      self.trips + other.trips, self.travel_minutes + other.travel_minutes,
                      self.continuity_misses + other.continuity_misses, self.wait_minutes + other.wait_minutes,
                      self.reviews_unbooked + other.reviews_unbooked)


def price(placer: _Placer, bundle: Bundle, visits: list[Visit]) -> Priced:
    """The bundle's terms in `visits` with the rest of the book as it is: `evaluate` on the
    bundle alone, its session term replaced by SESSION_USED per clinician session it opens
    (as `_Placer.price`, which the re-plan uses)."""
    inst = placer.inst
    visits = [v for v in visits if v]
    flat = [replace(bk, visit_key=i) for i, v in enumerate(visits) for bk in v]
    own = evaluate(inst, [bundle], flat)
    terms = dict(own.__dict__)
    opened = {(c, bk.day, bk.site_id) for bk in flat for c in bk.clinician_ids
              if placer.sessions.get((c, bk.day, bk.site_id), 0) <= 0}
    terms["sessions"] = SESSION_USED * len(opened)
    named = inst.named_clinician(bundle.patient_id)
    booked = {bk.step.key for bk in flat}
    return Priced(
        terms=terms, trips=len(visits),
        travel_minutes=sum(2 * inst.travel.get((bundle.patient_id, v[0].site_id), 0) for v in visits),
        continuity_misses=sum(bk.step.reviews for bk in flat
                              if bk.step.reviews and named and named not in bk.clinician_ids),
        wait_minutes=own.wait // WAIT_MINUTE,
        reviews_unbooked=sum(s.reviews for s in bundle.steps if s.key not in booked),
    )


def review_names(inst: Instance, step: Step) -> str:
    if step.kind == "blood_draw":
        return "the blood draw"
    names = [inst.review_types[t].name for t in step.review_type_ids]
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


def day_text(date: dt.date) -> str:
    return f"{date:%a} {date.day} {date:%b} {date.year}"


def _roles(inst: Instance, clinicians) -> str:
    return "/".join(sorted({inst.clinicians[c].role.replace("_", " ") for c in clinicians})) or "clinician"


def classify(inst: Instance, placer: _Placer, bundle: Bundle, day: int, site: str) -> tuple[str, str, list[Visit] | None]:
    """Why the bundle's one visit cannot go to (day, site), as (rule code, words, None), or
    ("fits", "", placement) with the booker's placement there (with its results-first draw trip).

    Rules are tested in the order of `scheduler.explain.model.RuleCode`; the first that fails
    is given. Everything but `capacity_taken` and `one_trip_a_day` is tested on an empty roster.
    """
    steps = visit_steps(bundle)
    date = inst.days[day]
    when = f"{site} on {day_text(date)}"
    rules = inst.scenario.visit_rules
    if bundle.separate and day in placer.booker.sibling_days(bundle):
        return "one_trip_a_day", (f"another of the patient's separate appointments is on {day_text(date)} "
                                  "(one trip a day: a visit is one patient, one date, one site)"), None
    for s in steps:
        if not s.first_day <= day <= s.last_day:
            first, last = inst.days[max(s.first_day, 0)], inst.days[min(max(s.last_day, 0), len(inst.days) - 1)]
            window = (f"{day_text(first)} to {day_text(last)}" if s.first_day <= s.last_day
                      else "no day of the planning period")
            return "due_window", f"{day_text(date)} is outside the due window of {review_names(inst, s)} ({window})", None
    if not inst.patient_mask(bundle.patient_id, day):
        return "patient_unavailable", f"the patient cannot come on {day_text(date)} (their unavailability)", None
    on_shift = set(inst.on_shift.get((day, site), ()))
    for s in steps:
        for part in s.parts:
            if not part:
                return "competence", (f"no clinician in the scenario is allowed to do {review_names(inst, s)} "
                                      "(a role the review type allows, with the review type in their competences) "
                                      "and works at a site the patient can reach in the window"), None
            if not on_shift & set(part):
                return "roster", (f"no {_roles(inst, part)} allowed to do {review_names(inst, s)} "
                                  f"({', '.join(part[:4])}{', ...' if len(part) > 4 else ''}) is rostered at {when}"), None
    empty = empty_book(inst)
    for s in steps:
        needs = ", ".join(sorted(s.capabilities)) or "no special equipment"
        if not empty.rooms_for(s, site):
            return "room_capability", (f"no room at {site} has {needs} with space for {s.people} "
                                       f"(needed for {review_names(inst, s)})"), None
        if empty.room_rule == "hard" and s.kind != "joint_review" and not all(
                any(empty.has_session_room_for(c, day, site, s) for c in part if c in on_shift) for part in s.parts):
            return "room_capability", (f"no {_roles(inst, [c for p in s.parts for c in p])} rostered at {when} "
                                       f"holds a room with {needs} for the session (one room per clinician "
                                       f"session), needed for {review_names(inst, s)}"), None
    max_slots = rules.max_visit_minutes // inst.slot_minutes
    if sum(s.slots for s in steps) > max_slots:
        minutes = sum(s.slots for s in steps) * inst.slot_minutes
        return "max_visit_length", (f"the visit would last at least {minutes} minutes, longer than the "
                                    f"{rules.max_visit_minutes}-minute maximum visit"), None
    for s in steps:
        if empty.step_starts(bundle, s, day, site):
            continue
        if s.fasting and empty.step_starts(bundle, replace(s, fasting=False), day, site):
            return "fasting_draw", (f"a fasting blood draw must start by {rules.fasting_draw_latest_start:%H:%M}, "
                                    f"and nobody who takes blood can start one that early at {when}"), None
        if inst.patient_mask(bundle.patient_id, day) != inst.patient_mask(bundle.patient_id, day) | inst.open_mask(site):
            return "patient_unavailable", (f"the hours the patient can come on {day_text(date)} do not meet the "
                                           f"sessions for {review_names(inst, s)} at {site}"), None
        return "roster", (f"the sessions at {when} of those allowed to do {review_names(inst, s)} are too short "
                          "for it, or their rooms are closed then"), None
    if lagged(bundle):
        draws = static_options(inst, bundle, bundle.draw)
        lag = max(s.lag_working_days for s in bundle.review_steps if s.needs_draw)
        earliest = min((inst.ranks[d] for d, _ in draws), default=None)
        if earliest is None or inst.ranks[day] < earliest + lag:
            first = (f"the earliest the blood could be drawn is {day_text(inst.days[min(d for d, _ in draws)])}"
                     if draws else "the blood cannot be drawn anywhere in the window")
            return "results_turnaround", (f"the results must be back before the review: they take {lag} working "
                                          f"days, and {first}"), None
    on_empty = GreedyBooker(inst, empty)
    if on_empty.fit(bundle, steps, day, site) is None:
        return _chain_rule(inst, bundle, steps, day, site, when)
    if lagged(bundle) and next(on_empty.placements(bundle, at=(day, site)), None) is None:
        return "results_turnaround", (f"no blood draw can be made the results' turnaround before {day_text(date)}, "
                                      "even with nobody else booked"), None
    found = next((p for p in placer.booker.placements(bundle, at=(day, site))
                  if consistent(inst, bundle, [list(v) for v in p])), None)
    if found is None:
        who = sorted({c for s in steps for part in s.parts for c in part if c in on_shift})
        return "capacity_taken", (f"it fits on an empty roster, but the time of {', '.join(who[:4])}"
                                  f"{', ...' if len(who) > 4 else ''} and the rooms at {when} is booked for other "
                                  "patients"), None
    return "fits", "", [list(v) for v in found]


def relaxed_book(inst: Instance, visit: bool, wait: bool) -> Daybook:
    """An empty day book without the maximum visit length (`visit`) and/or the maximum wait
    between steps (`wait`), to tell which of them stops a visit; cached per instance. (It sets
    the day book's own limits, `_max_visit` and `_max_wait`, so every other rule is the book's.)"""
    cache = inst.cache.setdefault("explain_relaxed", {})
    if (visit, wait) not in cache:
        book = Daybook(inst)
        if visit:
            book._max_visit = 10 ** 6
        if wait:
            book._max_wait = 10 ** 6
        cache[(visit, wait)] = book
    return cache[(visit, wait)]


def _chain_rule(inst: Instance, bundle: Bundle, steps: list[Step], day: int, site: str, when: str):
    """Why each step fits alone at (day, site) on an empty roster but not one after another."""
    rules = inst.scenario.visit_rules
    longest = max((n for n in range(1, inst.slots_per_day + 1)
                   if run_starts(inst.patient_mask(bundle.patient_id, day) & inst.open_mask(site), n)), default=0)
    minutes = sum(s.slots for s in steps) * inst.slot_minutes
    if longest * inst.slot_minutes < minutes:
        return "patient_unavailable", (f"the patient can come for at most {longest * inst.slot_minutes} minutes in a row "
                                       f"at {when}, and the visit needs {minutes}"), None
    if GreedyBooker(inst, relaxed_book(inst, visit=True, wait=False)).fit(bundle, steps, day, site) is not None:
        return "max_visit_length", (f"the visit would last longer than the {rules.max_visit_minutes}-minute maximum "
                                    f"visit at {when}, with the sessions as they are"), None
    if GreedyBooker(inst, relaxed_book(inst, visit=True, wait=True)).fit(bundle, steps, day, site) is not None:
        return "max_visit_length", (f"the clinicians needed work at different times of the day at {when}: the steps "
                                    f"would be more than the {rules.max_wait_minutes}-minute maximum wait apart"), None
    return "roster", (f"the sessions at {when} do not let the steps follow one another within the patient's hours "
                      "(each step inside one session)"), None
