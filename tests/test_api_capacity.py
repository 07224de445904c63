"""Capacity studies through the service (issue 15), on SQLite and PostgreSQL, with real solves: a
study of a stored scenario started as a job, its progress followed to the end, its report served
(HTML with a Content-Security-Policy, JSON, CSV, PNG), nothing of it shown to another
organisation, and bad studies refused by variant and field with nothing saved."""

from __future__ import annotations

import json
import time

import pytest

from scheduler.scenario_io import load_scenario
from tests.api_support import ROOT, auth, make_keys, running_service, tutorial

REPORT_FILES = {"report.html", "report.json", "figures.csv", "capacity_curve.png", "utilisation_heatmap.png",
                "equity.png"}
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = "<script>alert(1)</script> no consult 1"
STUDY = {
    "name": "Riverside without consulting room 1",
    "variants": [{"name": HOSTILE, "changes": [{"kind": "room_removed", "room": "rs-consult1"}]}],
    "bottleneck_roles": ["practice_nurse"],
}


@pytest.fixture(autouse=True)
def one_solve_at_a_time(monkeypatch):
    monkeypatch.setenv("ONEVISIT_STUDY_PROCESSES", "1")  # the machine is shared: one solve at once


def _scenario(client, key) -> str:
    response = client.post("/v1/scenarios", json=tutorial(), headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _wait(client, key, study_id, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = client.get(f"/v1/capacity-studies/{study_id}", headers=auth(key)).json()
        if study["status"] in ("finished", "failed", "cancelled"):
            return study
        time.sleep(0.25)
    raise AssertionError(f"study {study_id} did not finish in {timeout} s")


def test_a_study_runs_as_a_job_and_serves_its_report(database_url):
    keys = make_keys(database_url)
    planner, other = keys["planner"], keys["other"]  # planners model capacity
    with running_service(database_url) as client:
        scenario_id = _scenario(client, planner)
        started = client.post("/v1/capacity-studies", headers=auth(planner),
                              json={"study": STUDY, "scenario_id": scenario_id, "time_limit_seconds": 3})
        assert started.status_code == 202, started.text
        study = started.json()
        assert study["status"] in ("queued", "running") and study["scenario_version"] == 1
        assert study["name"] == STUDY["name"] and study["variants"] == 1 and study["time_limit_seconds"] == 3
        assert study["report_files"] == [] and study["error"] is None
        assert study["study"]["base"] == f"stored scenario {scenario_id} version 1"
        study_id = study["id"]
        # Not finished yet: the report does not exist (a tutorial study may finish quickly, so
        # this is asked only while it is still going).
        early = client.get(f"/v1/capacity-studies/{study_id}/report/report.json", headers=auth(planner))
        if client.get(f"/v1/capacity-studies/{study_id}", headers=auth(planner)).json()["status"] != "finished":
            assert early.status_code in (200, 409)
            if early.status_code == 409:
                assert early.json()["error"]["code"] == "not_finished"

        study = _wait(client, planner, study_id)
        assert study["status"] == "finished", study
        progress = study["progress"]
        assert progress["done"] == progress["total"] > 1, progress
        assert {f["name"] for f in study["report_files"]} == REPORT_FILES
        assert all(f["size"] > 0 for f in study["report_files"])
        listed = client.get("/v1/capacity-studies", headers=auth(planner)).json()["items"]
        assert [s["id"] for s in listed] == [study_id]

        report = client.get(f"/v1/capacity-studies/{study_id}/report/report.json", headers=auth(planner))
        assert report.status_code == 200 and report.headers["content-type"].startswith("application/json")
        data = report.json()
        assert data["study"] == STUDY["name"]
        assert [v["name"] for v in data["variants"]] == ["base", HOSTILE]
        version = client.get(f"/v1/scenarios/{scenario_id}", headers=auth(planner)).json()["versions"][0]
        for variant in data["variants"]:
            assert variant["error"] is None, variant
            assert variant["figures"]["patients"] == version["patients"] == len(tutorial()["patients"])
            assert variant["figures"]["reviews"] == version["reviews"]
        assert data["settings"]["time_limit_seconds"] == 3
        assert data["settings"]["bottleneck_roles"] == ["practice_nurse"]
        assert "base" in data["bottlenecks"]

        page = client.get(f"/v1/capacity-studies/{study_id}/report/report.html", headers=auth(planner))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert page.headers["x-content-type-options"] == "nosniff"
        assert '<img src="data:image/png;base64,' in page.text
        assert "<script>" not in page.text and "&lt;script&gt;" in page.text  # the hostile name, escaped

        for name in ("capacity_curve.png", "utilisation_heatmap.png", "equity.png"):
            png = client.get(f"/v1/capacity-studies/{study_id}/report/{name}", headers=auth(planner))
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"
            assert png.content.startswith(PNG_SIGNATURE)
            assert "content-security-policy" not in png.headers
        table = client.get(f"/v1/capacity-studies/{study_id}/report/figures.csv", headers=auth(planner))
        assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
        assert table.text.splitlines()[0].startswith("variant")

        missing = client.get(f"/v1/capacity-studies/{study_id}/report/secrets.txt", headers=auth(planner))
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        done = client.post(f"/v1/capacity-studies/{study_id}/cancel", headers=auth(planner))
        assert done.status_code == 409 and done.json()["error"]["code"] == "study_finished"
        # The manager key of the same organisation sees it too.
        assert client.get(f"/v1/capacity-studies/{study_id}", headers=auth(keys["manager"])).status_code == 200

        # Another organisation: the study and its report do not exist, its list is empty, and it
        # cannot study north's scenario.
        for path in (f"/v1/capacity-studies/{study_id}", f"/v1/capacity-studies/{study_id}/report/report.html",
                     f"/v1/capacity-studies/{study_id}/report/report.json"):
            refused = client.get(path, headers=auth(other))
            assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found", path
            assert study_id not in refused.text and STUDY["name"] not in refused.text
        assert client.post(f"/v1/capacity-studies/{study_id}/cancel", headers=auth(other)).status_code == 404
        assert client.get("/v1/capacity-studies", headers=auth(other)).json()["items"] == []
        foreign = client.post("/v1/capacity-studies", headers=auth(other),
                              json={"study": STUDY, "scenario_id": scenario_id})
        assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"
        assert client.get("/v1/capacity-studies", headers=auth(other)).json()["items"] == []


def _refused(client, key, scenario_id, study: dict) -> dict:
    response = client.post("/v1/capacity-studies", headers=auth(key), json={"study": study, "scenario_id": scenario_id})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_study", error
    return error


def test_bad_studies_are_refused_by_variant_and_field_and_nothing_is_saved(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:  # nothing here may solve
        scenario_id = _scenario(client, key)
        unknown_site = {"name": "bad", "variants": [
            {"name": "hub move", "changes": [
                {"kind": "sessions_moved", "role": "practice_nurse", "from_site": "riverside", "to_site": "atlantis"}]},
            {"name": "gone", "changes": [{"kind": "room_removed", "room": "no-such-room"}]},
        ]}
        error = _refused(client, key, scenario_id, unknown_site)
        where = {(p["location"], p["message"]) for p in error["problems"]}
        assert ("variant 'hub move': changes[0] (sessions_moved).to_site", "unknown site 'atlantis'") in where, where
        assert ("variant 'gone': changes[0] (room_removed).room", "unknown room 'no-such-room'") in where, where
        assert error["field"] == "variant 'hub move': changes[0] (sessions_moved).to_site"

        empty_sweep = {"name": "bad sweep", "sweeps": [
            {"name": "extra rooms", "values": [], "changes": [{"kind": "max_visit_minutes", "minutes": "$value"}]}]}
        error = _refused(client, key, scenario_id, empty_sweep)
        assert any(p["location"] == "sweeps[0].values" for p in error["problems"]), error

        not_a_study = _refused(client, key, scenario_id, {"variants": "none", "colour": "red"})
        locations = {p["location"] for p in not_a_study["problems"]}
        assert {"name", "variants", "colour"} <= locations, locations

        unknown = client.post("/v1/capacity-studies", headers=auth(key),
                              json={"study": STUDY, "scenario_id": "0" * 32})
        assert unknown.status_code == 404
        no_version = client.post("/v1/capacity-studies", headers=auth(key),
                                 json={"study": STUDY, "scenario_id": scenario_id, "version": 2})
        assert no_version.status_code == 404
        assert client.get("/v1/capacity-studies", headers=auth(key)).json()["items"] == []

        # A good study, never run here: its report is 409 not_finished; cancelling it is at once.
        started = client.post("/v1/capacity-studies", headers=auth(key),
                              json={"study": STUDY, "scenario_id": scenario_id, "version": 1})
        assert started.status_code == 202, started.text
        study = started.json()
        assert study["status"] == "queued" and study["time_limit_seconds"] == 60  # the study's default
        early = client.get(f"/v1/capacity-studies/{study['id']}/report/report.html", headers=auth(key))
        assert early.status_code == 409 and early.json()["error"]["code"] == "not_finished"
        cancelled = client.post(f"/v1/capacity-studies/{study['id']}/cancel", headers=auth(key))
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert json.loads(cancelled.text)["error"]["code"] == "cancelled"
        items = client.get("/v1/capacity-studies", params={"status": "cancelled"}, headers=auth(key)).json()["items"]
        assert [s["id"] for s in items] == [study["id"]]


def _until(client, key, study_id, statuses: tuple[str, ...], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = client.get(f"/v1/capacity-studies/{study_id}", headers=auth(key)).json()
        if study["status"] in statuses:
            return study
        time.sleep(0.2)
    raise AssertionError(f"study {study_id} never became {statuses} in {timeout} s: {study}")


def test_one_study_at_a_time_cancelled_or_interrupted_keeps_no_report(database_url):
    """Studies run one at a time; cancelling a running study stops it (and its solver pool) and
    keeps nothing; a study running when the service stops is failed `interrupted`."""
    key = make_keys(database_url)["manager"]
    month = json.loads(load_scenario(ROOT / "sample_rosters" / "pcn-month.yaml").model_dump_json())
    slow = {"study": {"name": "slow", "bottlenecks": []}, "time_limit_seconds": 120}
    with running_service(database_url) as client:
        created = client.post("/v1/scenarios", json=month, headers=auth(key))
        assert created.status_code == 201, created.text
        scenario_id = created.json()["id"]
        first = client.post("/v1/capacity-studies", headers=auth(key), json={**slow, "scenario_id": scenario_id}).json()
        second = client.post("/v1/capacity-studies", headers=auth(key), json={**slow, "scenario_id": scenario_id}).json()
        _until(client, key, first["id"], ("running",))
        time.sleep(1.0)
        assert client.get(f"/v1/capacity-studies/{second['id']}", headers=auth(key)).json()["status"] == "queued"
        asked = client.post(f"/v1/capacity-studies/{first['id']}/cancel", headers=auth(key))
        assert asked.status_code == 200 and asked.json()["cancel_requested"], asked.text
        cancelled = _until(client, key, first["id"], ("finished", "failed", "cancelled"), timeout=20)
        assert cancelled["status"] == "cancelled" and cancelled["report_files"] == [], cancelled
        assert cancelled["error"]["code"] == "cancelled"
        _until(client, key, second["id"], ("running",))
    # The service stopped while the second was running.
    with running_service(database_url, run_jobs=False) as client:
        stopped = client.get(f"/v1/capacity-studies/{second['id']}", headers=auth(key)).json()
        assert stopped["status"] == "failed" and stopped["error"]["code"] == "interrupted", stopped
        refused = client.get(f"/v1/capacity-studies/{second['id']}/report/report.json", headers=auth(key))
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_finished"
