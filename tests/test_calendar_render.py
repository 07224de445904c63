"""Calendar output (issue 5): patient invites, updates and cancels, clinician and room feeds, the
invite email. Plans come from the real solver through the independent checker; every kind of
output is read back by icalendar, vobject, the strict `ical` and Mozilla's ical.js (node), which
must agree."""

from __future__ import annotations

import copy
import datetime as dt
import email
import email.policy
import re
from collections import defaultdict
from zoneinfo import ZoneInfo

import icalendar
import pytest
import vobject

from api.calendar import (
    EventIdentity,
    clinician_feed,
    invite_email,
    invite_fingerprint,
    is_sensitive_visit,
    london_vtimezone,
    new_reference,
    new_uid,
    patient_cancel,
    patient_request,
    previous_visit,
    room_feed,
    wording,
)
from api.calendar.ics import fold, unfold
from api.calendar.render import REFERENCE_ALPHABET, UID_DOMAIN
from api.calendar.timezone import london_time, rule_offset
from scheduler.domain import Scenario
from scheduler.plan import Plan
from tests.builders import BASE, patient, scenario, session, solve_checked
from tests.calendar_parsers import ical_js_runner, read, read_all

UTC = dt.UTC
LONDON = ZoneInfo("Europe/London")
FAST = {"time_limit_seconds": 5, "workers": 2, "seed": 11}
ORGANISER = "bookings@surgery.example.nhs.uk"
MAILBOX = "patient.mailbox@example.org"
STAMP = dt.datetime(2027, 2, 1, 9, 15, 30, tzinfo=UTC)


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture(scope="session")
def ical_js():
    try:
        return ical_js_runner()
    except RuntimeError as problem:
        pytest.fail(str(problem), pytrace=False)


@pytest.fixture
def parse(ical_js, tmp_path):
    """Parse outputs with all four parsers, insist they agree, return the common view."""

    return lambda outputs: read_all(ical_js, tmp_path, outputs)


def utc(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lines(data: bytes) -> list[str]:
    return [line.decode("utf-8") for line in unfold(data)]


def identity(sequence: int = 0, reference: str | None = None, uid: str | None = None) -> EventIdentity:
    return EventIdentity(uid or new_uid(), sequence, reference or new_reference())


def identities_for(plan: Plan) -> dict[str, EventIdentity]:
    return {v.id: identity() for v in plan.visits}


def visits_of(plan: Plan, pid: str, purpose: str | None = None):
    return [v for v in plan.visits if v.patient_id == pid and (purpose is None or v.purpose == purpose)]


def appointments_in(plan: Plan, visit_id: str):
    return sorted((a for a in plan.appointments if a.visit_id == visit_id), key=lambda a: a.start)


def request(s, plan, visit_id, ident, **kw) -> bytes:
    return patient_request(s, plan, visit_id, ident, organiser=ORGANISER, attendee=MAILBOX, dtstamp=STAMP, **kw)


ROOMS = [
    {"id": "treatment", "site_id": "surgery", "name": "Treatment room",
     "capabilities": ["phlebotomy", "wheelchair_access"]},
    {"id": "nurse-room", "site_id": "surgery", "name": "Room 2",
     "capabilities": ["spirometry", "ecg", "wheelchair_access"]},
    {"id": "consult", "site_id": "surgery", "name": "Room 3", "capabilities": ["wheelchair_access"]},
]
SITE = {"id": "surgery", "name": "Surgery", "address": "1 High St, Town, AB1 2CD",
        "phone": "01234 567890", "latitude": 51.5014, "longitude": -0.1419}


def rich_scenario(gp_day: str = "2027-03-30") -> Scenario:
    """P1: a fasting, point-of-care draw then two reviews in one visit after the March clock
    change, with access needs. P2: results needed first, so a draw trip and a review visit."""
    types = copy.deepcopy(BASE["review_types"])
    next(t for t in types if t["id"] == "hypertension")["blood_marker_ids"] = ["glucose_fasting"]
    markers = copy.deepcopy(BASE["blood_markers"])
    next(m for m in markers if m["id"] == "glucose_fasting")["point_of_care"] = True
    sessions = [session("nurse", "2027-03-30"), session("gp", gp_day), session("hca", "2027-03-23"),
                session("nurse", "2027-03-31")]
    needs = {"interpreter_language": "Polish", "wheelchair": True, "carer_attending": True,
             "extra_time_factor": 1.5}
    patients = [patient("P1", "hypertension", "frailty", first="2027-03-30", last="2027-03-31", needs=needs),
                patient("P2", "diabetes")]
    return scenario(
        sessions, patients, review_types=types, blood_markers=markers, sites=[SITE], rooms=ROOMS,
        solver=FAST, invites={"rebook_url": "https://book.example.nhs.uk/r", "contact_phone": "0300 000 0000"},
    )


@pytest.fixture(scope="module")
def rich():
    s = rich_scenario()
    return s, solve_checked(s)


# --- patient invites -------------------------------------------------------------------------


@pytest.mark.hazard("HAZ-002", "HAZ-007", "HAZ-018")
def test_patient_request_is_one_event_for_the_whole_visit(rich, parse):
    s, plan = rich
    [visit] = visits_of(plan, "P1")
    steps = appointments_in(plan, visit.id)
    assert steps[0].kind == "blood_draw" and len(steps) == 3
    ident = identity(reference="OV-7K3P9Q")
    ics = request(s, plan, visit.id, ident)
    view = parse({"request": ics})["request"]

    assert view["method"] == "REQUEST"
    [event] = view["events"]
    assert event["uid"] == ident.uid and event["sequence"] == 0
    assert event["start"] == utc(steps[0].start) and event["end"] == utc(max(a.end for a in steps))
    assert event["tzid"] == "Europe/London" and event["dtstamp"] == "2027-02-01T09:15:30Z"
    assert event["summary"] == "Your health check-up visit at Surgery"
    assert event["location"] == "Surgery, 1 High St, Town, AB1 2CD"
    assert event["status"] == "CONFIRMED"
    assert event["organizer"] == f"mailto:{ORGANISER}"
    assert event["attendees"] == [f"mailto:{MAILBOX}"]
    # 7 days and 1 day before, and 19:00 local the evening before the fasting draw (29 March is
    # already British Summer Time, so 18:00 UTC).
    evening = dt.datetime.combine(steps[0].start.date() - dt.timedelta(days=1), dt.time(19), LONDON)
    assert event["alarms"] == ["-P7D", "-P1D", utc(evening)]
    assert utc(evening) == f"{evening.date().isoformat()}T18:00:00Z"

    raw = "\n".join(lines(ics))
    [attendee] = [line for line in lines(ics) if line.startswith("ATTENDEE")]
    assert attendee == ("ATTENDEE;CUTYPE=INDIVIDUAL;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;"
                        f"RSVP=FALSE:mailto:{MAILBOX}")
    assert "CN=" not in raw
    assert "GEO:51.5014;-0.1419" in raw and "CLASS:PRIVATE" in raw
    assert raw.count("BEGIN:VEVENT") == 1 and raw.count("BEGIN:VALARM") == 3
    assert "TRIGGER;VALUE=DATE-TIME:" in raw

    text = event["description"]
    order = ["When: Tuesday 30 March 2027", "How long: allow about", "What happens",
             ": blood test with a practice nurse", "appointment with a GP", "Fasting",
             "Please bring", "To cancel or rebook", "Help at your visit"]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert f"before {wording.clock(steps[0].start.astimezone(LONDON))}, the time of your first" in text
    for expected in ("your medicines, or an up-to-date list of them", "glasses and hearing aids",
                     "any questions", "call 01234 567890 or go to https://book.example.nhs.uk/r",
                     "OV-7K3P9Q", "interpreter for Polish", "wheelchair access", "carer",
                     "Extra time", "nothing to eat or drink except water"):
        assert expected in text
    assert "0300 000 0000" not in text  # the site's own number wins over the scenario's


def test_blood_draw_trip_gets_its_own_invite(rich, parse):
    s, plan = rich
    [trip] = visits_of(plan, "P2", "blood_draw_trip")
    [review_visit] = visits_of(plan, "P2", "consolidated")
    trip_id, review_id = identity(), identity()
    views = parse({"trip": request(s, plan, trip.id, trip_id),
                   "review": request(s, plan, review_visit.id, review_id)})
    [trip_event], [review_event] = views["trip"]["events"], views["review"]["events"]
    assert trip_event["uid"] == trip_id.uid != review_event["uid"] == review_id.uid
    assert trip_event["summary"] == "Your blood test at Surgery"
    assert "short visit for a blood test" in trip_event["description"]
    assert trip_event["start"] < review_event["start"]
    assert trip_event["alarms"] == ["-P7D", "-P1D"]  # no fasting marker in this draw
    assert "Fasting" not in trip_event["description"]


@pytest.mark.hazard("HAZ-014")
def test_update_keeps_the_uid_raises_sequence_and_refreshes_dtstamp(rich, parse):
    s, plan = rich
    moved_s = rich_scenario(gp_day="2027-03-31")
    moved = solve_checked(moved_s)
    [before], [after] = visits_of(plan, "P1"), visits_of(moved, "P1")
    # Visit ids are stable for the same booking, so the service finds the visit it already sent.
    assert before.id == after.id and before.date != after.date
    assert invite_fingerprint(s, plan, before.id) != invite_fingerprint(moved_s, moved, after.id)

    first = identity(0, "OV-7K3P9Q")
    update = EventIdentity(first.uid, 1, first.reference)
    later = STAMP + dt.timedelta(days=3)
    views = parse({
        "request": request(s, plan, before.id, first),
        "update": patient_request(moved_s, moved, after.id, update, organiser=ORGANISER,
                                  attendee=MAILBOX, dtstamp=later, previous=previous_visit(s, plan, before.id)),
    })
    [old], [new] = views["request"]["events"], views["update"]["events"]
    assert new["uid"] == old["uid"] and (old["sequence"], new["sequence"]) == (0, 1)
    # The update says it is one, and what changed: the old and the new date and time.
    assert new["summary"] == "Changed: " + old["summary"]
    was, now = london_time(before.start), london_time(after.start)
    assert new["description"].startswith(
        f"Your visit has changed: it was on {wording.long_date(was.date())} at {wording.clock(was)}; "
        f"it is now on {wording.long_date(now.date())} at {wording.clock(now)}.")
    assert new["start"] == utc(after.start) != old["start"]
    assert new["dtstamp"] == utc(later) > old["dtstamp"]
    assert views["update"]["method"] == "REQUEST"

    # Left to itself, DTSTAMP is now.
    fresh = read(patient_request(moved_s, moved, after.id, update, organiser=ORGANISER,
                                 attendee=MAILBOX))["events"][0]["dtstamp"]
    age = dt.datetime.now(UTC) - dt.datetime.strptime(fresh, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert dt.timedelta(0) <= age < dt.timedelta(seconds=30)


def test_one_clinician_seen_twice_reads_as_one_person():
    """"a practice nurse ... a practice nurse" read as two people when it was one: a clinician
    met again later in the visit is "the same practice nurse"."""
    types = copy.deepcopy(BASE["review_types"])
    next(t for t in types if t["id"] == "hypertension")["blood_marker_ids"] = ["glucose_fasting"]
    markers = copy.deepcopy(BASE["blood_markers"])
    next(m for m in markers if m["id"] == "glucose_fasting")["point_of_care"] = True
    s = scenario([session("nurse", "2027-03-23")], [patient("P1", "hypertension")], review_types=types,
                 blood_markers=markers, solver=FAST)
    plan = solve_checked(s)
    [visit] = visits_of(plan, "P1")
    steps = appointments_in(plan, visit.id)
    assert [a.kind for a in steps] == ["blood_draw", "review"]
    assert steps[0].clinician_ids == steps[1].clinician_ids == ["nurse"]
    text = read(request(s, plan, visit.id, identity()))["events"][0]["description"]
    assert "blood test with a practice nurse" in text
    assert "appointment with the same practice nurse" in text
    assert text.count("a practice nurse") == 1


def test_fingerprint_is_what_the_patient_sees_not_identity_or_time_of_sending(rich):
    s, plan = rich
    [visit] = visits_of(plan, "P1")
    again = solve_checked(rich_scenario())
    assert invite_fingerprint(s, plan, visit.id) == invite_fingerprint(s, again, visit.id)
    new_phone = s.model_copy(update={"sites": [s.sites[0].model_copy(update={"phone": "01234 000000"})]})
    assert invite_fingerprint(s, plan, visit.id) != invite_fingerprint(new_phone, plan, visit.id)


@pytest.mark.hazard("HAZ-005")
def test_cancel_has_the_same_uid_a_higher_sequence_and_no_alarms(rich, parse):
    s, plan = rich
    [visit] = visits_of(plan, "P1")
    sent = identity(0, "OV-7K3P9Q")
    cancel = EventIdentity(sent.uid, 1, sent.reference)
    ics = patient_cancel(s, plan, visit.id, cancel, organiser=ORGANISER, attendee=MAILBOX, dtstamp=STAMP)
    views = parse({"request": request(s, plan, visit.id, sent), "cancel": ics})
    assert views["cancel"]["method"] == "CANCEL"
    [event] = views["cancel"]["events"]
    assert event["uid"] == views["request"]["events"][0]["uid"] and event["sequence"] == 1
    assert event["status"] == "CANCELLED" and event["alarms"] == []
    assert event["attendees"] == [f"mailto:{MAILBOX}"] and event["organizer"] == f"mailto:{ORGANISER}"
    assert event["start"] == utc(visit.start)
    assert "cancelled" in event["description"] and "OV-7K3P9Q" in event["description"]
    assert b"VALARM" not in ics
    with pytest.raises(ValueError, match="SEQUENCE"):
        patient_cancel(s, plan, visit.id, sent, organiser=ORGANISER, attendee=MAILBOX)


def test_organiser_and_attendee_must_be_mailboxes(rich):
    s, plan = rich
    [visit] = visits_of(plan, "P1")
    for bad in ("not an address", "a@b.org\r\nATTENDEE:mailto:x@y.org", "x@y.org;CN=Someone"):
        with pytest.raises(ValueError):
            patient_request(s, plan, visit.id, identity(), organiser=ORGANISER, attendee=bad)
    ics = patient_request(s, plan, visit.id, identity(), organiser=f"mailto:{ORGANISER}", attendee=MAILBOX)
    assert f"ORGANIZER:mailto:{ORGANISER}" in lines(ics)


# --- feeds -----------------------------------------------------------------------------------

FEED_SUMMARY = re.compile(r"^OV-[A-Z0-9]+ · (blood test|review|joint review)( \+ (blood test|review|joint review))*")


def test_clinician_feeds_show_one_event_per_visit_with_the_invite_uid(rich, parse):
    s, plan = rich
    ids = identities_for(plan)
    feeds = {c.id: clinician_feed(s, plan, c.id, ids, calendar_name=f"OneVisit · {c.role}", dtstamp=STAMP)
             for c in s.clinicians}
    [p1_visit] = visits_of(plan, "P1")
    invite = request(s, plan, p1_visit.id, ids[p1_visit.id])
    views = parse({**feeds, "invite": invite})
    several = 0
    for c in s.clinicians:
        view, raw = views[c.id], lines(feeds[c.id])
        assert view["method"] is None
        assert view["name"] == view["calname"] == f"OneVisit · {c.role}"
        assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H" in raw and "X-PUBLISHED-TTL:PT1H" in raw
        assert not [line for line in raw if line.startswith(("METHOD", "ATTENDEE", "ORGANIZER", "BEGIN:VALARM"))]
        mine = defaultdict(list)
        for a in plan.appointments:
            if c.id in a.clinician_ids:
                mine[a.visit_id].append(a)
        assert len(view["events"]) == len(mine)
        for event in view["events"]:
            [visit_id] = [v for v, i in ids.items() if i.uid == event["uid"]]
            items = mine[visit_id]
            several += len(items) > 1
            assert event["start"] == utc(min(a.start for a in items))
            assert event["end"] == utc(max(a.end for a in items))
            assert event["sequence"] == 0 and event["status"] == "CONFIRMED"
            assert FEED_SUMMARY.match(event["summary"]) and event["summary"].startswith(ids[visit_id].reference)
            assert event["summary"].endswith(", ".join(dict.fromkeys(
                next(r["name"] for r in ROOMS if r["id"] == a.room_id) for a in items)))
            assert event["attendees"] == [] and event["organizer"] is None
    assert several, "some clinician should have two appointments in one visit"
    # The same UID in the patient's invite and in every feed holding the visit.
    invite_uid = views["invite"]["events"][0]["uid"]
    holders = {a_c for a in appointments_in(plan, p1_visit.id) for a_c in a.clinician_ids}
    for c in holders:
        assert invite_uid in {e["uid"] for e in views[c]["events"]}


def test_room_feeds_show_the_reference_and_visit_type_only(rich, parse):
    s, plan = rich
    ids = identities_for(plan)
    feeds = {r.id: room_feed(s, plan, r.id, ids, calendar_name=f"{r.name} bookings", dtstamp=STAMP)
             for r in s.rooms}
    views = parse(feeds)
    for r in s.rooms:
        view = views[r.id]
        assert view["method"] is None and view["name"] == f"{r.name} bookings"
        by_visit = defaultdict(list)
        for a in plan.appointments:
            if a.room_id == r.id:
                by_visit[a.visit_id].append(a)
        assert sorted(e["uid"] for e in view["events"]) == sorted(ids[v].uid for v in by_visit)
        for event in view["events"]:
            [visit_id] = [v for v, i in ids.items() if i.uid == event["uid"]]
            assert re.fullmatch(FEED_SUMMARY.pattern + "$", event["summary"])
            assert event["start"] == utc(min(a.start for a in by_visit[visit_id]))
            assert event["end"] == utc(max(a.end for a in by_visit[visit_id]))
            assert event["location"].endswith("Surgery")


def test_a_joint_consultation_reads_as_one_appointment_with_everyone(parse):
    rooms = [*ROOMS, {"id": "mdt", "site_id": "surgery", "name": "Meeting room", "capacity_people": 6,
                      "capabilities": ["mdt", "wheelchair_access"]}]
    s = scenario([session("gp", "2027-03-22"), session("nurse", "2027-03-22")],
                 [patient("P1", "frailty", "asthma", joint_consultation=True)],
                 rooms=rooms, sites=[SITE], solver=FAST)
    plan = solve_checked(s)
    [joint] = [a for a in plan.appointments if a.kind == "joint_review"]
    ids = identities_for(plan)
    views = parse({
        "invite": request(s, plan, joint.visit_id, ids[joint.visit_id]),
        "gp": clinician_feed(s, plan, "gp", ids, calendar_name="GP", dtstamp=STAMP),
        "room": room_feed(s, plan, "mdt", ids, calendar_name="MDT", dtstamp=STAMP),
    })
    text = views["invite"]["events"][0]["description"]
    assert re.search(r"one appointment with (a GP and a practice nurse|a practice nurse and a GP) together", text)
    reference = ids[joint.visit_id].reference
    assert [e["summary"] for e in views["gp"]["events"]] == [f"{reference} · joint review, Meeting room"]
    assert [e["summary"] for e in views["room"]["events"]] == [f"{reference} · joint review"]


def test_feeds_need_a_stored_identity_and_a_known_subject(rich):
    s, plan = rich
    with pytest.raises(KeyError, match="identity"):
        room_feed(s, plan, "treatment", {}, calendar_name="x")
    with pytest.raises(ValueError):
        clinician_feed(s, plan, "nobody", identities_for(plan), calendar_name="x")
    with pytest.raises(KeyError):
        patient_request(s, plan, "vi-unknown", identity(), organiser=ORGANISER, attendee=MAILBOX)


# --- time zones ------------------------------------------------------------------------------


def forced_scenario(dates: list[str], start: str, end: str) -> Scenario:
    """One 15-minute nurse session per date, exactly one asthma review long: times are forced."""
    sessions = [session("nurse", d, "08:30", "08:45") for d in dates]
    patients = [patient(f"P{i}", "asthma", first=d, last=d) for i, d in enumerate(dates)]
    return scenario(sessions, patients, horizon_start=start, horizon_end=end, solver=FAST)


CLOCK_CASES = {
    # 28 March 2027: clocks go forward; 31 October 2027: back; 2029 is over two years ahead.
    "march": (["2027-03-25", "2027-03-30"], "2027-03-22", "2027-04-02",
              ["2027-03-25T08:30:00Z", "2027-03-30T07:30:00Z"]),
    "october": (["2027-10-29", "2027-11-01"], "2027-10-25", "2027-11-05",
                ["2027-10-29T07:30:00Z", "2027-11-01T08:30:00Z"]),
    "2029": (["2029-07-11", "2029-12-12"], "2029-07-09", "2029-12-14",
             ["2029-07-11T07:30:00Z", "2029-12-12T08:30:00Z"]),
}


@pytest.mark.parametrize("case", CLOCK_CASES)
@pytest.mark.hazard("HAZ-004")
def test_exact_utc_instants_either_side_of_clock_changes_and_years_ahead(case, parse):
    dates, start, end, expected = CLOCK_CASES[case]
    s = forced_scenario(dates, start, end)
    plan = solve_checked(s)
    ids = identities_for(plan)
    outputs = {}
    for i, d in enumerate(dates):
        [visit] = visits_of(plan, f"P{i}")
        outputs[f"request-{d}"] = request(s, plan, visit.id, ids[visit.id])
        cancel = EventIdentity(ids[visit.id].uid, 1, ids[visit.id].reference)
        outputs[f"cancel-{d}"] = patient_cancel(s, plan, visit.id, cancel, organiser=ORGANISER,
                                                attendee=MAILBOX, dtstamp=STAMP)
    outputs["clinician"] = clinician_feed(s, plan, "nurse", ids, calendar_name="Nurse", dtstamp=STAMP)
    rooms = sorted({a.room_id for a in plan.appointments})
    for room in rooms:
        outputs[f"room-{room}"] = room_feed(s, plan, room, ids, calendar_name=room, dtstamp=STAMP)
    views = parse(outputs)
    for d, instant in zip(dates, expected):
        for kind in ("request", "cancel"):
            [event] = views[f"{kind}-{d}"]["events"]
            assert event["start"] == instant
            assert event["end"] == instant[:-6] + "45:00Z"
        # Wall-clock time for the patient is 8:30am whatever the offset.
        assert "before 8:30am" in views[f"request-{d}"]["events"][0]["description"]
    assert sorted(e["start"] for e in views["clinician"]["events"]) == expected
    assert sorted(e["start"] for room in rooms for e in views[f"room-{room}"]["events"]) == expected


def test_ical_js_sees_local_times_through_the_published_rules(ical_js, tmp_path):
    s = forced_scenario(["2029-07-11", "2029-12-12"], "2029-07-09", "2029-12-14")
    plan = solve_checked(s)
    path = tmp_path / "feed.ics"
    path.write_bytes(clinician_feed(s, plan, "nurse", identities_for(plan), calendar_name="N", dtstamp=STAMP))
    [parsed] = ical_js.raw([path])
    assert parsed["timezones"] == [{"tzid": "Europe/London", "rdates": 0, "rrules": [
        "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10"]}]
    assert [(e["dtstart"]["tzid"], e["dtstart"]["local"]) for e in parsed["events"]] == [
        ("Europe/London", "2029-07-11T08:30:00"), ("Europe/London", "2029-12-12T08:30:00")]


def test_vtimezone_is_rule_based_and_agrees_with_the_tz_database():
    tz = london_vtimezone()
    text = tz.to_ical().decode()
    assert "RDATE" not in text
    [daylight] = tz.walk("DAYLIGHT")
    [standard] = tz.walk("STANDARD")
    assert daylight["rrule"].to_ical() == b"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3"
    assert standard["rrule"].to_ical() == b"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10"
    # Two independent readers of the VTIMEZONE (icalendar's own, dateutil's via vobject) and the
    # rule used at render time agree with zoneinfo at and around every transition to 2045.
    from_icalendar = tz.to_tz(lookup_tzid=False)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//t//t//EN")
    cal.add("version", "2.0")
    cal.add_component(tz)
    from_dateutil = vobject.readOne(cal.to_ical().decode()).vtimezone.gettzinfo()
    for year in range(2026, 2046):
        for month in (3, 10):
            transition = max(
                dt.datetime(year, month, day, 1, tzinfo=UTC)
                for day in range(25, 32)
                if dt.date(year, month, day).weekday() == 6
            )
            for minutes in (-90, -1, 0, 1, 90, 60 * 24 * 60):
                instant = transition + dt.timedelta(minutes=minutes)
                want = instant.astimezone(LONDON).utcoffset()
                assert instant.astimezone(from_icalendar).utcoffset() == want, instant
                assert instant.astimezone(from_dateutil).utcoffset() == want, instant
                assert rule_offset(instant) == want, instant


def test_the_clock_change_hour_is_refused():
    for bad in (
        dt.datetime(2027, 3, 28, 1, 30, tzinfo=UTC),  # written as 01:30+00:00: a time that never was
        dt.datetime(2027, 3, 28, 1, 0, tzinfo=LONDON),
        dt.datetime(2027, 10, 31, 1, 30, tzinfo=LONDON),  # happens twice
        dt.datetime(2027, 10, 31, 1, 30, tzinfo=LONDON, fold=1),
        dt.datetime(2027, 10, 31, 0, 30, tzinfo=UTC),  # 01:30 BST, the first of the two
        dt.datetime(2027, 3, 30, 8, 30),  # floating
    ):
        with pytest.raises(ValueError):
            london_time(bad)
    for good in (dt.datetime(2027, 3, 28, 2, 0, tzinfo=LONDON), dt.datetime(2027, 3, 28, 0, 59, tzinfo=LONDON),
                 dt.datetime(2027, 10, 31, 2, 0, tzinfo=LONDON), dt.datetime(2027, 10, 31, 0, 59, tzinfo=LONDON)):
        assert london_time(good).utcoffset() == good.utcoffset()


@pytest.mark.hazard("HAZ-004")
def test_a_plan_booked_in_the_clock_change_hour_is_not_rendered():
    s = forced_scenario(["2027-10-29"], "2027-10-25", "2027-11-05")
    plan = solve_checked(s)
    [a] = plan.appointments
    # Nothing the planner makes: sites open at 08:00. A hand-edited plan must still be refused.
    night = a.model_copy(update={
        "date": dt.date(2027, 10, 31),
        "start": dt.datetime(2027, 10, 31, 1, 15, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "end": dt.datetime(2027, 10, 31, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    })
    edited = plan.model_copy(update={"appointments": [night]})
    with pytest.raises(ValueError, match="clock-change"):
        request(s, edited, a.visit_id, identity())
    with pytest.raises(ValueError, match="clock-change"):
        room_feed(s, edited, a.room_id, identities_for(edited), calendar_name="x")


# --- format ----------------------------------------------------------------------------------


def test_format_crlf_folding_escaping_and_required_properties(rich, parse):
    s, plan = rich
    awkward = "Uned 4\\North; Heol y Bont, Llanfairpwllgwyngyll\nYnys Môn LL61 5UJ — ŵ ŷ 🏥 " + "é" * 40
    site = s.sites[0].model_copy(update={"name": "Canolfan Iechyd Ŵyl", "address": awkward})
    s = s.model_copy(update={"sites": [site]})
    [visit] = visits_of(plan, "P1")
    ident = identity()
    outputs = {
        "request": request(s, plan, visit.id, ident),
        "cancel": patient_cancel(s, plan, visit.id, EventIdentity(ident.uid, 1, ident.reference),
                                 organiser=ORGANISER, attendee=MAILBOX, dtstamp=STAMP),
        "clinician": clinician_feed(s, plan, "gp", identities_for(plan), calendar_name="Feed · Ŵ " * 12),
        "room": room_feed(s, plan, "treatment", identities_for(plan), calendar_name="Treatment room"),
    }
    # LOCATION is one line (docs/calendars.md): the address's own line break becomes ", ".
    expected_location = f"Canolfan Iechyd Ŵyl, {awkward.replace(chr(10), ', ')}"
    views = parse(outputs)  # all four parsers accept every output and agree
    for name, data in outputs.items():
        assert data.endswith(b"\r\n") and b"\r\n" in data
        assert b"\n" not in data.replace(b"\r\n", b""), f"{name}: bare LF"
        assert b"\r" not in data.replace(b"\r\n", b""), f"{name}: bare CR"
        physical = data.split(b"\r\n")[:-1]
        for line in physical:
            assert len(line) <= 75, f"{name}: {len(line)} octets: {line!r}"
            line.decode("utf-8")  # never a split character
        assert any(line.startswith(b" ") for line in physical), "nothing was folded"
        logical = lines(data)
        assert logical[:3] == ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//OneVisit//Consolidated visits 1.0//EN"]
        assert all(line.endswith("Z") for line in logical if line.startswith("DTSTAMP"))
        # No floating times: outside the VTIMEZONE (whose observance starts are local by
        # definition) every DTSTART/DTEND names the zone or is UTC.
        inside_vtimezone = False
        for line in logical:
            inside_vtimezone = {"BEGIN:VTIMEZONE": True, "END:VTIMEZONE": False}.get(line, inside_vtimezone)
            if line.startswith(("DTSTART", "DTEND")) and not inside_vtimezone:
                assert re.fullmatch(r"(DTSTART|DTEND)(;TZID=Europe/London:\d{8}T\d{6}|:\d{8}T\d{6}Z)", line), line
    # TEXT escaping, exactly: backslash, semicolon, comma, newline.
    [location] = [line for line in lines(outputs["request"]) if line.startswith("LOCATION:")]
    assert location == (
        "LOCATION:Canolfan Iechyd Ŵyl\\, Uned 4\\\\North\\; Heol y Bont\\, Llanfairpwllgwyngyll\\, "
        "Ynys Môn LL61 5UJ — ŵ ŷ 🏥 " + "é" * 40
    )
    description = next(line for line in lines(outputs["request"]) if line.startswith("DESCRIPTION:When"))
    assert "\\nWhere: Canolfan Iechyd Ŵyl\\, Uned 4\\\\North\\; " in description
    # Every parser reads the original text back, icalendar 7 included (6.x did not read the
    # escaped "\\North" back as written).
    assert views["request"]["events"][0]["location"] == expected_location
    assert vobject.readOne(outputs["request"].decode()).vevent.location.value == expected_location
    assert views["clinician"]["calname"] == "Feed · Ŵ " * 12


def test_fold_never_splits_a_character_and_unfolds_to_the_same_line():
    for tail in ("a" * 200, "é" * 100, "😀" * 60, "aé😀" * 40, "x" * 74 + "😀" * 3):
        line = ("DESCRIPTION:" + tail).encode()
        folded = fold(line)
        pieces = folded.split(b"\r\n")
        assert all(len(p) <= 75 for p in pieces)
        assert all(p.startswith(b" ") for p in pieces[1:])
        for p in pieces:
            p.decode("utf-8")
        assert unfold(folded + b"\r\n") == [line]


@pytest.mark.hazard("HAZ-006")
def test_wording_is_nhs_style_and_never_names_a_specialty():
    assert [wording.clock(dt.time(h, m)) for h, m in ((9, 0), (9, 30), (12, 0), (14, 5), (0, 0))] == [
        "9am", "9:30am", "midday", "2:05pm", "midnight"]
    assert wording.long_date(dt.date(2029, 12, 12)) == "Wednesday 12 December 2029"
    assert [wording.duration(dt.timedelta(minutes=m)) for m in (1, 40, 60, 65, 130)] == [
        "1 minute", "40 minutes", "1 hour", "1 hour 5 minutes", "2 hours 10 minutes"]
    assert wording.people(["consultant_renal", "consultant_cardiology", "gp"]) == "two hospital specialists and a GP"
    assert wording.people(["gp", "practice_nurse"], ["Dr Rao", "Sam Lee"]) == "Dr Rao (a GP) and Sam Lee (a practice nurse)"
    assert wording.people(["gp"], [""]) == "a GP"  # no name on file: the role
    labels = " ".join(noun for noun, _ in wording.ROLE_NOUNS.values()).lower()
    for specialty in ("diabet", "respir", "heart", "cardio", "renal", "elderly", "mental"):
        assert specialty not in labels


# --- privacy ---------------------------------------------------------------------------------


def privacy_scenario(show_names: bool = False) -> Scenario:
    """Everything a calendar must never carry: condition-named review types and markers, ids that
    look like NHS numbers, clinician names, telling reasons and a sensitive clinic."""
    return Scenario.model_validate({
        "name": "Diabetes renal MDT pilot 943 476 5919",
        "description": "Jane Doe DOB 01/02/1950 NHS 943 476 5919",
        "horizon_start": "2027-10-18", "horizon_end": "2027-10-29",
        "solver": FAST,
        "invites": {"show_clinician_names": show_names, "contact_phone": "0300 123 4567"},
        # Ids that are NHS numbers, allowed as for a deployment inside the NHS boundary: even
        # then no output may carry them.
        "privacy": {"allow_nhs_number_ids": True},
        "sites": [{"id": "riverside", "name": "Riverside Health Centre",
                   "address": "2 River Road, Town, AB2 3CD"}],
        "rooms": [
            {"id": "bloods", "site_id": "riverside", "name": "Room 1", "capabilities": ["phlebotomy"]},
            {"id": "consult-a", "site_id": "riverside", "name": "Room 2"},
            {"id": "consult-b", "site_id": "riverside", "name": "Room 3"},
            {"id": "consult-c", "site_id": "riverside", "name": "Room 4"},
            # each of the five clinicians holds a room for the session (clinician_room_per_session)
            {"id": "consult-d", "site_id": "riverside", "name": "Room 5"},
        ],
        "clinicians": [
            {"id": "c-dsn-1", "name": "Dr Jane Smith-Okafor", "role": "diabetes_specialist_nurse",
             "review_type_ids": ["diab-annual"], "takes_bloods": True},
            {"id": "c-renal-2", "name": "Prof Ravi Anand", "role": "consultant_renal",
             "organisation": "secondary", "review_type_ids": ["ckd-review"]},
            {"id": "c-mh-3", "name": "Morgan Blakeney", "role": "mental_health_practitioner",
             "review_type_ids": ["smi-check"]},
            {"id": "c-gp-4", "name": "Dr Alan Pricewell", "role": "gp", "review_type_ids": ["hiv-follow-up"]},
            {"id": "c-hca-5", "name": "Chris Tayloring", "role": "hca", "takes_bloods": True},
        ],
        "sessions": [
            {"clinician_id": c, "date": d, "start": "08:30", "end": "12:30", "site_id": "riverside"}
            for c in ("c-dsn-1", "c-renal-2", "c-mh-3", "c-gp-4", "c-hca-5")
            for d in ("2027-10-19", "2027-10-26")
        ],
        "leave": [{"clinician_id": "c-gp-4", "start_date": "2027-10-28", "end_date": "2027-10-28",
                   "reason": "Chemotherapy appointment"}],
        "blood_markers": [
            {"id": "hba1c-poc", "name": "HbA1c", "point_of_care": True},
            {"id": "fpg-poc", "name": "Fasting plasma glucose", "point_of_care": True, "fasting": True},
            {"id": "egfr-lab", "name": "eGFR and U&E", "turnaround_working_days": 3},
            {"id": "cd4-lab", "name": "CD4 count and viral load", "turnaround_working_days": 3},
        ],
        "shared_components": [{"id": "foot-check", "name": "Diabetic foot check", "minutes": 5}],
        "review_types": [
            {"id": "diab-annual", "name": "Diabetes annual review", "roles": ["diabetes_specialist_nurse"],
             "duration_minutes": 30, "blood_marker_ids": ["hba1c-poc", "fpg-poc"],
             "shared_component_ids": ["foot-check"]},
            {"id": "ckd-review", "name": "Chronic kidney disease review", "roles": ["consultant_renal"],
             "duration_minutes": 20, "blood_marker_ids": ["egfr-lab"], "results_before_review": True},
            {"id": "smi-check", "name": "Serious mental illness physical health check",
             "roles": ["mental_health_practitioner"], "duration_minutes": 20},
            {"id": "hiv-follow-up", "name": "HIV clinic follow-up", "roles": ["gp"], "duration_minutes": 20,
             "blood_marker_ids": ["cd4-lab"], "results_before_review": True, "sensitive": True},
        ],
        "patients": [
            {"id": "9434765919", "reachable_sites": [{"site_id": "riverside", "travel_minutes": 12}],
             "due_reviews": [
                 {"id": "9434765919-diabetes-2027", "review_type_id": "diab-annual",
                  "window_start": "2027-10-18", "window_end": "2027-10-29"},
                 {"review_type_id": "ckd-review", "window_start": "2027-10-18", "window_end": "2027-10-29"},
                 {"review_type_id": "smi-check", "window_start": "2027-10-18", "window_end": "2027-10-29"},
             ],
             "unavailable": [{"weekdays": ["mon", "wed", "fri"], "reason": "Haemodialysis at renal unit"}],
             "needs": {"interpreter_language": "Urdu"}},
            {"id": "4857773456", "reachable_sites": [{"site_id": "riverside", "travel_minutes": 5}],
             "due_reviews": [{"review_type_id": "hiv-follow-up", "window_start": "2027-10-18",
                              "window_end": "2027-10-29"}]},
        ],
    })


FORBIDDEN_WORDS = ["diabet", "kidney", "renal", "mental", "hiv", "glucose", "hba1c", "egfr", "cd4",
                   "viral", "dialysis", "foot", "chemo", "consultant", "nhs 943", "dob", "jane", "doe",
                   "smi-", "ckd", "diab-", "fpg", "serious", "illness", "9434765919", "4857773456",
                   "943 476", "1950", "mdt pilot"]


def forbidden_strings(s: Scenario, plan: Plan) -> set[str]:
    found = set(FORBIDDEN_WORDS)
    found |= {s.name, s.description}
    for t in s.review_types:
        # A role whose neutral noun is its own id ('gp' is "a GP") names nothing the invite hides.
        found |= {t.id, t.name, *(r for r in t.roles if wording.ROLE_NOUNS[r][0].lower() != r)}
    for m in s.blood_markers:
        found |= {m.id, m.name}
    for c in s.shared_components:
        found |= {c.id, c.name}
    for c in s.clinicians:
        found |= {c.id, c.name, *c.name.split()[1:]}
    for p in s.patients:
        found.add(p.id)
        found |= {p.review_id(d) for d in p.due_reviews}
        found |= {u.reason for u in p.unavailable}
    found |= {leave.reason for leave in s.leave}
    found |= {v.id for v in plan.visits} | {a.id for a in plan.appointments}
    return {f.lower() for f in found if f}


def all_outputs(s: Scenario, plan: Plan) -> tuple[dict[str, bytes], list[str]]:
    ids = identities_for(plan)
    outputs: dict[str, bytes] = {}
    texts: list[str] = []
    for v in plan.visits:
        cancel_id = EventIdentity(ids[v.id].uid, 1, ids[v.id].reference)
        outputs[f"cancel-{len(outputs)}"] = cancel = patient_cancel(
            s, plan, v.id, cancel_id, organiser=ORGANISER, attendee=MAILBOX)
        mails = [invite_email(cancel, sender=ORGANISER, to=MAILBOX)]
        outputs[f"request-{len(outputs)}"] = req = request(s, plan, v.id, ids[v.id])
        mails.append(invite_email(req, sender=ORGANISER, to=MAILBOX))
        moved = previous_visit(s, plan, v.id)  # an update names the old time: still nothing else
        outputs[f"update-{len(outputs)}"] = update = request(s, plan, v.id, ids[v.id], previous=moved)
        mails.append(invite_email(update, sender=ORGANISER, to=MAILBOX))
        for mail in mails:
            parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.default)
            texts.append("\n".join(f"{k}: {v}" for k, v in parsed.items()))
            texts += [part.get_content() if part.get_content_maintype() == "text" else ""
                      for part in parsed.iter_parts()]
            texts.append(str(mail["Message-ID"]))
    for c in s.clinicians:
        outputs[f"clinician-{c.id}"] = clinician_feed(s, plan, c.id, ids, calendar_name="My clinics")
    for r in s.rooms:
        outputs[f"room-{r.id}"] = room_feed(s, plan, r.id, ids, calendar_name="Room bookings")
    texts += [line for data in outputs.values() for line in lines(data)]
    texts += [i.uid for i in ids.values()]
    return outputs, texts


@pytest.fixture(scope="module")
def private():
    s = privacy_scenario()
    return s, solve_checked(s)


@pytest.mark.hazard("HAZ-006")
def test_nothing_identifying_or_clinical_in_any_output_or_uid(private, parse):
    s, plan = private
    assert not plan.unbooked, plan.unbooked
    outputs, texts = all_outputs(s, plan)
    everything = "\n".join(texts).lower()
    # The parsers' decoded text too (unescaped, unfolded).
    views = parse(outputs)
    everything += "\n".join(str(e) for view in views.values() for e in view["events"]).lower()
    # Random values (UIDs, booking references, Message-IDs, MIME boundaries) are set aside first:
    # a short id such as a marker's 'cd4' or a year of birth turns up in random text now and
    # then. That the UIDs are random (uuid4) is asserted.
    uid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}@" + re.escape(UID_DOMAIN))
    uids = {line.split(":", 1)[1] for text in texts for line in text.splitlines() if line.startswith("UID:")}
    assert uids and all(uid.fullmatch(u) for u in uids), uids
    everything = re.sub(r"\r?\n[ \t]", "", everything)  # a fold can split a random value
    random_values = (uid, re.compile(r"ov-[a-z0-9]{6}"), re.compile(r"<[^<>@\s]+@onevisit>"),
                     re.compile(r"={10,}\d+=="))  # the last: MIME boundaries
    for random_value in random_values:
        everything = random_value.sub("<random>", everything)
    leaks = sorted(f for f in forbidden_strings(s, plan) if f in everything)
    assert not leaks, f"leaked into calendar output: {leaks}"
    # Neutral roles are what is left of the specialists.
    [main] = [v for v in visits_of(plan, "9434765919") if v.purpose == "consolidated"]
    text = read(request(s, plan, main.id, identity()))["events"][0]["description"]
    for role in ("a specialist nurse", "a hospital specialist", "a clinician"):
        assert role in text
    assert "interpreter for Urdu" in text and "0300 123 4567" in text


@pytest.mark.hazard("HAZ-006")
def test_a_sensitive_review_gets_the_same_neutral_invite_and_stays_unnamed_in_feeds(private, parse):
    s, plan = private
    # The review, and the earlier trip for its blood test: each gets an invite like any other.
    sensitive = visits_of(plan, "4857773456")
    assert sorted(v.purpose for v in sensitive) == ["blood_draw_trip", "consolidated"]
    assert all(is_sensitive_visit(s, plan, v.id) for v in sensitive)
    assert not any(is_sensitive_visit(s, plan, v.id) for v in visits_of(plan, "9434765919"))
    [draw] = [v for v in sensitive if v.purpose == "blood_draw_trip"]
    [review] = [v for v in sensitive if v.purpose == "consolidated"]
    invites = {v.id: read(request(s, plan, v.id, identity()))["events"][0] for v in sensitive}
    assert invites[draw.id]["summary"] == "Your blood test at Riverside Health Centre"
    assert invites[review.id]["summary"] == "Your health check-up visit at Riverside Health Centre"
    # The blood test says when the check-up it prepares for is.
    at = london_time(review.start)
    assert f"check-up visit on {wording.long_date(at.date())} at {wording.clock(at)}" in invites[draw.id]["description"]
    for event in invites.values():
        assert "hiv" not in str(event).lower() and "cd4" not in str(event).lower()
    # Staff see the bookings, without the clinic.
    ids = identities_for(plan)
    holders = {c for v in sensitive for a in appointments_in(plan, v.id) for c in a.clinician_ids}
    feeds = {c: clinician_feed(s, plan, c, ids, calendar_name="Clinics") for c in holders}
    views = parse(feeds)
    shown = {e["uid"]: e for view in views.values() for e in view["events"]}
    for v in sensitive:
        event = shown[ids[v.id].uid]
        assert FEED_SUMMARY.match(event["summary"])
        assert "hiv" not in str(event).lower() and "cd4" not in str(event).lower()


def test_clinician_names_only_when_the_scenario_opts_in(private):
    s, plan = private
    named = privacy_scenario(show_names=True)
    [main] = [v for v in visits_of(plan, "9434765919") if v.purpose == "consolidated"]
    plain = read(request(s, plan, main.id, identity()))["events"][0]["description"]
    shown = read(request(named, plan, main.id, identity()))["events"][0]["description"]
    assert "Smith-Okafor" not in plain and "Dr Jane Smith-Okafor (a specialist nurse)" in shown
    assert "Prof Ravi Anand (a hospital specialist)" in shown
    feed = clinician_feed(named, plan, "c-dsn-1", identities_for(plan), calendar_name="x")
    assert b"Smith" not in feed  # feeds never name anyone


# --- email -----------------------------------------------------------------------------------


def test_invite_email_is_multipart_alternative_with_a_matching_method(rich):
    s, plan = rich
    [visit] = visits_of(plan, "P1")
    sent = identity(0, "OV-7K3P9Q")
    for method, ics in (
        ("REQUEST", request(s, plan, visit.id, sent)),
        ("CANCEL", patient_cancel(s, plan, visit.id, EventIdentity(sent.uid, 1, sent.reference),
                                  organiser=ORGANISER, attendee=MAILBOX)),
    ):
        raw = invite_email(ics, sender=ORGANISER, to=MAILBOX).as_bytes(policy=email.policy.SMTP)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        assert msg["From"] == ORGANISER and msg["To"] == MAILBOX
        assert msg["Subject"] == read(ics)["events"][0]["summary"]
        plain, calendar = list(msg.iter_parts())
        assert plain.get_content_type() == "text/plain" and "OV-7K3P9Q" in plain.get_content()
        assert calendar.get_content_type() == "text/calendar"
        assert calendar.get_param("method") == method
        assert calendar.get_content_charset() == "utf-8"
        assert calendar.get_payload(decode=True) == ics  # byte for byte, CRLF kept
    custom = invite_email(ics, sender=ORGANISER, to=MAILBOX, subject="Your visit has changed")
    assert custom["Subject"] == "Your visit has changed"
    with pytest.raises(ValueError, match="METHOD"):
        invite_email(room_feed(s, plan, "treatment", identities_for(plan), calendar_name="x"),
                     sender=ORGANISER, to=MAILBOX)


# --- identities ------------------------------------------------------------------------------


def test_uids_and_references_are_random_and_well_formed():
    uids = {new_uid() for _ in range(2000)}
    refs = {new_reference() for _ in range(2000)}
    assert len(uids) == 2000 and len(refs) > 1990
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}@onevisit", u)
               for u in uids)
    assert all(re.fullmatch(rf"OV-[{REFERENCE_ALPHABET}]{{6}}", r) for r in refs)
    assert not set("01OILSZBUV25 8") & set(REFERENCE_ALPHABET)
    for bad in ({"uid": "x\r\nATTENDEE:mailto:a@b.c", "sequence": 0, "reference": "OV-AAAAAA"},
                {"uid": new_uid(), "sequence": -1, "reference": "OV-AAAAAA"},
                {"uid": new_uid(), "sequence": True, "reference": "OV-AAAAAA"},
                {"uid": new_uid(), "sequence": 0, "reference": "ov 1;2"}):
        with pytest.raises(ValueError):
            EventIdentity(**bad)
