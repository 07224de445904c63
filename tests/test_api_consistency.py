"""What the service keeps consistent when things happen at once or out of order: publishing an
earlier plan again, two publications or edits racing, a clinic becoming sensitive, a cancel
that arrives while a finished plan is being saved; and addresses the database cannot hold."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import anyio
import yaml
from sqlalchemy import func, select, update

from api.db import make_engine, make_sessionmaker, transaction
from api.jobs import Dispatcher, run_job
from api.models import CalendarEvent, Job, PlanRecord, ScenarioRecord
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


def _without_first_patient() -> dict:
    body = tutorial()
    body["patients"] = body["patients"][1:]
    return body


def _active_events(database_url: str, scenario_id: str) -> list[CalendarEvent]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        events = session.scalars(select(CalendarEvent).where(
            CalendarEvent.scenario_id == scenario_id, CalendarEvent.status == "active")).all()
    engine.dispose()
    return list(events)


def test_an_earlier_plan_can_be_published_again_and_feeds_follow(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url) as client:
        sid = client.post("/v1/scenarios", json=tutorial(), headers=auth(key)).json()["id"]
        plan_a = solve(client, key, sid)
        a = checked_plan(client, key, sid, 1, plan_a)
        assert client.put(f"/v1/scenarios/{sid}", json=_without_first_patient(), headers=auth(key)).status_code == 200
        plan_b = solve(client, key, sid)
        b = checked_plan(client, key, sid, 2, plan_b)
        room = a.appointments[0].room_id
        feed = client.post(f"/v1/scenarios/{sid}/calendar-tokens", json={"kind": "room", "subject_id": room},
                           headers=auth(key)).json()

        def room_starts(plan) -> set:
            starts: dict[str, object] = {}
            for appointment in plan.appointments:
                if appointment.room_id == room:
                    starts[appointment.visit_id] = min(starts.get(appointment.visit_id, appointment.start),
                                                       appointment.start)
            return set(starts.values())

        for plan_id, plan in ((plan_a, a), (plan_b, b), (plan_a, a)):  # A, then B, then back to A
            published = client.post(f"/v1/plans/{plan_id}/publish", headers=auth(key))
            if plan_id == plan_a:  # made from version 1 while version 2 is the latest: confirmed (HAZ-009)
                assert published.status_code == 409 and published.json()["error"]["code"] == "older_scenario_version"
                assert "version 1" in published.json()["error"]["message"]
                published = client.post(f"/v1/plans/{plan_id}/publish", params={"confirm_scenario_version": 1},
                                        headers=auth(key))
            assert published.status_code == 200, published.text
            body = client.get(url_path(feed["url"])).content
            assert {e.decoded("DTSTART") for e in vevents(body)} == room_starts(plan)  # never a stale feed
            active = _active_events(database_url, sid)
            assert len(active) == len(plan.visits) and {e.plan_id for e in active} == {plan_id}
        changes = client.get(f"/v1/plans/{plan_a}/invites", headers=auth(key)).json()["items"]
        counts = published.json()["counts"]
        assert sum(counts.values()) == len(changes)  # the invites view shows A's latest publication
        gone = tutorial()["patients"][0]["id"]
        assert {c["action"] for c in changes if c["patient_id"] == gone} == {"new"}  # back in, with a new invite
        # Back to A from B: a patient whose visits B kept exactly as A had them is unchanged; one
        # whose visit B moved (another time or site) gets an update back to A's. (Which patients B
        # moves is the planner's business: the room each clinician holds follows the due list.)
        def visits_of(plan, patient_id: str) -> set:
            return {(v.date, v.start, v.end, v.site_id) for v in plan.visits if v.patient_id == patient_id}

        def appointments_of(plan, patient_id: str) -> set:
            return {(x.kind, x.start, x.end, x.site_id, x.room_id, tuple(x.clinician_ids))
                    for x in plan.appointments if x.patient_id == patient_id}

        actions: dict[str, list[str]] = {}
        for change in changes:
            actions.setdefault(change["patient_id"], []).append(change["action"])
        for patient_id, said in actions.items():
            if patient_id == gone:
                continue
            if appointments_of(a, patient_id) == appointments_of(b, patient_id):
                assert set(said) == {"unchanged"}, (patient_id, said)
            elif visits_of(a, patient_id) != visits_of(b, patient_id):
                assert "update" in said or "new" in said, (patient_id, said)  # a visit moved back to A's
            assert set(said) <= {"unchanged", "update", "new"}, (patient_id, said)


def test_publications_racing_each_other_leave_one_event_per_visit(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url) as client:
        sid = client.post("/v1/scenarios", json=tutorial(), headers=auth(key)).json()["id"]
        plan_a = solve(client, key, sid)
        client.put(f"/v1/scenarios/{sid}", json=_without_first_patient(), headers=auth(key))
        plan_b = solve(client, key, sid)
        plans = {plan_a: checked_plan(client, key, sid, 1, plan_a), plan_b: checked_plan(client, key, sid, 2, plan_b)}
        statuses = []
        for _round in range(3):
            barrier = threading.Barrier(2)

            def publish(plan_id: str, barrier: threading.Barrier = barrier) -> int:
                barrier.wait()
                # Plan A is of version 1 while 2 is the latest: its publication is confirmed.
                params = {"confirm_scenario_version": 1} if plan_id == plan_a else {}
                return client.post(f"/v1/plans/{plan_id}/publish", params=params, headers=auth(key)).status_code

            with ThreadPoolExecutor(2) as pool:
                statuses += list(pool.map(publish, [plan_a, plan_b]))
            active = _active_events(database_url, sid)
            published = client.get(f"/v1/plans/{active[0].plan_id}", headers=auth(key)).json()
            assert {e.plan_id for e in active} == {published["id"]}
            assert len(active) == len(plans[published["id"]].visits)  # not both plans' events at once
        assert set(statuses) <= {200, 409} and statuses.count(200) >= 3, statuses
        engine = make_engine(database_url)
        with make_sessionmaker(engine)() as session:
            assert session.get(ScenarioRecord, sid).publish_count == statuses.count(200)
        engine.dispose()


def test_concurrent_edits_each_get_their_own_version(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        sid = client.post("/v1/scenarios", json=tutorial(), headers=auth(key)).json()["id"]
        barrier = threading.Barrier(6)

        def edit(n: int) -> int:
            barrier.wait()
            body = tutorial(name=f"edit {n}")
            return client.put(f"/v1/scenarios/{sid}", json=body, headers=auth(key)).status_code

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(edit, range(6))) == [200] * 6
        scenario = client.get(f"/v1/scenarios/{sid}", headers=auth(key)).json()
        assert [v["version"] for v in scenario["versions"]] == list(range(1, 8)) and scenario["latest_version"] == 7


def test_a_crowd_of_writes_all_succeed(database_url):
    """More writing requests at once than the server has threads: they take turns on the event
    loop instead of holding threads while waiting for the database's write lock."""
    key = make_keys(database_url)["manager"]
    body = tutorial()
    with running_service(database_url, run_jobs=False) as client:
        barrier = threading.Barrier(60)

        def create(_n: int) -> int:
            barrier.wait()
            return client.post("/v1/scenarios", json=body, headers=auth(key)).status_code

        with ThreadPoolExecutor(60) as pool:
            assert list(pool.map(create, range(60))) == [201] * 60
        assert len(client.get("/v1/scenarios", headers=auth(key)).json()["items"]) == 60


def test_a_scenario_is_read_and_checked_before_its_turn_to_write(database_url):
    """While another request holds the write turn, a broken scenario is refused at once (it is
    validated before the turn), and a good one waits for the turn, then is saved."""
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        turn = client.app.state.services.write_turn
        holding, release = threading.Event(), threading.Event()

        async def hold_the_turn() -> None:
            async with turn:
                holding.set()
                await anyio.to_thread.run_sync(release.wait)

        held = client.portal.start_task_soon(hold_the_turn)
        answers: dict[str, int] = {}

        def post(name: str, body: dict) -> threading.Thread:
            def send() -> None:
                answers[name] = client.post("/v1/scenarios", json=body, headers=auth(key)).status_code

            thread = threading.Thread(target=send)
            thread.start()
            return thread

        try:
            assert holding.wait(120)  # bounds against a hang, not timings
            good, broken = post("good", tutorial()), post("broken", {"name": "broken"})
            broken.join(120)
            assert answers == {"broken": 422}  # answered while the turn was held; the good one waits
        finally:
            release.set()  # a failure must not leave the turn held (the service could not stop)
        held.result(10)
        good.join(120)
        assert answers == {"broken": 422, "good": 201}


def test_a_clinic_becoming_sensitive_changes_no_invite_and_a_patient_may_stop_calendar_invites(database_url):
    """Issue 17: sensitivity no longer decides invites (they never name a review), so a clinic
    becoming sensitive leaves every invite as it is; a patient choosing letters only keeps their
    bookings and references but is sent no more calendar invites."""
    key = make_keys(database_url)["manager"]

    def body(sensitive: bool, letter_only: bool = False) -> dict:
        data = tutorial()
        for review_type in data["review_types"]:
            review_type["sensitive"] = sensitive
        if letter_only:
            data["patients"][0]["contact_preference"] = ["letter"]
        return data

    with running_service(database_url) as client:
        sid = client.post("/v1/scenarios", json=body(False), headers=auth(key)).json()["id"]
        plans, changes = [], []
        for version, (sensitive, letter_only) in enumerate(((False, False), (True, False), (True, True)), start=1):
            if version > 1:
                client.put(f"/v1/scenarios/{sid}", json=body(sensitive, letter_only), headers=auth(key))
            plan_id = solve(client, key, sid)
            plans.append((plan_id, checked_plan(client, key, sid, version, plan_id)))
            assert client.post(f"/v1/plans/{plan_id}/publish", headers=auth(key)).status_code == 200
            changes.append(client.get(f"/v1/plans/{plan_id}/invites", headers=auth(key)).json()["items"])
        visits = [{v.id for v in plan.visits} for _, plan in plans]
        assert visits[0] == visits[1] == visits[2] and visits[0]  # the same plan each time
        first, second, third = changes
        invited = {i["reference"]: i for i in first}
        assert all(i["method"] == "REQUEST" and i["invite_url"] for i in first), first

        # Became sensitive: nothing to send, the same events and links, the same neutral invite.
        assert {i["action"] for i in second} == {"unchanged"}
        assert {i["reference"] for i in second} == set(invited)
        for item in second:
            assert item["invite_url"] == invited[item["reference"]]["invite_url"]
            booking = client.get(f"/v1/bookings/{item['reference']}", headers=auth(key)).json()
            assert booking["sensitive"] is True
            if item["patient_id"] != tutorial()["patients"][0]["id"]:  # that patient's link ends below
                (event,) = vevents(client.get(url_path(item["invite_url"])).content)
                assert int(event["SEQUENCE"]) == 0

        # Letters only: the patient's bookings stay; no invite method or link is handed out.
        letter_patient = tutorial()["patients"][0]["id"]
        assert {i["reference"] for i in third} == set(invited)
        for item in third:
            booking = client.get(f"/v1/bookings/{item['reference']}", headers=auth(key)).json()
            if item["patient_id"] == letter_patient:
                assert item["invite_url"] is None and booking["calendar_invites"] is False
                old = invited[item["reference"]]["invite_url"]
                assert client.get(url_path(old)).status_code == 404  # no invite file for them any more
            else:
                assert item["invite_url"] == invited[item["reference"]]["invite_url"]
                assert booking["calendar_invites"] is True


def _queued_job(client, key: str) -> dict:
    scenario_id = client.post("/v1/scenarios", json=tutorial(), headers=auth(key)).json()["id"]
    return client.post(f"/v1/scenarios/{scenario_id}/plans", json={}, headers=auth(key)).json()


def test_a_cancel_that_arrives_while_the_plan_is_saved_wins(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        job = _queued_job(client, key)
    engine = make_engine(database_url)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:  # a worker claimed it; then the user pressed cancel
        session.execute(update(Job).where(Job.id == job["id"]).values(status="running", cancel_requested=True))
    run_job(job["id"], database_url)  # the solve itself, in this process
    with factory() as session:
        stored = session.get(Job, job["id"])
        assert (stored.status, stored.error_code, stored.plan_id) == ("cancelled", "cancelled", None)
        assert session.scalar(select(func.count()).select_from(PlanRecord)) == 0
    engine.dispose()


class _NoProcesses:
    """A process context that cannot start processes (as when the machine is out of them)."""

    class Process:
        def __init__(self, **_kwargs) -> None:
            pass

        def start(self) -> None:
            raise OSError("Resource temporarily unavailable")


def test_a_worker_that_cannot_start_fails_its_job_instead_of_leaving_it_running(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        job = _queued_job(client, key)
        engine = make_engine(database_url)
        dispatcher = Dispatcher(database_url, make_sessionmaker(engine), workers=1, poll_seconds=0.1)
        dispatcher._context = _NoProcesses()
        dispatcher.tick()
        after = client.get(f"/v1/jobs/{job['id']}", headers=auth(key)).json()
        assert after["status"] == "failed" and after["error"]["code"] == "worker_start_failed"
        assert "Resource temporarily unavailable" in after["error"]["message"] and not dispatcher.running
        engine.dispose()


def test_addresses_and_names_the_database_cannot_hold_are_client_errors(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url) as client:
        long_name = "Riverside clinic " + "x" * 300
        created = client.post("/v1/scenarios", json=tutorial(name=long_name), headers=auth(key))
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        assert created.json()["name"] == long_name[:200]  # a 200-character label
        stored = client.get(f"/v1/scenarios/{sid}/versions/1", headers=auth(key)).json()
        assert stored["name"] == long_name  # the document keeps the name whole
        for text, says in (("Riverside \x00 clinic", "NUL"), ("Riverside \ud800 clinic", "surrogate")):
            body = json.dumps(tutorial(name="ok", description=text)).encode()  # \\u escapes, as a client may send
            refused = client.post("/v1/scenarios", content=body,
                                  headers={**auth(key), "content-type": "application/json"})
            assert refused.status_code == 422, refused.text
            (problem,) = refused.json()["error"]["problems"]
            assert problem["location"] == "description" and says in problem["message"]

        for path in (f"/v1/scenarios/{sid}%00", "/v1/jobs/%00", "/v1/calendar/room/%00abc.ics",
                     f"/v1/scenarios/{sid}/calendar-tokens?kind=%00"):
            response = client.get(path, headers=auth(key))
            assert response.status_code == 400, (path, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_character" and error["field"] == ("query" if "?" in path else "path")
        too_big = client.get(f"/v1/scenarios/{sid}/versions/{2**31}", headers=auth(key))
        assert too_big.status_code == 422 and too_big.json()["error"]["field"] == "path.version"
        assert client.post(f"/v1/scenarios/{sid}/plans", json={"version": 2**31},
                           headers=auth(key)).status_code == 422

        files = {"scenario": ("r" * 300 + ".yaml", yaml.safe_dump(tutorial()).encode(), "application/yaml")}
        uploaded = client.post("/v1/scenarios/upload", files=files, headers=auth(key))
        assert uploaded.status_code == 201 and len(uploaded.json()["versions"][0]["source"]) == 200

        plan_id = solve(client, key, sid)
        checked_plan(client, key, sid, 1, plan_id)
        assert client.get(f"/v1/plans/{plan_id}/appointments", params={"clinician_id": "a\x00b"},
                          headers=auth(key)).status_code == 400
        client.post(f"/v1/plans/{plan_id}/publish", headers=auth(key))
        invite = client.get(f"/v1/plans/{plan_id}/invites", headers=auth(key)).json()["items"][0]
        for bad in ("a,b@example.org", "Someone <a@example.org>", "a@b@example.org", "a@example.org\r\nBcc: x@y"):
            response = client.get(f"/v1/invites/{invite['reference']}/message", params={"to": bad}, headers=auth(key))
            assert response.status_code == 422, (bad, response.text)
        head = client.head(url_path(invite["invite_url"]))
        assert head.status_code == 200 and head.headers["content-type"].startswith("text/calendar")
        assert client.head("/v1/calendar/patient/" + "A" * 43 + ".ics").status_code == 404
