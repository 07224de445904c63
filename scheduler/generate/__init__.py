"""Realistic, seeded scenarios: one GP practice, or a PCN of five practices plus an LTC MDT hub.

``generate_scenario("practice" | "pcn", seed=..., start=..., weeks=4)`` builds a `Scenario` whose
every default comes from /shared/DOMAIN_FIGURES.md ("DF"; `figures` names the row of each value).
The same seed always gives the same scenario: all randomness flows, stage by stage, from one
``random.Random(seed)`` (deprivation quintiles alone from a second stream derived from the seed),
and nothing iterates over a set.

Shapes
- ``practice``: one 10,000-patient practice (DF defaults "Practice list 10,000"), ~200 patients
  with multiple LTCs due in a four-week month (``figures.PATIENTS_PER_PRACTICE_MONTH``).
- ``pcn``: five such practices (DF defaults "PCN 50,000 over 5 practices") **plus a PCN hub as a
  sixth site** hosting a "single clinic of many clinical experts" (seed 003): visiting cardiology,
  renal, respiratory, diabetes and elderly-care consultants on shared MDT half-days, with a hub GP,
  nurse, pharmacist, phlebotomist and community specialist nurses. Patients reach their own
  practice (5-20 min) and the hub (15-30 min); consultant reviews exist only at the hub.

Stages (data flows one way; each takes the shared ``rng`` in this order)
  `profile.make_profile` -> `sites.build_estate` -> `workforce.build_workforce` (staff, leave)
  -> `patients.draw_patients` (demand) -> `rosters.build_rosters` (sessions sized from demand)
  -> [`load.fit_to_load`] -> `care.finish_patients` -> `deprivation.assign_quintiles` (each
  patient's deprivation quintile, from a stream of its own, ``Random(f"{seed}-deprivation")``,
  so it changes no other field) -> `output.to_scenario`.

Valid by construction: unique ids, every reference resolved, sessions on working days only (never
on an England bank holiday), no clinician in two places at once, due windows inside the horizon,
and every due review can happen (`care`). Rosters run at ~1.6x the standalone minutes needed
(``figures.HEADROOM_TARGET``), i.e. a load of about 0.55-0.6; `capacity.capacity_report` measures
it. ``load`` asks for another load instead (`generate_scenario`).

``patients`` beyond ~200 per practice per four weeks implies a bigger list: staff (DF per 10,000)
and rooms grow in proportion so the headroom holds. The samples in sample_rosters/ are ``SAMPLES``.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from scheduler.domain import Scenario
from scheduler.generate.capacity import (
    CapacityReport,
    RoleCapacity,
    capacity_report,
    scenario_load,
)
from scheduler.generate.care import finish_patients
from scheduler.generate.contact import assign_contact_preferences
from scheduler.generate.deprivation import assign_quintiles
from scheduler.generate.figures import HEADROOM_TARGET, SAMPLES, ceil_slot
from scheduler.generate.files import (
    generation_command,
    generation_header,
    scenario_yaml,
    summary,
    write_scenario,
)
from scheduler.generate.load import MAX_LOAD, MIN_LOAD, fit_to_load
from scheduler.generate.output import to_scenario
from scheduler.generate.patients import draw_patients
from scheduler.generate.profile import Kind, make_profile
from scheduler.generate.rosters import build_rosters, roster_minutes
from scheduler.generate.sites import build_estate
from scheduler.generate.workforce import build_workforce


def generate_scenario(
    kind: Kind, *, seed: int, start: dt.date, weeks: int = 4, patients: int | None = None,
    load: float | None = None,
) -> Scenario:
    """A realistic scenario of ``weeks`` weeks from ``start`` (see the module docstring).

    ``patients`` overrides the number of patients due (default: 200 per practice per four weeks,
    scaled by ``weeks``; for ``pcn`` the total is split over the practices by list size and
    deprivation).

    ``load`` (0.1-5, not with ``patients``) sets demand as a share of the roster's capacity:
    the roster is the default one for the seed, and the number of patients is scaled so that
    demand ~= ``load`` x capacity, where
      capacity = minutes of valid sessions (working days, outside leave) of the clinicians who
                 can do a review or take bloods, and
      demand   = for every due review its catalogue duration x the patient's extra-time factor,
                 rounded up to a 5-minute slot, plus the blood draws (10 min x factor, one per
                 patient with markers; one per such review for patients opting out of
                 consolidation) - the standalone minutes, before any one-visit savings.
    ``scenario_load`` measures it: typically 0-1.5% above ``load`` (opt-outs, chosen after the
    fit, add a few draws; `care` may still drop a rare infeasible review). The defaults run at
    about 0.55-0.6; above ~1 the month cannot be fully booked.
    """
    if kind not in ("practice", "pcn"):
        raise ValueError(f"kind must be 'practice' or 'pcn', not {kind!r}")
    if not 2 <= weeks <= 26:
        raise ValueError("weeks must be between 2 and 26 (results-first reviews need a blood "
                         "draw about a week earlier)")
    if patients is not None and patients < 1:
        raise ValueError("patients must be at least 1")
    if load is not None and patients is not None:
        raise ValueError("give either --patients or --load, not both")
    if load is not None and not MIN_LOAD <= load <= MAX_LOAD:
        raise ValueError(f"load must be between {MIN_LOAD:g} and {MAX_LOAD:g} (demand as a share "
                         f"of the roster's capacity), not {load:g}")
    rng = random.Random(seed)
    profile = make_profile(kind, seed=seed, start=start, weeks=weeks, patients=patients)
    estate = build_estate(profile, rng)
    workforce = build_workforce(profile, rng)
    drafts = draw_patients(profile, rng)
    build_rosters(profile, estate, workforce, drafts, rng)
    if load is not None:
        drafts = fit_to_load(profile, rng, drafts, roster_minutes(workforce), load)
    drafts = finish_patients(profile, workforce.staff, estate.rooms, drafts, rng)
    assign_quintiles(profile, drafts)  # its own random stream, after all the others
    assign_contact_preferences(seed, drafts)  # and another: no other field changes
    return to_scenario(profile, estate, workforce.staff, drafts)


def write_sample(name: str, directory: str | Path = "sample_rosters") -> Path:
    """(Re)write one of the committed ``SAMPLES`` into ``directory``."""
    spec = SAMPLES[name]
    path = Path(directory) / f"{name}.yaml"
    scenario = generate_scenario(spec["kind"], seed=spec["seed"], start=spec["start"],
                                 weeks=spec["weeks"])
    header = generation_header(spec["kind"], seed=spec["seed"], start=spec["start"],
                               weeks=spec["weeks"], out=f"sample_rosters/{name}.yaml")
    write_scenario(scenario, path, header=header)
    return path


__all__ = [
    "HEADROOM_TARGET", "MAX_LOAD", "MIN_LOAD", "SAMPLES", "CapacityReport", "RoleCapacity",
    "capacity_report", "ceil_slot", "generate_scenario", "generation_command",
    "generation_header", "scenario_load", "scenario_yaml", "summary", "write_sample",
    "write_scenario",
]
