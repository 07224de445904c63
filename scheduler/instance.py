"""The scenario compiled for planning: day indexes, valid shifts and free-time bitmasks.

Time inside a day is counted in slots (`visit_rules.slot_minutes`); a bitmask holds one bit per
slot, so "is this clinician free for 25 minutes from 09:10" is one AND of two integers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

from scheduler.domain import WEEKDAYS, Clinician, Patient, ReviewType, Room, RosterSession, Scenario
from scheduler.timegrid import (
    dates_between,
    is_bank_holiday,
    minute_of_day,
    working_day_ranks,
)

MINUTES_PER_DAY = 24 * 60


def span_mask(first_slot: int, slots: int) -> int:
    """Bits first_slot .. first_slot + slots - 1."""
    return ((1 << slots) - 1) << first_slot if slots > 0 else 0


def run_starts(free: int, slots: int) -> int:
    """Bit s set when slots s .. s + slots - 1 are all set in `free`."""
    runs = free
    width = 1
    while width < slots and runs:
        step = min(width, slots - width)
        runs &= runs >> step
        width += step
    return runs


def bits(mask: int):
    """Indexes of set bits, ascending."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


@dataclass(frozen=True)
class Shift:
    """A valid roster session in slots: inside the horizon, not on leave, not a closed bank holiday."""

    clinician_id: str
    day: int
    site_id: str
    start: int
    end: int
    room_id: str | None = None  # the room the roster session names, if any

    @property
    def mask(self) -> int:
        """The session's slots as a bitmask."""
        return span_mask(self.start, self.end - self.start)


@dataclass
class Instance:
    scenario: Scenario
    slot_minutes: int = field(init=False)

    def __post_init__(self) -> None:
        s = self.scenario
        self.slot_minutes = s.visit_rules.slot_minutes
        self.days: list[dt.date] = dates_between(s.horizon_start, s.horizon_end)
        self.day_of = {day: i for i, day in enumerate(self.days)}
        self.ranks = working_day_ranks(self.days)
        self.clinicians: dict[str, Clinician] = {c.id: c for c in s.clinicians}
        self.review_types: dict[str, ReviewType] = {r.id: r for r in s.review_types}
        self.markers = {m.id: m for m in s.blood_markers}
        self.components = {c.id: c for c in s.shared_components}
        self.patients: dict[str, Patient] = {p.id: p for p in s.patients}
        self.sites = {site.id: site for site in s.sites}
        self.rooms_at: dict[str, list[Room]] = defaultdict(list)
        for room in s.rooms:
            self.rooms_at[room.site_id].append(room)
        self.cache: dict[str, dict] = {}  # derived facts computed once per instance
        self.travel = {
            (p.id, r.site_id): r.travel_minutes for p in s.patients for r in p.reachable_sites
        }

    def named_clinician(self, patient_id: str) -> str | None:
        """The named clinician, when the patient wants continuity with them."""
        patient = self.patients[patient_id]
        return patient.named_clinician_id if patient.wants_continuity else None

    # --- slots -------------------------------------------------------------------------
    def slots_up(self, minutes: float) -> int:
        return math.ceil(minutes / self.slot_minutes - 1e-9)

    def to_slot_floor(self, value: dt.time) -> int:
        return minute_of_day(value) // self.slot_minutes

    def to_slot_ceil(self, value: dt.time) -> int:
        return self.slots_up(minute_of_day(value))

    @property
    def slots_per_day(self) -> int:
        return MINUTES_PER_DAY // self.slot_minutes

    # --- shifts ------------------------------------------------------------------------
    @cached_property
    def valid_sessions(self) -> list[RosterSession]:
        """Sessions inside the horizon, not on leave, not on a bank holiday unless flagged."""
        s = self.scenario
        on_leave = {
            (leave.clinician_id, day)
            for leave in s.leave
            for day in dates_between(leave.start_date, leave.end_date)
        }
        return [
            session for session in s.sessions
            if session.date in self.day_of
            and (session.clinician_id, session.date) not in on_leave
            and (session.on_bank_holiday or not is_bank_holiday(session.date))
        ]

    @cached_property
    def shifts(self) -> list[Shift]:
        result = []
        for session in self.valid_sessions:
            start, end = self.to_slot_ceil(session.start), self.to_slot_floor(session.end)
            if end > start:
                day = self.day_of[session.date]
                result.append(Shift(session.clinician_id, day, session.site_id, start, end, session.room_id))
        result.sort(key=lambda sh: (sh.day, sh.site_id, sh.clinician_id, sh.start))
        return result

    @cached_property
    def shifts_at(self) -> dict[tuple[str, int, str], list[Shift]]:
        """(clinician, day, site) -> that clinician's shifts there, by start (the order of
        `shift_masks`)."""
        result: dict[tuple[str, int, str], list[Shift]] = defaultdict(list)
        for sh in self.shifts:
            result[(sh.clinician_id, sh.day, sh.site_id)].append(sh)
        return dict(result)

    @cached_property
    def shift_masks(self) -> dict[tuple[str, int, str], list[int]]:
        """(clinician, day, site) -> one mask per session: an appointment must sit inside one
        session, so back-to-back sessions are never joined."""
        masks: dict[tuple[str, int, str], list[int]] = defaultdict(list)
        for sh in self.shifts:
            masks[(sh.clinician_id, sh.day, sh.site_id)].append(span_mask(sh.start, sh.end - sh.start))
        return dict(masks)

    def rostered_slots(self, clinician_id: str, day: int, site_id: str) -> int:
        return sum(bin(m).count("1") for m in self.shift_masks.get((clinician_id, day, site_id), ()))

    @cached_property
    def on_shift(self) -> dict[tuple[int, str], list[str]]:
        """(day, site) -> clinicians with a shift there, sorted."""
        result: dict[tuple[int, str], set[str]] = defaultdict(set)
        for sh in self.shifts:
            result[(sh.day, sh.site_id)].add(sh.clinician_id)
        return {key: sorted(value) for key, value in result.items()}

    @cached_property
    def clinician_sites(self) -> dict[str, set[tuple[int, str]]]:
        result: dict[str, set[tuple[int, str]]] = defaultdict(set)
        for sh in self.shifts:
            result[sh.clinician_id].add((sh.day, sh.site_id))
        return result

    def open_mask(self, site_id: str) -> int:
        site = self.sites[site_id]
        first, last = self.to_slot_ceil(site.opens), self.to_slot_floor(site.closes)
        return span_mask(first, last - first)

    def closed_mask(self, room_id: str, day: int) -> int:
        """Slots of the day the room is closed (`Scenario.closures`, its own or its site's); a
        slot touching a closure counts as closed."""
        return self._closed.get((room_id, day), 0)

    @cached_property
    def _closed(self) -> dict[tuple[str, int], int]:
        s = self.scenario
        room_site = {room.id: room.site_id for room in s.rooms}
        result: dict[tuple[str, int], int] = defaultdict(int)
        for closure in s.closures:
            rooms = ([closure.room_id] if closure.room_id is not None
                     else [r for r, site in room_site.items() if site == closure.site_id])
            for date in dates_between(closure.start.date(), closure.end.date()):
                if date not in self.day_of:
                    continue
                first = (self.to_slot_floor(closure.start.time()) if date == closure.start.date() else 0)
                last = (self.slots_up(minute_of_day(closure.end.time())) if date == closure.end.date()
                        else self.slots_per_day)
                if last > first:
                    for room_id in rooms:
                        result[(room_id, self.day_of[date])] |= span_mask(first, last - first)
        return dict(result)

    def patient_mask(self, patient_id: str, day: int) -> int:
        """Slots the patient can attend on a day."""
        return self._patient_masks[patient_id][day]

    @cached_property
    def _patient_masks(self) -> dict[str, list[int]]:
        full = span_mask(0, self.slots_per_day)
        result = {}
        for patient in self.scenario.patients:
            masks = []
            for date in self.days:
                mask = full
                for away in patient.unavailable:
                    applies = (away.date == date or WEEKDAYS[date.weekday()] in away.weekdays
                               or (away.date is None and not away.weekdays))
                    if applies:
                        first = self.to_slot_floor(away.start)
                        last = self.slots_up(minute_of_day(away.end))
                        if away.end == dt.time(23, 59):
                            last = self.slots_per_day
                        mask &= ~span_mask(first, last - first)
                masks.append(mask)
            result[patient.id] = masks
        return result

