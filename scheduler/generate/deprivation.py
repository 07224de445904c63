"""Stage 6b, equity: each patient's deprivation quintile (IMD fifth, 1 = most deprived, 5 = least).

The quintile is for equity figures only; the engine never books by it. It is drawn last, from a
random stream of its own (``random.Random(f"{seed}-deprivation")``), so it consumed no draw of
the main stream: every other field of every generated scenario is what it was before the field
existed.

The mix (DF = /shared/DOMAIN_FIGURES.md, row "Deprivation": 2+ LTCs in 30.0% of the most
deprived fifth vs 25.8% of the least):
- Each practice has its own list shares per fifth (`figures.PracticeSpec.deprivation`: Canal
  Street 45% in the most deprived fifth ... Hillside 5%).
- A patient due ``n`` reviews weighs fifth ``q`` by ``share[q] x g[q] ** max(1, n - 1)``, where
  ``g[q] = MLTC_BY_QUINTILE[q] / MLTC_LEAST_DEPRIVED`` (1.163 for the most deprived fifth ... 1
  for the least): at two reviews that is DF's 2+ prevalence ratio, and each further review
  compounds it (*Assumption*: complex multimorbidity is steeper by deprivation; DF "onset ~10 y
  earlier"). Interim recalls due one review count as two (they have 2+ LTCs).
- Coherence with the main stream: `patients.draw_patient` already drew whether each patient is in
  the most deprived fifth (``PatientDraft.deprived``, which shaped age, interpreters, bus travel
  and priority) at the two-condition rate (x ``DEPRIVED_UPLIFT``). Those patients are quintile 1.
  The others are drawn here: fifths 2-5 by the weights above, and fifth 1 only by the extra
  weight further reviews add (``share[1] x DEPRIVED_UPLIFT x (g[1] ** e / g[1] - 1)``), so that
  quintile 1 overall follows the same per-review gradient.
"""

from __future__ import annotations

import random

from scheduler.generate.figures import (
    DEPRIVED_UPLIFT,
    MLTC_BY_QUINTILE,
    MLTC_LEAST_DEPRIVED,
    PracticeSpec,
    weighted,
)
from scheduler.generate.patients import PatientDraft
from scheduler.generate.profile import Profile

QUINTILES = (1, 2, 3, 4, 5)
# Each fifth's 2+ LTC prevalence relative to the least deprived fifth (DF "Deprivation").
GRADIENT: tuple[float, ...] = tuple(m / MLTC_LEAST_DEPRIVED for m in MLTC_BY_QUINTILE)


def deprivation_stream(seed: int) -> random.Random:
    """The random stream quintiles are drawn from, separate from the main ``Random(seed)``."""
    return random.Random(f"{seed}-deprivation")


def quintile_weights(spec: PracticeSpec, n_reviews: int, deprived: bool) -> list[float]:
    """Relative weights of quintiles 1-5 for a patient of ``spec`` due ``n_reviews`` reviews
    (see the module docstring); ``deprived`` patients are quintile 1."""
    if deprived:
        return [1.0, 0.0, 0.0, 0.0, 0.0]
    e = max(1, n_reviews - 1)
    weights = [share * g ** e for share, g in zip(spec.deprivation, GRADIENT)]
    weights[0] = spec.deprivation[0] * DEPRIVED_UPLIFT * (GRADIENT[0] ** (e - 1) - 1)
    return weights


def assign_quintiles(profile: Profile, patients: list[PatientDraft]) -> None:
    """Set ``quintile`` on every patient, in list (id) order, from `deprivation_stream`."""
    rng = deprivation_stream(profile.seed)
    specs = {spec.site_id: spec for spec in profile.practices}
    for p in patients:
        weights = quintile_weights(specs[p.home], len(p.reviews), p.deprived)
        p.quintile = QUINTILES[0] if p.deprived else weighted(rng, QUINTILES, weights)
