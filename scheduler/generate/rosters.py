"""Stage 5, rosters: the LTC clinic sessions, sized from the patients' demand.

Rosters hold only the sessions given to LTC clinics. For each site and each review's usual role
(``roles[0]`` in the catalogue; blood draws go to HCAs) sessions are added, spread over the
week and over the staff by FTE, until the valid session minutes reach ``HEADROOM_TARGET`` times
the standalone minutes needed (`demand_items`), capped by each clinician's FTE (DF "Full-time GP
9 sessions") and a realistic LTC share (``LTC_SHARE_CAP``). Sessions are the DF defaults
08:30-12:30 and 14:00-18:00 (240 minutes), never on a bank holiday.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import defaultdict
from collections.abc import Sequence

from scheduler import catalogue
from scheduler.domain import ReviewType, Role, VisitRules
from scheduler.generate.figures import (
    HEADROOM_TARGET,
    HUB,
    HUB_EXTRA_HALF_DAYS,
    HUB_MDT_HALF_DAYS,
    HUB_PHLEBOTOMY_MORNINGS,
    LTC_SHARE_CAP,
    SESSION_MINUTES,
    SESSIONS_PER_FTE,
    SIZED_ROLES,
    SPECIALTIES,
    ceil_slot,
)
from scheduler.generate.patients import PatientDraft
from scheduler.generate.profile import Profile
from scheduler.generate.sites import Estate
from scheduler.generate.workforce import StaffDraft, Workforce
from scheduler.timegrid import add_working_days, is_working_day

DRAW = "_blood_draw"  # demand item: one blood draw
DRAW_ROLE: Role = "hca"


def demand_items(type_ids: Sequence[str], factor: float, opt_out: bool,
                 types: dict[str, ReviewType], rules: VisitRules) -> list[tuple[str, int]]:
    """(review type id or ``DRAW``, standalone minutes) one patient needs: each review alone
    (its catalogue duration x the extra-time ``factor``, rounded up to a slot; no shared-component
    savings) and one combined blood draw if any review has markers (one per such review for a
    patient who opted out of consolidation), ``rules.blood_draw_minutes`` x ``factor`` each."""
    slot = rules.slot_minutes
    items = [(t, ceil_slot(types[t].duration_minutes * factor, slot)) for t in type_ids]
    draw = ceil_slot(rules.blood_draw_minutes * factor, slot)
    with_bloods = [t for t in type_ids if types[t].blood_marker_ids]
    draws = len(with_bloods) if opt_out else min(1, len(with_bloods))
    items += [(DRAW, draw)] * draws
    return items


def patient_minutes(p: PatientDraft, profile: Profile) -> int:
    """Standalone minutes one patient's due reviews and draws need (see `demand_items`)."""
    return sum(m for _, m in demand_items(p.reviews, p.factor, p.opt_out, profile.tmap,
                                          profile.rules))


def usual_role(item: str, types: dict[str, ReviewType]) -> Role:
    """The role a demand item is sized against: HCAs for draws, else the review's usual role."""
    return DRAW_ROLE if item == DRAW else catalogue.usual_role(types[item])


class _Rostering:
    """Adds weekly session patterns to staff, keeping concurrent sessions within the rooms."""

    def __init__(self, profile: Profile, estate: Estate, wf: Workforce, rng: random.Random):
        self.profile, self.wf, self.rng = profile, wf, rng
        self.cal = profile.calendar
        self.rooms_at = estate.rooms_at
        self.staffed: dict[tuple[str, int, str], int] = defaultdict(int)  # (site, wd, half)

    def expand(self, st: StaffDraft, site: str, weekday: int, half: str,
               every: int = 1, offset: int = 0) -> None:
        """Give ``st`` a session at ``site`` on every working ``weekday`` (every ``every``
        weeks from week ``offset``)."""
        for d in self.cal.dates:
            if d.weekday() == weekday and is_working_day(d) and self.cal.week(d) % every == offset:
                st.sessions[(d, half)] = site
        st.slots.append((weekday, half))
        self.staffed[(site, weekday, half)] += 1

    def free_slot(self, st: StaffDraft, site: str, halves: Sequence[str] = ("am", "pm"),
                  limit: int | None = None) -> tuple[int, str] | None:
        """The least busy weekly (weekday, half) at ``site`` that ``st`` has free and that
        leaves a room spare (``limit`` clinicians at most; default rooms - 1)."""
        limit = self.rooms_at[site] - 1 if limit is None else limit
        best, best_score = None, math.inf
        for wd in range(5):
            for half in halves:
                if (wd, half) in st.slots or self.staffed[(site, wd, half)] >= limit:
                    continue
                same_day = any(w == wd for w, _ in st.slots)
                score = (self.staffed[(site, wd, half)] + (0.6 if same_day else 0)
                         + self.rng.random() * .5)
                if score < best_score:
                    best, best_score = (wd, half), score
        return best

    def run(self, patients: list[PatientDraft]) -> None:
        profile, wf = self.profile, self.wf
        types = profile.tmap
        # demand per (site, usual role): practice reviews at home, consultant reviews at the hub
        need: dict[tuple[str, str], int] = defaultdict(int)
        for p in patients:
            for item, minutes in demand_items(p.reviews, p.factor, p.opt_out, types,
                                              profile.rules):
                role = usual_role(item, types)
                site = HUB.site_id if role.startswith("consultant") else p.home
                need[(site, role)] += minutes

        # 1. Fixed sparse visitors first: the DSN one session a week at each practice; in a PCN
        #    the mental-health practitioner one session a fortnight at each practice.
        for i, spec in enumerate(profile.practices):
            slot = self.free_slot(wf.dsn, spec.site_id)
            if slot:
                self.expand(wf.dsn, spec.site_id, *slot)
            if wf.mhp is not None:
                slot = self.free_slot(wf.mhp, spec.site_id)
                if slot:
                    self.expand(wf.mhp, spec.site_id, *slot, every=2, offset=i % 2)
        if profile.kind == "pcn":
            self.hub(need)

        # 2. Practice LTC sessions sized from demand.
        for spec in profile.practices:
            for role in SIZED_ROLES:
                target = HEADROOM_TARGET * need.get((spec.site_id, role), 0)
                team = [s for s in wf.staff if s.home == spec.site_id and s.role == role]
                supply = sum(s.valid_minutes() for s in team)
                halves = ("am",) if role == "hca" else ("am", "pm")  # DF: bloods in the morning
                while supply < target:
                    open_ = [s for s in team if len(s.slots) <
                             max(1, math.floor(s.fte * SESSIONS_PER_FTE * LTC_SHARE_CAP[role]))]
                    open_.sort(key=lambda s: ((len(s.slots) + 1) / s.fte, self.rng.random()))
                    added = False
                    for s in open_:
                        slot = self.free_slot(s, spec.site_id, halves)
                        if slot:
                            before = s.valid_minutes()
                            self.expand(s, spec.site_id, *slot)
                            supply += s.valid_minutes() - before
                            added = True
                            break
                    if not added:
                        break

    def hub(self, need: dict[tuple[str, str], int]) -> None:
        """The hub's MDT half-days: consultants "a few sessions a month", as many as their
        demand needs x headroom, results-first clinics after the first draws can be back (DF
        "HCA tests, nurse ~1 week later"); the hub team on every MDT half-day, phlebotomy on
        extra mornings, specialist nurses with their consultants."""
        wf, cal, hub = self.wf, self.cal, HUB.site_id
        tmap = self.profile.tmap
        lead = max((m.turnaround_working_days for m in self.profile.markers
                    if not m.point_of_care), default=0)
        first = cal.working_days[0] if cal.working_days else cal.start
        results_back = add_working_days(first, lead)
        least = max(1, self.profile.weeks // 2)
        wanted = {role: math.ceil(HEADROOM_TARGET * need.get((hub, role), 0) / SESSION_MINUTES)
                  for role, _, _ in SPECIALTIES}

        def half_days(patterns) -> list[tuple[dt.date, str]]:
            return sorted(((d, half) for d in cal.dates for wd, half in patterns
                           if d.weekday() == wd and is_working_day(d)),
                          key=lambda x: (x[0], x[1]))

        def allowed_for(tid: str, mdt) -> list[int]:
            every = list(range(len(mdt)))
            if tmap[tid].results_before_review:
                return [i for i in every if mdt[i][0] >= results_back] or every
            return every

        patterns = list(HUB_MDT_HALF_DAYS)
        extra = list(HUB_EXTRA_HALF_DAYS)
        while True:
            mdt = half_days(patterns)
            short = any(wanted[role] > len(allowed_for(tid, mdt)) for role, tid, _ in SPECIALTIES)
            if not short or not extra:
                break
            patterns.append(extra.pop(0))
        for st in wf.hub_team:
            for d, half in mdt:
                st.sessions[(d, half)] = hub
        assert wf.hub_phlebotomist is not None
        for d in cal.dates:
            if d.weekday() in HUB_PHLEBOTOMY_MORNINGS and is_working_day(d):
                wf.hub_phlebotomist.sessions[(d, "am")] = hub
        if not mdt:
            return
        per_half = [0] * len(mdt)
        for role, tid, _ in SPECIALTIES:
            allowed = allowed_for(tid, mdt)
            n = min(len(allowed), max(least, wanted[role]))
            # Spread over weeks and over the MDT half-days of the week, balancing consultants
            # per half-day.
            pick: list[int] = []
            for _ in range(n):
                weeks = [cal.week(mdt[i][0]) for i in pick]
                kinds = [(mdt[i][0].weekday(), mdt[i][1]) for i in pick]
                i = min((i for i in allowed if i not in pick), key=lambda i: (
                    per_half[i] + weeks.count(cal.week(mdt[i][0]))
                    + kinds.count((mdt[i][0].weekday(), mdt[i][1])), self.rng.random()))
                pick.append(i)
            cons = wf.consultants[role]
            for i in sorted(pick):
                per_half[i] += 1
                cons.sessions[mdt[i]] = hub
        # Community specialist nurses join their consultants' MDT half-days.
        for sn, role in wf.specialist_nurses:
            for key in wf.consultants[role].sessions:
                sn.sessions[key] = hub


def build_rosters(profile: Profile, estate: Estate, wf: Workforce, patients: list[PatientDraft],
                  rng: random.Random) -> None:
    """Fill every `StaffDraft.sessions` in ``wf`` for the demand of ``patients`` (see the module
    docstring)."""
    _Rostering(profile, estate, wf, rng).run(patients)


def roster_minutes(wf: Workforce) -> int:
    """The roster's capacity: minutes of valid sessions (working days, outside leave) of staff
    who can do a review or take bloods."""
    return sum(s.valid_minutes() for s in wf.staff if s.review_type_ids or s.takes_bloods)
