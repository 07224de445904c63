"""Patient invites (iTIP REQUEST and CANCEL) and clinician/room feeds, as iCalendar bytes.

Pure functions of the scenario, a plan and the identities the service stores per visit (a random
UID, the SEQUENCE it last sent and a booking reference). Nothing here reads a database, invents an
identifier from an id, or writes a condition, review, blood test, patient or (unless the scenario
opts in) clinician name. docs/calendars.md describes what each user receives.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from icalendar import Alarm, Calendar, Event, vCalAddress, vDuration

from api.calendar import wording
from api.calendar.ics import Line, Text, serialise
from api.calendar.sanitise import clean_text
from api.calendar.timezone import LONDON, UTC, london_time, london_vtimezone
from scheduler.domain import Clinician, Patient, Room, Scenario, Site
from scheduler.plan import Appointment, Plan, Visit

PRODID = "-//OneVisit//Consolidated visits 1.0//EN"
UID_DOMAIN = "onevisit"
REFERENCE_PREFIX = "OV-"
# No 0/O, 1/I/L, 5/S, 2/Z, 8/B or U/V: easy to read aloud and to type from a phone screen.
REFERENCE_ALPHABET = "ACDEFGHJKMNPQRTWXY34679"
REFERENCE_LENGTH = 6
REFRESH = dt.timedelta(hours=1)  # REFRESH-INTERVAL and X-PUBLISHED-TTL
REMINDERS = (dt.timedelta(days=-7), dt.timedelta(days=-1))
FASTING_HOURS = 12

_UID = re.compile(r"^[A-Za-z0-9._\-]+@[A-Za-z0-9.\-]+$")
_REFERENCE = re.compile(r"^[A-Z0-9][A-Z0-9\-]{2,31}$")
# No white space, controls (C0, DEL, C1) or characters that end an address in a content line.
_MAILBOX = re.compile(r"^[^\s@:;,<>\"\x00-\x1f\x7f-\x9f]+@[^\s@:;,<>\"\x00-\x1f\x7f-\x9f]+$")


@dataclass(frozen=True)
class EventIdentity:
    """What the service stores per visit and passes back for every rendering of it.

    uid: random (`new_uid`), the same in the patient's invite and in every feed, never reused.
    sequence: 0 for the first invite; +1 for each update or cancel, never lowered.
    reference: the short booking reference people read out on the phone (`new_reference`).
    """

    uid: str
    sequence: int
    reference: str

    def __post_init__(self) -> None:
        if not _UID.match(self.uid):
            raise ValueError(f"UID {self.uid!r} is not of the form <random>@<domain>")
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int) or self.sequence < 0:
            raise ValueError(f"SEQUENCE must be a non-negative integer, not {self.sequence!r}")
        if not _REFERENCE.match(self.reference):
            raise ValueError(f"booking reference {self.reference!r} is not upper-case letters and digits")


def new_uid() -> str:
    """A fresh random UID (uuid4): nothing in it is derived from a patient, visit or plan."""
    return f"{uuid.uuid4()}@{UID_DOMAIN}"


def new_reference() -> str:
    """A fresh random booking reference like OV-7K3P9Q (23^6, about 148 million; the service
    keeps them unique)."""
    return REFERENCE_PREFIX + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


# ---------------------------------------------------------------------------------------------
# Reading a visit out of the scenario and plan


@dataclass(frozen=True)
class _Visit:
    visit: Visit
    site: Site
    patient: Patient
    appointments: list[Appointment]  # by start
    start: dt.datetime  # Europe/London
    end: dt.datetime


def _index(items, what: str):
    index = {item.id: item for item in items}

    def get(key: str):
        if key not in index:
            raise ValueError(f"the plan names {what} {key!r}, which the scenario does not have")
        return index[key]

    return get


def _visit(scenario: Scenario, plan: Plan, visit_id: str) -> _Visit:
    visits = [v for v in plan.visits if v.id == visit_id]
    if not visits:
        raise KeyError(f"no visit {visit_id!r} in this plan")
    visit = visits[0]
    appointments = sorted(
        (a for a in plan.appointments if a.visit_id == visit_id), key=lambda a: (a.start, a.end, a.id)
    )
    if not appointments:
        raise ValueError(f"visit {visit_id!r} has no appointments")
    for a in appointments:
        london_time(a.start), london_time(a.end)
    return _Visit(
        visit=visit,
        site=_index(scenario.sites, "site")(visit.site_id),
        patient=_index(scenario.patients, "patient")(visit.patient_id),
        appointments=appointments,
        start=london_time(min(a.start for a in appointments)),
        end=london_time(max(a.end for a in appointments)),
    )


def _is_sensitive(scenario: Scenario, v: _Visit) -> bool:
    """A review of a sensitive type in the visit, or a blood draw taking a marker one of the
    patient's sensitive reviews needs (the draw trip exists because of that clinic)."""
    review_type = _index(scenario.review_types, "review type")
    if any(review_type(t).sensitive for a in v.appointments for t in a.review_type_ids):
        return True
    sensitive_markers = {
        m
        for due in v.patient.due_reviews
        if review_type(due.review_type_id).sensitive
        for m in review_type(due.review_type_id).blood_marker_ids
    }
    return any(
        m in sensitive_markers for a in v.appointments if a.kind == "blood_draw" for m in a.blood_marker_ids
    )


def is_sensitive_visit(scenario: Scenario, plan: Plan, visit_id: str) -> bool:
    """True when the visit includes a review of a type the scenario marks sensitive, or a blood
    draw for one. Such a visit's reviews are never named in an output shared with staff or other
    organisations (feeds, FHIR free text). The patient's own invite is the same neutral invite as
    for any visit: it never names a review anyway (issue 17: suppressing it left the patients who
    find booking hardest uninformed)."""
    return _is_sensitive(scenario, _visit(scenario, plan, visit_id))


def takes_calendar_invites(patient: Patient) -> bool:
    """Whether the patient is sent calendar invites: their `contact_preference` includes
    'calendar' (a patient may choose, say, letters only)."""
    return "calendar" in patient.contact_preference


@dataclass(frozen=True)
class PreviousVisit:
    """What an updated invite replaces: when and where the visit was (Europe/London)."""

    start: dt.datetime
    site_name: str


def previous_visit(scenario: Scenario, plan: Plan, visit_id: str) -> PreviousVisit:
    """The start and site of a visit as an earlier plan had it, for an update to say what
    changed. Raises KeyError for a visit not in `plan`."""
    v = _visit(scenario, plan, visit_id)
    return PreviousVisit(v.start, _one_line(v.site.name))


def review_visit_for(plan: Plan, visit_id: str) -> Visit | None:
    """For a blood-test-only trip: the visit it prepares for, the patient's first visit with a
    review that starts after the trip ends (its results must be back by then). None for a visit
    with reviews, or when no review visit follows (the review went unbooked)."""
    by_id = {a.id: a for a in plan.appointments}
    visit = next((v for v in plan.visits if v.id == visit_id), None)
    if visit is None or any(by_id[a].kind != "blood_draw" for a in visit.appointment_ids):
        return None
    later = [v for v in plan.visits if v.patient_id == visit.patient_id and v.start >= visit.end
             and any(by_id[a].kind != "blood_draw" for a in v.appointment_ids)]
    return min(later, key=lambda v: (v.start, v.id), default=None)


def _fasting_draw(scenario: Scenario, v: _Visit) -> Appointment | None:
    marker = _index(scenario.blood_markers, "blood marker")
    for a in v.appointments:
        if a.kind == "blood_draw" and any(marker(m).fasting for m in a.blood_marker_ids):
            return a
    return None


def _one_line(text: object) -> str:
    """Scenario text that goes inside a sentence or a one-line property (a name, a phone number):
    no control characters, no line breaks (`clean_text`)."""
    return clean_text("" if text is None else str(text), single_line=True)


def _contact(scenario: Scenario, site: Site) -> tuple[str | None, str | None]:
    phone = _one_line(site.phone) or _one_line(scenario.invites.contact_phone)
    return phone or None, _one_line(scenario.invites.rebook_url) or None


def _how_to_reach(scenario: Scenario, site: Site) -> str:
    phone, url = _contact(scenario, site)
    how = ([f"call {phone}"] if phone else []) + ([f"go to {url}"] if url else [])
    return " or ".join(how) if how else "contact your GP practice"


def _roles_and_names(scenario: Scenario, a: Appointment) -> tuple[list, list[str] | None]:
    clinician = _index(scenario.clinicians, "clinician")
    staff: list[Clinician] = [clinician(c) for c in a.clinician_ids]
    names = [_one_line(c.name) for c in staff] if scenario.invites.show_clinician_names else None
    return [c.role for c in staff], names


def _only_draws(v: _Visit) -> bool:
    return all(a.kind == "blood_draw" for a in v.appointments)


def _summary(v: _Visit, previous: PreviousVisit | None = None) -> str:
    if previous is not None:
        return "Changed: " + _summary(v)
    if _only_draws(v):
        return f"Your blood test at {_one_line(v.site.name)}"
    return f"Your health check-up visit at {_one_line(v.site.name)}"


def _location(site: Site) -> str:
    """Site name and address on one line (LOCATION has no line breaks): the address's lines are
    joined with commas."""
    name = _one_line(site.name)
    address = clean_text(site.address, single_line=True, join=", ").strip()
    if address.lower().startswith(name.strip().lower()):
        return address
    return f"{name}, {address}" if address else name


# ---------------------------------------------------------------------------------------------
# Plain-English text for the patient


def _what_changed(v: _Visit, previous: PreviousVisit) -> str:
    """One sentence naming what moved: the date, the time, the place, or only the steps."""
    old_when = f"{wording.long_date(previous.start.date())} at {wording.clock(previous.start)}"
    new_when = f"{wording.long_date(v.start.date())} at {wording.clock(v.start)}"
    place = _one_line(v.site.name)
    if previous.start != v.start and previous.site_name != place:
        return (f"Your visit has changed: it was on {old_when} at {previous.site_name}; it is now on "
                f"{new_when} at {place}.")
    if previous.start != v.start:
        return f"Your visit has changed: it was on {old_when}; it is now on {new_when}."
    if previous.site_name != place:
        return f"Your visit has moved from {previous.site_name} to {place}; the date and time are the same."
    return "The appointments in your visit have changed; the date and start time are the same."


def visit_steps(scenario: Scenario, plan: Plan, visit_id: str) -> list[str]:
    """What happens at a visit, a line per appointment in time order, clinicians by role only
    (never by name, whatever the invite settings): "9:10am: blood test with a practice nurse",
    "9:20am: appointment with the same practice nurse (about 30 minutes)". For SMS and letters.
    KeyError for a visit not in the plan."""
    return _steps(scenario, _visit(scenario, plan, visit_id), names=False)


def _steps(scenario: Scenario, v: _Visit, names: bool | None = None) -> list[str]:
    """A line per appointment. A clinician already met earlier in the visit is 'the same GP', so
    one person seen twice does not read as two people. Names only when `names` (default: the
    scenario's invites.show_clinician_names)."""
    names = scenario.invites.show_clinician_names if names is None else names
    clinician = _index(scenario.clinicians, "clinician")
    seen: set[str] = set()
    lines = []
    for a in v.appointments:
        at = wording.clock(london_time(a.start))
        length = wording.duration(a.end - a.start)
        if names:
            roles, shown = _roles_and_names(scenario, a)
            who = wording.people(roles, shown)
        else:
            fresh = [clinician(c).role for c in a.clinician_ids if c not in seen]
            again = [f"the same {wording.ROLE_NOUNS[clinician(c).role][0]}" for c in a.clinician_ids if c in seen]
            who = wording.join_and(([wording.people(fresh)] if fresh else []) + again)
        seen.update(a.clinician_ids)
        if a.kind == "blood_draw":
            lines.append(f"{at}: blood test with {who}")
        elif a.kind == "joint_review":
            lines.append(f"{at}: one appointment with {who} together (about {length})")
        else:
            lines.append(f"{at}: appointment with {who} (about {length})")
    return lines


def _description(scenario: Scenario, v: _Visit, reference: str, review: _Visit | None = None,
                 previous: PreviousVisit | None = None) -> str:
    phone, _ = _contact(scenario, v.site)
    draw = _fasting_draw(scenario, v)
    lines = [_what_changed(v, previous), ""] if previous is not None else []
    lines += [
        (f"When: {wording.long_date(v.start.date())}. Please arrive a few minutes before "
         f"{wording.clock(v.start)}, the time of your first appointment."),
        (f"How long: allow about {wording.duration(v.end - v.start)}; you should be finished by "
         f"{wording.clock(v.end)}."),
        f"Where: {_location(v.site)}",
        "",
        "What happens",
        *(f"- {step}" for step in _steps(scenario, v)),
    ]
    if not _only_draws(v) and any(a.kind == "blood_draw" for a in v.appointments):
        lines.append("Your blood test comes first, so one needle covers everything.")
    elif _only_draws(v) and review is not None:
        lines.append(
            "This is a short visit for a blood test, so the results are ready in time for your "
            f"check-up visit on {wording.long_date(review.start.date())} at {wording.clock(review.start)} "
            f"at {_one_line(review.site.name)}. That visit has its own invitation."
        )
    elif _only_draws(v):
        lines.append(
            "This is a short visit for a blood test, so the results are ready in time for your "
            "check-up appointment."
        )
    if draw is not None:
        test_at = london_time(draw.start)
        from_time = (test_at.astimezone(UTC) - dt.timedelta(hours=FASTING_HOURS)).astimezone(LONDON)
        lines += [
            "",
            "Fasting",
            (f"Your blood test needs you to fast. Please have nothing to eat or drink except water "
             f"for {FASTING_HOURS} hours before {wording.clock(test_at)}, that is from "
             f"{wording.clock(from_time)} the evening before, unless you have been told otherwise. "
             "Keep drinking water."),
            "If you are not sure whether to take any of your medicines while fasting, "
            + (f"call {phone} before the day." if phone else "ask your practice before the day."),
        ]
    lines += [
        "",
        "Please bring",
        "- your medicines, or an up-to-date list of them",
        "- your glasses and hearing aids, if you use them",
        "- any questions you want to ask",
        "",
        "To cancel or rebook",
        (f"If you cannot come or need another time, please {_how_to_reach(scenario, v.site)} as "
         f"soon as you can, so someone else can have this time. Your booking reference is "
         f"{reference}."),
    ]
    support = _support(v.patient)
    if support:
        lines += ["", "Help at your visit", *support]
    return "\n".join(lines)


def _support(patient: Patient) -> list[str]:
    needs = patient.needs
    lines = []
    if needs.interpreter_language:
        lines.append(
            f"- We have noted that you need an interpreter for {_one_line(needs.interpreter_language).strip()}. "
            "Please tell us if this has changed."
        )
    if needs.wheelchair:
        lines.append("- All your appointments are in rooms with wheelchair access.")
    if needs.carer_attending:
        lines.append("- There is room for your carer or a relative to come in with you.")
    if needs.extra_time_factor > 1.0:
        lines.append("- Extra time has been allowed for your appointments.")
    return lines


def _cancel_description(scenario: Scenario, v: _Visit, reference: str) -> str:
    how_text = _how_to_reach(scenario, v.site)
    return "\n".join(
        [
            (f"This visit has been cancelled: {wording.long_date(v.start.date())} at "
             f"{wording.clock(v.start)}, {_location(v.site)}."),
            "If you have been sent a new invitation, that one still stands.",
            (f"To ask about this or to book again, please {how_text}. "
             f"Your booking reference was {reference}."),
        ]
    )


# ---------------------------------------------------------------------------------------------
# iCalendar building blocks


def _stamp(dtstamp: dt.datetime | None) -> dt.datetime:
    if dtstamp is None:
        dtstamp = dt.datetime.now(UTC)
    if dtstamp.tzinfo is None or dtstamp.utcoffset() is None:
        raise ValueError("dtstamp must be timezone-aware")
    return dtstamp.astimezone(UTC).replace(microsecond=0)


def _calendar(method: str | None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    cal.add_component(london_vtimezone())
    return cal


def _mailbox(address: str, what: str) -> str:
    bare = address.strip()
    if bare.lower().startswith("mailto:"):
        bare = bare[len("mailto:"):]
    if not _MAILBOX.match(bare):
        raise ValueError(f"{what} {address!r} is not an email address")
    return f"mailto:{bare}"


def _event(identity: EventIdentity, start: dt.datetime, end: dt.datetime, stamp: dt.datetime) -> Event:
    event = Event()
    event.add("uid", identity.uid)
    event.add("sequence", identity.sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", london_time(start))
    event.add("dtend", london_time(end))
    return event


def _people(event: Event, organiser: str, attendee: str, *, rsvp: bool) -> None:
    event.add("organizer", vCalAddress(_mailbox(organiser, "organiser")))
    person = vCalAddress(_mailbox(attendee, "attendee"))
    person.params["CUTYPE"] = "INDIVIDUAL"
    person.params["ROLE"] = "REQ-PARTICIPANT"
    person.params["PARTSTAT"] = "NEEDS-ACTION"
    person.params["RSVP"] = "TRUE" if rsvp else "FALSE"
    event.add("attendee", person)


def _alarm(trigger: dt.timedelta | dt.datetime, text: str) -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", Line(text))
    if isinstance(trigger, dt.datetime):
        alarm.add("trigger", trigger.astimezone(UTC), parameters={"VALUE": "DATE-TIME"})
    else:
        alarm.add("trigger", trigger)
    return alarm


def _fasting_reminder(scenario: Scenario, draw: Appointment) -> dt.datetime:
    """The evening before the draw at the scenario's reminder time, local time, as UTC."""
    day_before = london_time(draw.start).date() - dt.timedelta(days=1)
    local = dt.datetime.combine(day_before, scenario.invites.fasting_reminder_time, LONDON)
    return local.astimezone(UTC)


def _geo(event: Event, site: Site) -> None:
    if site.latitude is not None and site.longitude is not None:
        event.add("geo", (site.latitude, site.longitude))


# ---------------------------------------------------------------------------------------------
# Patient invites


def _review_for(scenario: Scenario, plan: Plan, v: _Visit) -> _Visit | None:
    review = review_visit_for(plan, v.visit.id)
    return _visit(scenario, plan, review.id) if review is not None else None


def _request_calendar(
    scenario: Scenario, plan: Plan, v: _Visit, identity: EventIdentity, organiser: str, attendee: str,
    stamp: dt.datetime, previous: PreviousVisit | None = None,
) -> Calendar:
    cal = _calendar("REQUEST")
    event = _event(identity, v.start, v.end, stamp)
    summary = _summary(v, previous)
    event.add("summary", Line(summary))
    description = _description(scenario, v, identity.reference, _review_for(scenario, plan, v), previous)
    event.add("description", Text(description))
    event.add("location", Line(_location(v.site)))
    _geo(event, v.site)
    event.add("status", "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("class", "PRIVATE")
    _people(event, organiser, attendee, rsvp=False)
    when = f"{wording.short_date(v.start.date())} at {wording.clock(v.start)}"
    plain = _summary(v)
    event.add_component(_alarm(REMINDERS[0], f"In a week: {plain}, {when}."))
    event.add_component(_alarm(REMINDERS[1], f"Tomorrow: {plain}, {when}."))
    draw = _fasting_draw(scenario, v)
    if draw is not None:
        test_at = wording.clock(london_time(draw.start))
        event.add_component(
            _alarm(
                _fasting_reminder(scenario, draw),
                f"Your blood test tomorrow at {test_at} needs you to fast: nothing to eat or "
                f"drink except water from {FASTING_HOURS} hours before, unless you have been "
                "told otherwise.",
            )
        )
    cal.add_component(event)
    return cal


def patient_request(
    scenario: Scenario,
    plan: Plan,
    visit_id: str,
    identity: EventIdentity,
    *,
    organiser: str,
    attendee: str,
    dtstamp: dt.datetime | None = None,
    previous: PreviousVisit | None = None,
) -> bytes:
    """METHOD:REQUEST for one visit: one VEVENT from the first appointment's start to the last
    one's end, the patient's mailbox (`attendee`) as the only attendee.

    Send SEQUENCE 0 first; a changed visit goes out again with the same UID and SEQUENCE + 1,
    with `previous` (where and when it was, `previous_visit`) so its subject starts "Changed:"
    and its first line says what changed. A visit with a sensitive review gets the same neutral
    invite as any other. Raises KeyError for a visit not in the plan.
    """
    v = _visit(scenario, plan, visit_id)
    return serialise(_request_calendar(scenario, plan, v, identity, organiser, attendee, _stamp(dtstamp), previous))


def patient_cancel(
    scenario: Scenario,
    plan: Plan,
    visit_id: str,
    identity: EventIdentity,
    *,
    organiser: str,
    attendee: str,
    dtstamp: dt.datetime | None = None,
) -> bytes:
    """METHOD:CANCEL for a visit already sent: same UID, a SEQUENCE above the last one sent,
    STATUS:CANCELLED, no alarms. `plan` is the plan version the visit was in."""
    if identity.sequence < 1:
        raise ValueError("a cancel follows a request, so its SEQUENCE is at least 1")
    v = _visit(scenario, plan, visit_id)
    cal = _calendar("CANCEL")
    event = _event(identity, v.start, v.end, _stamp(dtstamp))
    event.add("summary", Line(f"Cancelled: {_summary(v)}"))
    event.add("description", Text(_cancel_description(scenario, v, identity.reference)))
    event.add("location", Line(_location(v.site)))
    event.add("status", "CANCELLED")
    event.add("transp", "TRANSPARENT")
    event.add("class", "PRIVATE")
    _people(event, organiser, attendee, rsvp=False)
    cal.add_component(event)
    return serialise(cal)


def invite_fingerprint(scenario: Scenario, plan: Plan, visit_id: str) -> str:
    """A digest of everything a patient's invite for this visit shows (times, place, steps, roles,
    fasting, contact details, support, alarms), independent of identity and DTSTAMP.

    Equal fingerprints across plan versions: the visit is unchanged and keeps its SEQUENCE.
    Different: send an update with SEQUENCE + 1. Works for sensitive visits too.
    """
    v = _visit(scenario, plan, visit_id)
    placeholder = EventIdentity("fingerprint@onevisit", 0, "OV-REFERENCE")
    stamp = dt.datetime(2000, 1, 1, tzinfo=UTC)
    cal = _request_calendar(scenario, plan, v, placeholder, "organiser@onevisit", "patient@onevisit", stamp)
    return hashlib.sha256(serialise(cal)).hexdigest()


# ---------------------------------------------------------------------------------------------
# Feeds


def _room_label(room: Room) -> str:
    return _one_line(room.name).strip() or room.id


def _feed(
    scenario: Scenario,
    plan: Plan,
    mine: list[Appointment],
    identities: Mapping[str, EventIdentity],
    *,
    calendar_name: str,
    dtstamp: dt.datetime | None,
    rooms_in_summary: bool,
) -> bytes:
    room = _index(scenario.rooms, "room")
    site = _index(scenario.sites, "site")
    stamp = _stamp(dtstamp)
    cal = _calendar(None)
    cal.add("name", Line(calendar_name))
    cal.add("x-wr-calname", Line(calendar_name))
    cal.add("refresh-interval", vDuration(REFRESH), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(REFRESH))
    by_visit: dict[str, list[Appointment]] = {}
    for a in sorted(mine, key=lambda a: (a.start, a.end, a.id)):
        by_visit.setdefault(a.visit_id, []).append(a)
    for visit_id, items in by_visit.items():
        if visit_id not in identities:
            raise KeyError(f"no stored identity (UID, SEQUENCE, reference) for visit {visit_id!r}")
        identity = identities[visit_id]
        start, end = min(a.start for a in items), max(a.end for a in items)
        kinds = list(dict.fromkeys(wording.KIND_LABELS[a.kind] for a in items))
        rooms = list(dict.fromkeys(_room_label(room(a.room_id)) for a in items))
        places = list(dict.fromkeys(f"{_room_label(room(a.room_id))}, {_one_line(site(a.site_id).name)}"
                                    for a in items))
        summary = f"{identity.reference} · {' + '.join(kinds)}"
        if rooms_in_summary:
            summary += f", {', '.join(rooms)}"
        steps = [
            f"{wording.clock(london_time(a.start))} to {wording.clock(london_time(a.end))}: "
            f"{wording.KIND_LABELS[a.kind]}, {_room_label(room(a.room_id))}"
            for a in items
        ]
        event = _event(identity, start, end, stamp)
        event.add("summary", Line(summary))
        event.add("description", Text("\n".join([f"Booking {identity.reference}", *steps])))
        event.add("location", Line("; ".join(places)))
        event.add("status", "CONFIRMED")
        event.add("transp", "OPAQUE")
        cal.add_component(event)
    return serialise(cal)


def clinician_feed(
    scenario: Scenario,
    plan: Plan,
    clinician_id: str,
    identities: Mapping[str, EventIdentity],
    *,
    calendar_name: str,
    dtstamp: dt.datetime | None = None,
) -> bytes:
    """A subscribable calendar of one clinician's appointments: one event per visit they take
    part in (first start to last end of their own appointments), same UID as the patient invite,
    showing only the booking reference, what kind of appointment and the room."""
    _index(scenario.clinicians, "clinician")(clinician_id)
    mine = [a for a in plan.appointments if clinician_id in a.clinician_ids]
    return _feed(
        scenario, plan, mine, identities,
        calendar_name=calendar_name, dtstamp=dtstamp, rooms_in_summary=True,
    )


def room_feed(
    scenario: Scenario,
    plan: Plan,
    room_id: str,
    identities: Mapping[str, EventIdentity],
    *,
    calendar_name: str,
    dtstamp: dt.datetime | None = None,
) -> bytes:
    """A subscribable calendar of one room's bookings, one event per visit using the room."""
    _index(scenario.rooms, "room")(room_id)
    mine = [a for a in plan.appointments if a.room_id == room_id]
    return _feed(
        scenario, plan, mine, identities,
        calendar_name=calendar_name, dtstamp=dtstamp, rooms_in_summary=False,
    )
