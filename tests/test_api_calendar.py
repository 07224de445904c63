"""Publishing plans and serving calendars through the real service: UIDs kept across versions,
SEQUENCE raised only on change, cancellations, feeds, tokens and their attacks, privacy."""

from __future__ import annotations

import email
import re
import secrets

import icalendar
import pytest

from api.calendar import wording
from api.calendar.timezone import LONDON
from tests.api_support import (
    auth,
    checked_plan,
    make_keys,
    running_service,
    solve,
    tutorial,
    url_path,
    vevents,
)


@pytest.mark.hazard("HAZ-005", "HAZ-014")
def test_publish_update_and_cancel_keep_uids_and_raise_sequence(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url) as client:
        first_body = tutorial()
        sid = client.post("/v1/scenarios", json=first_body, headers=auth(key)).json()["id"]
        first = solve(client, key, sid)
        plan1 = checked_plan(client, key, sid, 1, first)
        published = client.post(f"/v1/plans/{first}/publish", headers=auth(key))
        assert published.status_code == 200, published.text
        assert published.json()["counts"] == {"new": len(plan1.visits), "update": 0, "unchanged": 0, "cancel": 0}
        assert client.post(f"/v1/plans/{first}/publish", headers=auth(key)).status_code == 409

        invites = client.get(f"/v1/plans/{first}/invites", headers=auth(key)).json()["items"]
        assert len(invites) == len(plan1.visits) and all(i["method"] == "REQUEST" for i in invites)
        before = {}
        for invite in invites:
            response = client.get(url_path(invite["invite_url"]))
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
            cal = icalendar.Calendar.from_ical(response.content)
            assert str(cal["METHOD"]) == "REQUEST"
            (event,) = vevents(response.content)
            before[invite["reference"]] = (invite["patient_id"], str(event["UID"]), int(event["SEQUENCE"]),
                                           event.decoded("DTSTART"))
            assert int(event["SEQUENCE"]) == 0

        # Version 2: one patient leaves, another cannot come on the day of their first visit.
        gone = plan1.visits[0].patient_id
        moved_visit = next(v for v in plan1.visits if v.patient_id != gone)
        moved = moved_visit.patient_id
        body = tutorial()
        body["patients"] = [p for p in body["patients"] if p["id"] != gone]
        for p in body["patients"]:
            if p["id"] == moved:
                p["unavailable"] = [*p.get("unavailable", []), {"date": str(moved_visit.date)}]
        assert client.put(f"/v1/scenarios/{sid}", json=body, headers=auth(key)).status_code == 200
        second = solve(client, key, sid)
        plan2 = checked_plan(client, key, sid, 2, second)
        counts = client.post(f"/v1/plans/{second}/publish", headers=auth(key)).json()["counts"]
        changes = client.get(f"/v1/plans/{second}/invites", headers=auth(key)).json()["items"]
        assert counts["cancel"] >= sum(v.patient_id == gone for v in plan1.visits)
        assert sum(counts.values()) == len(changes)

        for change in changes:
            _patient, uid, sequence, start = before.get(change["reference"], (None, None, None, None))
            response = client.get(url_path(change["invite_url"]))
            (event,) = vevents(response.content)
            method = str(icalendar.Calendar.from_ical(response.content)["METHOD"])
            if change["action"] == "new":
                assert uid is None and int(event["SEQUENCE"]) == 0
                continue
            assert str(event["UID"]) == uid  # the same event, across plan versions
            if change["action"] == "cancel":
                assert method == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
                assert int(event["SEQUENCE"]) == sequence + 1 and not event.walk("VALARM")
            elif change["action"] == "update":
                assert method == "REQUEST" and int(event["SEQUENCE"]) == sequence + 1
                # An update says so, and what it replaces: the old date and time (issue 17).
                assert str(event["SUMMARY"]).startswith("Changed: ")
                old = start.astimezone(LONDON)
                description = str(event["DESCRIPTION"])
                assert f"{wording.long_date(old.date())} at {wording.clock(old)}" in description.split("\n")[0]
            else:
                assert method == "REQUEST" and int(event["SEQUENCE"]) == sequence
                assert event.decoded("DTSTART") == start
                assert not str(event["SUMMARY"]).startswith("Changed")
        by_patient = {}
        for change in changes:
            by_patient.setdefault(change["patient_id"], set()).add(change["action"])
        assert by_patient[gone] == {"cancel"}
        moved_now = [v for v in plan2.visits if v.patient_id == moved]
        assert all(v.date != moved_visit.date for v in moved_now)
        assert by_patient[moved] & {"update", "new", "cancel"}  # the moved visit is not "unchanged"
        only_patient = client.get(f"/v1/plans/{second}/invites", params={"patient_id": gone}, headers=auth(key)).json()
        assert {i["action"] for i in only_patient["items"]} == {"cancel"}

        # The e-mail a mailer sends for the cancellation.
        cancel_ref = next(c["reference"] for c in changes if c["action"] == "cancel")
        raw = client.get(f"/v1/invites/{cancel_ref}/message", params={"to": "someone@example.org"}, headers=auth(key))
        message = email.message_from_bytes(raw.content)
        assert message.get_content_type() == "multipart/alternative"
        part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
        assert part.get_param("method") == "CANCEL" and part.get_param("charset").upper() == "UTF-8"
        assert b"METHOD:CANCEL" in part.get_payload(decode=True)


def _token(url: str) -> str:
    """The token in a calendar link (…/calendar/<kind>/<token>.ics)."""
    name = url.rsplit("/", 1)[1]
    assert name.endswith(".ics"), url
    return name[: -len(".ics")]


def test_feeds_share_uids_with_invites_and_tokens_resist_attacks(database_url):
    keys = make_keys(database_url)
    key = keys["manager"]
    with running_service(database_url) as client:
        sid = client.post("/v1/scenarios", json=tutorial(), headers=auth(key)).json()["id"]
        plan_id = solve(client, key, sid)
        plan = checked_plan(client, key, sid, 1, plan_id)
        first = plan.appointments[-1]
        clinician, room = first.clinician_ids[0], first.room_id
        feeds = {}
        for kind, subject in (("clinician", clinician), ("room", room)):
            created = client.post(f"/v1/scenarios/{sid}/calendar-tokens", json={"kind": kind, "subject_id": subject},
                                  headers=auth(key))
            assert created.status_code == 201, created.text
            feeds[kind] = created.json()
        empty = client.get(url_path(feeds["room"]["url"]))  # nothing published yet: a valid, empty feed
        assert empty.status_code == 200 and vevents(empty.content) == []

        assert client.post(f"/v1/plans/{plan_id}/publish", headers=auth(keys["planner"])).status_code == 403
        assert client.post(f"/v1/plans/{plan_id}/publish", headers=auth(keys["other"])).status_code == 404
        assert client.post(f"/v1/plans/{plan_id}/publish", headers=auth(key)).status_code == 200
        invites = client.get(f"/v1/plans/{plan_id}/invites", headers=auth(key)).json()["items"]
        uid_of_visit = {}
        scenario = tutorial()
        for invite in invites:
            body = client.get(url_path(invite["invite_url"])).content
            (event,) = vevents(body)
            visit = next(v for v in plan.visits if v.patient_id == invite["patient_id"]
                         and event.decoded("DTSTART") == v.start)
            uid_of_visit[visit.id] = str(event["UID"])
        for kind, token in feeds.items():
            body = client.get(url_path(token["url"])).content
            cal = icalendar.Calendar.from_ical(body)
            assert "METHOD" not in cal and b"ATTENDEE" not in body
            subject = clinician if kind == "clinician" else room
            expected = {a.visit_id for a in plan.appointments
                        if (subject in a.clinician_ids if kind == "clinician" else a.room_id == subject)}
            got = {str(e["UID"]) for e in vevents(body)}
            assert got == {uid_of_visit[v] for v in expected}
            text = body.decode()
            for p in scenario["patients"]:
                assert p["id"] not in text
            for t in scenario["review_types"]:
                assert t["name"] not in text
            for c in scenario["clinicians"]:
                assert not c.get("name") or c["name"] not in text

        # Attacks: guessed, cross-kind, revoked, other organisation.
        assert client.get(f"/v1/calendar/patient/{secrets.token_urlsafe(32)}.ics").status_code == 404
        patient_token = url_path(invites[0]["invite_url"]).rsplit("/", 1)[1]
        assert client.get(f"/v1/calendar/room/{patient_token}").status_code == 404
        assert client.get(f"/v1/calendar/clinician/{patient_token}").status_code == 404
        assert client.get(f"/v1/scenarios/{sid}/calendar-tokens", headers=auth(keys["other"])).status_code == 404
        assert client.delete(f"/v1/calendar-tokens/{feeds['room']['id']}", headers=auth(keys["other"])).status_code == 404
        assert client.get(f"/v1/scenarios/{sid}/calendar-tokens", headers=auth(keys["planner"])).status_code == 403
        revoked = client.delete(f"/v1/calendar-tokens/{feeds['room']['id']}", headers=auth(key))
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert client.get(url_path(feeds["room"]["url"])).status_code == 404
        unknown = client.post(f"/v1/scenarios/{sid}/calendar-tokens", json={"kind": "room", "subject_id": "nope"},
                              headers=auth(key))
        assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "subject_id"
        listed = client.get(f"/v1/scenarios/{sid}/calendar-tokens", params={"kind": "patient"}, headers=auth(key)).json()
        assert len(listed["items"]) == len(invites)
        # The listed patient links are exactly the ones the invites hold; every link (patient,
        # clinician, room) has its own token; each is at least 43 URL-safe characters (256 bits
        # from secrets.token_urlsafe(32)), so none can be guessed from another.
        patient_tokens = [_token(t["url"]) for t in listed["items"]]
        assert sorted(patient_tokens) == sorted(_token(i["invite_url"]) for i in invites)
        all_tokens = patient_tokens + [_token(f["url"]) for f in feeds.values()]
        assert len(set(all_tokens)) == len(all_tokens) == len(invites) + 2
        assert all(re.fullmatch(r"[A-Za-z0-9_-]{43,}", t) for t in all_tokens), all_tokens


@pytest.mark.hazard("HAZ-006", "HAZ-013")
def test_sensitive_clinics_get_neutral_invites_and_patients_choose_no_calendar(database_url):
    """Issue 17: a sensitive clinic's patients get the same neutral invite as anyone; whether a
    patient gets calendar invites at all is their contact preference, not the review type."""
    key = make_keys(database_url)["manager"]
    body = tutorial()
    for t in body["review_types"]:
        t["sensitive"] = True
    letter_only = body["patients"][0]["id"]
    body["patients"][0]["contact_preference"] = ["letter"]
    names = [t["name"].lower() for t in body["review_types"]]
    with running_service(database_url) as client:
        sid = client.post("/v1/scenarios", json=body, headers=auth(key)).json()["id"]
        plan_id = solve(client, key, sid)
        plan = checked_plan(client, key, sid, 1, plan_id)
        client.post(f"/v1/plans/{plan_id}/publish", headers=auth(key))
        invites = client.get(f"/v1/plans/{plan_id}/invites", headers=auth(key)).json()["items"]
        assert {i["patient_id"] for i in invites} == {v.patient_id for v in plan.visits}
        for item in invites:
            booking = client.get(f"/v1/bookings/{item['reference']}", headers=auth(key)).json()
            assert booking["sensitive"] is True
            if item["patient_id"] == letter_only:
                assert item["invite_url"] is None and item["method"] is None
                assert booking["calendar_invites"] is False
                assert client.get(f"/v1/invites/{item['reference']}/message", params={"to": "p@example.org"},
                                  headers=auth(key)).status_code == 404
                continue
            assert item["method"] == "REQUEST" and booking["calendar_invites"] is True
            ics = client.get(url_path(item["invite_url"]))
            assert ics.status_code == 200
            [event] = vevents(ics.content)
            text = f"{event.get('summary')} {event.get('description')}".lower()
            assert str(event.get("summary")).startswith(("Your health check-up visit at", "Your blood test at"))
            assert not any(name in text for name in names), text
        room = next(a.room_id for a in plan.appointments if a.review_ids)
        token = client.post(f"/v1/scenarios/{sid}/calendar-tokens", json={"kind": "room", "subject_id": room},
                            headers=auth(key)).json()
        feed = client.get(url_path(token["url"])).content
        assert vevents(feed) and not any(name.encode() in feed.lower() for name in names)
        # The patient asks for calendar invites too: the next publication gives them a link.
        body["patients"][0]["contact_preference"] = ["letter", "calendar"]
        client.put(f"/v1/scenarios/{sid}", json=body, headers=auth(key)).raise_for_status()
        second = solve(client, key, sid)
        checked_plan(client, key, sid, 2, second)
        client.post(f"/v1/plans/{second}/publish", headers=auth(key)).raise_for_status()
        again = client.get(f"/v1/plans/{second}/invites", headers=auth(key)).json()["items"]
        mine = [i for i in again if i["patient_id"] == letter_only and i["action"] != "cancel"]
        assert mine and all(i["invite_url"] for i in mine)
