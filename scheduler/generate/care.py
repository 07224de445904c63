"""Stage 6, care: finish the patients against the rosters.

Every due review is made possible (a clinician allowed to do it has a valid session at a site
the patient reaches, inside the window, with a free stretch long enough outside the patient's
unavailability and, where results are needed first, late enough for a draw to come back): a
window is widened or a patient's commitments relaxed; in the rare case that still fails the
review is left out as not due this period. Then named clinicians, priorities and joint
consultations.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

from scheduler import catalogue
from scheduler.domain import WEEKDAYS, Room, Unavailability
from scheduler.generate.figures import HALVES, ceil_slot, minute_of_day, weighted
from scheduler.generate.patients import PatientDraft
from scheduler.generate.profile import Profile
from scheduler.generate.rosters import DRAW
from scheduler.generate.workforce import StaffDraft
from scheduler.timegrid import add_working_days, is_working_day

Sessions = dict[str, list[tuple[StaffDraft, dt.date, str, str]]]


def finish_patients(profile: Profile, staff: list[StaffDraft], rooms: list[Room],
                    patients: list[PatientDraft], rng: random.Random) -> list[PatientDraft]:
    """The patients made feasible (those left with no review dropped), with named clinicians,
    priorities and joint consultations set."""
    patients = _fix_windows(profile, staff, patients, rng)
    _named_clinicians(profile, staff, patients, rng)
    _priorities(patients, rng)
    _joint(profile, staff, rooms, patients, rng)
    return patients


def site_sessions(staff: list[StaffDraft]) -> Sessions:
    """Review type id (or ``DRAW``) -> [(staff, date, half, site)], the valid sessions of the
    staff allowed to do it."""
    out: Sessions = defaultdict(list)
    for st in staff:
        valid = [(d, h, s) for (d, h), s in sorted(st.sessions.items())
                 if is_working_day(d) and not st.on_leave(d)]
        for t in st.review_type_ids:
            out[t].extend((st, d, h, s) for d, h, s in valid)
        if st.takes_bloods:
            out[DRAW].extend((st, d, h, s) for d, h, s in valid)
    return out


def longest_free(p_unavail: list[Unavailability], d: dt.date, half: str) -> int:
    """Longest stretch, in minutes, of the ``half`` session on ``d`` outside ``p_unavail``."""
    a, b = (minute_of_day(t) for t in HALVES[half])
    blocks = []
    wd = WEEKDAYS[d.weekday()]
    for u in p_unavail:
        if (u.date == d) or (u.date is None and wd in u.weekdays):
            blocks.append((minute_of_day(u.start), minute_of_day(u.end)))
    free, cur = 0, a
    for s, e in sorted(blocks):
        if e <= cur or s >= b:
            continue
        free = max(free, min(s, b) - cur)
        cur = max(cur, e)
    return max(free, b - cur)


def _review_feasible(profile: Profile, p: PatientDraft, t: str, w: tuple[dt.date, dt.date],
                     sessions: Sessions) -> bool:
    tmap, mmap, rules = profile.tmap, profile.mmap, profile.rules
    reach = [s for s, _ in p.reachable]
    unav = p.all_unavailable()
    minutes = ceil_slot(tmap[t].duration_minutes * p.factor, rules.slot_minutes)
    earliest = w[0]
    lab = [m for m in tmap[t].blood_marker_ids if not mmap[m].point_of_care]
    if tmap[t].results_before_review and lab:
        draw_minutes = ceil_slot(rules.blood_draw_minutes * p.factor, rules.slot_minutes)
        first = [d for _, d, h, s in sessions[DRAW] if s in reach
                 and longest_free(unav, d, h) >= draw_minutes]
        if not first:
            return False
        turnaround = max(mmap[m].turnaround_working_days for m in lab)
        earliest = max(earliest, add_working_days(min(first), turnaround))
    return any(s in reach and earliest <= d <= w[1] and longest_free(unav, d, h) >= minutes
               for _, d, h, s in sessions[t])


def _fix_windows(profile: Profile, staff: list[StaffDraft], patients: list[PatientDraft],
                 rng: random.Random) -> list[PatientDraft]:
    """Widen a window, then relax the patient's commitments (a work day off, caring cover, a
    one-off moved, the other dialysis days) until every review can happen."""
    sessions = site_sessions(staff)
    whole = (profile.calendar.start, profile.calendar.end)
    dropped: list[tuple[PatientDraft, str]] = []
    relaxations = (lambda p: _relax_work(p, rng), _relax_dates, _relax_dialysis)
    for p in patients:
        for t in p.reviews:
            if _review_feasible(profile, p, t, p.windows[t], sessions):
                continue
            p.windows[t] = whole
            for relax in relaxations:
                while not _review_feasible(profile, p, t, whole, sessions) and relax(p):
                    pass
            if not _review_feasible(profile, p, t, whole, sessions):
                dropped.append((p, t))
    # Last resort (rare): the review is not due this period after all.
    for p, t in dropped:
        p.reviews.remove(t)
        del p.windows[t]
    return [p for p in patients if p.reviews]


def _relax_work(p: PatientDraft, rng: random.Random) -> bool:
    """A worker takes a day off: drop one weekday of the work pattern."""
    if not p.work_weekdays:
        return False
    p.work_weekdays.pop(rng.randrange(len(p.work_weekdays)))
    return True


def _relax_dates(p: PatientDraft) -> bool:
    """Caring cover arranged, a one-off commitment moved."""
    movable = ("caring", "hospital appointment", "away")
    keep = [u for u in p.unavailable if u.reason not in movable]
    changed = len(keep) != len(p.unavailable)
    p.unavailable = keep
    return changed


def _relax_dialysis(p: PatientDraft) -> bool:
    """Dialysis on the other pattern of days (the unit has both)."""
    for i, u in enumerate(p.unavailable):
        if u.reason == "dialysis" and u.weekdays[0] == "tue":
            p.unavailable[i] = u.model_copy(update={"weekdays": ["mon", "wed", "fri"]})
            return True
    return False


def _named_clinicians(profile: Profile, staff: list[StaffDraft], patients: list[PatientDraft],
                      rng: random.Random) -> None:
    """~65% have a named clinician (*Assumption*; PRODUCT: "named clinician / key worker for
    continuity"), chosen among rostered staff at their practice able to do their reviews;
    one in five of them does not mind who they see."""
    tmap = profile.tmap
    rostered = [s for s in staff if s.home and s.valid_minutes() > 0 and s.review_type_ids]
    for p in patients:
        if rng.random() >= .65:
            continue
        cands, weights = [], []
        for s in rostered:
            if s.home != p.home:
                continue
            can = [t for t in p.reviews if t in s.review_type_ids]
            if can:
                usual = sum(1 for t in can if catalogue.usual_role(tmap[t]) == s.role)
                cands.append(s)
                weights.append(len(can) + 2 * usual)
        if cands:
            p.named = weighted(rng, cands, weights).id
            p.wants_continuity = rng.random() >= .2


def _priorities(patients: list[PatientDraft], rng: random.Random) -> None:
    """DF deprivation rows (odds x2.26, most-deprived fifth) and complexity: the top ~20% by a
    deprivation/complexity score get a priority signal (4% level 3, 6% level 2, 10% level 1)."""
    scored = []
    for p in patients:
        score = (2.0 * p.deprived + (len(p.reviews) >= 5) + ("frailty" in p.reviews)
                 + bool({"learning_disability_health_check", "smi_physical_health"}
                        & set(p.reviews)) + 0.5 * (p.interpreter is not None)
                 + 0.9 * rng.random())
        scored.append((score, p.id, p))
    scored.sort(key=lambda x: (-x[0], x[1]))
    n = len(scored)
    cut3, cut2, cut1 = round(.04 * n), round(.10 * n), round(.20 * n)
    for i, (_, _, p) in enumerate(scored[:cut1]):
        p.priority = 3 if i < cut3 else 2 if i < cut2 else 1


def _joint(profile: Profile, staff: list[StaffDraft], rooms: list[Room],
           patients: list[PatientDraft], rng: random.Random) -> None:
    """A few (~1.5%) complex patients are set for a joint MDT consultation by a clinician:
    priority 2+, 4+ reviews needing 2+ usual roles, and a half-day on which clinicians for all
    their reviews work at one site with an MDT room while the patient is free long enough."""
    tmap, rules = profile.tmap, profile.rules
    by_half: dict[tuple[str, dt.date, str], set[str]] = defaultdict(set)
    for t, items in site_sessions(staff).items():
        for _, d, h, s in items:
            by_half[(s, d, h)].add(t)
    mdt_sites = [r.site_id for r in rooms if "mdt" in r.capabilities]
    cands = []
    for p in patients:
        roles = {catalogue.usual_role(tmap[t]) for t in p.reviews}
        if p.opt_out or p.priority < 2 or len(p.reviews) < 4 or len(roles) < 2:
            continue
        reach = [s for s, _ in p.reachable if s in mdt_sites]
        lo = max(p.windows[t][0] for t in p.reviews)
        hi = min(p.windows[t][1] for t in p.reviews)
        unav = p.all_unavailable()
        minutes = ceil_slot(p.factor * (
            max(tmap[t].duration_minutes for t in p.reviews)
            + rules.joint_extra_minutes_per_review * (len(p.reviews) - 1)), rules.slot_minutes)
        if any(s in reach and lo <= d <= hi and set(p.reviews) <= ts
               and longest_free(unav, d, h) >= minutes
               for (s, d, h), ts in by_half.items()):
            cands.append(p)
    k = min(len(cands), max(1, round(0.015 * len(patients))))
    for p in rng.sample(cands, k):
        p.joint = True
