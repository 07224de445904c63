"""Stage 3, the workforce: who works where, at what FTE, and when they are on leave.

Sessions are added later by `scheduler.generate.rosters` (they are sized from the patients'
demand), into each `StaffDraft.sessions`.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from scheduler import catalogue
from scheduler.domain import Role
from scheduler.generate.figures import INITIALS, SESSION_MINUTES, SPECIALTIES, STAFF_FTE, SURNAMES
from scheduler.generate.profile import Profile
from scheduler.timegrid import is_working_day


@dataclass
class StaffDraft:
    """One clinician while generating. ``home`` is the practice site they are sized for (None:
    visiting or hub staff); ``sessions`` maps (date, "am"/"pm") to a site id; ``slots`` are the
    weekly (weekday 0-4, half) patterns taken; ``leave`` is (first day, last day, reason)."""

    id: str
    name: str
    role: Role
    organisation: str
    review_type_ids: list[str]
    takes_bloods: bool
    home: str | None
    fte: float = 1.0
    sessions: dict[tuple[dt.date, str], str] = field(default_factory=dict)
    slots: list[tuple[int, str]] = field(default_factory=list)
    leave: list[tuple[dt.date, dt.date, str]] = field(default_factory=list)

    def on_leave(self, day: dt.date) -> bool:
        return any(a <= day <= b for a, b, _ in self.leave)

    def valid_minutes(self) -> int:
        """Minutes of sessions on working days outside leave."""
        return SESSION_MINUTES * sum(1 for d, _ in self.sessions
                                     if is_working_day(d) and not self.on_leave(d))


@dataclass
class Workforce:
    """All staff (practice teams first, in practice order), with the visiting and hub staff the
    roster stage places by name (``mhp`` and the hub fields are None for ``practice``)."""

    staff: list[StaffDraft]
    dsn: StaffDraft
    mhp: StaffDraft | None = None
    hub_team: list[StaffDraft] = field(default_factory=list)  # GP, nurse, pharmacist, phlebotomist
    hub_phlebotomist: StaffDraft | None = None
    specialist_nurses: list[tuple[StaffDraft, Role]] = field(default_factory=list)  # + consultant
    consultants: dict[Role, StaffDraft] = field(default_factory=dict)


def split_fte(total: float, heads: int, rng: random.Random) -> list[float]:
    """Split ``total`` FTE over ``heads`` people, each 0.5-1.0, in 0.1 steps, largest first."""
    ftes = [5] * heads  # tenths
    left = min(round(total * 10), 10 * heads) - 5 * heads
    while left > 0:
        i = rng.randrange(heads)
        if ftes[i] < 10:
            ftes[i] += 1
            left -= 1
    return [f / 10 for f in sorted(ftes, reverse=True)]


class _Hiring:
    """Makes `StaffDraft`s with unique fictional names."""

    def __init__(self, profile: Profile, rng: random.Random):
        self.profile, self.rng = profile, rng
        self.staff: list[StaffDraft] = []
        self.used_names: set[str] = set()

    def name(self, role: Role) -> str:
        tries = 0
        while True:
            n = f"{self.rng.choice(INITIALS)} {self.rng.choice(SURNAMES)}"
            tries += 1
            if tries > 50:  # very large scaled practices: distinguish namesakes
                n += f" ({len(self.used_names) + 1})"
            if n not in self.used_names:
                self.used_names.add(n)
                return ("Dr " + n) if role == "gp" or role.startswith("consultant") else n

    def add(self, sid: str, role: Role, *, home: str | None, fte: float = 1.0,
            organisation: str = "primary", bloods: bool = False,
            type_ids: list[str] | None = None) -> StaffDraft:
        tmap = self.profile.tmap
        ids = type_ids if type_ids is not None else catalogue.review_type_ids_for_role(
            role, self.profile.types)
        ids = [t for t in ids if t in tmap and role in tmap[t].roles]
        st = StaffDraft(sid, self.name(role), role, organisation, ids, bloods, home, fte)
        self.staff.append(st)
        return st


def build_workforce(profile: Profile, rng: random.Random) -> Workforce:
    """Practice teams from DF "Staff per 10,000" (GP 4.4, nurse 2.6, HCA 2.4 FTE, x
    `Profile.scale`), one PCN pharmacist per practice plus one at the hub (DF "6 pharmacists per
    PCN"), a visiting diabetes specialist nurse and, for ``pcn``, the hub's staff; then leave."""
    hire = _Hiring(profile, rng)
    for spec in profile.practices:
        c, s, k = spec.code, spec.site_id, profile.scale[spec.site_id]

        def team(role: str, heads: int) -> list[float]:
            return split_fte(STAFF_FTE[role] * k, max(1, round(heads * k)), rng)

        for i, f in enumerate(team("gp", rng.choice([5, 6])), 1):
            hire.add(f"{c}-gp{i}", "gp", home=s, fte=f)
        for i, f in enumerate(team("practice_nurse", 3), 1):
            hire.add(f"{c}-nurse{i}", "practice_nurse", home=s, fte=f, bloods=True)
        for i, f in enumerate(team("hca", 3), 1):
            hire.add(f"{c}-hca{i}", "hca", home=s, fte=f, bloods=True, type_ids=[])
        for i in range(1, max(1, round(k)) + 1):
            hire.add(f"{c}-pharmacist{i}", "pharmacist", home=s)
    # Visiting diabetes specialist nurse: "for a proportion of their time" (PRODUCT, 000).
    wf = Workforce(hire.staff, hire.add("dsn1", "diabetes_specialist_nurse", home=None,
                                        organisation="community"))
    if profile.kind == "pcn":
        wf.mhp = hire.add("mhp1", "mental_health_practitioner", home=None)
        # Hub staff: one GP LTC lead, a nurse, the sixth PCN pharmacist, a phlebotomist,
        # community specialist nurses and visiting consultants.
        gp = hire.add("hub-gp1", "gp", home=None)
        nurse = hire.add("hub-nurse1", "practice_nurse", home=None, bloods=True)
        pharm = hire.add("hub-pharmacist1", "pharmacist", home=None)
        wf.hub_phlebotomist = hire.add("hub-phlebotomist1", "phlebotomist", home=None,
                                       bloods=True, type_ids=[])
        wf.hub_team = [gp, nurse, pharm, wf.hub_phlebotomist]
        rsn = hire.add("rsn1", "respiratory_specialist_nurse", home=None,
                       organisation="community")
        hfsn = hire.add("hfsn1", "heart_failure_specialist_nurse", home=None,
                        organisation="community")
        wf.specialist_nurses = [(rsn, "consultant_respiratory"), (hfsn, "consultant_cardiology")]
        wf.consultants = {role: hire.add(cid, role, home=None, organisation="secondary")
                          for role, _, cid in SPECIALTIES}
    _leave(wf.staff, profile, rng)
    return wf


def _leave(staff: list[StaffDraft], profile: Profile, rng: random.Random) -> None:
    """Annual leave (*Assumption*: ~6 weeks a year, in blocks of 1-5 working days) and the odd
    training day; visiting consultants are simply not rostered when away."""
    wd = profile.calendar.working_days
    if not wd:
        return
    p_block = min(0.9, 6 * profile.weeks / 52)
    for st in staff:
        if st.role.startswith("consultant"):
            continue
        if rng.random() < p_block:
            length = rng.choice([1, 2, 3, 5, 5])
            i = rng.randrange(len(wd))
            j = min(len(wd) - 1, i + length - 1)
            st.leave.append((wd[i], wd[j], "annual leave"))
        if rng.random() < 0.12:
            d = rng.choice(wd)
            if not st.on_leave(d):
                st.leave.append((d, d, "training"))
        st.leave.sort()
