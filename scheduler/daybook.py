"""The day book: who and what is busy when, and fitting a visit's steps into a day at a site.

Every way of booking (the greedy consolidator, the old way, the optimiser's day scheduling and
repair) places visits through `Daybook.fit_visit`, so they all keep the same hard rules.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from itertools import permutations

from scheduler.instance import Instance, bits, run_starts, span_mask
from scheduler.rooms import held_masks, room_fits, session_rooms
from scheduler.steps import Bundle, Step

MORNING_ENDS_MINUTE = 12 * 60 + 30
AFTERNOON_STARTS_MINUTE = 13 * 60


@dataclass(frozen=True)
class Booking:
    """A step placed at a start slot on a day, with its clinicians and room."""

    bundle_id: str
    patient_id: str
    visit_key: int
    step: Step
    day: int
    site_id: str
    start: int
    clinician_ids: tuple[str, ...]
    room_id: str

    @property
    def end(self) -> int:
        return self.start + self.step.slots


def empty_book(inst: Instance) -> "Daybook":
    """A day book with nothing booked, shared per instance, for asking what is possible at all."""
    return inst.cache.setdefault("empty_book", {}).setdefault("book", Daybook(inst))


def static_options(inst: Instance, bundle: Bundle, step: Step) -> list[tuple[int, str]]:
    """Where a step could happen at all, roster empty; cached on the instance."""
    cache = inst.cache.setdefault("static_options", {})
    key = (bundle.id, step.key)
    if key not in cache:
        cache[key] = empty_book(inst).possible_options(bundle, step)
    return cache[key]


def reachable_options(inst: Instance, bundle: Bundle, step: Step) -> list[tuple[int, str]]:
    """Static options, less days no draw could precede by the results turnaround; cached.

    A results-first review whose window closes soon after the horizon opens may have only a day
    or two left once the turnaround is counted, though its window looks wide.
    """
    cache = inst.cache.setdefault("reachable_options", {})
    key = (bundle.id, step.key)
    if key not in cache:
        options = static_options(inst, bundle, step)
        if step.needs_draw and step.lag_working_days and bundle.draw is not None:
            draws = static_options(inst, bundle, bundle.draw)
            if draws:
                earliest = min(inst.ranks[day] for day, _ in draws) + step.lag_working_days
                options = [(day, site) for day, site in options if inst.ranks[day] >= earliest]
            else:
                options = []
        cache[key] = options
    return cache[key]


class Daybook:
    """What is booked, and where a visit's steps fit.

    The room rule (`visit_rules.clinician_room_per_session`, docs/optimiser.md "Rooms"):
    - `hard`: each roster session holds the room `scheduler.rooms.allocate` gave it; a
      clinician's draws and reviews go only in their session's room, and no one else uses that
      room during the session, even while its clinician is idle. Joint sittings go in an `mdt`
      room that no session holds at that time, or that one of their own clinicians holds.
    - `soft`: any free room, the clinician's session room first, then rooms no session holds.
    - `off`: any free room, the plainest first.
    """

    def __init__(self, instance: Instance):
        self.inst = instance
        self.rules = instance.scenario.visit_rules
        self.room_rule = self.rules.clinician_room_per_session
        self._hard = self.room_rule == "hard"
        # (clinician, day, site) -> [(session mask, room)] and (room, day) -> held slots
        self._session_rooms = session_rooms(instance) if self.room_rule != "off" else {}
        self._held = held_masks(instance) if self.room_rule != "off" else {}
        self._room = {r.id: r for r in instance.scenario.rooms}
        self._room_for: dict[tuple, bool] = {}
        self._busy: dict[tuple[str, str, int], int] = defaultdict(int)
        self.by_bundle: dict[str, list[Booking]] = defaultdict(list)
        self._next_visit = 0
        self._rooms = {
            site: sorted(rooms, key=lambda r: (len(r.capabilities), r.capacity_people, r.id))
            for site, rooms in instance.rooms_at.items()
        }
        self._max_wait = self.rules.max_wait_minutes // instance.slot_minutes
        self._max_visit = self.rules.max_visit_minutes // instance.slot_minutes
        self._fasting_latest = instance.to_slot_floor(self.rules.fasting_draw_latest_start)
        self._booked_slots: dict[str, int] = defaultdict(int)

    # --- free time -------------------------------------------------------------------------
    def clinician_free(self, clinician_id: str, day: int, site_id: str) -> list[int]:
        """Free slots in each of the clinician's sessions there."""
        busy = self._busy[("c", clinician_id, day)]
        return [m & ~busy for m in self.inst.shift_masks.get((clinician_id, day, site_id), ())]

    def room_free(self, room_id: str, site_id: str, day: int) -> int:
        """Open slots (site hours, closures aside) with nothing booked in the room (holds aside)."""
        return self.inst.open_mask(site_id) & ~self.inst.closed_mask(room_id, day) & ~self._busy[("r", room_id, day)]

    def held(self, room_id: str, day: int, besides: frozenset[str] | set[str] = frozenset()) -> int:
        """Slots the room is held by sessions of clinicians not in `besides`."""
        mask = 0
        for clinician_id, slots in self._held.get((room_id, day), ()):
            if clinician_id not in besides:
                mask |= slots
        return mask

    def shared_room_free(self, room_id: str, site_id: str, day: int,
                         besides: frozenset[str] | set[str] = frozenset()) -> int:
        """Slots the room can take a step shared with others (any step but a `hard` draw or review,
        which go in their clinician's own room): under `hard`, a room held by a session is
        nobody else's for the whole session, unless its holder is in `besides` (a joint sitting
        may be held in the room of one of its clinicians)."""
        free = self.room_free(room_id, site_id, day)
        return free & ~self.held(room_id, day, besides) if self._hard else free

    def _own_room(self, step: Step) -> bool:
        """Under `hard`, a draw or a review goes in its clinician's session room."""
        return self._hard and step.kind != "joint_review"

    def own_room_starts(self, clinician_id: str, day: int, site_id: str, step: Step) -> int:
        """Hard rule: start slots where the clinician is free for the whole step inside one of
        their sessions whose room has the step's capabilities and people, and is free."""
        busy = self._busy[("c", clinician_id, day)]
        starts = 0
        for mask, room_id in self._session_rooms.get((clinician_id, day, site_id), ()):
            if room_id is not None and room_fits(self._room[room_id], step.capabilities, step.people):
                starts |= run_starts(mask & ~busy & self.room_free(room_id, site_id, day), step.slots)
        return starts

    def has_session_room_for(self, clinician_id: str, day: int, site_id: str, step: Step) -> bool:
        """Hard rule: one of the clinician's sessions there holds a room that can take the step
        (capabilities and people; nothing booked is looked at). Cached per book."""
        key = (clinician_id, day, site_id, step.capabilities, step.people)
        if key not in self._room_for:
            self._room_for[key] = any(
                room_id is not None and room_fits(self._room[room_id], step.capabilities, step.people)
                for _mask, room_id in self._session_rooms.get((clinician_id, day, site_id), ()))
        return self._room_for[key]

    def _own_room_at(self, clinician_id: str, day: int, site_id: str, step: Step, need: int,
                     taken: dict) -> str | None:
        """Hard rule: the clinician's session room when it can take the step over `need` (a
        slot mask) with both free, else None. `taken` holds what earlier steps of the visit use."""
        if self._busy[("c", clinician_id, day)] & need or taken[(clinician_id, 0)] & need:
            return None
        for mask, room_id in self._session_rooms.get((clinician_id, day, site_id), ()):
            if (room_id is not None and mask & need == need
                    and room_fits(self._room[room_id], step.capabilities, step.people)
                    and self.room_free(room_id, site_id, day) & ~taken[(room_id, 1)] & need == need):
                return room_id
        return None

    def _room_order(self, rooms: list[str], clinician_ids: list[str], day: int, site_id: str,
                    need: int) -> list[str]:
        """Soft rule: the (single) clinician's session room first, then rooms no session holds
        over `need`, then the rest; each group plainest first. Otherwise unchanged."""
        if self.room_rule != "soft":
            return rooms
        own = set()
        if len(clinician_ids) == 1:
            own = {room for mask, room in self._session_rooms.get((clinician_ids[0], day, site_id), ())
                   if mask & need == need}
        return sorted(rooms, key=lambda r: (r not in own, bool(self.held(r, day) & need)))

    def patient_free(self, patient_id: str, day: int) -> int:
        return self.inst.patient_mask(patient_id, day) & ~self._busy[("p", patient_id, day)]

    def rooms_for(self, step: Step, site_id: str) -> list[str]:
        return [
            r.id
            for r in self._rooms.get(site_id, [])
            if step.capabilities <= set(r.capabilities) and r.capacity_people >= step.people
        ]

    def step_starts(self, bundle: Bundle, step: Step, day: int, site_id: str) -> int:
        """Start slots where a clinician for each part, a room and the patient are all free."""
        n = step.slots
        mask = run_starts(self.patient_free(bundle.patient_id, day), n)
        on_shift = set(self.inst.on_shift.get((day, site_id), ()))
        own_room = self._own_room(step)
        for part in step.parts:
            who = 0
            for c in part:
                if c in on_shift:
                    if own_room:  # the room comes with the clinician's session
                        who |= self.own_room_starts(c, day, site_id, step)
                        continue
                    for free in self.clinician_free(c, day, site_id):
                        who |= run_starts(free, n)
            mask &= who
            if not mask:
                return 0
        if not own_room:
            rooms = 0
            anyone = {c for part in step.parts for c in part}
            for room_id in self.rooms_for(step, site_id):
                rooms |= run_starts(self.shared_room_free(room_id, site_id, day, anyone), n)
            mask &= rooms
        if step.fasting:
            mask &= span_mask(0, self._fasting_latest + 1)
        return mask

    def possible_options(self, bundle: Bundle, step: Step) -> list[tuple[int, str]]:
        """(day, site) pairs where the step could start given what is booked (on an empty book:
        where it could happen at all)."""
        if step.slots > self._max_visit:
            return []
        patient = self.inst.patients[bundle.patient_id]
        sites = sorted(r.site_id for r in patient.reachable_sites)
        return [
            (day, site)
            for day in range(max(step.first_day, 0), step.last_day + 1)
            for site in sites
            if self.step_starts(bundle, step, day, site)
        ]

    # --- fitting -----------------------------------------------------------------------------
    def fit_visit(
        self, bundle: Bundle, steps: list[Step], day: int, site_id: str, named: str | None = None,
        preferred: str = "any",
    ) -> list[Booking] | None:
        """Earliest way to do `steps` back to back at a site on a day (a draw always first).

        With a named clinician on shift there, the steps they may do are first tried with them
        alone: the earliest start with *someone* free would often be one where the named
        clinician is busy, and continuity (50 a review) outweighs a later start.
        """
        if sum(s.slots for s in steps) > self._max_visit:
            return None
        if named and named in self.inst.on_shift.get((day, site_id), ()):
            pinned = {s.key: replace(s, parts=tuple((named,) if named in part else part for part in s.parts))
                      for s in steps if s.kind != "blood_draw" and any(named in part for part in s.parts)}
            if pinned:
                found = self._fit(bundle, [pinned.get(s.key, s) for s in steps], day, site_id, named, preferred)
                if found is not None:
                    original = {s.key: s for s in steps}
                    return [replace(b, step=original[b.step.key]) for b in found]
        return self._fit(bundle, steps, day, site_id, named, preferred)

    def _fit(self, bundle, steps, day, site_id, named, preferred) -> list[Booking] | None:
        masks = {s.key: self.step_starts(bundle, s, day, site_id) for s in steps}
        if not all(masks.values()):
            return None
        draws = [s for s in steps if s.kind == "blood_draw"]
        reviews = [s for s in steps if s.kind != "blood_draw"]
        orders = permutations(reviews) if len(reviews) <= 4 else [tuple(reviews)]
        for order in orders:
            sequence = [*draws, *order]
            for first in self._first_starts(masks[sequence[0].key], preferred):
                times = self._chain(sequence, masks, [first], first + sequence[0].slots, first)
                if times is None:
                    continue
                bookings = self._assign(bundle, sequence, times, day, site_id, named)
                if bookings is not None:
                    return bookings
        return None

    def _first_starts(self, mask: int, preferred: str) -> list[int]:
        starts = list(bits(mask))
        if preferred == "any":
            return starts
        slot = self.inst.slot_minutes
        if preferred == "morning":
            key = lambda s: (s * slot >= MORNING_ENDS_MINUTE, s)  # noqa: E731
        else:
            key = lambda s: (s * slot < AFTERNOON_STARTS_MINUTE, s)  # noqa: E731
        return sorted(starts, key=key)

    def _chain(self, sequence, masks, times, end, first) -> list[int] | None:
        if len(times) == len(sequence):
            return times
        step = sequence[len(times)]
        window = span_mask(end, self._max_wait + 1) & masks[step.key]
        for start in bits(window):
            if start + step.slots - first > self._max_visit:
                return None
            found = self._chain(sequence, masks, [*times, start], start + step.slots, first)
            if found is not None:
                return found
        return None

    def _assign(self, bundle, sequence, times, day, site_id, named) -> list[Booking] | None:
        """Pick clinicians (named one first, then the least booked) and a room: under `hard` the
        clinician's session room (joint sittings: the plainest free `mdt` room held by none but
        their own clinicians), otherwise the plainest free room (`soft`: the session room first,
        `_room_order`)."""
        taken: dict[tuple[str, int], int] = defaultdict(int)  # resources used by earlier steps
        bookings = []
        on_shift = set(self.inst.on_shift.get((day, site_id), ()))
        for step, start in zip(sequence, times):
            need = span_mask(start, step.slots)
            if self._own_room(step):
                own = {c: room for part in step.parts for c in part if c in on_shift
                       and (room := self._own_room_at(c, day, site_id, step, need, taken)) is not None}
                chosen = self._clinicians_for(step.parts, set(own), named)
                if chosen is None:
                    return None
                room = own[chosen[0]]
            else:
                free = {
                    c for part in step.parts for c in part
                    if c in on_shift
                    and any(f & ~taken[(c, 0)] & need == need for f in self.clinician_free(c, day, site_id))
                }
                chosen = self._clinicians_for(step.parts, free, named)
                if chosen is None:
                    return None
                room = next(
                    (r for r in self._room_order(self.rooms_for(step, site_id), chosen, day, site_id, need)
                     if self.shared_room_free(r, site_id, day, set(chosen)) & ~taken[(r, 1)] & need == need),
                    None,
                )
                if room is None:
                    return None
            for c in chosen:
                taken[(c, 0)] |= need
            taken[(room, 1)] |= need
            bookings.append(
                Booking(bundle.id, bundle.patient_id, 0, step, day, site_id, start,
                        tuple(chosen), room)
            )
        return bookings

    def _clinicians_for(self, parts, free: set[str], named: str | None) -> list[str] | None:
        """A different free clinician for each part (named one first, then the least booked).

        A joint consultation's parts can share clinicians (a GP may be eligible for two of
        them); taking the first choice part by part could leave a later part with nobody when
        a matching exists, so this backtracks.
        """
        ranked = [sorted((c for c in part if c in free), key=lambda c: (c != named, self._booked_slots[c], c))
                  for part in parts]
        order = sorted(range(len(parts)), key=lambda i: (len(ranked[i]), i))
        chosen: list[str] = []

        def search(i: int) -> bool:
            if i == len(order):
                return True
            for c in ranked[order[i]]:
                if c not in chosen:
                    chosen.append(c)
                    if search(i + 1):
                        return True
                    chosen.pop()
            return False

        return chosen if search(0) else None

    # --- committing ----------------------------------------------------------------------------
    def commit(self, bookings: list[Booking]) -> None:
        """Book one visit's steps; each commit is one trip."""
        self._next_visit += 1
        for b in bookings:
            b = replace(b, visit_key=self._next_visit)
            self._mark(b, add=True)
            self.by_bundle[b.bundle_id].append(b)

    def release(self, bookings: list[Booking]) -> None:
        """Take back one visit's bookings."""
        for b in bookings:
            self._mark(b, add=False)
            self.by_bundle[b.bundle_id].remove(b)

    def release_bundle(self, bundle_id: str) -> None:
        for b in self.by_bundle.pop(bundle_id, []):
            self._mark(b, add=False)

    def _mark(self, b: Booking, add: bool) -> None:
        need = span_mask(b.start, b.step.slots)
        keys = [("c", c, b.day) for c in b.clinician_ids]
        keys += [("r", b.room_id, b.day), ("p", b.patient_id, b.day)]
        for key in keys:
            if add:
                assert not self._busy[key] & need, f"double booking of {key}"
                self._busy[key] |= need
            else:
                self._busy[key] &= ~need
        for c in b.clinician_ids:
            self._booked_slots[c] += b.step.slots if add else -b.step.slots

    @property
    def bookings(self) -> list[Booking]:
        return [b for items in self.by_bundle.values() for b in items]
