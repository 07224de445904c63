"""Re-planning through the service (issue 14), on SQLite and PostgreSQL, with real solves: a plan
re-planned after disruptions as a new scenario version and a draft plan, the difference between
the two, publishing it (messages only to patients whose visit changed), booking look-ups by
reference, discarding a draft, and disruptions refused by entry and field with nothing saved."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from api.calendar import review_visit_for
from api.db import make_engine, make_sessionmaker, transaction
from api.models import AppointmentClinician, AppointmentRecord, Job
from scheduler.plan import Plan
from tests.api_support import (
    auth,
    checked_plan,
    make_keys,
    running_service,
    solve,
    tutorial,
    wait_for_job,
)

LONDON = ZoneInfo("Europe/London")
HORIZON_START = "2027-03-22T00:00:00"  # the tutorial's first day, London time
FREEZE_ENDS = dt.date(2027, 3, 25)  # from the horizon start: the rest of Mon 22, Tue 23, Wed 24
SHORT = {"time_limit_seconds": 2, "workers": 1, "seed": 1}


def _create(client, key) -> str:
    response = client.post("/v1/scenarios", json=tutorial(), headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _publish(client, key, plan_id) -> dict[str, int]:
    response = client.post(f"/v1/plans/{plan_id}/publish", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()["counts"]


def _touched(plan: Plan, clinician: str, day: dt.date) -> set[str]:
    """Visits with an appointment of `clinician` on `day` (local)."""
    return {a.visit_id for a in plan.appointments
            if clinician in a.clinician_ids and a.start.astimezone(LONDON).date() == day}


def _absence_target(plan: Plan) -> tuple[str, dt.date]:
    """A clinician and a day after the freeze window with booked visits: the pair touching the most
    visits (ties: the earliest day, then clinician id), so that the absence really moves some."""
    pairs = {(c, a.start.astimezone(LONDON).date()) for a in plan.appointments for c in a.clinician_ids}
    pairs = [(c, d) for c, d in pairs if d >= FREEZE_ENDS]
    assert pairs, "the tutorial plan books nothing after the freeze window"
    return max(pairs, key=lambda p: (len(_touched(plan, *p)), -p[1].toordinal(), p[0]))


def _scenario(client, key, scenario_id) -> dict:
    return client.get(f"/v1/scenarios/{scenario_id}", headers=auth(key)).json()


def _jobs(client, key, scenario_id) -> list[dict]:
    return client.get("/v1/jobs", params={"scenario_id": scenario_id}, headers=auth(key)).json()["items"]


def test_replan_after_an_absence_messages_only_the_patients_it_moves(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url) as client:
        scenario_id = _create(client, key)
        first = solve(client, key, scenario_id)
        before = checked_plan(client, key, scenario_id, 1, first)
        assert before.stored is not None and before.stored.model_dump() == {
            "plan_id": first, "scenario_id": scenario_id, "scenario_version": 1}
        assert before.replan is None
        assert _publish(client, key, first)["new"] == len(before.visits)
        summary = client.get(f"/v1/plans/{first}", headers=auth(key)).json()
        assert summary["status"] == "published" and summary["previous_plan_id"] is None

        clinician, day = _absence_target(before)
        touched = _touched(before, clinician, day)
        absence = {"kind": "clinician_absence", "clinician": clinician, "start": f"{day}T00:00:00",
                   "end": f"{day + dt.timedelta(days=1)}T00:00:00", "reason": "sick"}
        # A visit the absence leaves alone, pinned by the reference its patient holds.
        invites = client.get(f"/v1/plans/{first}/invites", headers=auth(key)).json()["items"]
        visit_of = {client.get(f"/v1/bookings/{i['reference']}", headers=auth(key)).json()["visit"]["id"]: i["reference"]
                    for i in invites}
        pinned = next(v for v in before.visits if v.id not in touched)
        pin = {"kind": "booking_pinned", "reference": visit_of[pinned.id]}
        started = client.post(f"/v1/plans/{first}/replan", headers=auth(key),
                              json={"disruptions": [absence, pin], "as_of": HORIZON_START, **SHORT})
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["base_plan_id"] == first and job["scenario_version"] == 2 and job["status"] == "queued"
        scenario = _scenario(client, key, scenario_id)
        assert scenario["latest_version"] == 2 and scenario["published_plan_id"] == first
        assert scenario["versions"][1]["source"] == f"replan of plan {first}: 2 disruptions"
        sessions = client.get(f"/v1/scenarios/{scenario_id}/versions/2", headers=auth(key)).json()["sessions"]
        assert not any(s["clinician_id"] == clinician and s["date"] == str(day) for s in sessions)

        job = wait_for_job(client, key, job["id"])
        assert job["status"] == "finished", job
        second = job["plan_id"]
        after = checked_plan(client, key, scenario_id, 2, second)  # the independent checker passes it
        assert after.stored is not None and after.stored.plan_id == second and after.stored.scenario_version == 2
        assert after.replan is not None and after.replan.previous_plan_id == first
        assert after.replan.as_of == dt.datetime(2027, 3, 22, tzinfo=LONDON)
        assert [d["kind"] for d in after.replan.disruptions] == ["clinician_absence", "booking_pinned"]
        assert after.replan.targets == {"2": pinned.appointment_ids}  # the reference, followed to its visit
        summary = client.get(f"/v1/plans/{second}", headers=auth(key)).json()
        assert summary["status"] == "draft" and summary["previous_plan_id"] == first
        assert summary["scenario_version"] == 2 and summary["number"] == 2
        # The plan re-planned is as it was: same document, still published, on version 1.
        assert client.get(f"/v1/plans/{first}/document", headers=auth(key)).json() == before.model_dump(mode="json")
        assert client.get(f"/v1/plans/{first}", headers=auth(key)).json()["scenario_version"] == 1
        assert not any(clinician in a.clinician_ids and a.start.astimezone(LONDON).date() == day
                       for a in after.appointments)

        # The diff: exactly the visits the absence touched moved or went, every other visit is
        # unchanged, and only the patients of touched visits appear.
        diff = client.get(f"/v1/plans/{first}/diff/{second}", headers=auth(key))
        assert diff.status_code == 200, diff.text
        diff = diff.json()
        assert diff["old_plan_id"] == first and diff["new_plan_id"] == second
        changes = [v for p in diff["patients"] for v in p["visits"]]
        changed_old = {v["old_visit_id"] for v in changes if v["change"] in ("moved", "cancelled")}
        assert changed_old == touched, (changed_old, touched)
        for change in changes:
            if change["change"] in ("moved", "cancelled"):
                assert any(r["code"] == "clinician_absence" and r["entry"] == 1 for r in change["reasons"]), change
        touched_patients = {v.patient_id for v in before.visits if v.id in touched}
        assert {p["patient_id"] for p in diff["patients"]} == touched_patients
        assert diff["counts"]["unchanged"] == len(before.visits) - len(touched)
        assert diff["counts"]["moved"] + diff["counts"]["cancelled"] == len(touched)
        unchanged_old = {v["old_visit_id"] for v in changes if v["change"] == "unchanged"}
        kept = {v.id for v in after.visits}
        assert {v.id for v in before.visits} - touched - unchanged_old <= kept  # untouched patients' visits stay

        # Publishing the re-plan: an update for each moved visit, a cancel for each visit gone, a
        # new invite for each visit newly booked, and nothing for anyone else; except that a
        # blood-test trip that did not move is updated when the check-up it names moved (its
        # invite says when the check-up is, issue 17).
        def review_start(plan, visit_id):
            review = review_visit_for(plan, visit_id)
            return review.start if review else None

        renamed = sum(1 for v in changes if v["change"] == "unchanged"
                      and review_start(before, v["old_visit_id"]) != review_start(after, v["new_visit_id"]))
        counts = _publish(client, key, second)
        assert counts == {"update": diff["counts"]["moved"] + renamed, "cancel": diff["counts"]["cancelled"],
                          "new": diff["counts"]["newly_booked"],
                          "unchanged": diff["counts"]["unchanged"] - renamed}, counts
        invites = client.get(f"/v1/plans/{second}/invites", headers=auth(key)).json()["items"]
        by_patient: dict[str, set[str]] = defaultdict(set)
        for change in changes:
            by_patient[change["patient_id"]].add(change["change"])
        expected = {"update": {"moved", "unchanged"}, "cancel": {"cancelled"}, "new": {"newly_booked"}}
        for invite in invites:
            if invite["action"] == "unchanged":
                assert invite["method"] is None
                continue
            assert invite["patient_id"] in touched_patients, invite
            assert expected[invite["action"]] & by_patient[invite["patient_id"]], invite
        messaged = {i["patient_id"] for i in invites if i["action"] != "unchanged"}
        assert messaged == touched_patients
        assert client.get(f"/v1/plans/{first}", headers=auth(key)).json()["status"] == "superseded"
        assert client.get(f"/v1/plans/{second}", headers=auth(key)).json()["status"] == "published"

        # A booking looked up after the re-plan shows where its visit is now.
        for invite in invites:
            booking = client.get(f"/v1/bookings/{invite['reference']}", headers=auth(key)).json()
            assert booking["published_plan_id"] == second and booking["sequence"] == invite["sequence"]
            if invite["action"] == "cancel":
                assert booking["status"] == "cancelled" and booking["plan_id"] == first
                assert booking["visit"]["id"] in touched
            else:
                assert booking["status"] == "active" and booking["plan_id"] == second


def test_booking_lookup_by_reference(database_url):
    keys = make_keys(database_url)
    key = keys["manager"]
    with running_service(database_url) as client:
        scenario_id = _create(client, key)
        plan_id = solve(client, key, scenario_id)
        plan = checked_plan(client, key, scenario_id, 1, plan_id)
        _publish(client, key, plan_id)
        invites = client.get(f"/v1/plans/{plan_id}/invites", headers=auth(key)).json()["items"]
        appointments = {a.id: a for a in plan.appointments}
        visits = {v.id: v for v in plan.visits}
        seen = set()
        for invite in invites:
            for staff in ("manager", "planner"):  # any staff key
                response = client.get(f"/v1/bookings/{invite['reference']}", headers=auth(keys[staff]))
                assert response.status_code == 200, response.text
            booking = response.json()
            assert booking["reference"] == invite["reference"] and booking["patient_id"] == invite["patient_id"]
            assert booking["status"] == "active" and booking["sequence"] == 0
            assert booking["plan_id"] == booking["published_plan_id"] == plan_id
            assert booking["scenario_id"] == scenario_id
            visit = visits[booking["visit"]["id"]]
            assert visit.patient_id == invite["patient_id"] and booking["visit"]["site_id"] == visit.site_id
            seen.add(visit.id)
            assert [a["id"] for a in booking["visit"]["appointments"]] == sorted(
                visit.appointment_ids, key=lambda i: (appointments[i].start, i))
            for shown in booking["visit"]["appointments"]:
                real = appointments[shown["id"]]
                assert dt.datetime.fromisoformat(shown["start"]) == real.start
                assert dt.datetime.fromisoformat(shown["end"]) == real.end
                local = real.start.astimezone(LONDON)  # shown in local time, with its offset
                assert dt.datetime.fromisoformat(shown["start"]).utcoffset() == local.utcoffset()
                assert (shown["date"], shown["room_id"], shown["site_id"], shown["kind"]) == (
                    str(real.date), real.room_id, real.site_id, real.kind)
                assert shown["clinician_ids"] == real.clinician_ids and shown["review_ids"] == real.review_ids
        assert seen == set(visits)  # every visit has its reference

        reference = invites[0]["reference"]
        lower = client.get(f"/v1/bookings/{reference.lower()}", headers=auth(key))
        assert lower.status_code == 200 and lower.json()["reference"] == reference  # read out, typed in lower case
        unknown = client.get("/v1/bookings/OV-000000", headers=auth(key))  # 0 is not in the alphabet
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        foreign = client.get(f"/v1/bookings/{reference}", headers=auth(keys["other"]))
        assert (foreign.status_code, foreign.json()) == (404, unknown.json())  # as if it did not exist
        for garbage in ("garbage", "OV-12345", "OV-1234567", "XX-ABCDEF", "OV-ABC DE"):
            bad = client.get(f"/v1/bookings/{garbage}", headers=auth(key))
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request", (garbage, bad.text)
        assert client.get(f"/v1/bookings/{reference}").status_code == 401


def test_discard_a_draft_plan_but_never_a_published_one(database_url):
    keys = make_keys(database_url)
    key = keys["manager"]
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    with running_service(database_url) as client:
        scenario_id = _create(client, key)
        published, superseded, draft = (solve(client, key, scenario_id) for _ in range(3))
        _publish(client, key, superseded)
        _publish(client, key, published)
        statuses = {p: client.get(f"/v1/plans/{p}", headers=auth(key)).json()["status"]
                    for p in (published, superseded, draft)}
        assert statuses == {published: "published", superseded: "superseded", draft: "draft"}
        listed = client.get("/v1/plans", params={"scenario_id": scenario_id}, headers=auth(key)).json()["items"]
        assert {p["id"]: p["status"] for p in listed} == statuses

        for plan_id in (published, superseded):
            refused = client.delete(f"/v1/plans/{plan_id}", headers=auth(key))
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "plan_published", refused.text
            assert client.get(f"/v1/plans/{plan_id}", headers=auth(key)).status_code == 200
        assert client.delete(f"/v1/plans/{draft}", headers=auth(keys["planner"])).status_code == 403
        foreign = client.delete(f"/v1/plans/{draft}", headers=auth(keys["other"]))
        assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"
        job_id = client.get(f"/v1/plans/{draft}", headers=auth(key)).json()["job_id"]

        gone = client.delete(f"/v1/plans/{draft}", headers=auth(key))
        assert gone.status_code == 204 and gone.content == b""
        assert client.get(f"/v1/plans/{draft}", headers=auth(key)).status_code == 404
        assert client.delete(f"/v1/plans/{draft}", headers=auth(key)).status_code == 404
        job = client.get(f"/v1/jobs/{job_id}", headers=auth(key)).json()
        assert job["plan_id"] is None and job["stage"] == "discarded" and job["status"] == "finished", job
        with factory() as session:
            for table in (AppointmentRecord, AppointmentClinician):
                assert session.scalar(select(func.count()).select_from(table).where(table.plan_id == draft)) == 0
                assert session.scalar(select(func.count()).select_from(table).where(table.plan_id == published)) > 0
        assert client.get(f"/v1/plans/{published}/invites", headers=auth(key)).status_code == 200

    # A draft that a queued re-plan job works from cannot be discarded until the job is done with.
    with running_service(database_url) as client:
        base = solve(client, key, scenario_id)
    with running_service(database_url, run_jobs=False) as client:
        job = client.post(f"/v1/plans/{base}/replan", headers=auth(key), json={"disruptions": [], **SHORT})
        assert job.status_code == 202, job.text
        in_use = client.delete(f"/v1/plans/{base}", headers=auth(key))
        assert in_use.status_code == 409 and in_use.json()["error"]["code"] == "plan_in_use", in_use.text
        assert client.post(f"/v1/jobs/{job.json()['id']}/cancel", headers=auth(key)).status_code == 200
        assert client.delete(f"/v1/plans/{base}", headers=auth(key)).status_code == 204
    with factory() as session:
        assert session.get(Job, job.json()["id"]).base_plan_id == base  # the job keeps what it re-planned
    engine.dispose()


def test_bad_disruptions_are_refused_by_entry_and_field_and_nothing_is_saved(database_url):
    keys = make_keys(database_url)
    key = keys["manager"]
    with running_service(database_url) as client:
        scenario_id = _create(client, key)
        plan_id = solve(client, key, scenario_id)
        plan = checked_plan(client, key, scenario_id, 1, plan_id)

        # Another patient's review with the same clinician, at another time: moving one onto the
        # other's exact time double-books the clinician.
        reviews = [a for a in plan.appointments if a.kind == "review"]
        a, b, clinician = next((a, b, sorted(set(a.clinician_ids) & set(b.clinician_ids))[0])
                               for a in reviews for b in reviews
                               if a.patient_id != b.patient_id and a.start != b.start
                               and a.end - a.start <= b.end - b.start  # still inside the session
                               and set(a.clinician_ids) & set(b.clinician_ids))
        clash = {"kind": "booking_moved", "appointment": a.id, "date": str(b.date),
                 "start": b.start.astimezone(LONDON).strftime("%H:%M"), "clinician": clinician}
        day = {"start": "2027-03-23T00:00:00", "end": "2027-03-24T00:00:00"}
        cases = [
            ([{"kind": "clinician_absence", "clinician": "gp-nobody", **day}],
             {"entry 1 (clinician_absence): clinician": "gp-nobody"}),
            ([{"kind": "clinician_absence", "clinician": "gp-khan", "start": "2027-05-03T00:00:00",
               "end": "2027-05-04T00:00:00"}],
             {"entry 1 (clinician_absence): start": "outside", "entry 1 (clinician_absence): end": "outside"}),
            ([{"kind": "room_closure", "room": "rs-nurse", **day},
              {"kind": "room_closure", "room": "rs-nurse", "start": "2027-03-23T10:00:00",
               "end": "2027-03-25T00:00:00"}],
             {"entry 2 (room_closure): room": "already closed"}),
            ([{"kind": "session_added", "session": {"clinician_id": "gp-khan", "date": "2027-03-30",
                                                    "start": "14:00", "end": "17:00", "site_id": "riverside"}},
              clash],
             {"entry 2 (booking_moved): clinician": "clinician_double_booked"}),
            # Read before anything is looked up: a field missing, an unknown kind.
            ([{"kind": "clinician_absence", "clinician": "gp-khan", "start": "2027-03-23T00:00:00"},
              {"kind": "flood"}],
             {"entry 1 (clinician_absence): end": "missing", "entry 2: kind": "flood"}),
            # Every bad entry at once, each named.
            ([{"kind": "clinician_absence", "clinician": "gp-nobody", **day}, {"kind": "room_closure",
              "room": "rs-nowhere", **day}, {"kind": "patient_cancelled", "patient": "P999"}],
             {"entry 1 (clinician_absence): clinician": "gp-nobody", "entry 2 (room_closure): room": "rs-nowhere",
              "entry 3 (patient_cancelled): patient": "P999"}),
        ]
        for disruptions, expected in cases:
            response = client.post(f"/v1/plans/{plan_id}/replan", headers=auth(key),
                                   json={"disruptions": disruptions, "as_of": HORIZON_START, **SHORT})
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_disruptions", error
            found = {p["location"]: p["message"] for p in error["problems"]}
            assert set(found) == set(expected), (found, expected)
            for location, words in expected.items():
                assert words in found[location], (location, found[location])
                assert all(p["source"] == "disruptions" for p in error["problems"])
            assert error["field"] == f"disruptions: {error['problems'][0]['location']}"

        # A moment after the horizon: nothing could be booked.
        late = client.post(f"/v1/plans/{plan_id}/replan", headers=auth(key),
                           json={"disruptions": [], "as_of": "2027-04-03T09:00:00+01:00"})
        assert late.status_code == 422 and late.json()["error"]["code"] == "invalid_disruptions", late.text
        assert late.json()["error"]["field"] == "as_of"

        # The request itself: settings out of range, a moment that is no date, disruptions not a list.
        for body, field in (({"disruptions": [], "workers": 0}, "body.workers"),
                            ({"disruptions": [], "as_of": "1700000000"}, "body.as_of"),
                            ({"disruptions": {"kind": "clinician_absence"}}, "body.disruptions"),
                            ({}, "body.disruptions")):
            response = client.post(f"/v1/plans/{plan_id}/replan", headers=auth(key), json=body)
            assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text
        # Only managers re-plan; another organisation's plan does not exist.
        planner = client.post(f"/v1/plans/{plan_id}/replan", headers=auth(keys["planner"]), json={"disruptions": []})
        assert planner.status_code == 403 and planner.json()["error"]["code"] == "forbidden"
        foreign = client.post(f"/v1/plans/{plan_id}/replan", headers=auth(keys["other"]), json={"disruptions": []})
        assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"

        # Nothing was saved or started: one version, one job (the first solve), one plan.
        scenario = _scenario(client, key, scenario_id)
        assert scenario["latest_version"] == 1 and len(scenario["versions"]) == 1, scenario
        assert len(_jobs(client, key, scenario_id)) == 1
        assert len(client.get("/v1/plans", params={"scenario_id": scenario_id}, headers=auth(key)).json()["items"]) == 1


@pytest.mark.hazard("HAZ-009")
def test_a_replan_job_whose_inputs_changed_fails_and_keeps_nothing(database_url):
    """The worker applies the disruptions again and must get exactly the version the request
    stored; a job whose entries no longer give it, or whose base plan is gone, fails by name."""
    key = make_keys(database_url)["manager"]
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    with running_service(database_url) as client:
        scenario_id = _create(client, key)
        base = solve(client, key, scenario_id)
    absence = {"kind": "clinician_absence", "clinician": "gp-khan", "start": "2027-03-30T00:00:00",
               "end": "2027-03-31T00:00:00"}
    with running_service(database_url, run_jobs=False) as client:
        jobs = [client.post(f"/v1/plans/{base}/replan", headers=auth(key),
                            json={"disruptions": [absence], "as_of": HORIZON_START, **SHORT}).json()["id"]
                for _ in range(2)]
    with transaction(factory) as session:
        session.get(Job, jobs[0]).disruptions = [{**absence, "clinician": "pn-ellis"}]  # not what was stored
        session.get(Job, jobs[1]).base_plan_id = "0" * 32
    with running_service(database_url) as client:
        changed, missing = (wait_for_job(client, key, j) for j in jobs)
        assert (changed["status"], changed["error"]["code"]) == ("failed", "replan_changed"), changed
        assert (missing["status"], missing["error"]["code"]) == ("failed", "base_plan_missing"), missing
        plans = client.get("/v1/plans", params={"scenario_id": scenario_id}, headers=auth(key)).json()["items"]
        assert [p["id"] for p in plans] == [base]
    engine.dispose()
