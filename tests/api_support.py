"""Helpers for driving the real service through HTTP in tests."""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import icalendar
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import Settings
from api.db import make_engine, make_sessionmaker, transaction, upgrade
from api.keys import create_key
from scheduler.check import check_plan, format_report
from scheduler.domain import Scenario
from scheduler.plan import Plan

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = yaml.safe_load((ROOT / "sample_rosters" / "tutorial.yaml").read_text())


def tutorial(time_limit: float = 2.0, **changes) -> dict:
    """The tutorial scenario as a JSON body, with a short solve."""
    data = copy.deepcopy(TUTORIAL)
    data["solver"] = {**data.get("solver", {}), "time_limit_seconds": time_limit, "workers": 1, "seed": 1}
    data = __import__("json").loads(Scenario.model_validate(data).model_dump_json())
    data.update(changes)
    return data


def make_keys(database_url: str) -> dict[str, str]:
    """A manager and a planner key in organisation 'north', a manager key in 'south'."""
    upgrade(database_url)
    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as session:
        keys = {
            "manager": create_key(session, "north", "manager"),
            "planner": create_key(session, "north", "planner"),
            "other": create_key(session, "south", "manager"),
        }
    engine.dispose()
    return keys


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def running_service(database_url: str, workers: int = 2, run_jobs: bool = True):
    app = create_app(Settings(database_url=database_url, workers=workers, poll_seconds=0.1), run_jobs=run_jobs)
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client


def wait_for_job(client: TestClient | httpx.Client, key: str, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth(key)).json()
        if job["status"] in ("finished", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def checked_plan(client, key: str, scenario_id: str, version: int, plan_id: str) -> Plan:
    """Read the stored plan and its scenario version back and run the independent checker."""
    scenario = Scenario.model_validate(client.get(f"/v1/scenarios/{scenario_id}/versions/{version}", headers=auth(key)).json())
    plan = Plan.model_validate(client.get(f"/v1/plans/{plan_id}/document", headers=auth(key)).json())
    report = check_plan(scenario, plan)
    assert report.ok, format_report(report)
    return plan


def solve(client, key: str, scenario_id: str) -> str:
    """Start a plan of the scenario's latest version, wait for it, return the plan id."""
    job = client.post(f"/v1/scenarios/{scenario_id}/plans", json={}, headers=auth(key)).json()
    job = wait_for_job(client, key, job["id"])
    assert job["status"] == "finished", job
    return job["plan_id"]


def url_path(url: str) -> str:
    """The path of a calendar link, to request it from the test client."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def vevents(body: bytes) -> list:
    return list(icalendar.Calendar.from_ical(body).walk("VEVENT"))
