"""Issue 10, the writers' second line of defence: whatever text reaches the calendar and e-mail
writers, what RFC 5545 (3.3.11, TEXT) and RFC 5322 (header fields) forbid never leaves them.

The scenario loader refuses such text, so the hostile values are put into an already validated
scenario with `model_copy(update=...)`, which does not validate, exactly as a stored scenario
from before the loader's rule (or a bug in it) would reach the writers. Every output is read by
the four parsers of tests/calendar_parsers.py (the strict `ical` among them), which must agree."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re

import icalendar
import pytest
import vobject
from hypothesis import example, given
from hypothesis import strategies as st

from api.calendar import (
    EventIdentity,
    InvalidAddress,
    clean_text,
    clinician_feed,
    invite_email,
    patient_cancel,
    room_feed,
)
from api.calendar.ics import Line, Text, serialise, unfold
from api.calendar.render import _calendar
from api.calendar.timezone import LONDON
from scheduler.domain import Scenario
from tests.builders import solve_checked
from tests.calendar_parsers import ical_js_runner, read_all, with_ical, with_icalendar, with_vobject
from tests.test_calendar_render import (
    MAILBOX,
    ORGANISER,
    STAMP,
    identities_for,
    request,
    rich_scenario,
    visits_of,
)

# What no output may hold once CRLF line ends are set aside: RFC 5545's CONTROL (C0 but HTAB,
# and DEL), the C1 controls, and the line and paragraph separators (turned into breaks).
FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")

HOSTILE_SITE_NAME = "Surgery\r\nAnnex"  # CR/LF in a name
HOSTILE_ADDRESS = "1 High St\x0bTown\x0cAB1 2CD\u2028UK"  # word-processor VT and FF, U+2028
HOSTILE_NAMES = {  # clinician id -> display name (shown: the scenario opts in to names)
    "gp": "Dr Rao\r\nBcc: leak@example.org",  # a header injection attempt
    "nurse": "Sam\x85Lee\x9b",  # NEL (a line break) and CSI, C1 controls without NUL
    "hca": "Chris\u2029Tay\x00lor",  # PARAGRAPH SEPARATOR and NUL
}
HOSTILE_ROOM = "Treatment\x80 room\x1e"  # C1 PAD and RS
HOSTILE_CALENDAR_NAME = "OneVisit:\r\nRoom\u20282\t(east)\x7f"


def hostile(s: Scenario) -> Scenario:
    """`s` with control characters and stray line breaks in every kind of text the writers use."""
    [site] = s.sites
    site = site.model_copy(update={"name": HOSTILE_SITE_NAME, "address": HOSTILE_ADDRESS,
                                   "phone": "01234\x7f 567890"})
    clinicians = [c.model_copy(update={"name": HOSTILE_NAMES[c.id]}) for c in s.clinicians]
    rooms = [r.model_copy(update={"name": HOSTILE_ROOM}) if r.id == "treatment" else r for r in s.rooms]
    patients = [p.model_copy(update={"needs": p.needs.model_copy(update={"interpreter_language": "Pol\x07ish\r\n"})})
                if p.id == "P1" else p for p in s.patients]
    invites = s.invites.model_copy(update={"show_clinician_names": True,
                                           "rebook_url": "https://book.example.nhs.uk/r\r\n\x0c"})
    return s.model_copy(update={"sites": [site], "clinicians": clinicians, "rooms": rooms,
                                "patients": patients, "invites": invites})


@pytest.fixture(scope="module")
def ical_js():
    try:
        return ical_js_runner()
    except RuntimeError as problem:  # node/npm missing: fail, never skip (see calendar_parsers)
        pytest.fail(str(problem), pytrace=False)


@pytest.fixture
def parse(ical_js, tmp_path):
    """{name: ics} -> {name: view}, read by all four parsers, which must accept and agree."""
    return lambda outputs: read_all(ical_js, tmp_path, outputs)


@pytest.fixture(scope="module")
def bad():
    s = rich_scenario()
    return hostile(s), solve_checked(s)  # the plan depends on ids, not on the text changed


def outputs_for(s: Scenario, plan) -> dict[str, bytes]:
    ids = identities_for(plan)
    out: dict[str, bytes] = {}
    for v in plan.visits:
        out[f"request-{v.patient_id}-{v.purpose}"] = request(s, plan, v.id, ids[v.id])
        again = EventIdentity(ids[v.id].uid, 1, ids[v.id].reference)
        out[f"cancel-{v.patient_id}-{v.purpose}"] = patient_cancel(
            s, plan, v.id, again, organiser=ORGANISER, attendee=MAILBOX, dtstamp=STAMP)
    for c in s.clinicians:
        out[f"clinician-{c.id}"] = clinician_feed(s, plan, c.id, ids, calendar_name=HOSTILE_CALENDAR_NAME,
                                                  dtstamp=STAMP)
    for r in s.rooms:
        out[f"room-{r.id}"] = room_feed(s, plan, r.id, ids, calendar_name=HOSTILE_CALENDAR_NAME, dtstamp=STAMP)
    return out


def property_lines(data: bytes, *names: str) -> list[str]:
    return [line.decode() for line in unfold(data) if re.match(rf"({'|'.join(names)})[;:]", line.decode())]


# --- the hostile scenario, every output --------------------------------------------------------


def test_every_invite_and_feed_is_clean_and_every_parser_reads_it(bad, parse):
    s, plan = bad
    outputs = outputs_for(s, plan)
    assert len(outputs) >= 8
    views = parse(outputs)  # icalendar 7, vobject, the strict `ical` and ical.js, agreeing
    for name, data in outputs.items():
        text = data.decode("utf-8").replace("\r\n", "")
        assert not FORBIDDEN.search(text), f"{name}: {FORBIDDEN.search(text)!r}"
        # One-line properties carry no line break, not even the escaped "\n".
        for line in property_lines(data, "SUMMARY", "LOCATION", "NAME", "X-WR-CALNAME"):
            assert "\\n" not in line and "\\N" not in line, f"{name}: {line}"
    location = "Surgery Annex, 1 High St, Town, AB1 2CD, UK"
    [p1] = visits_of(plan, "P1")
    invite = views[f"request-P1-{p1.purpose}"]["events"][0]
    assert invite["summary"] == "Your health check-up visit at Surgery Annex"
    assert invite["location"] == location
    description = invite["description"]
    assert f"Where: {location}\n" in description
    # Names inside sentences are one line each; the injected "header" is inert text.
    shown = {"gp": "Dr Rao Bcc: leak@example.org (a GP)", "nurse": "Sam Lee (a practice nurse)",
             "hca": "Chris Taylor (a healthcare assistant)"}
    staff = {c for a in plan.appointments if a.visit_id == p1.id for c in a.clinician_ids}
    assert "gp" in staff  # the frailty review
    for clinician in staff:
        assert shown[clinician] in description, description
    assert "interpreter for Polish." in description
    assert "call 01234 567890 or go to https://book.example.nhs.uk/r as soon" in description
    cancel = views[f"cancel-P1-{p1.purpose}"]["events"][0]
    assert cancel["location"] == location and f"{location}.\n" in cancel["description"]
    feed = views["clinician-gp"]
    assert feed["name"] == feed["calname"] == "OneVisit: Room 2\t(east)"  # HTAB is allowed
    room = views["room-treatment"]["events"]
    assert room and all(e["location"] == "Treatment room, Surgery Annex" for e in room)
    nurse = views["clinician-nurse"]["events"]
    assert any("Treatment room" in e["summary"] for e in nurse)


def test_the_invite_email_builds_with_clean_headers(bad):
    s, plan = bad
    [p1] = visits_of(plan, "P1")
    ids = identities_for(plan)
    ics = request(s, plan, p1.id, ids[p1.id])
    for subject in (None, "Changed:\r\nBcc: leak@example.org\x00"):
        message = invite_email(ics, sender=ORGANISER, to=MAILBOX, subject=subject)
        raw = message.as_bytes(policy=email.policy.SMTP)
        head, _, _ = raw.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            # Every physical header line starts a field or continues one (folding), and holds no
            # control character: no CR or LF got into a value.
            assert re.fullmatch(rb"([A-Za-z-]+: |[ \t])[\x20-\x7e\t]*", line), line
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert sorted(parsed.keys()) == sorted(
            ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"])
        assert parsed["To"] == MAILBOX and parsed["From"] == ORGANISER
        assert "Bcc" not in parsed and len(parsed.get_all("To")) == 1
        expected = ("Your health check-up visit at Surgery Annex" if subject is None
                    else "Changed: Bcc: leak@example.org")
        assert parsed["Subject"] == expected
        plain, calendar = parsed.iter_parts()
        body = plain.get_content()
        assert not FORBIDDEN.search(body.replace("\r\n", "")), repr(body)  # CRLF: SMTP line ends
        assert "Dr Rao Bcc: leak@example.org (a GP)" in body
        assert calendar.get_payload(decode=True) == ics


def test_only_a_real_bad_address_is_refused_and_it_is_named(bad):
    s, plan = bad
    [p1] = visits_of(plan, "P1")
    ics = request(s, plan, p1.id, identities_for(plan)[p1.id])
    invite_email(ics, sender=f"mailto:{ORGANISER}", to=MAILBOX)  # data never blames an address
    for to in ("patient@example.org\r\nBcc: x@example.org", "Patient <patient@example.org>",
               "a@b.example, c@d.example", "patient\x85@example.org", "no-at-sign", ""):
        with pytest.raises(InvalidAddress) as refused:
            invite_email(ics, sender=ORGANISER, to=to)
        assert refused.value.field == "to"
    with pytest.raises(InvalidAddress) as refused:
        invite_email(ics, sender="bookings@surgery\x00.example", to=MAILBOX)
    assert refused.value.field == "sender"
    with pytest.raises(ValueError) as wrong:  # not an address problem: not InvalidAddress
        invite_email(room_feed(s, plan, "treatment", identities_for(plan), calendar_name="x"),
                     sender=ORGANISER, to=MAILBOX)
    assert not isinstance(wrong.value, InvalidAddress)


# --- the one function ---------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "multi", "one_line", "address"), [
    ("1 High St\x0bTown\x0cAB1", "1 High St\nTown\nAB1", "1 High St Town AB1", "1 High St, Town, AB1"),
    ("Dr\r\nRao", "Dr\nRao", "Dr Rao", "Dr, Rao"),
    ("a\rb\x85c\u2028d\u2029e", "a\nb\nc\nd\ne", "a b c d e", "a, b, c, d, e"),
    ("x\x00y\x01\x1b\x1c\x1fz\x7f\x80\x9f\tq", "xyz\tq", "xyz\tq", "xyz\tq"),  # HTAB stays
    ("Unit 4,\n  Town,\n\n\n AB1 ", "Unit 4,\n  Town,\n\n\n AB1 ", "Unit 4, Town, AB1 ", "Unit 4, Town, AB1 "),
    ("\r\nSurgery\r\n", "\nSurgery\n", "Surgery", "Surgery"),
    ("lone \ud800 surrogate", "lone \ufffd surrogate", "lone \ufffd surrogate", "lone \ufffd surrogate"),
    ("C:\\new\\North, Ŵyl 🏥", "C:\\new\\North, Ŵyl 🏥", "C:\\new\\North, Ŵyl 🏥", "C:\\new\\North, Ŵyl 🏥"),
])
def test_clean_text(raw, multi, one_line, address):
    assert clean_text(raw) == multi
    assert clean_text(raw, single_line=True) == one_line
    assert clean_text(raw, single_line=True, join=", ") == address


def minimal_calendar(summary: str, description: str) -> bytes:
    cal = _calendar("PUBLISH")
    event = icalendar.Event()
    event.add("uid", "x@onevisit")
    event.add("sequence", 0)
    event.add("dtstamp", STAMP)
    start = dt.datetime(2027, 2, 3, 9, 30, tzinfo=LONDON)  # TZID=Europe/London, its VTIMEZONE
    event.add("dtstart", start)
    event.add("dtend", start + dt.timedelta(minutes=20))
    event.add("summary", Line(summary))
    event.add("description", Text(description))
    cal.add_component(event)
    return serialise(cal)


@given(st.text(max_size=60), st.text(max_size=60))
@example("Unit 4\\North\\n\\\\n", "C:\\new\\r\\N\x0b\x85\u2028;,\\")
def test_any_text_is_written_clean_and_read_back_as_cleaned(summary, description):
    """Any str at all (controls, surrogates, backslashes, breaks) gives a calendar the strict
    parser accepts, and every Python reader gets back exactly what `clean_text` made of it."""
    data = minimal_calendar(summary, description)
    assert not FORBIDDEN.search(data.decode("utf-8").replace("\r\n", ""))
    want_summary = clean_text(summary, single_line=True)
    want_description = clean_text(description)
    for read in (with_ical, with_icalendar, with_vobject):
        [event] = read(data)["events"]
        assert (event["summary"], event["description"]) == (want_summary, want_description), read.__name__


def test_a_literal_backslash_n_round_trips_as_backslash_n(ical_js, tmp_path):
    r"""RFC 5545 3.3.11: "\\" is a backslash, so "C:\new" is written "C:\\new" and read back with
    a backslash and an "n", never a line break (icalendar before 7 read it as one)."""
    value = "C:\\new\\North and \\n"
    data = minimal_calendar(value, f"{value}\nline two")
    [summary] = property_lines(data, "SUMMARY")
    assert summary == "SUMMARY:C:\\\\new\\\\North and \\\\n"
    assert icalendar.Calendar.from_ical(data).walk("VEVENT")[0]["summary"] == value
    assert vobject.readOne(data.decode()).vevent.summary.value == value
    for read in (with_ical, with_icalendar, with_vobject):
        [event] = read(data)["events"]
        assert event["summary"] == value and event["description"] == f"{value}\nline two", read.__name__
    path = tmp_path / "backslash.ics"
    path.write_bytes(data)
    [parsed] = ical_js.raw([path])
    assert parsed["events"][0]["summary"] == value
    assert parsed["events"][0]["description"] == f"{value}\nline two"


def test_serialise_refuses_a_control_character_that_bypassed_text():
    cal = _calendar("PUBLISH")
    event = icalendar.Event()
    event.add("uid", "x@onevisit")
    event.add("dtstamp", STAMP)
    event.add("summary", "plain str\x0bwith a VT")  # icalendar's own vText: no cleaning
    cal.add_component(event)
    with pytest.raises(ValueError, match="SUMMARY would carry control character U\\+000B"):
        serialise(cal)
