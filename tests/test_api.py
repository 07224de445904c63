"""The service through real HTTP (httpx via the ASGI app) on SQLite and PostgreSQL, with real solves."""

from __future__ import annotations

import csv
import io
import json
import threading
import time

import pytest
import yaml
from sqlalchemy import func, select, update

from api.db import make_engine, make_sessionmaker, transaction
from api.models import AppointmentRecord, Job, PlanRecord, ScenarioVersion
from scheduler.scenario_io import load_scenario
from tests.api_support import (
    ROOT,
    auth,
    checked_plan,
    make_keys,
    running_service,
    tutorial,
    wait_for_job,
)


def _create(client, key, body=None) -> dict:
    response = client.post("/v1/scenarios", json=body or tutorial(), headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


def _solve(client, key, scenario_id, **settings) -> dict:
    response = client.post(f"/v1/scenarios/{scenario_id}/plans", json=settings, headers=auth(key))
    assert response.status_code == 202, response.text
    job = wait_for_job(client, key, response.json()["id"])
    assert job["status"] == "finished", job
    return job


def test_health_and_readiness(database_url):
    with running_service(database_url, run_jobs=False) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        assert "/v1/scenarios" in client.get("/openapi.json").json()["paths"]
        for method, path, allowed in (("DELETE", "/v1/scenarios", "GET, POST"), ("HEAD", "/v1/jobs/x", "GET"),
                                      ("POST", "/v1/calendar/room/x.ics", "GET, HEAD"),
                                      ("OPTIONS", "/v1/scenarios/upload", "POST")):  # not /scenarios/{id}
            refused = client.request(method, path)
            assert refused.status_code == 405 and refused.headers["allow"] == allowed, (method, path)
            if method != "HEAD":
                assert refused.json()["error"]["code"] == "method_not_allowed"


def test_plan_end_to_end_with_views_and_checked_result(database_url):
    keys = make_keys(database_url)
    key = keys["manager"]
    with running_service(database_url) as client:
        scenario = _create(client, key)
        assert scenario["latest_version"] == 1 and scenario["versions"][0]["patients"] == 8
        job = _solve(client, key, scenario["id"])
        assert job["reviews_total"] == 20 and job["patients_total"] == 8
        assert job["reviews_booked"] == 20 and job["objective"] >= job["bound"] > 0
        plan_id = job["plan_id"]
        plan = checked_plan(client, key, scenario["id"], 1, plan_id)

        summary = client.get(f"/v1/plans/{plan_id}", headers=auth(key)).json()
        assert summary["number"] == 1 and summary["scenario_version"] == 1
        assert summary["metrics"]["reviews_booked"] == 20
        assert summary["comparison"]["trips_saved"] == (
            summary["baselines"]["old_way"]["visits"] - summary["metrics"]["visits"])

        everything = client.get(f"/v1/plans/{plan_id}/appointments?limit=1000", headers=auth(key)).json()
        assert everything["total"] == len(plan.appointments) == len(everything["items"])
        starts = [a["start"] for a in everything["items"]]
        assert starts == sorted(starts)
        by_id = {a.id: a for a in plan.appointments}
        for item in everything["items"]:  # times come back in local time with their offset
            assert item["start"] == by_id[item["id"]].start.isoformat().replace("+00:00", "Z") or \
                item["start"] == by_id[item["id"]].start.isoformat()

        first = plan.appointments[0]
        clinician = first.clinician_ids[0]
        mine = client.get(f"/v1/plans/{plan_id}/appointments", params={"clinician_id": clinician},
                          headers=auth(key)).json()
        assert mine["total"] == sum(clinician in a.clinician_ids for a in plan.appointments)
        day = client.get(f"/v1/plans/{plan_id}/appointments",
                         params={"date_from": str(first.date), "date_to": str(first.date)}, headers=auth(key)).json()
        assert day["total"] == sum(a.date == first.date for a in plan.appointments)
        for field in ("room_id", "site_id", "patient_id"):
            value = getattr(first, field)
            got = client.get(f"/v1/plans/{plan_id}/appointments", params={field: value}, headers=auth(key)).json()
            assert got["total"] == sum(getattr(a, field) == value for a in plan.appointments)
            assert all(item[field] == value for item in got["items"])
        page = client.get(f"/v1/plans/{plan_id}/appointments", params={"limit": 3, "offset": 3}, headers=auth(key)).json()
        assert [a["id"] for a in page["items"]] == [a["id"] for a in everything["items"][3:6]]

        unbooked = client.get(f"/v1/plans/{plan_id}/unbooked", headers=auth(key)).json()
        assert unbooked["items"] == [u.model_dump(mode="json") for u in plan.unbooked]

        exported = client.get(f"/v1/plans/{plan_id}/clinician-lists.csv", params={"clinician_id": clinician},
                              headers=auth(key))
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(rows) == mine["total"] and all(clinician in r["clinician_ids"].split(";") for r in rows)


@pytest.mark.hazard("HAZ-009")
def test_new_version_keeps_old_plans_on_their_version(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url) as client:
        scenario = _create(client, key)
        first = _solve(client, key, scenario["id"])
        edited = tutorial()
        edited["patients"] = edited["patients"][:4]
        response = client.put(f"/v1/scenarios/{scenario['id']}", json=edited, headers=auth(key))
        assert response.status_code == 200, response.text
        assert response.json()["latest_version"] == 2
        second = _solve(client, key, scenario["id"])
        old = client.get(f"/v1/plans/{first['plan_id']}", headers=auth(key)).json()
        new = client.get(f"/v1/plans/{second['plan_id']}", headers=auth(key)).json()
        assert (old["scenario_version"], old["number"], old["metrics"]["patients"]) == (1, 1, 8)
        assert (new["scenario_version"], new["number"], new["metrics"]["patients"]) == (2, 2, 4)
        checked_plan(client, key, scenario["id"], 1, first["plan_id"])
        checked_plan(client, key, scenario["id"], 2, second["plan_id"])
        # Re-run an older version on request.
        rerun = _solve(client, key, scenario["id"], version=1)
        assert client.get(f"/v1/plans/{rerun['plan_id']}", headers=auth(key)).json()["scenario_version"] == 1
        assert checked_plan(client, key, scenario["id"], 1, rerun["plan_id"]).metrics.patients == 8


def test_versions_and_plan_numbers_count_within_their_own_scenario(database_url):
    """Two scenarios of one organisation: each numbers its own versions and plans from 1, and
    version 1 of each is its own document (a version or plan number counted, or a version looked
    up, across scenarios would mix them up without any organisation check noticing)."""
    key = make_keys(database_url)["manager"]
    with running_service(database_url) as client:
        first = client.post("/v1/scenarios", json=tutorial(name="First month"), headers=auth(key)).json()
        second = client.post("/v1/scenarios", json=tutorial(name="Second month"), headers=auth(key)).json()
        edited = tutorial(name="First month, edited")
        assert client.put(f"/v1/scenarios/{first['id']}", json=edited, headers=auth(key)).json()["latest_version"] == 2
        edited = tutorial(name="Second month, edited")
        assert client.put(f"/v1/scenarios/{second['id']}", json=edited, headers=auth(key)).json()["latest_version"] == 2
        for scenario, name in ((first, "First month"), (second, "Second month")):
            for version, suffix in ((1, ""), (2, ", edited")):
                document = client.get(f"/v1/scenarios/{scenario['id']}/versions/{version}", headers=auth(key)).json()
                assert document["name"] == name + suffix
        plans = [_solve(client, key, first["id"]), _solve(client, key, second["id"]), _solve(client, key, second["id"])]
        numbers = [client.get(f"/v1/plans/{job['plan_id']}", headers=auth(key)).json()["number"] for job in plans]
        assert numbers == [1, 1, 2]
        checked_plan(client, key, second["id"], 2, plans[2]["plan_id"])


def test_bad_scenarios_are_422_with_every_problem_and_nothing_saved(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        bad = tutorial()
        bad["patients"][0]["named_clinician_id"] = "nobody"
        bad["patients"][1]["due_reviews"][0]["window_end"] = "2020-01-01"
        response = client.post("/v1/scenarios", json=bad, headers=auth(key))
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "invalid_scenario"
        text = json.dumps(error["problems"])
        assert "nobody" in text and "window_end" in text and len(error["problems"]) >= 2
        assert error["field"].startswith("scenario.json")
        assert client.get("/v1/scenarios", headers=auth(key)).json()["items"] == []

        report = client.post("/v1/validate", json=bad, headers=auth(key)).json()
        assert report["ok"] is False and len(report["problems"]) == len(error["problems"])
        assert client.post("/v1/validate", json=tutorial(), headers=auth(key)).json()["ok"] is True

        not_json = client.post("/v1/scenarios", content=b"{oops", headers={**auth(key), "content-type": "application/json"})
        assert not_json.status_code == 422 and not_json.json()["error"]["code"] == "invalid_request"
        bad_settings = client.post("/v1/scenarios/x/plans", json={"workers": 0}, headers=auth(key))
        assert bad_settings.status_code == 422 and bad_settings.json()["error"]["field"] == "body.workers"


def test_upload_scenario_with_csv_files(database_url):
    key = make_keys(database_url)["manager"]
    base = tutorial()
    sessions = base.pop("sessions")
    rows = ["clinician_id,date,start,end,site_id"] + [
        f"{s['clinician_id']},{s['date']},{s['start'][:5]},{s['end'][:5]},{s['site_id']}" for s in sessions]
    files = {
        "scenario": ("clinic.yaml", yaml.safe_dump(base).encode(), "application/yaml"),
        "sessions_csv": ("rota.csv", ("\n".join(rows) + "\n").encode(), "text/csv"),
    }
    with running_service(database_url, run_jobs=False) as client:
        response = client.post("/v1/scenarios/upload", files=files, headers=auth(key))
        assert response.status_code == 201, response.text
        created = response.json()
        stored = client.get(f"/v1/scenarios/{created['id']}/versions/1", headers=auth(key)).json()
        assert len(stored["sessions"]) == len(sessions)

        broken = dict(files, sessions_csv=("rota.csv", ("\n".join(rows) + "\nnurse-x,2027-02-30,09:00,10:00,riverside\n").encode(), "text/csv"))
        response = client.post("/v1/scenarios/upload", files=broken, headers=auth(key))
        assert response.status_code == 422
        problems = response.json()["error"]["problems"]
        assert any(p["source"] == "rota.csv" and p["location"].startswith(f"row {len(rows) + 1}") for p in problems), problems
        response = client.post(f"/v1/scenarios/{created['id']}/upload", files=files, headers=auth(key))
        assert response.status_code == 200 and response.json()["latest_version"] == 2


def test_access_is_per_organisation_and_keys_are_checked(database_url):
    keys = make_keys(database_url)
    with running_service(database_url, run_jobs=False) as client:
        scenario = _create(client, keys["manager"])
        sid = scenario["id"]
        for headers in ({}, auth("ov_nothing_here"), auth("not-a-key"), {"Authorization": "Basic abc"}):
            response = client.get("/v1/scenarios", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorised"
        # Another organisation sees nothing, and cannot tell a foreign id from a made-up one.
        other = auth(keys["other"])
        assert client.get("/v1/scenarios", headers=other).json()["items"] == []
        foreign = client.get(f"/v1/scenarios/{sid}", headers=other)
        made_up = client.get("/v1/scenarios/0123456789abcdef0123456789abcdef", headers=other)
        assert foreign.status_code == made_up.status_code == 404
        assert foreign.json() == made_up.json()
        assert client.put(f"/v1/scenarios/{sid}", json=tutorial(), headers=other).status_code == 404
        assert client.post(f"/v1/scenarios/{sid}/plans", json={}, headers=other).status_code == 404
        job = client.post(f"/v1/scenarios/{sid}/plans", json={}, headers=auth(keys["planner"])).json()
        assert client.get(f"/v1/jobs/{job['id']}", headers=other).status_code == 404
        assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=other).status_code == 404
        assert client.get("/v1/jobs", headers=other).json()["items"] == []
        # The planner of the same organisation sees the manager's scenario.
        assert client.get(f"/v1/scenarios/{sid}", headers=auth(keys["planner"])).status_code == 200


def test_revoked_key_stops_working(database_url):
    from api.keys import revoke_key

    keys = make_keys(database_url)
    with running_service(database_url, run_jobs=False) as client:
        assert client.get("/v1/scenarios", headers=auth(keys["planner"])).status_code == 200
        engine = make_engine(database_url)
        with transaction(make_sessionmaker(engine)) as session:
            assert revoke_key(session, keys["planner"].split("_")[1])
        engine.dispose()
        assert client.get("/v1/scenarios", headers=auth(keys["planner"])).status_code == 401


def test_api_answers_during_a_long_solve_then_cancels_it(database_url):
    """A 60 s solve of the 200-patient practice month runs while the API keeps answering."""
    key = make_keys(database_url)["manager"]
    practice = load_scenario(ROOT / "sample_rosters" / "practice-month.yaml").model_dump(mode="json")
    with running_service(database_url) as client:
        scenario = _create(client, key, practice)
        job = client.post(f"/v1/scenarios/{scenario['id']}/plans", json={"time_limit_seconds": 60, "workers": 1},
                          headers=auth(key)).json()
        seen, slowest = [], 0.0
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            started = time.monotonic()
            status = client.get(f"/v1/jobs/{job['id']}", headers=auth(key))
            listed = client.get("/v1/scenarios", headers=auth(key))
            slowest = max(slowest, time.monotonic() - started)
            assert status.status_code == listed.status_code == 200
            seen.append(status.json())
            if seen[-1]["stage"] == "solving" and seen[-1]["objective"] is not None and len(seen) > 5:
                break
            time.sleep(0.3)
        running = seen[-1]
        assert len(seen) > 5 and running["status"] == "running" and running["stage"] == "solving", running
        assert running["reviews_booked"] is not None and running["patients_booked"] is not None
        assert running["objective"] is not None and 0 < running["elapsed_seconds"] < 60
        # The proof that the API answers during the solve is above: six or more answers while the
        # job was running. This bound only catches a read that hung behind the solve (it would
        # take most of the solve's 60 s); read latency is a benchmark's business (api_load.py),
        # not a test's, on a shared 2-core machine.
        assert slowest < 30, f"a read hung for {slowest:.1f} s during the solve"
        cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth(key))
        assert cancelled.status_code == 200 and cancelled.json()["cancel_requested"] is True
        final = wait_for_job(client, key, job["id"], timeout=30)
        assert final["status"] == "cancelled" and final["plan_id"] is None
        assert client.get("/v1/plans", headers=auth(key)).json()["items"] == []
        again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth(key))
        assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"


def test_two_solves_and_a_burst_of_reads_lose_nothing(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, workers=2) as client:
        first = _create(client, key)
        second = _create(client, key, tutorial(name="Second clinic"))
        jobs = [client.post(f"/v1/scenarios/{s['id']}/plans", json={}, headers=auth(key)).json()
                for s in (first, second)]
        failures: list[str] = []

        def reader() -> None:
            for _ in range(15):
                for path in ("/v1/scenarios", "/v1/jobs", f"/v1/jobs/{jobs[0]['id']}", "/v1/plans"):
                    response = client.get(path, headers=auth(key))
                    if response.status_code != 200:
                        failures.append(f"{path}: {response.status_code}")

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = [wait_for_job(client, key, j["id"]) for j in jobs]
        assert failures == []
        assert [d["status"] for d in done] == ["finished", "finished"]
        for scenario, job in zip((first, second), done, strict=True):
            plan = checked_plan(client, key, scenario["id"], 1, job["plan_id"])
            listed = client.get(f"/v1/plans/{job['plan_id']}/appointments?limit=1000", headers=auth(key)).json()
            assert listed["total"] == len(plan.appointments) > 0


def test_server_sent_events_stream_progress_until_the_end(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url) as client:
        scenario = _create(client, key)
        job = client.post(f"/v1/scenarios/{scenario['id']}/plans", json={}, headers=auth(key)).json()
        events: list[tuple[str, dict]] = []
        with client.stream("GET", f"/v1/jobs/{job['id']}/events", headers=auth(key)) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line[len("event: "):]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[len("data: "):])))
                    if name == "end":
                        break
        names = [n for n, _ in events]
        assert names[-1] == "end" and events[-1][1]["status"] == "finished"
        assert names.count("progress") >= 2
        assert events[-2][1]["status"] == "finished" and events[-2][1]["plan_id"] == events[-1][1]["plan_id"]
        checked_plan(client, key, scenario["id"], 1, events[-1][1]["plan_id"])


def test_interrupted_job_is_marked_failed_on_start_up(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        scenario = _create(client, key)
        job = client.post(f"/v1/scenarios/{scenario['id']}/plans", json={}, headers=auth(key)).json()
    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as session:  # as if a solve was running at a crash
        session.execute(update(Job).where(Job.id == job["id"]).values(status="running", stage="solving"))
    engine.dispose()
    with running_service(database_url, run_jobs=False) as client:  # a serve-only instance: not its job
        assert client.get(f"/v1/jobs/{job['id']}", headers=auth(key)).json()["status"] == "running"
    with running_service(database_url) as client:  # the solving instance restarts
        after = client.get(f"/v1/jobs/{job['id']}", headers=auth(key)).json()
        assert after["status"] == "failed" and after["error"]["code"] == "interrupted"


def test_failed_solve_leaves_no_plan_and_says_why(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url) as client:
        scenario = _create(client, key)
        engine = make_engine(database_url)
        factory = make_sessionmaker(engine)
        with transaction(factory) as session:  # a stored version the engine cannot read
            version = session.scalar(select(ScenarioVersion).where(ScenarioVersion.scenario_id == scenario["id"]))
            version.content = {**version.content, "patients": [{"id": "broken"}]}
        job = client.post(f"/v1/scenarios/{scenario['id']}/plans", json={}, headers=auth(key))
        assert job.status_code == 202, job.text
        final = wait_for_job(client, key, job.json()["id"])
        assert final["status"] == "failed" and final["error"]["code"] == "solve_failed"
        assert "patients" in final["error"]["message"]
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(PlanRecord)) == 0
            assert session.scalar(select(func.count()).select_from(AppointmentRecord)) == 0
        engine.dispose()


def test_a_real_server_serves_what_it_just_wrote(tmp_path):
    """Over real loopback HTTP (uvicorn): a 201 means committed, so an immediate read finds it."""
    import os
    import socket
    import subprocess
    import sys

    import httpx

    url = f"sqlite:///{tmp_path / 'served.db'}"
    key = make_keys(url)["manager"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--database-url", url],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth(key), timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
            body = tutorial()
            too_late = []  # jobs that finished before the cancel arrived
            for _ in range(15):
                created = client.post("/v1/scenarios", json=body)
                assert created.status_code == 201
                assert client.get(f"/v1/scenarios/{created.json()['id']}").status_code == 200
                job = client.post(f"/v1/scenarios/{created.json()['id']}/plans", json={})
                assert job.status_code == 202
                cancel = client.post(f"/v1/jobs/{job.json()['id']}/cancel")
                assert cancel.status_code in (200, 409)
                if cancel.status_code == 409:
                    too_late.append((created.json()["id"], job.json()["id"]))
            for scenario_id, job_id in too_late:  # a plan the server saved still passes the checker
                done = wait_for_job(client, key, job_id)
                if done["status"] == "finished":
                    checked_plan(client, key, scenario_id, 1, done["plan_id"])
    finally:
        server.terminate()
        server.wait(timeout=30)
