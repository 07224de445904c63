"""Capacity studies solved (issue 15): the bottleneck ranking names the resource that is short by
construction, adding capacity there never books fewer patients, and a study gives the same
figures on a local Dask cluster as in the process pool."""

from __future__ import annotations

import datetime as dt
import sys

import pytest

from scheduler.capacity.outcome import run_study
from scheduler.capacity.run import DaskMissing, run_variants, solve_settings
from scheduler.capacity.study import expand, study_from_data
from scheduler.check import check_plan
from tests.builders import patient, scenario, session

WEEK = ["2027-03-22", "2027-03-23", "2027-03-24", "2027-03-25"]


def nurse_short():
    """GPs every morning, but the practice nurse only one hour on Tuesdays: six patients need
    asthma and COPD reviews, which only the nurse does (in a spirometry room, of which there are
    two), so the nurse's time is short by construction and nothing else is."""
    sessions = [session("gp", d) for d in WEEK] + [session("hca", d) for d in WEEK]
    sessions += [session("nurse", "2027-03-23", "08:30", "09:30"), session("nurse", "2027-03-30", "08:30", "09:30")]
    patients = [patient(f"P{i}", "asthma", "copd", deprivation_quintile=1 + i % 5) for i in range(1, 7)]
    patients += [patient("P7", "frailty")]
    rooms = [{"id": "treatment", "site_id": "surgery", "capabilities": ["phlebotomy"]},
             {"id": "nurse-room", "site_id": "surgery", "capabilities": ["spirometry", "ecg"]},
             {"id": "nurse-room-2", "site_id": "surgery", "capabilities": ["spirometry"]},
             {"id": "consult", "site_id": "surgery", "capabilities": ["wheelchair_access"]}]
    return scenario(sessions, patients, rooms=rooms)


def study(**extra):
    return study_from_data({"name": "nurse time", "base": "x.yaml", "time_limit_seconds": 5, "seed": 2, **extra}, "s.yaml")


@pytest.fixture(scope="module")
def short_outcome():
    return run_study(study(variants=[{"name": "another nurse morning", "changes": [
        {"kind": "sessions_added", "clinician": "nurse", "site": "surgery", "weekdays": ["wed"],
         "start": "08:30", "end": "12:30"}]}]), nurse_short(), processes=2)


def test_the_bottleneck_ranking_names_the_resource_short_by_construction(short_outcome):
    base = short_outcome.variants[0]
    assert base.name == "base" and base.figures.patients_fully_booked < 7
    ranking = short_outcome.bottlenecks["base"]
    top = ranking[0]
    assert top.label.startswith("one more practice nurse session at surgery") and top.patients_gained > 0
    # Only the nurse's sessions can book the asthma and COPD patients: every other candidate gains nothing.
    assert all(b.patients_gained == 0 for b in ranking if "practice nurse" not in b.label)
    labels = {b.label for b in ranking}
    assert any("gp session" in label for label in labels) and any("spirometry room" in label for label in labels)


def test_more_capacity_never_books_fewer_patients(short_outcome):
    assert all(b.patients_gained >= 0 and b.reviews_gained >= 0 for b in short_outcome.bottlenecks["base"])
    (variant,) = short_outcome.variants[1:]
    assert variant.error is None and variant.comparison.patients_fully_booked_change > 0
    assert variant.comparison.patients_lost_full_booking == 0


def test_every_plan_of_a_study_passes_the_checker():
    variants = expand(study(variants=[{"name": "no spirometry", "changes": [{"kind": "room_removed", "room": "nurse-room"}]}]),
                      nurse_short())
    for variant, solved in zip(variants, run_variants(variants, solve_settings(5, 2), processes=2)):
        assert solved.error is None
        assert check_plan(variant.scenario, solved.plan).ok


def test_a_study_gives_the_same_figures_on_a_local_dask_cluster_as_in_the_process_pool():
    pytest.importorskip("distributed")  # installed with the test extra; `onevisit[dask]` for users
    the_study = study(bottleneck_roles=["practice_nurse"], deterministic_seconds=2, variants=[
        {"name": "a second treatment room", "changes": [
            {"kind": "room_added", "room": {"id": "treatment-2", "site_id": "surgery", "capabilities": ["phlebotomy"]}}]}])
    pool = run_study(the_study, nurse_short(), processes=2)
    cluster = run_study(the_study, nurse_short(), processes=2, dask="local")
    assert [v.figures for v in pool.variants] == [v.figures for v in cluster.variants]
    assert [v.comparison for v in pool.variants] == [v.comparison for v in cluster.variants]
    assert pool.bottlenecks == cluster.bottlenecks


def test_dask_asked_for_without_dask_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if `onevisit[dask]` were not installed
    variants = expand(study(), nurse_short())
    with pytest.raises(DaskMissing) as missing:
        run_variants(variants, solve_settings(5, 2), dask="local")
    assert "pip install 'onevisit[dask]'" in str(missing.value)


def test_a_deterministic_budget_makes_the_plan_independent_of_the_clock():
    from scheduler.domain import SolverSettings
    from scheduler.generate import generate_scenario
    from scheduler.planner import make_plan

    s = generate_scenario("practice", seed=3, start=dt.date(2027, 5, 3), weeks=2, patients=60)
    rushed = make_plan(s, SolverSettings(time_limit_seconds=1, workers=1, seed=4, deterministic_seconds=1))
    relaxed = make_plan(s, SolverSettings(time_limit_seconds=120, workers=1, seed=4, deterministic_seconds=1))
    assert rushed.appointments == relaxed.appointments and rushed.solver.objective == relaxed.solver.objective
    assert "lp_relaxation" not in rushed.solver.bound_sources  # PDLP stops on the clock: left out
    assert check_plan(s, rushed).ok and check_plan(s, relaxed).ok
