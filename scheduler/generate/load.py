"""Stage 5b (only with ``load``): resize the patients so demand is a share of the roster.

The roster is the one generated for the default number of patients (so the same practice, staff
and sessions as without ``load``); patients are then added (drawn as in
`scheduler.generate.patients`) or removed from the end, practice by practice in proportion to
the default split, until the standalone minutes they need (`rosters.patient_minutes`) are as
close as one patient allows to ``load`` x the roster's capacity (`rosters.roster_minutes`).
Opt-outs are then chosen afresh among the final patients.
"""

from __future__ import annotations

import random

from scheduler.generate.patients import PatientDraft, choose_opt_outs, draw_patient
from scheduler.generate.profile import Profile
from scheduler.generate.rosters import patient_minutes

MIN_LOAD, MAX_LOAD = 0.1, 5.0


def fit_to_load(profile: Profile, rng: random.Random, patients: list[PatientDraft],
                capacity: int, load: float) -> list[PatientDraft]:
    """``patients`` resized so their demand is about ``load`` x ``capacity`` minutes; ids
    renumbered P0001, ... in practice order."""
    target = load * capacity
    for p in patients:
        p.opt_out = False
    lists = {spec.site_id: [p for p in patients if p.home == spec.site_id]
             for spec in profile.practices}
    share = {spec.site_id: max(1, n) for spec, n in zip(profile.practices, profile.counts)}
    specs = {spec.site_id: spec for spec in profile.practices}
    total = sum(patient_minutes(p, profile) for p in patients)
    drawn = len(patients)
    while total < target:
        site = min(lists, key=lambda s: len(lists[s]) / share[s])
        drawn += 1
        p = draw_patient(profile, rng, specs[site], f"P{drawn:04d}")
        m = patient_minutes(p, profile)
        if abs(total + m - target) >= abs(total - target):
            break
        lists[site].append(p)
        total += m
    while total > target:
        site = max((s for s in lists if len(lists[s]) > 1), key=lambda s: len(lists[s]) / share[s],
                   default=None)
        if site is None:
            break
        m = patient_minutes(lists[site][-1], profile)
        if abs(total - m - target) >= abs(total - target):
            break
        lists[site].pop()
        total -= m
    out = [p for site in lists for p in lists[site]]
    for i, p in enumerate(out, 1):
        p.id = f"P{i:04d}"
    choose_opt_outs(out, rng)
    return out
