"""Patient messages (issue 17): GSM-7 fragment counting, the SMS text, the contacts file, the
privacy scan of every SMS and letter, and sending through the real service to an outbox (SQLite
and PostgreSQL), including updates that say what changed and cancellations."""

from __future__ import annotations

import copy
import csv
import io
import re
import time
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from api.calendar import wording
from api.config import Settings
from api.messages.compose import Message, visit_facts, visit_when
from api.messages.contacts import ContactsError, read_contacts
from api.messages.gsm import NotGsm7, fragment_count, is_gsm7, septet_count, to_gsm
from api.messages.letter import letter_pdf
from api.messages.outbox import outbox_name, write_atomic
from api.messages.sms import sms_text
from scheduler.domain import Scenario
from tests.api_support import auth, checked_plan, make_keys, solve, tutorial
from tests.builders import solve_checked
from tests.test_calendar_render import forbidden_strings, privacy_scenario, rich_scenario

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = ("Flat 2", "14 Quay Street", "Sandmere", "QX1 2AB")


# --- GSM-7 ------------------------------------------------------------------------------------


def test_fragment_count_follows_gsm_7_single_and_concatenated_sizes():
    assert fragment_count("") == 0
    assert fragment_count("a" * 160) == 1 and fragment_count("a" * 161) == 2
    assert fragment_count("a" * 306) == 2 and fragment_count("a" * 307) == 3
    assert fragment_count("a" * 459) == 3 and fragment_count("a" * 460) == 4
    # Extension characters take two septets each.
    assert septet_count("€[]{}^~\\|") == 18
    assert fragment_count("€" * 80) == 1 and fragment_count("€" * 81) == 2
    # An escape pair is never split: 152 septets, then a 2-septet character starts fragment two.
    assert fragment_count("a" * 152 + "€" + "a" * 7) == 2
    assert fragment_count("a" * 152 + "€" + "a" * 153) == 3
    # Greek capitals, £, é and Ñ are in the default alphabet: one septet each.
    assert septet_count("ΔΦΓΛΩΠΨΣΘΞ£éÑ") == 13


def test_text_outside_gsm_7_is_transliterated_or_refused_never_ucs2():
    assert to_gsm("Dr O’Neill – “Café” Łódź…") == "Dr O'Neill - \"Café\" Lodz..."
    assert is_gsm7(to_gsm("Zoë ą ñ"))
    for bad in ("Clinic 🏥", "診療所", "Ж"):
        with pytest.raises(NotGsm7):
            to_gsm(bad)
        with pytest.raises(NotGsm7):
            fragment_count(bad)


# --- SMS and letter wording -------------------------------------------------------------------


@pytest.fixture(scope="module")
def rich():
    s = rich_scenario()
    return s, solve_checked(s)


@pytest.fixture(scope="module")
def private():
    s = privacy_scenario()
    return s, solve_checked(s)


def _messages(s: Scenario, plan, moved_plan=None) -> list[Message]:
    out = []
    for v in plan.visits:
        facts = visit_facts(s, plan, v.id)
        before = visit_when(s, moved_plan or plan, v.id) if moved_plan else None
        out += [Message("new", "OV-7K3P9Q", facts), Message("update", "OV-7K3P9Q", facts, before),
                Message("cancel", "OV-7K3P9Q", facts)]
    return out


@pytest.mark.hazard("HAZ-002")
def test_sms_says_when_where_how_long_fasting_reference_and_phone(rich):
    s, plan = rich
    [main] = [v for v in plan.visits if v.patient_id == "P1"]
    [trip] = [v for v in plan.visits if v.patient_id == "P2" and v.purpose == "blood_draw_trip"]
    [review] = [v for v in plan.visits if v.patient_id == "P2" and v.purpose == "consolidated"]
    facts = visit_facts(s, plan, main.id)
    text = sms_text(Message("new", "OV-7K3P9Q", facts))
    when = facts.when
    assert f"{wording.short_date(when.start.date())} at {wording.clock(when.start)}" in text
    assert "Surgery" in text and f"about {wording.duration(when.end - when.start)}" in text
    assert "Nothing to eat or drink except water from 8:30pm the night before" in text  # fasting draw 8:30am
    assert "OV-7K3P9Q" in text and "01234 567890" in text
    # The blood-test trip says when the check-up it prepares for is.
    trip_text = sms_text(Message("new", "OV-7K3P9Q", visit_facts(s, plan, trip.id)))
    r = visit_when(s, plan, review.id)
    assert trip_text.startswith("Your blood test") and f"check-up on {r.short_day} at {r.time}" in trip_text
    for message in _messages(s, plan):
        t = sms_text(message)
        assert is_gsm7(t) and 1 <= fragment_count(t) <= 3, t


@pytest.mark.hazard("HAZ-014")
def test_update_says_old_and_new_time_and_place_and_cancel_says_which(rich):
    s, plan = rich
    [main] = [v for v in plan.visits if v.patient_id == "P1"]
    facts = visit_facts(s, plan, main.id)
    old = visit_when(s, plan, main.id)
    import dataclasses
    import datetime as dt
    before = dataclasses.replace(old, start=old.start - dt.timedelta(days=1), site_name="Old Mill Clinic")
    text = sms_text(Message("update", "OV-7K3P9Q", facts, before))
    assert f"It was {before.short_day} at {before.time} at Old Mill Clinic." in text
    assert f"It is now {old.short_day} at {old.time} at Surgery" in text
    moved_time = dataclasses.replace(old, start=old.start - dt.timedelta(hours=1))
    assert f"It was {moved_time.short_day} at {moved_time.time}." in sms_text(
        Message("update", "OV-7K3P9Q", facts, moved_time))
    cancel = sms_text(Message("cancel", "OV-7K3P9Q", facts))
    assert cancel.startswith(f"Your appointment at Surgery on {old.short_day} at {old.time} is cancelled.")
    with pytest.raises(ValueError):
        Message("unchanged", "OV-7K3P9Q", facts)


def test_a_long_site_name_is_shortened_to_fit_three_fragments(rich):
    s, plan = rich
    [main] = [v for v in plan.visits if v.patient_id == "P1"]
    long_name = s.model_copy(update={"sites": [s.sites[0].model_copy(update={"name": "Ñ" * 300})]})
    text = sms_text(Message("update", "OV-7K3P9Q", visit_facts(long_name, plan, main.id),
                            visit_when(long_name, plan, main.id)))
    assert fragment_count(text) <= 3 and "..." in text


def _pdf_text(pdf: bytes) -> str:
    doc = pdfium.PdfDocument(pdf)
    try:
        return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()


def _scrub(text: str) -> str:
    return re.sub(r"ov-[a-z0-9]{6}", "<random>", text.lower())


@pytest.mark.hazard("HAZ-006")
@pytest.mark.parametrize("which", ["private", "private_named", "rich"])
def test_no_condition_test_clinician_or_patient_id_in_any_sms_or_letter(which, rich, private):
    if which == "rich":
        s, plan = rich
    else:
        s = privacy_scenario(show_names=which == "private_named")
        plan = private[1]
    sensitive = [t.id for t in s.review_types if t.sensitive]
    texts = []
    for message in _messages(s, plan, moved_plan=plan):
        texts.append(sms_text(message))
        for large in (False, True):
            texts.append(_pdf_text(letter_pdf(message, ADDRESS, large_print=large)))
    everything = _scrub("\n".join(texts))
    forbidden = forbidden_strings(s, plan)
    if which == "rich":  # its clinician ids and name are ordinary words ("blood test", "a GP")
        forbidden -= {"gp", "nurse", "hca", "test"}
    leaks = sorted(f for f in forbidden if f in everything)
    assert not leaks, f"leaked into an SMS or letter: {leaks}"
    if which != "rich":  # the sensitive clinic's patient is told like anyone else, in the same words
        assert sensitive
        assert any(v.patient_id == "4857773456" for v in plan.visits)
        assert "a specialist nurse" in everything and "a hospital specialist" in everything


# --- outbox -----------------------------------------------------------------------------------


def test_outbox_names_carry_reference_action_and_channel_only(tmp_path):
    name = outbox_name("OV-7K3P9Q", 3, "update", "sms")
    assert name == "OV-7K3P9Q.3.update.sms.txt"
    assert outbox_name("OV-7K3P9Q", 1, "new", "calendar", "eml").endswith(".calendar.eml")
    with pytest.raises(ValueError):
        outbox_name("../P0001", 1, "new", "sms")
    path = write_atomic(tmp_path / "box", name, b"hello")
    assert path.read_bytes() == b"hello" and [p.name for p in (tmp_path / "box").iterdir()] == [name]


# --- contacts ---------------------------------------------------------------------------------


def _csv(rows: list[list[str]], header=("patient_id", "mobile", "email", "address_line_1", "address_line_2",
                                         "postcode")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def test_contacts_are_validated_by_row_and_column_without_echoing_values():
    good = read_contacts(_csv([["P1", "07700 900123", "a@example.org", "1 Mill Lane", "Sandmere", "qx1 2ab"],
                               ["P2", "+44 7700 900124", "", "", "", ""]]))
    assert good["P1"].mobile == "+447700900123" and good["P1"].postal == ("1 Mill Lane", "Sandmere", "QX1 2AB")
    assert good["P2"].mobile == "+447700900124" and good["P2"].email is None and not good["P2"].has("letter")
    with pytest.raises(ContactsError) as caught:
        read_contacts(_csv([
            ["943 476 5919", "07700 900123", "", "", "", ""],  # an NHS number as the key
            ["P3", "01632 960000", "", "", "", ""],  # a landline
            ["P4", "", "not-an-address", "", "", ""],
            ["P5", "", "", "1 Mill Lane", "Sandmere", "SANDMERE"],
            ["P6", "", "", "1 Mill Lane", "", "QX1 2AB"],  # one line and a postcode
            ["P3", "", "", "", "", ""],
        ]))
    problems = [str(p) for p in caught.value.problems]
    assert problems[0].startswith("row 2, column patient_id: looks like an NHS number")
    assert any(p.startswith("row 3, column mobile") for p in problems)
    assert any(p.startswith("row 4, column email") for p in problems)
    assert any(p.startswith("row 5, column postcode") for p in problems)
    assert any(p.startswith("row 6, column address_line_1") for p in problems)
    assert any(p.startswith("row 7, column patient_id: this patient has an earlier row") for p in problems)
    message = str(caught.value) + "\n".join(problems)
    for value in ("943 476 5919", "9434765919", "01632 960000", "not-an-address", "SANDMERE"):
        assert value not in message
    with pytest.raises(ContactsError, match="unknown column"):
        read_contacts(_csv([["P1", "x"]], header=("patient_id", "nhs_number")))
    with pytest.raises(ContactsError, match="larger than"):
        read_contacts(b"patient_id\n" + b"P1\n" * 3_000_000)
    with pytest.raises(ContactsError, match="UTF-8"):
        read_contacts(b"patient_id\n\xff\xfe\n")


def test_sample_contacts_cover_every_patient_of_the_practice_month():
    contacts = read_contacts((ROOT / "sample_rosters" / "practice-month-contacts.csv").read_bytes())
    patients = [p["id"] for p in yaml.safe_load((ROOT / "sample_rosters" / "practice-month.yaml").read_text())["patients"]]
    assert set(contacts) == set(patients)
    assert all(c.mobile is None or re.fullmatch(r"\+447700900\d{3}", c.mobile) for c in contacts.values())
    assert all(c.email is None or c.email.endswith("@example.org") for c in contacts.values())
    assert any(c.mobile is None for c in contacts.values()) and any(c.email is None for c in contacts.values())
    assert all(c.postcode is None or c.postcode.startswith("QX") for c in contacts.values())


# --- through the service, to an outbox --------------------------------------------------------


def _service(database_url: str, outbox: Path, **settings):
    return TestClient(create_app(Settings(database_url=database_url, workers=2, poll_seconds=0.1,
                                          messages_outbox=str(outbox), **settings)))


def tutorial_with_channels(**changes) -> dict:
    body = tutorial(**changes)
    preferences = [["calendar"], ["sms"], ["letter"], ["calendar", "sms", "letter"], ["sms", "letter"]]
    for i, p in enumerate(body["patients"]):
        p["contact_preference"] = preferences[i % len(preferences)]
        if i % 2:
            p.setdefault("needs", {})["large_print"] = True
    return body


def tutorial_contacts(body: dict, *, missing_phone: set[str] = frozenset()) -> bytes:
    rows = []
    for i, p in enumerate(body["patients"]):
        mobile = "" if p["id"] in missing_phone else f"07700 900{100 + i:03d}"
        rows.append([p["id"], mobile, f"patient{i}@example.org", f"{i + 1} Mill Lane", "Sandmere", "QX1 2AB"])
    return _csv(rows)


def _send(client, key, plan_id, contacts: bytes):
    return client.post(f"/v1/plans/{plan_id}/messages", headers=auth(key),
                       files={"contacts": ("contacts.csv", contacts, "text/csv")})


@pytest.mark.hazard("HAZ-013", "HAZ-014")
def test_messages_go_to_the_outbox_once_each_and_updates_say_what_changed(database_url, tmp_path):
    keys = make_keys(database_url)
    key = keys["manager"]
    outbox = tmp_path / "outbox"
    body = tutorial_with_channels()
    first_sms_patient = next(p["id"] for p in body["patients"] if "sms" in p["contact_preference"])
    contacts = tutorial_contacts(body, missing_phone={first_sms_patient})
    with _service(database_url, outbox) as client:
        sid = client.post("/v1/scenarios", json=body, headers=auth(key)).json()["id"]
        first = solve(client, key, sid)
        plan1 = checked_plan(client, key, sid, 1, first)
        never = _send(client, key, first, contacts)
        assert never.status_code == 409 and never.json()["error"]["code"] == "not_published"
        assert client.post(f"/v1/plans/{first}/publish", headers=auth(key)).status_code == 200
        assert _send(client, keys["planner"], first, contacts).status_code == 403
        assert _send(client, keys["other"], first, contacts).status_code == 404
        bad = _send(client, key, first, _csv([["9434765919", "", "", "", "", ""]]))
        assert bad.status_code == 422 and "9434765919" not in bad.text
        assert bad.json()["error"]["problems"][0]["location"] == "row 2, column 'patient_id'"

        sent = _send(client, key, first, contacts)
        assert sent.status_code == 200, sent.text
        counts = sent.json()["counts"]
        prefs = {p["id"]: p["contact_preference"] for p in body["patients"]}
        expected: dict[str, int] = {}
        for v in plan1.visits:
            for channel in prefs[v.patient_id]:
                expected[channel] = expected.get(channel, 0) + 1
        assert {c: sum(s.values()) for c, s in counts.items()} == expected
        no_phone_visits = sum(v.patient_id == first_sms_patient for v in plan1.visits)
        assert counts["sms"].get("no_contact", 0) == no_phone_visits
        files = sorted(p.name for p in outbox.iterdir())
        assert len(files) == sum(expected.values()) - no_phone_visits
        assert all(re.fullmatch(r"OV-[A-Z0-9]{6}\.1\.new\.(sms\.txt|letter\.pdf|calendar\.eml)", f) for f in files)
        for f in outbox.iterdir():
            data = f.read_bytes()
            assert not any(p["id"].encode() in data for p in body["patients"]), f.name
        # Again: nothing is sent twice.
        again = _send(client, key, first, contacts).json()
        assert again["counts"] == {} and again["already_sent"] == sum(expected.values())
        listed = client.get(f"/v1/plans/{first}/messages", headers=auth(key))
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert len(items) == sum(expected.values())
        assert set(items[0]) == {"reference", "publish_number", "action", "channel", "status"}
        assert "Mill Lane" not in listed.text and "07700" not in listed.text and "example.org" not in listed.text

        # Version 2: one patient leaves (cancel), another cannot come on their visit's day (update).
        gone = next(v.patient_id for v in plan1.visits if "sms" in prefs[v.patient_id]
                    and v.patient_id != first_sms_patient)
        moved_visit = next(v for v in plan1.visits if v.patient_id != gone and "sms" in prefs[v.patient_id]
                           and v.patient_id != first_sms_patient)
        body2 = copy.deepcopy(body)
        body2["patients"] = [p for p in body2["patients"] if p["id"] != gone]
        for p in body2["patients"]:
            if p["id"] == moved_visit.patient_id:
                p["unavailable"] = [*p.get("unavailable", []), {"date": str(moved_visit.date)}]
        assert client.put(f"/v1/scenarios/{sid}", json=body2, headers=auth(key)).status_code == 200
        second = solve(client, key, sid)
        assert client.post(f"/v1/plans/{second}/publish", headers=auth(key)).status_code == 200
        stale = _send(client, key, first, contacts)
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "not_current"
        assert _send(client, key, second, contacts).status_code == 200
        invites = client.get(f"/v1/plans/{second}/invites", headers=auth(key)).json()["items"]
        by_action = {}
        for item in invites:
            by_action.setdefault((item["patient_id"], item["action"]), []).append(item["reference"])
        cancels = by_action[(gone, "cancel")]
        for ref in cancels:
            text = (outbox / f"{ref}.2.cancel.sms.txt").read_text()
            assert "is cancelled" in text and ref in text
        updates = by_action.get((moved_visit.patient_id, "update"), [])
        assert updates, invites
        old = visit_when(Scenario.model_validate(body), plan1, moved_visit.id)
        texts = [(outbox / f"{ref}.2.update.sms.txt").read_text() for ref in updates]
        assert any(f"It was {old.short_day} at {old.time}" in t for t in texts), texts
        assert not any(outbox.glob("*.2.unchanged.*"))


# --- the command line, end to end on the practice month ----------------------------------------


def test_practice_month_planned_published_and_sent_to_an_outbox_from_the_command_line(tmp_path, monkeypatch):
    from sqlalchemy import select
    from typer.testing import CliRunner

    from api.cli import app, save_plan
    from api.db import make_engine, make_sessionmaker
    from api.models import MessageDelivery, Publication
    from scheduler.scenario_io import load_scenario

    for name in ("ONEVISIT_NOTIFY_API_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'onevisit.db'}"
    sample = ROOT / "sample_rosters" / "practice-month.yaml"
    data = load_scenario(sample).model_dump(mode="json")
    preferences = [["calendar"], ["sms"], ["letter"], ["sms", "letter"], ["calendar", "sms", "letter"]]
    for i, p in enumerate(data["patients"]):
        p["contact_preference"] = preferences[i % len(preferences)]
        if i % 6 == 0:
            p["needs"]["large_print"] = True
    data["solver"] = {**data["solver"], "time_limit_seconds": 15, "workers": 2}
    scenario = Scenario.model_validate(data)
    plan = solve_checked(scenario)
    _, _, stored, _ = save_plan(url, scenario, plan, "practice-month.yaml")
    plan_id = stored.stored.plan_id
    runner = CliRunner()
    contacts = ROOT / "sample_rosters" / "practice-month-contacts.csv"
    outbox = tmp_path / "outbox"
    args = ["messages", plan_id, "--contacts", str(contacts), "--outbox", str(outbox), "--database-url", url]

    unpublished = runner.invoke(app, args)
    assert unpublished.exit_code == 2 and "never published" in unpublished.output
    assert "Traceback" not in unpublished.output
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,mobile\n9434765919,07700900001\nP0002,12345\n")
    refused = runner.invoke(app, [*args[:3], str(bad), *args[4:]])
    assert refused.exit_code == 2 and "row 2, column patient_id" in refused.output
    assert "row 3, column mobile" in refused.output and "9434765919" not in refused.output
    missing = runner.invoke(app, [*args[:3], str(tmp_path / "nope.csv"), *args[4:]])
    assert missing.exit_code == 2 and "cannot read" in missing.output

    assert runner.invoke(app, ["publish", plan_id, "--database-url", url]).exit_code == 0
    started = time.monotonic()
    result = runner.invoke(app, args)
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    for word in ("calendar", "sms", "letter", "outbox", "no_contact"):
        assert word in result.output

    book = read_contacts(contacts.read_bytes())
    prefs = {p.id: p.contact_preference for p in scenario.patients}
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(select(MessageDelivery, Publication.patient_id).join(
                Publication, Publication.event_id == MessageDelivery.event_id)).all()
    finally:
        engine.dispose()
    got = {}
    for delivery, patient_id in rows:
        got.setdefault(patient_id, []).append((delivery.channel, delivery.status))
    with_visit = {v.patient_id for v in plan.visits}
    assert set(got) == with_visit
    visits_of = {pid: sum(v.patient_id == pid for v in plan.visits) for pid in with_visit}
    for pid, sent in got.items():
        assert sorted(c for c, _ in sent) == sorted(prefs[pid] * visits_of[pid]), pid
        for channel, status in sent:
            reachable = book[pid].has(channel) or channel == "calendar"  # no e-mail: a .ics file
            assert status == ("outbox" if reachable else "no_contact"), (pid, channel, status)
    files = list(outbox.iterdir())
    assert len(files) == sum(status == "outbox" for sent in got.values() for _, status in sent)
    assert {f.suffix for f in files} == {".txt", ".pdf", ".eml", ".ics"}
    for f in files:
        assert not re.search(rb"P0\d{3}", f.read_bytes()), f.name
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and f"{len(rows)} already sent before" in " ".join(again.output.split())
    assert elapsed < 60, elapsed


@pytest.mark.hazard("HAZ-013")
def test_a_channel_chosen_later_is_told_of_a_visit_that_did_not_change(database_url, tmp_path):
    """A patient who asks for texts (or calendar invites) after their visit was published gets
    one on that channel at the next publication, though the visit is unchanged; nobody else is
    sent anything again."""
    key = make_keys(database_url)["manager"]
    outbox = tmp_path / "outbox"
    body = tutorial_with_channels()
    chooser = next(p for p in body["patients"] if p["contact_preference"] == ["letter"])
    contacts = tutorial_contacts(body)
    with _service(database_url, outbox) as client:
        sid = client.post("/v1/scenarios", json=body, headers=auth(key)).json()["id"]
        first = solve(client, key, sid)
        checked_plan(client, key, sid, 1, first)
        assert client.post(f"/v1/plans/{first}/publish", headers=auth(key)).status_code == 200
        assert _send(client, key, first, contacts).status_code == 200
        before = {p.name for p in outbox.iterdir()}

        chooser["contact_preference"] = ["sms", "letter", "calendar"]
        client.put(f"/v1/scenarios/{sid}", json=body, headers=auth(key)).raise_for_status()
        second = solve(client, key, sid)
        plan2 = checked_plan(client, key, sid, 2, second)
        counts = client.post(f"/v1/plans/{second}/publish", headers=auth(key)).json()["counts"]
        assert counts["update"] == counts["cancel"] == counts["new"] == 0  # the same visits
        invites = client.get(f"/v1/plans/{second}/invites", headers=auth(key)).json()["items"]
        requests = [i for i in invites if i["method"] == "REQUEST"]
        visits = [v for v in plan2.visits if v.patient_id == chooser["id"]]
        assert {i["patient_id"] for i in requests} == {chooser["id"]} and len(requests) == len(visits)
        assert all(i["action"] == "unchanged" and i["invite_url"] for i in requests)

        sent = _send(client, key, second, contacts).json()
        assert {c: sum(s.values()) for c, s in sent["counts"].items()} == {"calendar": len(visits), "sms": len(visits)}
        new_files = sorted({p.name for p in outbox.iterdir()} - before)
        references = {i["reference"] for i in requests}
        assert len(new_files) == 2 * len(visits)
        assert all(re.fullmatch(r"OV-[A-Z0-9]{6}\.2\.new\.(sms\.txt|calendar\.eml)", f) and f[:9] in references
                   for f in new_files), new_files
