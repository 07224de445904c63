"""`explain_patient`: why a patient's visits are on this day, at this site, with these clinicians
and rooms, what the next-best alternative would cost, and for a split or unbooked patient the
smallest change that gives one visit (docs/explain.md).

Every answer is asked of the engine, not guessed: the plan is read back into the day book
(`probe.read_plan`), everybody else's visits are fixed, and the greedy booker is asked to place
the patient at each (day, site) (`probe.classify`); each placement is priced by the objective's
own `evaluate`. A change is tried on a copy of the scenario, read and placed the same way.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.baselines import GreedyBooker
from scheduler.daybook import empty_book, static_options
from scheduler.domain import Room, RosterSession, Scenario
from scheduler.explain.model import (
    TERMS,
    Alternative,
    AppointmentWhy,
    Change,
    Cost,
    Explanation,
    PlacedVisit,
    ReviewState,
    Rule,
    RuledOut,
    VisitWhy,
)
from scheduler.explain.probe import (
    ExplainError,
    Priced,
    Visit,
    classify,
    day_text,
    lagged,
    placer_without,
    price,
    read_plan,
    relaxed_book,
    review_names,
    visit_steps,
)
from scheduler.instance import Instance, run_starts, span_mask
from scheduler.model.objective import PRIORITY_DAY, SESSION_USED
from scheduler.plan import Plan
from scheduler.replan.placing import consistent
from scheduler.steps import Bundle
from scheduler.timegrid import is_working_day

BUDGET_SECONDS = 4.0
"""Wall-clock budget of one explanation (the target is under 5 s on the sample practice month):
options left unclassified or changes left untried when it runs out are said so in `notes`."""
MAX_ALTERNATIVES = 5
MAX_SESSION_CANDIDATES = 8
"""Extra sessions tried for a split or unbooked patient (nearest site, earliest day first)."""
MAX_CHANGE_PROBES = 10
"""Changes tried at most (each re-reads the plan into the changed scenario: about 0.2 s on the
sample practice month)."""


def explain_patient(scenario: Scenario, plan: Plan, patient_id: str, *,
                    budget_seconds: float = BUDGET_SECONDS) -> Explanation:
    """Explain one patient's place in `plan` (made from `scenario`).

    Returns an `Explanation` (scheduler.explain.model): per visit the date, site, clinicians and
    rooms with why each; the rules that ruled out the other (day, site) options; up to
    MAX_ALTERNATIVES feasible alternatives with everything else fixed, each with its objective
    delta by term (points; positive costs more) and in plain units (trips, travel minutes both
    ways, continuity misses, waiting minutes); and, for a split, unbooked or partly booked patient,
    the smallest change found that gives one visit (one more session of a role on a day, a
    longer maximum visit, or a room with a capability, in that order of preference), tried on a
    copy of the scenario. `seconds` is the time it took.

    Raises ExplainError for an unknown patient or a plan that is not of this scenario.
    """
    started = time.perf_counter()
    deadline = started + budget_seconds
    patient = next((p for p in scenario.patients if p.id == patient_id), None)
    if patient is None:
        raise ExplainError(f"no patient {patient_id!r} in the scenario")
    reading = read_plan(scenario, plan)
    inst = reading.inst
    bundles = [b for b in reading.bundles if b.patient_id == patient_id]
    mine = {v_id: bks for v_id, bks in reading.standing.items() if bks and bks[0].patient_id == patient_id}
    plan_visits = sorted((v for v in plan.visits if v.patient_id == patient_id), key=lambda v: (v.start, v.id))
    appointments = [a for a in plan.appointments if a.patient_id == patient_id]
    status = _status(patient, plan, appointments)
    notes: list[str] = []

    cost_total: Priced | None = None
    alternatives: list[Alternative] = []
    ruled_out: list[RuledOut] = []
    considered = 0
    fitting: dict[str, int] = {}
    changes: list[Change] = []
    chosen: Change | None = None
    for bundle in bundles:
        placer = placer_without(reading, {bundle.id})
        current = sorted((bks for bks in mine.values() if bks[0].bundle_id == bundle.id),
                         key=lambda v: (v[0].day, v[0].start))
        now = price(placer, bundle, current)
        cost_total = now if cost_total is None else cost_total + now
        here = sorted((v[0].day, v[0].site_id) for v in current)
        fits: list[tuple[Priced, list[Visit]]] = []
        tried_here = 0
        days = [d for d in range(len(inst.days)) if _clinic_day(inst, d)]
        sites = [r.site_id for r in sorted(patient.reachable_sites, key=lambda r: (r.travel_minutes, r.site_id))]
        for day in days:
            for site in sites:
                if time.perf_counter() > deadline:
                    break
                considered += 1
                tried_here += 1
                code, words, found = classify(inst, placer, bundle, day, site)
                if found is None:
                    ruled_out.append(RuledOut(date=inst.days[day], site_id=site, code=code, text=words))
                    continue
                places = sorted((v[0].day, v[0].site_id) for v in found)
                fitting[bundle.id] = fitting.get(bundle.id, 0) + 1
                if places != here:
                    fits.append((price(placer, bundle, found), found))
        if tried_here < len(days) * len(sites):
            notes.append("The time budget ran out before every day and site was tried; the alternatives and "
                         "rules are of those tried.")
        if status in ("split", "partly_booked") and not bundle.separate and time.perf_counter() < started + budget_seconds / 3:
            splits = [list(v) for v in placer.booker.two_visit_placements(
                bundle, lambda visit: placer.price(bundle, [visit]))]
            splits = [s for s in splits if consistent(inst, bundle, s)
                      and sorted((v[0].day, v[0].site_id) for v in s) != here]
            if splits:
                fits.append(min(((price(placer, bundle, s), s) for s in splits), key=lambda f: f[0].total))
        fits.sort(key=lambda f: (f[0].total, f[1][-1][0].day, f[1][-1][0].site_id))
        alternatives += [_alternative(inst, bundle, priced, found, now) for priced, found in fits]
        if status in ("split", "unbooked", "partly_booked") and not bundle.separate:
            tried, best = _changes(scenario, plan, inst, placer, bundle, now, ruled_out, deadline)
            changes += tried
            chosen = chosen or best
            if not tried:
                stops = sorted({r.code for r in ruled_out} - {"capacity_taken"})
                if time.perf_counter() > deadline:
                    why = "the time budget ran out."
                elif not stops:
                    why = ("the time of the clinicians who could see the patient is booked for others, and no "
                           "other clinician allowed could be given a session those days; moving another "
                           "patient (a re-plan) is the way to one visit.")
                else:
                    why = (f"what stops one visit ({', '.join(stops).replace('_', ' ')}) is not something one "
                           "more session, a room with a capability or a longer maximum visit changes (a due "
                           "window, the patient's own availability or reach).")
                notes.append("No change was tried: " + why)
    alternatives.sort(key=lambda a: a.cost_delta)
    if alternatives and alternatives[0].cost_delta < 0:
        notes.append("An alternative costs less by the objective than the plan's choice: the planner is a heuristic "
                     "within its time limit (the plan's bound says how far from the best the whole plan may be), "
                     "and the alternative is priced with the rest of the plan fixed. A re-plan may take it.")
    alternatives = alternatives[:MAX_ALTERNATIVES]
    rules = _rules(inst, patient, bundles, ruled_out, considered, scenario)
    visits = [_visit_why(inst, bundles, v, mine.get(v.id, []), fitting, alternatives, ruled_out) for v in plan_visits]
    cost = _cost(cost_total or Priced({t: 0 for t in TERMS}, 0, 0, 0, 0, 0))
    explanation = Explanation(
        patient_id=patient_id, status=status, summary="", reviews=_reviews(patient, appointments, plan),
        visits=visits, rules=rules, cost=cost, alternatives=alternatives, ruled_out=ruled_out,
        options_considered=considered, change=chosen, changes_tried=changes, notes=notes, seconds=0.0)
    explanation.summary = _summary(explanation)
    explanation.seconds = round(time.perf_counter() - started, 3)
    return explanation


# --- status and reviews ---------------------------------------------------------------------------

def _status(patient, plan: Plan, appointments) -> str:
    due = {patient.review_id(d) for d in patient.due_reviews}
    booked = {r for a in appointments for r in a.review_ids}
    if not booked & due:
        return "unbooked"
    if due - booked:
        return "partly_booked"
    if patient.opt_out_consolidation and len(due) > 1:
        return "separate"
    review_visits = {a.visit_id for a in appointments if a.review_ids}
    return "split" if len(review_visits) > 1 else "one_visit"


def _reviews(patient, appointments, plan: Plan) -> list[ReviewState]:
    visit_of = {r: a.visit_id for a in appointments for r in a.review_ids}
    reason = {u.review_id: f"{u.reason}: {u.detail}" for u in plan.unbooked if u.patient_id == patient.id}
    return [ReviewState(review_id=patient.review_id(d), review_type_id=d.review_type_id, window_start=d.window_start,
                        window_end=d.window_end, booked=patient.review_id(d) in visit_of,
                        visit_id=visit_of.get(patient.review_id(d)), unbooked_reason=reason.get(patient.review_id(d)))
            for d in patient.due_reviews]


def _clinic_day(inst: Instance, day: int) -> bool:
    """A day anyone is rostered anywhere (weekends and bank holidays without sessions are not
    options worth listing)."""
    return any(d == day for d, _site in inst.on_shift)


# --- costs ------------------------------------------------------------------------------------------

def _cost(p: Priced) -> Cost:
    return Cost(total=p.total, terms={t: p.terms.get(t, 0) for t in TERMS}, trips=p.trips,
                travel_minutes=p.travel_minutes, continuity_misses=p.continuity_misses,
                wait_minutes=p.wait_minutes, reviews_unbooked=p.reviews_unbooked)


def _delta(after: Priced, before: Priced) -> dict[str, int]:
    return {t: after.terms.get(t, 0) - before.terms.get(t, 0) for t in TERMS
            if after.terms.get(t, 0) != before.terms.get(t, 0)}


def _delta_words(delta: dict[str, int], after: Priced, before: Priced, priority: int) -> str:
    words = []
    unbooked = after.reviews_unbooked - before.reviews_unbooked
    if unbooked:
        words.append(f"{abs(unbooked)} review(s) {'more' if unbooked > 0 else 'fewer'} left unbooked")
    trips = after.trips - before.trips
    if trips:
        words.append(f"{abs(trips)} {'more' if trips > 0 else 'fewer'} trip(s)")
    travel = after.travel_minutes - before.travel_minutes
    if travel:
        words.append(f"{abs(travel)} {'more' if travel > 0 else 'fewer'} minutes of travel, both ways "
                     f"({abs(travel) // 2} each way)")
    if delta.get("priority_days") and priority:
        days = delta["priority_days"] // (PRIORITY_DAY * priority)
        words.append(f"{abs(days)} day(s) {'later' if days > 0 else 'sooner'} for a priority-{priority} patient")
    misses = after.continuity_misses - before.continuity_misses
    if misses:
        words.append(f"{abs(misses)} {'more' if misses > 0 else 'fewer'} review(s) without the named clinician")
    wait = after.wait_minutes - before.wait_minutes
    if wait:
        words.append(f"{abs(wait)} {'more' if wait > 0 else 'fewer'} minutes waiting between steps")
    if delta.get("preference"):
        words.append("outside the preferred time of day" if delta["preference"] > 0 else "inside the preferred time of day")
    if delta.get("sessions"):
        n = delta["sessions"] // SESSION_USED
        words.append(f"{abs(n)} clinician session(s) {'more' if n > 0 else 'fewer'} opened")
    return ", ".join(words) or "no difference in any term"


def _placed(inst: Instance, visit: Visit) -> PlacedVisit:
    first = min(visit, key=lambda bk: bk.start)
    return PlacedVisit(
        date=inst.days[first.day], site_id=first.site_id, start=_clock(inst, first.start),
        end=_clock(inst, max(bk.end for bk in visit)),
        clinician_ids=sorted({c for bk in visit for c in bk.clinician_ids}),
        room_ids=sorted({bk.room_id for bk in visit}),
        review_ids=[r for bk in sorted(visit, key=lambda b: b.start) for r in bk.step.review_ids],
        blood_draw=any(bk.step.kind == "blood_draw" for bk in visit))


def _clock(inst: Instance, slot: int) -> dt.time:
    minutes = slot * inst.slot_minutes
    return dt.time(minutes // 60, minutes % 60)


def _where(inst: Instance, visits: list[Visit]) -> str:
    return " and ".join(f"{day_text(inst.days[v[0].day])} at {v[0].site_id}" for v in visits)


def _alternative(inst: Instance, bundle: Bundle, priced: Priced, visits: list[Visit], now: Priced) -> Alternative:
    delta = _delta(priced, now)
    total = priced.total - now.total
    reviews = [v for v in visits if any(bk.step.reviews for bk in v)]
    shape = "one visit" if len(reviews) == 1 else f"{len(reviews)} visits"
    if bundle.separate:
        shape = f"the {review_names(inst, bundle.review_steps[0])} appointment"
    sign = "+" if total >= 0 else "-"
    words = _delta_words(delta, priced, now, bundle.priority)
    if not total:
        words = "costs the same" + (f": {words}" if delta else "; the plan's choice is a tie-break")
    return Alternative(
        visits=[_placed(inst, v) for v in visits], cost=_cost(priced), cost_delta=total, delta_by_term=delta,
        trips_delta=priced.trips - now.trips, travel_minutes_delta=priced.travel_minutes - now.travel_minutes,
        continuity_delta=priced.continuity_misses - now.continuity_misses,
        wait_minutes_delta=priced.wait_minutes - now.wait_minutes,
        summary=(f"{shape} {_where(inst, reviews or visits)}: {sign}{abs(total):,} points "
                 f"({words})"))


# --- the visits --------------------------------------------------------------------------------------

def _visit_why(inst: Instance, bundles: list[Bundle], visit, bookings: Visit, fitting: dict[str, int],
               alternatives: list[Alternative], ruled_out: list[RuledOut]) -> VisitWhy:
    patient = inst.patients[visit.patient_id]
    bookings = sorted(bookings, key=lambda bk: bk.start)
    bundle = next((b for b in bundles if bookings and b.id == bookings[0].bundle_id), None)
    why: list[str] = []
    draw_only = bookings and all(bk.step.kind == "blood_draw" for bk in bookings)
    if draw_only and bundle is not None and lagged(bundle):
        lag = max(s.lag_working_days for s in bundle.review_steps if s.needs_draw)
        why.append(f"A blood draw only: the results take {lag} working days and must be back before the review, "
                   "so the draw is a trip of its own; it is the latest day that gets them back in time, at the "
                   "nearest site where blood can be drawn.")
    elif bundle is not None:
        n = fitting.get(bundle.id, 0)
        if not n:
            why.append("No single visit for all the reviews fits on any day and site with the rest of the plan as it "
                       "is (the rules below say why), so they are split; "
                       + (f"the next best arrangement is {alternatives[0].summary}." if alternatives
                          else "no other arrangement was found."))
        elif n == 1 and not alternatives:
            why.append(f"It is the only day and site where this visit fits with the rest of the plan as it is; "
                       f"the {len(ruled_out)} other day/site options are ruled out by the rules below.")
        elif alternatives:
            why.append(f"Of the {n} days and sites where it fits, it costs least by the plan's objective; "
                       f"the next best is {alternatives[0].summary}.")
    travel = {r.site_id: r.travel_minutes for r in patient.reachable_sites}
    others = [f"{s} ({m} min)" for s, m in sorted(travel.items(), key=lambda kv: (kv[1], kv[0])) if s != visit.site_id]
    why.append(f"{visit.site_id} is {travel.get(visit.site_id, 0)} minutes from the patient"
               + (f"; they can also reach {', '.join(others)}." if others else "; it is the only site they can reach."))
    named = inst.named_clinician(patient.id)
    if named and any(bk.step.reviews for bk in bookings):
        if any(named in bk.clinician_ids for bk in bookings):
            why.append(f"{named}, the patient's named clinician, sees them.")
        elif named not in inst.on_shift.get((bookings[0].day, visit.site_id), ()):
            why.append(f"{named}, the patient's named clinician, is not rostered at {visit.site_id} that day.")
        else:
            why.append(f"{named}, the patient's named clinician, works there that day but is booked or not "
                       "allowed to do these reviews.")
    fasting = next((bk for bk in bookings if bk.step.fasting), None)
    if fasting is not None:
        limit = inst.scenario.visit_rules.fasting_draw_latest_start
        why.append(f"The draw starts at {_clock(inst, fasting.start):%H:%M}, by {limit:%H:%M}: a fasting marker "
                   f"({', '.join(m for m in fasting.step.marker_ids if inst.markers[m].fasting)}) is drawn in the morning.")
    appointments = [_appointment_why(inst, patient.id, bk) for bk in bookings]
    return VisitWhy(
        visit_id=visit.id, date=visit.date, site_id=visit.site_id,
        start=appointments[0].start if appointments else dt.time(0), end=appointments[-1].end if appointments else dt.time(0),
        clinician_ids=sorted({c for bk in bookings for c in bk.clinician_ids}),
        room_ids=sorted({bk.room_id for bk in bookings}), appointments=appointments, why=why)


def _appointment_why(inst: Instance, patient_id: str, bk) -> AppointmentWhy:
    step = bk.step
    names = review_names(inst, step)
    on_shift = set(inst.on_shift.get((bk.day, bk.site_id), ()))
    allowed = sorted({c for part in step.parts for c in part})
    there = [c for c in allowed if c in on_shift]
    named = inst.named_clinician(patient_id)
    who = ", ".join(bk.clinician_ids)
    competence = ("takes bloods" if step.kind == "blood_draw"
                  else "has a role the review type allows and the review type among their competences")
    if step.kind == "joint_review":
        why_clinician = (f"A joint consultation: one clinician for each part ({who}), each allowed their part "
                         f"and rostered at {bk.site_id} that day.")
    elif named and named in bk.clinician_ids:
        why_clinician = (f"{who} is the patient's named clinician and may do {names}" +
                         (" (takes bloods)." if step.kind == "blood_draw" else "."))
    elif len(there) <= 1:
        why_clinician = (f"{who} is the only clinician rostered at {bk.site_id} that day who may do {names} "
                         f"({competence}); allowed in all: {', '.join(allowed[:6])}{', ...' if len(allowed) > 6 else ''}.")
    else:
        why_clinician = (f"{who} is one of {len(there)} clinicians rostered there that day who may do {names} "
                         f"({', '.join(there[:6])}); the day book gives the step to the least booked one free at "
                         "that time" + (f"; the named clinician {named} was not free then."
                                        if named and named in there else "."))
    needs = ", ".join(sorted(step.capabilities)) or "no special equipment"
    room = next((r for r in inst.scenario.rooms if r.id == bk.room_id), None)
    has = ", ".join(room.capabilities) if room and room.capabilities else "no special equipment"
    rule = inst.scenario.visit_rules.clinician_room_per_session
    if step.kind == "joint_review":
        why_room = f"{bk.room_id} is an MDT room free for the whole sitting; the sitting needs {needs}."
    elif rule == "hard":
        why_room = (f"{bk.room_id} is the room {who}'s session holds (one room per clinician session); the step "
                    f"needs {needs}, the room has {has}.")
    elif rule == "soft":
        why_room = f"{bk.room_id}: the clinician's session room when free, else a free room; needs {needs}, has {has}."
    else:
        why_room = f"{bk.room_id} is the plainest free room with what the step needs ({needs})."
    return AppointmentWhy(kind=step.kind, start=_clock(inst, bk.start), end=_clock(inst, bk.end),
                          review_ids=list(step.review_ids), review_type_ids=list(step.review_type_ids),
                          clinician_ids=list(bk.clinician_ids), room_id=bk.room_id,
                          why_clinician=why_clinician, why_room=why_room)


# --- the rules ---------------------------------------------------------------------------------------

def _rules(inst: Instance, patient, bundles: list[Bundle], ruled_out: list[RuledOut], considered: int,
           scenario: Scenario) -> list[Rule]:
    counts = Counter(r.code for r in ruled_out)
    first: dict[str, str] = {}
    for r in ruled_out:
        first.setdefault(r.code, r.text)
    windows = "; ".join(f"{inst.review_types[d.review_type_id].name} from {day_text(d.window_start)} to "
                        f"{day_text(d.window_end)}" for d in patient.due_reviews)
    rules = [Rule(code="due_window", text=f"Due window: {windows}." + (
        f" {counts['due_window']} day/site option(s) fall outside it, such as: {first['due_window']}."
        if counts["due_window"] else ""), options_ruled_out=counts.get("due_window", 0))]
    reachable = sorted(patient.reachable_sites, key=lambda r: (r.travel_minutes, r.site_id))
    unreachable = [s.id for s in scenario.sites if s.id not in {r.site_id for r in reachable}]
    clinic_days = len({d for d, _s in inst.on_shift})
    rules.append(Rule(code="reachable_sites", text=(
        "The patient can reach " + ", ".join(f"{r.site_id} ({r.travel_minutes} min each way)" for r in reachable)
        + (f"; not {', '.join(unreachable)}." if unreachable else ".")),
        options_ruled_out=clinic_days * len(unreachable)))
    for code, n in counts.most_common():
        if code == "due_window":
            continue
        text = first[code][0].upper() + first[code][1:]
        if code == "roster":
            text += "." + _roster_days(inst, patient, bundles)
        else:
            text += "."
        if n > 1:
            text += f" ({n} day/site options ruled out this way.)"
        rules.append(Rule(code=code, text=text, options_ruled_out=n))
    rules.sort(key=lambda r: -r.options_ruled_out)
    return rules


def _roster_days(inst: Instance, patient, bundles: list[Bundle]) -> str:
    """When, in each review's window, someone allowed to do it works at a reachable site."""
    sites = {r.site_id for r in patient.reachable_sites}
    parts = []
    for bundle in bundles:
        for step in bundle.review_steps:
            allowed = {c for part in step.parts for c in part}
            days = sorted({(d, s) for d in range(max(step.first_day, 0), step.last_day + 1) for s in sites
                           if allowed & set(inst.on_shift.get((d, s), ()))})
            if not days:
                parts.append(f"nobody allowed to do {review_names(inst, step)} works at a reachable site in its window")
            elif len(days) <= 6:
                parts.append(f"{review_names(inst, step)} can be done in its window only on "
                             + ", ".join(f"{day_text(inst.days[d])} ({s})" for d, s in days))
            else:
                parts.append(f"{review_names(inst, step)} can be done in its window on {len(days)} day/site options")
    return (" In the roster, " + "; ".join(parts) + ".") if parts else ""


# --- changes that give one visit ---------------------------------------------------------------------

@dataclass
class _Candidate:
    kind: str
    description: str
    apply: Callable[[Scenario], Scenario]
    resource_minutes: int
    fields: dict = field(default_factory=dict)


def _changes(scenario: Scenario, plan: Plan, inst: Instance, placer, bundle: Bundle, now: Priced,
             ruled_out: list[RuledOut], deadline: float) -> tuple[list[Change], Change | None]:
    """Candidate changes in order of preference (an extra session, nearest site and earliest day
    first; a longer maximum visit; a room), each tried on a copy of the scenario by placing the
    patient with the plan's other visits fixed, until one gives one visit, MAX_CHANGE_PROBES
    are tried or the deadline passes. Returns (every change tried, the first that worked)."""
    codes = {r.code for r in ruled_out}
    sessions = _session_candidates(scenario, inst, bundle, ruled_out) if codes & {
        "roster", "capacity_taken", "max_visit_length", "patient_unavailable"} else []
    candidates = (sessions
                  + _visit_length_candidates(scenario, inst, bundle, ruled_out)
                  + _room_candidates(scenario, inst, bundle, codes))
    tried: list[Change] = []
    last = 0.0  # the previous probe's seconds: a probe that would end past the deadline is not started
    for candidate in candidates[:MAX_CHANGE_PROBES]:
        if time.perf_counter() + last > deadline:
            break
        began = time.perf_counter()
        change = _probe(scenario, plan, bundle, now, candidate)
        last = time.perf_counter() - began
        tried.append(change)
        if change.gives_one_visit:
            return tried, change
    return tried, None


def _probe(scenario: Scenario, plan: Plan, bundle: Bundle, now: Priced, candidate: _Candidate) -> Change:
    changed = candidate.apply(scenario)
    reading = read_plan(changed, plan, strict=False)
    moved = sum(1 for v_id in reading.fallen if reading.old_bundle.get(v_id) != bundle.id)
    again = reading.by_id.get(bundle.id)
    result = Change(kind=candidate.kind, description=candidate.description, resource_minutes=candidate.resource_minutes,
                    gives_one_visit=False, others_moved=moved, **candidate.fields)
    if again is None:
        return result
    placer = placer_without(reading, {bundle.id})
    best = None
    for placement in placer.booker.placements(again):
        visits = [list(v) for v in placement]
        if not consistent(reading.inst, again, visits):
            continue
        priced = price(placer, again, visits)
        if priced.reviews_unbooked == 0 and (best is None or priced.total < best[0].total):
            best = (priced, visits)
    if best is not None and not moved:
        priced, visits = best
        result.gives_one_visit = True
        result.visits = [_placed(reading.inst, v) for v in visits]
        result.cost_delta = priced.total - now.total
        result.delta_by_term = _delta(priced, now)
    return result


def _window(inst: Instance, bundle: Bundle) -> range:
    steps = visit_steps(bundle)
    first = max(max(s.first_day for s in steps), 0)
    last = min(min(s.last_day for s in steps), len(inst.days) - 1)
    if lagged(bundle):
        draws = static_options(inst, bundle, bundle.draw)
        lag = max(s.lag_working_days for s in bundle.review_steps if s.needs_draw)
        if not draws:
            return range(0)
        earliest = min(inst.ranks[d] for d, _ in draws) + lag
        while first <= last and inst.ranks[first] < earliest:
            first += 1
    return range(first, last + 1)


def _session_candidates(scenario: Scenario, inst: Instance, bundle: Bundle, ruled_out: list[RuledOut]) -> list[_Candidate]:
    """One more session of a clinician allowed to do part of the visit, at a (day, site) in the
    window: first where it is the one part nobody allowed can do in the patient's hours that
    day (a roster gap), then, where the roster covers every part but the visit still does not
    fit (capacity used up, clinicians at different times of the day), for each part in turn.
    The session has the clinician's usual hours when the patient can come then, else the
    patient's longest free span at the site (at most 4 hours); it never overlaps a session of
    theirs that day or falls on their leave. Nearest site and earliest day first."""
    patient = inst.patients[bundle.patient_id]
    steps = visit_steps(bundle)
    code_at = {(r.date, r.site_id): r.code for r in ruled_out}
    on_leave = {(leave.clinician_id, d) for leave in scenario.leave
                for d in inst.days if leave.start_date <= d <= leave.end_date}
    booked_hours: dict[tuple[str, dt.date], list[tuple[dt.time, dt.time]]] = {}
    for s in scenario.sessions:
        booked_hours.setdefault((s.clinician_id, s.date), []).append((s.start, s.end))
    named = inst.named_clinician(patient.id)
    need: dict[tuple[str, ...], int] = {}
    rooms_need: dict[tuple[str, ...], tuple[frozenset, int]] = {}
    for s in steps:
        for part in s.parts:
            need[part] = max(need.get(part, 0), s.slots)
            caps, people = rooms_need.get(part, (frozenset(), 0))
            rooms_need[part] = (caps | s.capabilities, max(people, s.people))
    draw_parts = {part for s in steps if s.kind == "blood_draw" for part in s.parts}
    order = sorted(need, key=lambda part: part in draw_parts)  # review parts first, the draw's last
    ranked: list[tuple[tuple, _Candidate]] = []
    seen: set = set()
    for r in sorted(patient.reachable_sites, key=lambda r: (r.travel_minutes, r.site_id)):
        site = inst.sites[r.site_id]
        for day in _window(inst, bundle):
            date = inst.days[day]
            code = code_at.get((date, site.id))
            if code not in ("roster", "capacity_taken", "max_visit_length", "patient_unavailable"):
                continue
            free = inst.patient_mask(patient.id, day) & inst.open_mask(site.id)
            if not is_working_day(date) or _longest_run(free)[1] < sum(st.slots for st in steps):
                continue  # the patient cannot stay long enough that day: no session changes that
            missing = [part for part in order if not any(
                run_starts(m & free, need[part]) for c in part for m in inst.shift_masks.get((c, day, site.id), ()))]
            if len(missing) > 1:
                continue
            targets, rank = (missing, 0) if missing else (order, 1)
            avail = {part: _or(m & free for c in part for m in inst.shift_masks.get((c, day, site.id), ()))
                     for part in order}
            for part in targets:
                # The new session goes where the rest of the visit can be: beside the other parts' sessions.
                near = _or(avail[p] for p in order if p != part)
                near = _widen(near, need[part] + inst.scenario.visit_rules.max_wait_minutes // inst.slot_minutes) & free
                found = _session_for(scenario, inst, part, need[part], date, day, site, near or free, named,
                                     on_leave, booked_hours)
                if found is None or (found[0], date, site.id) in seen:
                    continue
                clinician, start, end = found
                seen.add((clinician, date, site.id))
                minutes = (dt.datetime.combine(date, end) - dt.datetime.combine(date, start)).seconds // 60
                role = inst.clinicians[clinician].role
                room = _free_room(inst, day, site.id, start, end, *rooms_need[part])
                session = RosterSession(clinician_id=clinician, date=date, start=start, end=end, site_id=site.id,
                                        room_id=room)
                ranked.append(((rank, r.travel_minutes, day), _Candidate(
                    kind="add_session",
                    description=(f"One more {role.replace('_', ' ')} session: {clinician} at {site.id} on "
                                 f"{day_text(date)}, {start:%H:%M}-{end:%H:%M} ({minutes} clinician minutes)"
                                 + (f" in {room}" if room else "")),
                    apply=lambda s, session=session: s.model_copy(update={"sessions": [*s.sessions, session]}),
                    resource_minutes=minutes,
                    fields={"session": {"clinician_id": clinician, "role": role, "date": date.isoformat(),
                                        "start": f"{start:%H:%M}", "end": f"{end:%H:%M}", "site_id": site.id,
                                        "room_id": room}})))
    ranked.sort(key=lambda item: item[0])
    return [candidate for _, candidate in ranked[:MAX_SESSION_CANDIDATES]]


def _session_for(scenario: Scenario, inst: Instance, part, slots: int, date: dt.date, day: int, site, free: int,
                 named: str | None, on_leave: set, booked_hours: dict) -> tuple[str, dt.time, dt.time] | None:
    """The clinician of `part` to give a session, and its hours (see `_session_candidates`)."""
    on = set(inst.on_shift.get((day, site.id), ()))
    people = sorted(part, key=lambda c: (c != named, c in on,
                                         -sum(1 for s in scenario.sessions if s.clinician_id == c), c))
    for clinician in people:
        if (clinician, date) in on_leave:
            continue
        start, end = _usual_hours(scenario, clinician, site)
        usual = span_mask(inst.to_slot_ceil(start), max(0, inst.to_slot_floor(end) - inst.to_slot_ceil(start)))
        first, length = _longest_run(free)
        length = min(length, 240 // inst.slot_minutes)
        if bin(usual & free).count("1") < length:  # the usual hours miss some of the time the visit could take
            if length < slots:
                continue
            start = _slot_time(inst, first)
            end = _slot_time(inst, first + length)
        if any(s < end and start < e for s, e in booked_hours.get((clinician, date), ())):
            continue
        return clinician, start, end
    return None


def _free_room(inst: Instance, day: int, site_id: str, start: dt.time, end: dt.time, capabilities: frozenset,
               people: int) -> str | None:
    """Under the hard room rule, a room at the site with the capabilities and space that no
    session holds and that is open over the new session's hours (plainest first), so the extra
    session can do the visit's steps; None when there is none (or under soft/off, where rooms
    are not held)."""
    if inst.scenario.visit_rules.clinician_room_per_session != "hard":
        return None
    book = empty_book(inst)
    need = span_mask(inst.to_slot_ceil(start), max(0, inst.to_slot_floor(end) - inst.to_slot_ceil(start)))
    rooms = sorted((r for r in inst.scenario.rooms if r.site_id == site_id and capabilities <= set(r.capabilities)
                    and r.capacity_people >= people), key=lambda r: (len(r.capabilities), r.capacity_people, r.id))
    return next((r.id for r in rooms if book.shared_room_free(r.id, site_id, day) & need == need), None)


def _or(masks) -> int:
    result = 0
    for m in masks:
        result |= m
    return result


def _widen(mask: int, slots: int) -> int:
    """The mask grown by `slots` on each side (a step may sit just before or after it)."""
    result = mask
    for i in range(1, slots + 1):
        result |= mask << i | mask >> i
    return result


def _longest_run(mask: int) -> tuple[int, int]:
    """(first slot, length) of the longest run of set bits."""
    best, first, run = (0, 0), 0, 0
    for i in range(mask.bit_length() + 1):
        if mask >> i & 1:
            if not run:
                first = i
            run += 1
            if run > best[1]:
                best = (first, run)
        else:
            run = 0
    return best


def _slot_time(inst: Instance, slot: int) -> dt.time:
    minutes = min(slot * inst.slot_minutes, 23 * 60 + 59)
    return dt.time(minutes // 60, minutes % 60)


def _usual_hours(scenario: Scenario, clinician: str, site) -> tuple[dt.time, dt.time]:
    """The clinician's most common session hours, else the site's opening hours."""
    hours = Counter((s.start, s.end) for s in scenario.sessions if s.clinician_id == clinician)
    if hours:
        return hours.most_common(1)[0][0]
    return site.opens, site.closes


def _visit_length_candidates(scenario: Scenario, inst: Instance, bundle: Bundle, ruled_out: list[RuledOut]) -> list[_Candidate]:
    """A longer maximum visit: the shortest that lets the visit fit, on an empty roster, at a
    (day, site) where the maximum visit stopped it (the span of the booker's visit there with
    the maximum lifted, rounded up to 15 minutes); then that plus 15 minutes."""
    rules = scenario.visit_rules
    steps = visit_steps(bundle)
    relaxed = GreedyBooker(inst, relaxed_book(inst, visit=True, wait=False))
    spans = []
    for r in ruled_out:
        if r.code != "max_visit_length":
            continue
        found = relaxed.fit(bundle, steps, inst.day_of[r.date], r.site_id)
        if found is not None:
            spans.append((max(bk.end for bk in found) - min(bk.start for bk in found)) * inst.slot_minutes)
    if not spans:
        return []
    shortest = -(-min(spans) // 15) * 15
    found = []
    for limit in (shortest, shortest + 15):
        if rules.max_visit_minutes < limit <= 600:
            found.append(_Candidate(
                kind="longer_max_visit",
                description=f"A longer maximum visit: {limit} minutes instead of {rules.max_visit_minutes}",
                apply=lambda s, limit=limit: s.model_copy(update={
                    "visit_rules": s.visit_rules.model_copy(update={"max_visit_minutes": limit})}),
                resource_minutes=limit - rules.max_visit_minutes, fields={"max_visit_minutes": limit}))
    return found


def _room_candidates(scenario: Scenario, inst: Instance, bundle: Bundle, codes: set[str]) -> list[_Candidate]:
    """A room with the capabilities of the steps no reachable room can host (or, under the hard
    room rule, no clinician's session room), at the nearest reachable site where those steps'
    clinicians work in the window."""
    if "room_capability" not in codes:
        return []
    patient = inst.patients[bundle.patient_id]
    steps = visit_steps(bundle)
    empty = empty_book(inst)
    sites = [r.site_id for r in sorted(patient.reachable_sites, key=lambda r: (r.travel_minutes, r.site_id))]
    lacking = [s for s in steps if not any(empty.rooms_for(s, site) for site in sites)]
    if not lacking and empty.room_rule == "hard":
        lacking = [s for s in steps if s.capabilities and s.kind != "joint_review" and not any(
            empty.has_session_room_for(c, d, site, s) for d in range(max(s.first_day, 0), s.last_day + 1)
            for site in sites for part in s.parts for c in part)]
    if not lacking:
        return []
    capabilities = sorted(set().union(*(s.capabilities for s in lacking)))
    people = max(3, *(s.people for s in lacking))
    allowed = {c for s in lacking for part in s.parts for c in part}
    window = _window(inst, bundle)
    site = next((site for site in sites if any(allowed & set(inst.on_shift.get((d, site), ())) for d in window)),
                sites[0] if sites else None)
    if site is None:
        return []
    taken = {r.id for r in scenario.rooms}
    room_id = next(f"extra-room-{i}" if i else "extra-room" for i in range(len(taken) + 1)
                   if (f"extra-room-{i}" if i else "extra-room") not in taken)
    room = Room(id=room_id, site_id=site, name="Extra room (what-if)", capacity_people=people,
                capabilities=capabilities)
    return [_Candidate(
        kind="add_room", description=f"A room at {site} with {', '.join(capabilities)} (space for {people})",
        apply=lambda s: s.model_copy(update={"rooms": [*s.rooms, room]}), resource_minutes=0,
        fields={"room": {"id": room_id, "site_id": site, "capabilities": capabilities, "capacity_people": people}})]


# --- the summary -------------------------------------------------------------------------------------

def _summary(e: Explanation) -> str:
    where = "; ".join(f"{day_text(v.date)} at {v.site_id}, {v.start:%H:%M}-{v.end:%H:%M} with "
                      f"{', '.join(v.clinician_ids)}"
                      + (" (blood draw only)" if all(a.kind == "blood_draw" for a in v.appointments) else "")
                      for v in e.visits)
    head = {
        "one_visit": f"{e.patient_id} has every review in one visit: {where}.",
        "split": f"{e.patient_id}'s reviews are split over {len(e.visits)} visits: {where}.",
        "unbooked": f"{e.patient_id} could not be booked.",
        "partly_booked": f"{e.patient_id} is only partly booked" + (f": {where}." if where else "."),
        "separate": f"{e.patient_id} chose separate appointments: {where}.",
    }[e.status]
    main = [r for r in e.rules if r.options_ruled_out and r.code not in ("reachable_sites",)]
    if main:
        head += " What limited it: " + ", ".join(f"{r.code.replace('_', ' ')} ({r.options_ruled_out})"
                                                 for r in main[:4]) + "."
    if e.alternatives:
        head += f" Next best: {e.alternatives[0].summary}."
    elif e.status in ("one_visit", "split", "separate"):
        head += " No other day or site fits with the rest of the plan as it is."
    if e.change is not None:
        head += f" Smallest change for one visit: {e.change.description}."
    elif e.status in ("split", "unbooked", "partly_booked"):
        head += " None of the changes tried gives one visit."
    return head
