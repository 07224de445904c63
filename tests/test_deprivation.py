"""Deprivation quintiles of generated patients (issue 15): filled, seeded, skewed by practice and
by complexity, and drawn from a stream of their own so that nothing else changed."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from scheduler.domain import Scenario
from scheduler.generate import SAMPLES, generate_scenario
from scheduler.generate.deprivation import GRADIENT, quintile_weights
from scheduler.generate.figures import (
    DEPRIVED_UPLIFT,
    MLTC_LEAST_DEPRIVED,
    MLTC_MOST_DEPRIVED,
    PRACTICES,
)

ROOT = Path(__file__).resolve().parents[1]
PRACTICE_START = dt.date(2027, 5, 3)
PCN_START = dt.date(2027, 3, 22)


@functools.lru_cache(maxsize=None)
def gen(kind: str, seed: int, start: dt.date, weeks: int = 4, patients: int | None = None,
        load: float | None = None) -> Scenario:
    return generate_scenario(kind, seed=seed, start=start, weeks=weeks, patients=patients,
                             load=load)


@functools.lru_cache(maxsize=None)
def sample(name: str) -> Scenario:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = (ROOT / "sample_rosters" / f"{name}.yaml").read_text(encoding="utf-8")
    return Scenario.model_validate(yaml.load(text, Loader=loader))


def quintiles(sc: Scenario) -> list[int | None]:
    return [p.deprivation_quintile for p in sc.patients]


def without_quintiles_digest(sc: Scenario) -> str:
    """sha256 of the scenario with every quintile removed (canonical JSON, defaults left out)."""
    # Contact preferences and large print came later, from a stream of their own too.
    bare = sc.model_copy(update={"patients": [
        p.model_copy(update={"deprivation_quintile": None, "contact_preference": ["calendar"],
                             "needs": p.needs.model_copy(update={"large_print": False})})
        for p in sc.patients]})
    data = bare.model_dump(mode="json", exclude_defaults=True)
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()


def gap_by_reviews(patients) -> float:
    """Mean quintile of patients due 4+ reviews minus that of patients due 1-2 (negative: the
    more complex patients are more deprived)."""
    lo = [p.deprivation_quintile for p in patients if len(p.due_reviews) <= 2]
    hi = [p.deprivation_quintile for p in patients if len(p.due_reviews) >= 4]
    return statistics.mean(hi) - statistics.mean(lo)


SMALL = [("practice", 3, PRACTICE_START, 2), ("pcn", 4, dt.date(2027, 8, 23), 3, 150)]


# ------------------------------------------------------------------------------------- filled
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_committed_samples_have_a_quintile_for_every_patient(name):
    assert all(q in (1, 2, 3, 4, 5) for q in quintiles(sample(name)))
    assert set(quintiles(sample(name))) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("args", SMALL, ids=lambda a: f"{a[0]}-{a[1]}")
def test_generator_fills_every_quintile(args):
    assert all(q in (1, 2, 3, 4, 5) for q in quintiles(gen(*args)))


def test_tutorial_quintiles_set_by_hand():
    tutorial = Scenario.model_validate(yaml.safe_load(
        (ROOT / "sample_rosters" / "tutorial.yaml").read_text(encoding="utf-8")))
    assert all(q in (1, 2, 3, 4, 5) for q in quintiles(tutorial))


# ------------------------------------------------------------------------------------- seeded
def test_same_seed_same_quintiles_other_seed_other_quintiles():
    a = generate_scenario("practice", seed=3, start=PRACTICE_START, weeks=2)
    b = generate_scenario("practice", seed=3, start=PRACTICE_START, weeks=2)
    c = generate_scenario("practice", seed=4, start=PRACTICE_START, weeks=2)
    assert quintiles(a) == quintiles(b)
    assert quintiles(a) != quintiles(c)[:len(quintiles(a))]


# ------------------------------------------------------------------------------------- the mix
def test_pcn_practices_have_different_mixes():
    by_practice = defaultdict(list)
    for p in sample("pcn-month").patients:
        by_practice[p.reachable_sites[0].site_id].append(p.deprivation_quintile)
    means = {site: statistics.mean(qs) for site, qs in by_practice.items()}
    assert len(means) == 5
    assert max(means.values()) - min(means.values()) >= 0.5
    # the list shares order them: Canal Street most deprived, Hillside least
    assert means["canal-street"] < means["priory-road"] < means["hillside"]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_more_reviews_more_deprived_in_the_samples(name):
    assert gap_by_reviews(sample(name).patients) < 0


def test_more_reviews_more_deprived_freshly_generated():
    # The DF gradient is modest (30.0% vs 25.8%), so one scenario's gap is noisy (about 1 PCN
    # seed in 10 shows none); pooled over three PCN months it is clear.
    patients = [p for seed in (1, 2, 3) for p in gen("pcn", seed, PCN_START).patients]
    assert gap_by_reviews(patients) < -0.05


def test_expected_quintile_falls_with_each_review():
    """The model itself, without sampling noise: for every practice the expected quintile of a
    patient falls with each review due beyond the second."""
    for spec in PRACTICES:
        p_flag = spec.deprivation[0] * DEPRIVED_UPLIFT / (
            spec.deprivation[0] * DEPRIVED_UPLIFT + sum(spec.deprivation[1:]))
        expected = []
        for n in range(1, 9):
            w = quintile_weights(spec, n, deprived=False)
            rest = sum(q * x for q, x in zip(range(1, 6), w)) / sum(w)
            expected.append(p_flag + (1 - p_flag) * rest)
            assert quintile_weights(spec, n, deprived=True) == [1.0, 0, 0, 0, 0]
        assert expected[0] == expected[1]  # interim recalls count as two reviews
        assert all(a > b for a, b in zip(expected[1:], expected[2:]))


def test_gradient_is_the_domain_figures_ratio():
    assert GRADIENT[0] == pytest.approx(MLTC_MOST_DEPRIVED / MLTC_LEAST_DEPRIVED)
    assert GRADIENT[0] == pytest.approx(30.0 / 25.8) and GRADIENT[-1] == 1
    assert all(a > b for a, b in zip(GRADIENT, GRADIENT[1:]))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_quintile_one_is_the_generators_most_deprived_fifth(name):
    """Priority is scored from the main stream's most-deprived flag; quintile 1 must be that
    flag, so prioritised patients are mostly quintile 1."""
    pts = sample(name).patients
    top = [p.deprivation_quintile for p in pts if p.priority >= 2]
    routine = [p.deprivation_quintile for p in pts if p.priority == 0]
    assert statistics.mean(top) < 1.5 < statistics.mean(routine)


# ------------------------------------------------------------------------------------- nothing else
# Digests of the scenarios with quintiles removed, computed from the committed samples and the
# generator *before* quintiles were added (commit 9761954, issue 15). The quintiles come from a
# random stream of their own, drawn last, so every other field must stay exactly as it was: if
# one of these fails, the deprivation draw has leaked into the main stream (or the generator
# changed on purpose: then recompute, and regenerate the samples).
BEFORE_QUINTILES = {
    "practice-month": "4e1eb8fbaef5daa6ce515ff26852aa23d5a9bfe5a7bf1f7ad409b5ab1878d3af",
    "pcn-month": "e947284406f10a690f9085f5a17ed969a125aa55c23bbaa561b2aba364603ad4",
}
GENERATED_BEFORE_QUINTILES = [
    (("practice", 3, PRACTICE_START, 2, None, None),
     "30e52103275c2cfe6501d04463eac9f40ae7ca563a3c6544ed7fcb119a3ad440"),
    (("pcn", 4, dt.date(2027, 8, 23), 3, 150, None),
     "5a93970ca94e147baa42eb55e010008f0e3fccf5d35ec5096680673329af5d4b"),
    (("practice", 11, dt.date(2027, 1, 4), 6, None, 0.9),
     "820f8b895ef5ff3dceced405b5b24e8943438d18e24cb76c5788b5e942e81e7e"),
]


@pytest.mark.parametrize("name", sorted(BEFORE_QUINTILES))
def test_committed_samples_unchanged_but_for_quintiles(name):
    assert without_quintiles_digest(sample(name)) == BEFORE_QUINTILES[name]


@pytest.mark.parametrize("args,digest", GENERATED_BEFORE_QUINTILES, ids=lambda a: str(a)[:24])
def test_generator_unchanged_but_for_quintiles(args, digest):
    assert without_quintiles_digest(gen(*args)) == digest
