"""Cross-reference and sense checks on a scenario that the pydantic models cannot express.

`validate(scenario, source)` runs every check and returns every problem, each naming the field
path (`patients[P003].due_reviews[1].window_end`). These are facts about the input only: nothing
here solves, plans or reasons about capacity.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

from scheduler.domain import Scenario
from scheduler.privacy import nhs_number_in
from scheduler.problems import PathT, Problem, did_you_mean, format_path

# Lists whose entries carry an `id`, with the noun used in messages.
ID_LISTS: dict[str, str] = {
    "sites": "site",
    "rooms": "room",
    "clinicians": "clinician",
    "blood_markers": "blood marker",
    "shared_components": "shared component",
    "review_types": "review type",
    "patients": "patient",
}


class Checker:
    """What each check needs: the scenario, the source name, and what was set aside.

    `set_aside` maps a list name to the ids of entries that failed their own validation and
    were left out of the scenario: references to those ids are not reported, and checks that
    need the whole list (nobody can do a review type, nobody takes bloods) are skipped.
    """

    def __init__(
        self, scenario: Scenario, source: str, set_aside: Mapping[str, Collection[str]] | None
    ):
        self.scenario = scenario
        self.source = source
        self.set_aside = {name: set(ids) for name, ids in (set_aside or {}).items()}

    def problem(self, path: PathT, message: str) -> Problem:
        return Problem(self.source, format_path(path, self.scenario), message, path=tuple(path))

    def ref(self, path: PathT) -> str:
        return format_path(path, self.scenario)

    def ids(self, list_name: str) -> list[str]:
        return [item.id for item in getattr(self.scenario, list_name)]

    def known(self, list_name: str) -> set[str]:
        return set(self.ids(list_name)) | self.set_aside.get(list_name, set())

    def complete(self, list_name: str) -> bool:
        return list_name not in self.set_aside

    def unknown(self, path: PathT, list_name: str, value: str | None) -> Iterator[Problem]:
        if value is None or value in self.known(list_name):
            return
        noun = ID_LISTS[list_name]
        hint = did_you_mean(value, self.ids(list_name), noun + "s")
        yield self.problem(path, f"unknown {noun} '{value}'{hint}")


def _hm(value: dt.time) -> str:
    return value.strftime("%H:%M")


# --- ids ------------------------------------------------------------------------------------


def check_duplicate_ids(c: Checker) -> Iterator[Problem]:
    """Every site, room, clinician, marker, component, review type and patient id is unique."""
    for list_name, noun in ID_LISTS.items():
        first: dict[str, int] = {}
        for index, item in enumerate(getattr(c.scenario, list_name)):
            if item.id in first:
                where = c.ref((list_name, first[item.id]))
                yield c.problem(
                    (list_name, index, "id"), f"duplicate {noun} id '{item.id}' (also {where})"
                )
            else:
                first.setdefault(item.id, index)


def check_duplicate_due_review_ids(c: Checker) -> Iterator[Problem]:
    """Due review ids (explicit, or the default '<patient>-<review type>') are unique."""
    first: dict[str, tuple[str, int]] = {}
    for p_index, patient in enumerate(c.scenario.patients):
        for d_index, due in enumerate(patient.due_reviews):
            review_id = patient.review_id(due)
            path: PathT = ("patients", p_index, "due_reviews", d_index)
            if review_id not in first:
                first[review_id] = (patient.id, d_index)
                continue
            other_patient, other_index = first[review_id]
            advice = (
                "give each an explicit id"
                if due.id is None
                else "give it a different id"
            )
            yield c.problem(
                path + (("id",) if due.id is not None else ()),
                f"duplicate due review id '{review_id}' (also patient '{other_patient}', "
                f"due review {other_index + 1}); {advice}",
            )


def check_duplicate_reachable_sites(c: Checker) -> Iterator[Problem]:
    """A patient lists each reachable site once (two travel times would be ambiguous)."""
    for p_index, patient in enumerate(c.scenario.patients):
        seen: set[str] = set()
        for r_index, reach in enumerate(patient.reachable_sites):
            if reach.site_id in seen:
                yield c.problem(
                    ("patients", p_index, "reachable_sites", r_index, "site_id"),
                    f"site '{reach.site_id}' is listed twice",
                )
            seen.add(reach.site_id)


# --- unknown references ---------------------------------------------------------------------


def check_room_sites(c: Checker) -> Iterator[Problem]:
    for index, room in enumerate(c.scenario.rooms):
        yield from c.unknown(("rooms", index, "site_id"), "sites", room.site_id)


def check_session_references(c: Checker) -> Iterator[Problem]:
    for index, session in enumerate(c.scenario.sessions):
        path: PathT = ("sessions", index)
        yield from c.unknown((*path, "clinician_id"), "clinicians", session.clinician_id)
        yield from c.unknown((*path, "site_id"), "sites", session.site_id)


def check_session_rooms(c: Checker) -> Iterator[Problem]:
    """A session's `room_id` is a room at the session's site, and two sessions overlapping in
    time on one date never name the same room (a named room is held for the whole session)."""
    rooms = {room.id: room for room in c.scenario.rooms}
    sessions = c.scenario.sessions
    by_room: dict[tuple[str, dt.date], list[int]] = {}
    for index, session in enumerate(sessions):
        if session.room_id is None:
            continue
        path: PathT = ("sessions", index, "room_id")
        yield from c.unknown(path, "rooms", session.room_id)
        room = rooms.get(session.room_id)
        if room is not None and room.site_id != session.site_id:
            yield c.problem(
                path,
                f"room '{room.id}' is at site '{room.site_id}', not at the session's site "
                f"'{session.site_id}'",
            )
        if session.end > session.start:
            by_room.setdefault((session.room_id, session.date), []).append(index)
    for (room_id, date), indices in by_room.items():
        for earlier, later in _overlapping(sessions, indices):
            a = sessions[earlier]
            yield c.problem(
                ("sessions", later, "room_id"),
                f"room '{room_id}' is also named by {c.ref(('sessions', earlier))} "
                f"('{a.clinician_id}', {_hm(a.start)}-{_hm(a.end)}) on {date}: a "
                "clinician holds their session's room for the whole session, so "
                "overlapping sessions need different rooms",
            )


def _overlapping(sessions: list, indices: list[int]) -> Iterator[tuple[int, int]]:
    """Pairs (earlier, later) of the sessions at `indices` that overlap in time, in start order."""
    ordered = sorted(indices, key=lambda i: (sessions[i].start, i))
    for position, later in enumerate(ordered):
        for earlier in ordered[:position]:
            if sessions[later].start < sessions[earlier].end:
                yield earlier, later


def check_leave_references(c: Checker) -> Iterator[Problem]:
    for index, leave in enumerate(c.scenario.leave):
        yield from c.unknown(("leave", index, "clinician_id"), "clinicians", leave.clinician_id)


def check_clinician_review_types(c: Checker) -> Iterator[Problem]:
    for index, clinician in enumerate(c.scenario.clinicians):
        for k, type_id in enumerate(clinician.review_type_ids):
            path = ("clinicians", index, "review_type_ids", k)
            yield from c.unknown(path, "review_types", type_id)


def check_review_type_references(c: Checker) -> Iterator[Problem]:
    for index, review_type in enumerate(c.scenario.review_types):
        for k, marker_id in enumerate(review_type.blood_marker_ids):
            path = ("review_types", index, "blood_marker_ids", k)
            yield from c.unknown(path, "blood_markers", marker_id)
        for k, component_id in enumerate(review_type.shared_component_ids):
            path = ("review_types", index, "shared_component_ids", k)
            yield from c.unknown(path, "shared_components", component_id)


def check_shared_components_fit(c: Checker) -> Iterator[Problem]:
    """A review's duration includes its shared components, so they must fit inside it, once each."""
    minutes = {component.id: component.minutes for component in c.scenario.shared_components}
    for index, review_type in enumerate(c.scenario.review_types):
        ids = review_type.shared_component_ids
        for k, component_id in enumerate(ids):
            if component_id in ids[:k]:
                path = ("review_types", index, "shared_component_ids", k)
                yield c.problem(path, f"shared component '{component_id}' is listed twice")
        total = sum(minutes.get(i, 0) for i in dict.fromkeys(ids))
        if total > review_type.duration_minutes:
            yield c.problem(
                ("review_types", index, "shared_component_ids"),
                f"shared components take {total} min, more than the review's "
                f"{review_type.duration_minutes} min (durations include them)",
            )


def check_patient_references(c: Checker) -> Iterator[Problem]:
    for p_index, patient in enumerate(c.scenario.patients):
        base: PathT = ("patients", p_index)
        named = patient.named_clinician_id
        yield from c.unknown((*base, "named_clinician_id"), "clinicians", named)
        for r_index, reach in enumerate(patient.reachable_sites):
            path = (*base, "reachable_sites", r_index, "site_id")
            yield from c.unknown(path, "sites", reach.site_id)
        for d_index, due in enumerate(patient.due_reviews):
            path = (*base, "due_reviews", d_index, "review_type_id")
            yield from c.unknown(path, "review_types", due.review_type_id)


# --- dates and times ------------------------------------------------------------------------


def check_horizon(c: Checker) -> Iterator[Problem]:
    s = c.scenario
    if s.horizon_end < s.horizon_start:
        yield c.problem(
            ("horizon_end",), f"horizon ends ({s.horizon_end}) before it starts ({s.horizon_start})"
        )


def check_session_times(c: Checker) -> Iterator[Problem]:
    """A session ends after it starts, on the same day (so it can never cross midnight)."""
    for index, session in enumerate(c.scenario.sessions):
        if session.end <= session.start:
            yield c.problem(
                ("sessions", index, "end"),
                f"session ends ({_hm(session.end)}) at or before it starts "
                f"({_hm(session.start)}); a session starts and ends on its date, so one "
                "crossing midnight must be split into two",
            )


def clock_change(day: dt.date) -> str | None:
    """'forward' or 'back' when the UK clocks change on this date (at 01:00 UTC on the last
    Sunday of March and of October), else None."""
    if day.weekday() == 6 and day.month in (3, 10) and day.day + 7 > 31:
        return "forward" if day.month == 3 else "back"
    return None


def check_clock_change_sessions(c: Checker) -> Iterator[Problem]:
    """No session overlaps 01:00-02:00 local on a clock-change Sunday: in March that hour does
    not exist, in October it happens twice."""
    one, two = dt.time(1, 0), dt.time(2, 0)
    for index, session in enumerate(c.scenario.sessions):
        direction = clock_change(session.date)
        if direction is None or session.end <= session.start:
            continue
        if session.start < two and session.end > one:
            effect = (
                "that hour does not exist" if direction == "forward" else "that hour happens twice"
            )
            yield c.problem(
                ("sessions", index),
                f"session {_hm(session.start)}-{_hm(session.end)} on Sunday {session.date} "
                f"overlaps 01:00-02:00, when the clocks go {direction} ({effect} in "
                "Europe/London)",
            )


def check_session_overlaps(c: Checker) -> Iterator[Problem]:
    """One clinician's sessions on one date do not overlap."""
    by_day: dict[tuple[str, dt.date], list[int]] = {}
    for index, session in enumerate(c.scenario.sessions):
        if session.end > session.start:
            by_day.setdefault((session.clinician_id, session.date), []).append(index)
    sessions = c.scenario.sessions
    for (clinician_id, date), indices in by_day.items():
        for earlier, later in _overlapping(sessions, indices):
            a = sessions[earlier]
            yield c.problem(
                ("sessions", later),
                f"overlaps another session of '{clinician_id}' on {date}: "
                f"{c.ref(('sessions', earlier))} ({_hm(a.start)}-{_hm(a.end)} at "
                f"{a.site_id})",
            )


def check_leave_dates(c: Checker) -> Iterator[Problem]:
    for index, leave in enumerate(c.scenario.leave):
        if leave.end_date < leave.start_date:
            yield c.problem(
                ("leave", index, "end_date"),
                f"leave ends ({leave.end_date}) before it starts ({leave.start_date})",
            )


def check_closures(c: Checker) -> Iterator[Problem]:
    """Each closure names one room or one site that exists, ends after it starts, and does not
    overlap another closure of the same room or site (a room closed twice)."""
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, closure in enumerate(c.scenario.closures):
        if (closure.room_id is None) == (closure.site_id is None):
            yield c.problem(("closures", index), "give exactly one of room_id and site_id")
            continue
        if closure.room_id is not None:
            yield from c.unknown(("closures", index, "room_id"), "rooms", closure.room_id)
        else:
            yield from c.unknown(("closures", index, "site_id"), "sites", closure.site_id)
        if closure.end <= closure.start:
            yield c.problem(("closures", index, "end"),
                            f"the closure ends ({closure.end.isoformat()}) at or before it starts "
                            f"({closure.start.isoformat()})")
            continue
        key = ("room", closure.room_id) if closure.room_id is not None else ("site", closure.site_id)
        for earlier in seen[key]:
            other = c.scenario.closures[earlier]
            if other.start < closure.end and closure.start < other.end:
                yield c.problem(("closures", index, "start"),
                                f"{key[0]} '{key[1]}' is already closed then by "
                                f"{c.ref(('closures', earlier))} ({other.start.isoformat()} to "
                                f"{other.end.isoformat()})")
                break
        seen[key].append(index)


def check_site_hours(c: Checker) -> Iterator[Problem]:
    for index, site in enumerate(c.scenario.sites):
        if site.closes <= site.opens:
            yield c.problem(
                ("sites", index, "closes"),
                f"site closes ({_hm(site.closes)}) at or before it opens ({_hm(site.opens)})",
            )


def check_due_windows(c: Checker) -> Iterator[Problem]:
    """Each due window is the right way round and overlaps the horizon."""
    s = c.scenario
    for p_index, patient in enumerate(s.patients):
        for d_index, due in enumerate(patient.due_reviews):
            path: PathT = ("patients", p_index, "due_reviews", d_index)
            if due.window_end < due.window_start:
                yield c.problem(
                    (*path, "window_end"),
                    f"window ends ({due.window_end}) before it starts ({due.window_start})",
                )
            elif due.window_end < s.horizon_start or due.window_start > s.horizon_end:
                yield c.problem(
                    path,
                    f"due window {due.window_start} to {due.window_end} lies entirely outside "
                    f"the horizon {s.horizon_start} to {s.horizon_end}",
                )


def check_unavailability(c: Checker) -> Iterator[Problem]:
    for p_index, patient in enumerate(c.scenario.patients):
        for u_index, slot in enumerate(patient.unavailable):
            path: PathT = ("patients", p_index, "unavailable", u_index)
            if slot.end <= slot.start:
                yield c.problem(
                    (*path, "end"),
                    f"unavailability ends ({_hm(slot.end)}) at or before it starts "
                    f"({_hm(slot.start)})",
                )
            if not slot.weekdays and slot.date is None:
                yield c.problem(
                    path, "unavailability has neither weekdays nor a date: say when it applies"
                )


# --- who can do what ------------------------------------------------------------------------


def check_pseudonymous_ids(c: Checker) -> Iterator[Problem]:
    """Patients are pseudonymous (PRODUCT.md): an id holding a valid NHS number (Modulus 11) is
    refused unless `privacy.allow_nhs_number_ids` is set. The patient is named by position, so
    the message never repeats the number."""
    if c.scenario.privacy.allow_nhs_number_ids:
        return
    for p_index, patient in enumerate(c.scenario.patients):
        if nhs_number_in(patient.id) is not None:
            path = ("patients", p_index, "id")
            yield Problem(
                c.source, f"patients[{p_index}].id",
                f"the id of patient number {p_index + 1} looks like an NHS number (it passes the "
                "Modulus 11 check): patients must be pseudonymous, so use the practice's "
                "pseudonymous id instead; a deployment inside the NHS boundary may set "
                "privacy.allow_nhs_number_ids: true",
                path=path,
            )


def check_reachable_sites(c: Checker) -> Iterator[Problem]:
    for p_index, patient in enumerate(c.scenario.patients):
        if not patient.reachable_sites:
            yield c.problem(
                ("patients", p_index, "reachable_sites"),
                f"patient '{patient.id}' has no reachable site: list at least one site with its "
                "travel minutes",
            )


def check_review_types_have_clinicians(c: Checker) -> Iterator[Problem]:
    """Some clinician may carry out each review type: role allowed and type listed."""
    if not c.complete("clinicians"):
        return
    for index, review_type in enumerate(c.scenario.review_types):
        if any(
            clinician.role in review_type.roles and review_type.id in clinician.review_type_ids
            for clinician in c.scenario.clinicians
        ):
            continue
        listing = [cl.id for cl in c.scenario.clinicians if review_type.id in cl.review_type_ids]
        detail = (
            f"clinicians listing it ({', '.join(listing)}) have no allowed role"
            if listing
            else "no clinician lists it in review_type_ids"
        )
        yield c.problem(
            ("review_types", index),
            f"no clinician may carry out review type '{review_type.id}': it needs a role in "
            f"[{', '.join(review_type.roles)}] and {detail}",
        )


def check_clinician_roles(c: Checker) -> Iterator[Problem]:
    """A clinician only lists review types whose roles include the clinician's role."""
    types = {review_type.id: review_type for review_type in c.scenario.review_types}
    for index, clinician in enumerate(c.scenario.clinicians):
        for k, type_id in enumerate(clinician.review_type_ids):
            review_type = types.get(type_id)
            if review_type is not None and clinician.role not in review_type.roles:
                yield c.problem(
                    ("clinicians", index, "review_type_ids", k),
                    f"clinician '{clinician.id}' has role '{clinician.role}', which review type "
                    f"'{type_id}' does not allow (its roles: {', '.join(review_type.roles)})",
                )


def check_blood_draws_possible(c: Checker) -> Iterator[Problem]:
    """If any due review needs blood markers, someone takes bloods and a room has phlebotomy."""
    types = {review_type.id: review_type for review_type in c.scenario.review_types}
    example = None
    for patient in c.scenario.patients:
        for due in patient.due_reviews:
            review_type = types.get(due.review_type_id)
            if review_type is not None and review_type.blood_marker_ids:
                markers = ", ".join(review_type.blood_marker_ids)
                example = f"'{patient.review_id(due)}' needs {markers}"
                break
        if example:
            break
    if example is None:
        return
    if c.complete("clinicians") and not any(cl.takes_bloods for cl in c.scenario.clinicians):
        yield c.problem(
            ("clinicians",),
            f"due reviews need a blood draw (e.g. {example}) but no clinician has "
            "takes_bloods: true",
        )
    if c.complete("rooms") and not any("phlebotomy" in r.capabilities for r in c.scenario.rooms):
        yield c.problem(
            ("rooms",),
            f"due reviews need a blood draw (e.g. {example}) but no room has the capability "
            "'phlebotomy'",
        )


CHECKS: tuple[Callable[[Checker], Iterable[Problem]], ...] = (
    check_pseudonymous_ids,
    check_duplicate_ids,
    check_duplicate_due_review_ids,
    check_duplicate_reachable_sites,
    check_room_sites,
    check_session_references,
    check_session_rooms,
    check_leave_references,
    check_clinician_review_types,
    check_review_type_references,
    check_shared_components_fit,
    check_patient_references,
    check_horizon,
    check_site_hours,
    check_session_times,
    check_clock_change_sessions,
    check_session_overlaps,
    check_leave_dates,
    check_closures,
    check_due_windows,
    check_unavailability,
    check_reachable_sites,
    check_review_types_have_clinicians,
    check_clinician_roles,
    check_blood_draws_possible,
)


def validate(
    scenario: Scenario,
    source: str,
    *,
    set_aside: Mapping[str, Collection[str]] | None = None,
) -> list[Problem]:
    """Every cross-reference and sense problem in the scenario (empty when it is sound).

    `set_aside` (used by the loader when some entries failed field validation) maps a list
    name such as 'clinicians' to the ids of entries left out: see `Checker`.
    """
    checker = Checker(scenario, source, set_aside)
    problems: list[Problem] = []
    for check in CHECKS:
        problems.extend(check(checker))
    return problems
