"""One room per clinician session: the room each roster session holds.

Under `visit_rules.clinician_room_per_session: hard` a clinician keeps one room for a whole roster
session (their room has their equipment) and leaves it only to join a joint MDT sitting. The room
of every session is fixed here, before anything is booked, so that the day book, the CP-SAT
master and the floors all plan against the same allocation (docs/optimiser.md, "Rooms").

The allocation is deterministic: sessions and rooms are taken in id order, never hash order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from scheduler.domain import Room
from scheduler.instance import Instance, Shift

HOSTED_DECAY = 0.5  # each earlier session able to host a need lowers its weight: 1 / (1 + 0.5 k)
# A (capabilities, people) need and the minutes of due work with that need.
Need = tuple[frozenset[str], int]


@dataclass(frozen=True)
class SessionRoom:
    """A valid roster session (a `Shift`) and the room it holds; `room_id` None when every room
    at the site is held by someone else for part of the session."""

    shift: Shift
    room_id: str | None
    named: bool


def room_fits(room: Room, capabilities: frozenset[str], people: int) -> bool:
    """The room has every capability and holds `people` (patient, carer and clinicians)."""
    return capabilities <= set(room.capabilities) and room.capacity_people >= people


def _demand(inst: Instance) -> dict[tuple[str, str], Counter[Need]]:
    """(clinician, site) -> minutes of due work they could do there, by the room it needs.

    Each due review of a patient who can reach the site, of a type the clinician may carry out,
    counts its catalogue minutes under its room capabilities (plus wheelchair access when the
    patient needs it); each patient needing bloods counts a draw (`phlebotomy`) for clinicians who
    take bloods. Windows are ignored: this only ranks rooms for a clinician, it books nothing.
    """
    cache = inst.cache.setdefault("room_demand", {})
    if "demand" in cache:
        return cache["demand"]
    rules = inst.scenario.visit_rules
    demand: dict[tuple[str, str], Counter[Need]] = defaultdict(Counter)
    for patient in inst.scenario.patients:
        access = {"wheelchair_access"} if patient.needs.wheelchair else set()
        people = 2 + (1 if patient.needs.carer_attending else 0)
        types = [inst.review_types[d.review_type_id] for d in patient.due_reviews
                 if d.review_type_id in inst.review_types]
        bloods = any(t.blood_marker_ids for t in types)
        sites = sorted({r.site_id for r in patient.reachable_sites})
        for clinician in inst.scenario.clinicians:
            work: Counter[Need] = Counter()
            for t in types:
                if clinician.role in t.roles and t.id in clinician.review_type_ids:
                    work[(frozenset(set(t.room_capabilities) | access), people)] += t.duration_minutes
            if bloods and clinician.takes_bloods:
                work[(frozenset({"phlebotomy"} | access), people)] += rules.blood_draw_minutes
            if work:
                for site in sites:
                    demand[(clinician.id, site)].update(work)
    cache["demand"] = dict(demand)
    return cache["demand"]


def _score(work: Counter[Need], hosted: Counter[Need], room: Room) -> float:
    """Minutes of the clinician's work the room could host, each need's minutes divided by
    1 + HOSTED_DECAY × the number of the clinician's earlier sessions (here) whose room could host it:
    a nurse whose spirometry room took her first session leans to the ECG room for the next, but
    a room hosting everything she does stays the best."""
    return sum(minutes / (1 + HOSTED_DECAY * hosted[need]) for need, minutes in work.items()
               if room_fits(room, *need))


def allocate(inst: Instance) -> dict[Shift, SessionRoom]:
    """The room every valid roster session holds, cached per instance.

    Per (day, site): a session that names its room gets it (unless an earlier session naming it
    overlaps, which validation refuses, or the room is closed during it: `Scenario.closures`). The others are allocated greedily, the session with the
    most to lose first (the largest gap between the scores of its first and second choice). Each
    gets, among the rooms free for its whole span, the one that hosts the most minutes of its
    clinician's due work (`_demand`; a need their earlier sessions' rooms could host counts less:
    `_score`); ties go to a room that is not `mdt`, then to the room the clinician holds in
    another session that day, then to the plainest (fewest capabilities, smallest), then by id. Where patients who want joint consultations can come,
    `mdt` rooms go last whatever they host: they stay free for joint sittings unless no other
    room is. A session left with no free room gets None (it can only join joint sittings).
    """
    cache = inst.cache.setdefault("session_rooms", {})
    if "allocation" in cache:
        return cache["allocation"]
    demand = {key: dict(sorted(work.items(), key=lambda kv: (sorted(kv[0][0]), kv[0][1])))
              for key, work in _demand(inst).items()}  # a fixed order, so sums are reproducible
    hosted: dict[tuple[str, str], Counter[Need]] = defaultdict(Counter)  # sessions so far per need

    def host(sh: Shift, room: Room) -> None:
        work = demand.get((sh.clinician_id, sh.site_id), {})
        hosted[(sh.clinician_id, sh.site_id)].update(need for need in work if room_fits(room, *need))
    joint_sites = {r.site_id for p in inst.scenario.patients if p.joint_consultation
                   for r in p.reachable_sites}
    by_place: dict[tuple[int, str], list[Shift]] = defaultdict(list)
    for sh in inst.shifts:
        by_place[(sh.day, sh.site_id)].append(sh)
    result: dict[Shift, SessionRoom] = {}
    for (day, site), shifts in sorted(by_place.items()):
        rooms = sorted(inst.rooms_at.get(site, []), key=lambda r: r.id)
        joint_here = site in joint_sites
        known = {r.id for r in rooms}
        held: dict[str, int] = defaultdict(int)  # room -> slots held by sessions allocated so far
        pending: list[Shift] = []
        for sh in sorted(shifts, key=lambda s: (s.start, s.clinician_id)):
            if sh.room_id in known and not (held[sh.room_id] | inst.closed_mask(sh.room_id, day)) & sh.mask:
                held[sh.room_id] |= sh.mask
                result[sh] = SessionRoom(sh, sh.room_id, True)
                host(sh, next(r for r in rooms if r.id == sh.room_id))
            else:
                pending.append(sh)

        def ranked(sh: Shift, shifts: list[Shift] = shifts, rooms: list[Room] = rooms,
                   held: dict[str, int] = held, joint_here: bool = joint_here) -> list[tuple[tuple, Room]]:
            """Free rooms for the session, best first, each with its sort key (score second)."""
            work = demand.get((sh.clinician_id, sh.site_id), {})
            done = hosted[(sh.clinician_id, sh.site_id)]
            mine = {result[o].room_id for o in shifts if o in result and o.clinician_id == sh.clinician_id}
            free = [r for r in rooms if not (held[r.id] | inst.closed_mask(r.id, sh.day)) & sh.mask]
            keyed = [(("mdt" in r.capabilities and joint_here, -_score(work, done, r), "mdt" in r.capabilities,
                       r.id not in mine, len(r.capabilities), r.capacity_people, r.id), r) for r in free]
            return sorted(keyed, key=lambda kr: kr[0])

        while pending:
            best = None
            for sh in pending:
                options = ranked(sh)
                # The stake is the score of its first and second choice, work earlier sessions
                # could host counting less, as in the ranking. (Judging it on all their work kept
                # nurses in nurse rooms on every day of the tutorial but cost a trip and about
                # 1,800 of objective on the practice month, and 75 on the tutorial.)
                top = -options[0][0][1] if options else 0
                second = -options[1][0][1] if len(options) > 1 else 0
                key = (-(top - second), -top, sh.start, sh.clinician_id)
                if best is None or key < best[0]:
                    best = (key, sh, options)
            _key, sh, options = best
            pending.remove(sh)
            room_id = options[0][1].id if options else None
            if room_id is not None:
                held[room_id] |= sh.mask
                host(sh, options[0][1])
            result[sh] = SessionRoom(sh, room_id, False)
    cache["allocation"] = result
    return result


def session_rooms(inst: Instance) -> dict[tuple[str, int, str], list[tuple[int, str | None]]]:
    """(clinician, day, site) -> (session mask, room held) for each of their sessions there, in
    the order of `Instance.shift_masks`; cached per instance."""
    cache = inst.cache.setdefault("session_rooms", {})
    if "by_key" not in cache:
        allocation = allocate(inst)
        cache["by_key"] = {
            key: [(sh.mask, allocation[sh].room_id) for sh in shifts]
            for key, shifts in inst.shifts_at.items()
        }
    return cache["by_key"]


def held_masks(inst: Instance) -> dict[tuple[str, int], list[tuple[str, int]]]:
    """(room, day) -> (clinician, slots) of each session allocated to the room, by clinician;
    cached per instance."""
    cache = inst.cache.setdefault("session_rooms", {})
    if "held" not in cache:
        held: dict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)
        for sh, sr in allocate(inst).items():
            if sr.room_id is not None:
                held[(sr.room_id, sh.day)].append((sh.clinician_id, sh.mask))
        cache["held"] = {key: sorted(value) for key, value in held.items()}
    return cache["held"]


def session_index(inst: Instance, clinician_id: str, day: int, site_id: str, start: int, end: int) -> int | None:
    """Which of the clinician's sessions there (index into `shift_masks`) covers start..end."""
    for i, sh in enumerate(inst.shifts_at.get((clinician_id, day, site_id), ())):
        if sh.start <= start and end <= sh.end:
            return i
    return None
