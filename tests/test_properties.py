"""Property: any small valid scenario yields a plan the independent checker accepts.

The strategy is biased towards scenarios where the interesting rules actually fire. A purely
random roster and random windows left 8 to 13 of every 30 examples with nothing booked and never
made a joint sitting, so the property held vacuously for the plans most likely to be wrong.
Each example now has "clinic days" on which the GP, the nurse and the HCA all work (so joint MDT
sittings and combined visits are possible), most patients follow an archetype (joint
consultation, results-first diabetes review, opted out, routine) with a window over the whole
horizon, and one in five is fully random (odd windows, unavailability) to keep the edges. The
test counts what the plans contain across the run and fails if the mix falls away, so a future
edit of the strategy cannot quietly make the property vacuous again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scheduler.domain import WEEKDAYS, Scenario
from scheduler.plan import Plan
from tests.builders import BASE, scenario, session, solve_checked

# Monday 22 March to Friday 2 April 2027: Good Friday (26th), the weekend and Easter Monday (29th)
# sit in the middle, and the clocks go forward on the 28th.
HORIZON = [dt.date(2027, 3, 22) + dt.timedelta(days=i) for i in range(12)]
WEEK_ONE = [dt.date(2027, 3, d) for d in (22, 23, 24, 25)]
WEEK_TWO = [dt.date(2027, 3, 30), dt.date(2027, 3, 31), dt.date(2027, 4, 1), dt.date(2027, 4, 2)]
TYPES = [t["id"] for t in BASE["review_types"]]
TIMES = ["08:00", "08:30", "09:00", "10:00", "12:00", "13:30", "14:00", "16:00", "18:00"]
CLINIC_HOURS = [("08:30", "12:30"), ("13:00", "17:00"), ("08:30", "17:00")]

EXAMPLES = 60


def _often(p_true_in_four: int):
    """A boolean that is True in about `p_true_in_four` of four draws."""
    return st.integers(0, 3).map(lambda n: n < p_true_in_four)


@st.composite
def sessions(draw):
    result = []
    # Clinic days: everyone works the same hours, so an MDT sitting (GP + nurse together) and a
    # draw-then-review visit fit. Usually one in each week, so a results-first review can follow
    # a draw by its 3-working-day turnaround.
    clinic_days = set(draw(st.lists(st.sampled_from(WEEK_ONE), min_size=1, max_size=2, unique=True)))
    if draw(_often(3)):
        clinic_days |= set(draw(st.lists(st.sampled_from(WEEK_TWO), min_size=1, max_size=2, unique=True)))
    for day in sorted(clinic_days):
        start, end = draw(st.sampled_from(CLINIC_HOURS))
        for clinician in ("gp", "nurse", "hca"):
            result.append(session(clinician, day.isoformat(), start, end))
    # Extra random sessions anywhere in the horizon, weekends and bank holidays included (flagged
    # or not), as before: the roster rules are exercised on odd days too.
    for clinician in ("gp", "nurse", "hca"):
        days = draw(st.lists(st.sampled_from(HORIZON), max_size=2, unique=True))
        for day in days:
            if day in clinic_days:
                continue  # a clinician's sessions must not overlap (validation refuses it)
            start, end = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2, unique=True)))
            result.append(session(clinician, day.isoformat(), start, end, on_bank_holiday=draw(st.booleans())))
    return result


def _window(first: dt.date, last: dt.date, types: list[str]) -> list[dict]:
    return [{"review_type_id": t, "window_start": first.isoformat(), "window_end": last.isoformat()} for t in types]


KINDS = ("joint", "results_first", "opt_out", "routine", "random")


@st.composite
def patient(draw, i: int, kind: str):
    whole = (HORIZON[0], HORIZON[-1])
    extra = {}
    if kind == "joint":
        # Frailty is the GP's and asthma the nurse's: a joint sitting needs both in an MDT room.
        types = ["frailty", draw(st.sampled_from(["asthma", "hypertension"]))]
        extra["joint_consultation"] = True
    elif kind == "results_first":
        # Diabetes needs HbA1c and U&E back (3 working days) before the review.
        types = ["diabetes", *draw(st.lists(st.sampled_from(["asthma", "hypertension"]), max_size=1))]
    elif kind == "opt_out":
        types = draw(st.lists(st.sampled_from(["asthma", "hypertension", "diabetes", "copd"]),
                              min_size=2, max_size=3, unique=True))
        extra["opt_out_consolidation"] = True
    elif kind == "routine":
        types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True))
    else:
        types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True))
        whole = tuple(sorted(draw(st.lists(st.sampled_from(HORIZON), min_size=2, max_size=2))))
        extra["opt_out_consolidation"] = draw(st.booleans())
        extra["joint_consultation"] = draw(st.booleans())
        if draw(st.booleans()):
            start, end = sorted(draw(st.lists(st.sampled_from(TIMES), min_size=2, max_size=2, unique=True)))
            extra["unavailable"] = [{"weekdays": draw(st.lists(st.sampled_from(WEEKDAYS), max_size=3, unique=True))
                                     or ["mon"], "start": start, "end": end}]
    event(f"patient kind: {kind}")
    return {
        "id": f"P{i}",
        "reachable_sites": [{"site_id": "surgery", "travel_minutes": draw(st.integers(0, 40))}],
        "due_reviews": _window(*whole, types),
        "priority": draw(st.integers(0, 3)),
        "named_clinician_id": draw(st.sampled_from([None, "gp", "nurse"])),
        "preferred_time": draw(st.sampled_from(["any", "morning", "afternoon"])),
        "needs": {"extra_time_factor": draw(st.sampled_from([1.0, 1.25, 1.5])),
                  "carer_attending": draw(st.booleans()),
                  # Only the MDT room has both phlebotomy and wheelchair access: keep it rare.
                  "wheelchair": draw(_often(1))},
        **extra,
    }


@st.composite
def patients(draw):
    # Kinds in turn from a drawn starting point: Hypothesis favours the first choice of a
    # sampled_from (it shrinks towards it), which made two in five patients "joint" and opt-outs rare.
    first = draw(st.integers(0, len(KINDS) - 1))
    return [draw(patient(i, KINDS[(first + i) % len(KINDS)])) for i in range(draw(st.integers(1, 5)))]


@dataclass(frozen=True)
class Mix:
    """What one checked plan contains, to count across the run."""

    books_something: bool
    joint_sitting: bool
    results_first: bool  # a results-first review booked after a draw on an earlier day
    opted_out_booked: bool  # an opted-out patient seen in a separate visit
    leaves_some_unbooked: bool  # the edges: something could not be booked, and says why


def mix_of(s: Scenario, plan: Plan) -> Mix:
    results_first = {t.id for t in s.review_types if t.results_before_review}
    draw_days = {}
    for a in plan.appointments:
        if a.kind == "blood_draw":
            draw_days.setdefault(a.patient_id, []).append(a.date)
    return Mix(
        books_something=plan.metrics.reviews_booked > 0,
        joint_sitting=any(a.kind == "joint_review" for a in plan.appointments),
        results_first=any(
            set(a.review_type_ids) & results_first and any(d < a.date for d in draw_days.get(a.patient_id, []))
            for a in plan.appointments if a.kind != "blood_draw"),
        opted_out_booked=any(v.purpose == "separate" for v in plan.visits),
        leaves_some_unbooked=bool(plan.unbooked),
    )


def test_random_scenarios_always_give_checker_valid_plans():
    seen: list[Mix] = []

    # Determinism comes from the settings profile in tests/conftest.py (derandomised, no example
    # database), so the counts below are the same on every run.
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(sessions(), patients(), _often(3), st.sampled_from([0, 10, 30]))
    def property_holds(roster, people, mdt_room, max_wait):
        rooms = list(BASE["rooms"])
        if mdt_room:
            rooms.append({"id": "mdt", "site_id": "surgery", "capacity_people": 5,
                          "capabilities": ["mdt", "phlebotomy", "wheelchair_access"]})
        s = scenario(
            roster,
            people,
            rooms=rooms,
            visit_rules={"max_wait_minutes": max_wait, "max_visit_minutes": 120},
            solver={"time_limit_seconds": 2, "workers": 1, "seed": 5},
        )
        plan = solve_checked(s)  # the independent checker passes every plan
        assert plan.metrics.reviews_booked + len(plan.unbooked) == plan.metrics.reviews
        assert plan.solver.best_bound <= plan.solver.objective
        mix = mix_of(s, plan)
        for name, value in vars(mix).items():
            event(f"{name}: {value}")
        seen.append(mix)

    property_holds()
    # The property only means something if the plans do the hard things. The derandomised run
    # makes 56 of 60 plans that book something, 43 with a joint sitting, 28 with a results-first
    # review after an earlier draw, 31 with an opted-out patient's separate visit and 35 that
    # leave something unbooked. The thresholds are about half that, so a Hypothesis upgrade that
    # reshuffles the examples does not trip them, yet a strategy gone vacuous fails.
    n = len(seen)
    assert n >= EXAMPLES // 2, n
    counts = {name: sum(getattr(m, name) for m in seen) for name in Mix.__dataclass_fields__}
    print(f"mix over {n} examples: {counts}")
    assert counts["books_something"] >= 0.75 * n, counts
    for name in ("joint_sitting", "results_first", "opted_out_booked"):
        assert counts[name] >= 0.2 * n, counts
    assert counts["leaves_some_unbooked"] >= 0.1 * n, counts
