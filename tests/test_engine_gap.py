"""Engine details behind the optimality gap: booking order, clinician matching, bound pieces."""

from __future__ import annotations

from scheduler.baselines import priority_order
from scheduler.bundles import BundleBuilder
from scheduler.daybook import Daybook, reachable_options
from scheduler.instance import Instance
from scheduler.steps import Bundle, Step
from tests.builders import BASE, patient, scenario, session, solve_checked

WEEK = ("2027-03-22", "2027-03-23", "2027-03-24", "2027-03-25")


def test_results_first_review_with_few_days_after_the_turnaround_is_booked_first():
    # Diabetes needs results back 3 working days after the draw: from a window of 22-25 March
    # only the 25th is left, though four days look possible. The asthma review has two days.
    sessions = [session(c, d) for c in ("nurse", "hca") for d in WEEK]
    s = scenario(sessions, [patient("FLEX", "asthma", first="2027-03-24", last="2027-03-25"),
                            patient("NARROW", "diabetes", first="2027-03-22", last="2027-03-25")])
    inst = Instance(s)
    bundles = BundleBuilder(inst).bundles()
    narrow = next(b for b in bundles if b.id == "NARROW")
    assert len(reachable_options(inst, narrow, narrow.review_steps[0])) == 1
    assert [b.id for b in priority_order(inst, bundles)] == ["NARROW", "FLEX"]


def test_joint_sitting_finds_a_clinician_for_every_part_when_parts_share_one():
    # Both parts could take the GP; only the second has nobody else on shift. Taking the GP for
    # the first part (alphabetically first) would leave the second part with nobody.
    rooms = [*BASE["rooms"], {"id": "mdt", "site_id": "surgery", "capacity_people": 5, "capabilities": ["mdt"]}]
    s = scenario([session("gp", WEEK[0]), session("nurse", WEEK[0])], [patient("P1", "asthma")], rooms=rooms)
    inst = Instance(s)
    step = Step(key="joint", kind="joint_review", review_ids=("a", "b"), review_type_ids=("asthma", "frailty"),
                marker_ids=(), slots=6, parts=(("gp", "nurse"), ("gp", "hca")), capabilities=frozenset({"mdt"}),
                people=3, first_day=0, last_day=0)
    bundle = Bundle("P1", "P1", False, 0, (step,))
    [booking] = Daybook(inst).fit_visit(bundle, [step], 0, "surgery")
    assert sorted(booking.clinician_ids) == ["gp", "nurse"]


def test_plan_with_narrow_results_first_patients_is_valid():
    sessions = [session(c, d) for c in ("nurse", "hca") for d in WEEK]
    people = [patient(f"N{i}", "diabetes", first="2027-03-22", last="2027-03-25") for i in range(3)]
    people += [patient(f"F{i}", "asthma", "copd") for i in range(4)]
    plan = solve_checked(scenario(sessions, people))
    assert plan.solver.best_bound <= plan.solver.objective


def test_exact_floor_prices_continuity_and_trips_together():
    # The GP (frailty) and the nurse work Monday; the named nurse2 (asthma) works only Tuesday.
    # Keeping continuity costs a second trip; one visit costs continuity. The simple floor takes
    # both savings at once; the exact floor knows they exclude each other, and proves the plan.
    from ortools.sat.python import cp_model

    from scheduler.model.floor import exact_standalone_floor
    from scheduler.model.objective import standalone_floor
    from scheduler.model.variables import build_variables

    nurse2 = {"id": "nurse2", "role": "practice_nurse", "review_type_ids": ["asthma"]}
    clinicians = [*BASE["clinicians"], nurse2]
    sessions = [session("gp", WEEK[0]), session("nurse", WEEK[0]), session("nurse2", WEEK[1])]
    s = scenario(sessions, [patient("P1", "frailty", "asthma", named_clinician_id="nurse2")],
                 clinicians=clinicians)
    inst = Instance(s)
    bundles = BundleBuilder(inst).bundles()
    simple = standalone_floor(inst, build_variables(cp_model.CpModel(), inst, bundles))
    exact, _each = exact_standalone_floor(inst, bundles)
    plan = solve_checked(s)
    assert simple < exact == plan.solver.best_bound <= plan.solver.objective
    # One visit on Monday with the GP and the nurse: the floor counts one session (less a point or
    # two of rounding), the plan two.
    assert 5 <= plan.solver.objective - plan.solver.best_bound <= 7


def test_improvement_pass_never_makes_the_plan_worse_and_stays_valid():
    from scheduler.baselines import greedy_consolidate
    from scheduler.model.floor import exact_standalone_floor
    from scheduler.model.objective import evaluate
    from scheduler.planner import improve

    sessions = [session(c, d) for c in ("nurse", "hca", "gp") for d in WEEK]
    people = [patient(f"N{i}", "diabetes", "frailty", first="2027-03-22", last="2027-03-25",
                      named_clinician_id="gp") for i in range(3)]
    people += [patient(f"F{i}", "asthma", "copd", "hypertension", named_clinician_id="nurse") for i in range(5)]
    s = scenario(sessions, people)
    inst = Instance(s)
    bundles = BundleBuilder(inst).bundles()
    greedy = greedy_consolidate(inst, bundles).bookings
    _total, floors = exact_standalone_floor(inst, bundles)
    better = improve(inst, bundles, greedy, floors)
    assert evaluate(inst, bundles, better).total <= evaluate(inst, bundles, greedy).total
    plan = solve_checked(s)
    assert plan.solver.best_bound <= plan.solver.objective


def test_session_shares_prove_more_than_one_session():
    # Six 15-minute asthma reviews, the nurse's sessions an hour long: at least two sessions
    # (18 slots, 12 a session). Shares give 6 x 5 x 3/12 = 7.5 points where "one session" gives 5.
    from scheduler.model import objective as w
    from scheduler.model.floor import exact_standalone_floor

    sessions = [session("nurse", d, "09:00", "10:00") for d in WEEK]
    s = scenario(sessions, [patient(f"P{i}", "asthma") for i in range(6)])
    plan = solve_checked(s)
    per_patient = w.VISIT + w.REVIEW_VISIT + 2 * 10 * w.TRAVEL_MINUTE
    assert plan.solver.objective == 6 * per_patient + 2 * w.SESSION_USED
    assert plan.solver.best_bound == plan.solver.objective  # the master proves it here
    inst = Instance(s)
    floor, _each = exact_standalone_floor(inst, BundleBuilder(inst).bundles())
    assert floor == 6 * per_patient + 7


def test_a_combined_sitting_that_fits_no_session_is_split_so_both_reviews_are_booked():
    # Asthma (15 min) and COPD (20 min) with the nurse would be one 35-minute sitting, but the
    # nurse's sessions are half an hour: combined they fit nowhere, apart they fit.
    sessions = [session("nurse", d, "09:00", "09:30") for d in WEEK[:2]]
    s = scenario(sessions, [patient("P1", "asthma", "copd")])
    inst = Instance(s)
    [bundle] = BundleBuilder(inst).bundles()
    assert sorted(step.review_type_ids for step in bundle.review_steps) == [("asthma",), ("copd",)]
    plan = solve_checked(s)
    assert not plan.unbooked and plan.metrics.reviews_booked == 2


def test_a_visit_fits_in_one_stretch_of_the_patients_free_time():
    # The patient works 9 to 5: an hour free before and after. Frailty (GP, 30 min) and asthma +
    # COPD (nurse, 35 min) take 65 minutes, more than either hour, so two trips are needed;
    # counting the two hours together would let the bound assume one.
    from scheduler.model import objective as w
    from scheduler.model.constraints import visit_room

    sessions = [session(c, d, "08:00", "18:00") for c in ("gp", "nurse") for d in WEEK[:2]]
    working = patient("P1", "frailty", "asthma", "copd",
                      unavailable=[{"weekdays": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}])
    s = scenario(sessions, [working])
    inst = Instance(s)
    assert visit_room(inst, "P1", 0, "surgery") == 12  # twelve 5-minute slots: one hour
    plan = solve_checked(s)
    assert plan.metrics.reviews_booked == 3 and plan.metrics.visits == 2
    trip = w.VISIT + w.REVIEW_VISIT + 2 * 10 * w.TRAVEL_MINUTE
    assert 2 * trip <= plan.solver.best_bound <= plan.solver.objective
