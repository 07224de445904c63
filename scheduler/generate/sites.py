"""Stage 2, the estate: sites and their rooms."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from scheduler.domain import Room, Site
from scheduler.generate.figures import HUB, PracticeSpec
from scheduler.generate.profile import Profile


@dataclass(frozen=True)
class Estate:
    """Sites (the practices, then the hub for ``pcn``) and rooms; ``rooms_at`` counts rooms per
    site id (it caps how many clinicians may hold a session there at once)."""

    sites: list[Site]
    rooms: list[Room]

    @property
    def rooms_at(self) -> Counter[str]:
        return Counter(r.site_id for r in self.rooms)


def build_estate(profile: Profile, rng: random.Random) -> Estate:
    """One site per practice (rooms scaled with its list, `Profile.scale`) and, for ``pcn``, the
    hub. Room mixes are *Assumptions*."""
    sites: list[Site] = []
    rooms: list[Room] = []
    for spec in profile.practices:
        sites.append(Site(id=spec.site_id, name=spec.name, kind="practice", address=spec.address))
        rooms += _practice_rooms(spec, profile.scale[spec.site_id], rng)
    if profile.kind == "pcn":
        sites.append(Site(id=HUB.site_id, name=HUB.name, kind="pcn_hub", address=HUB.address))
        rooms += _hub_rooms()
    return Estate(sites, rooms)


def _room(site: str, rid: str, name: str, caps: list[str], capacity: int = 3) -> Room:
    return Room(id=rid, site_id=site, name=name, capacity_people=capacity, capabilities=caps)


def _practice_rooms(spec: PracticeSpec, scale: float, rng: random.Random) -> list[Room]:
    """Treatment rooms (phlebotomy), 2-3 nurse rooms (phlebotomy, spirometry, ECG), 4-6
    consulting rooms (both x ``scale``) and an MDT-capable meeting room, wheelchair access on
    several."""
    s, c = spec.site_id, spec.code
    rooms = [_room(s, f"{c}-treatment1", "Treatment room 1", ["phlebotomy", "wheelchair_access"]),
             _room(s, f"{c}-treatment2", "Treatment room 2", ["phlebotomy"])]
    for i in range(1, math.ceil(rng.choice([2, 3, 3]) * scale) + 1):
        caps = ["phlebotomy", "spirometry", "ecg"] + (["wheelchair_access"] if i != 2 else [])
        rooms.append(_room(s, f"{c}-nurse{i}", f"Nurse room {i}", caps, 3 if i != 1 else 4))
    consult_caps = [["ecg", "wheelchair_access"], ["wheelchair_access"], ["ecg"], [],
                    ["wheelchair_access"], []]
    for i in range(1, math.ceil(rng.choice([4, 5, 6]) * scale) + 1):
        rooms.append(_room(s, f"{c}-consult{i}", f"Consulting room {i}",
                           consult_caps[(i - 1) % 6]))
    rooms.append(_room(s, f"{c}-meeting", "Meeting room",
                       ["mdt", "ecg", "spirometry", "wheelchair_access"], 8))
    return rooms


def _hub_rooms() -> list[Room]:
    """Eleven rooms: enough for every hub clinician on an MDT half-day (GP, nurse, pharmacist,
    phlebotomist, five consultants, two community specialist nurses) to have one."""
    s = HUB.site_id
    rooms = [_room(s, "hub-mdt1", "MDT clinic room 1",
                   ["mdt", "ecg", "spirometry", "wheelchair_access"], 10),
             _room(s, "hub-mdt2", "MDT clinic room 2", ["mdt", "ecg", "wheelchair_access"], 8),
             _room(s, "hub-phlebotomy1", "Phlebotomy room 1", ["phlebotomy", "wheelchair_access"]),
             _room(s, "hub-phlebotomy2", "Phlebotomy room 2", ["phlebotomy", "wheelchair_access"])]
    for i, caps in enumerate([["ecg", "wheelchair_access"],
                              ["spirometry", "ecg", "wheelchair_access"],
                              ["spirometry", "wheelchair_access"], ["wheelchair_access"],
                              ["ecg", "wheelchair_access"], ["wheelchair_access"],
                              ["spirometry", "ecg", "wheelchair_access"]], start=1):
        rooms.append(_room(s, f"hub-clinic{i}", f"Clinic room {i}", caps))
    return rooms
