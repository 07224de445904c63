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
    """Start a plan of the scenario's latest version, wait for it, put the stored plan through the
    independent checker, and return the plan id."""
    job = client.post(f"/v1/scenarios/{scenario_id}/plans", json={}, headers=auth(key)).json()
    job = wait_for_job(client, key, job["id"])
    assert job["status"] == "finished", job
    checked_plan(client, key, scenario_id, job["scenario_version"], job["plan_id"])
    return job["plan_id"]


def url_path(url: str) -> str:
    """The path of a calendar link, to request it from the test client."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def vevents(body: bytes) -> list:
    return list(icalendar.Calendar.from_ical(body).walk("VEVENT"))


def seed_organisation(client, key: str) -> dict:
    """As `key`'s organisation (a manager key, with jobs running): a scenario solved twice, the
    first plan published, a clinician feed link. Returns the real values of every kind of id a
    route takes, and every identifier of the organisation that another must never see."""
    headers = auth(key)
    created = client.post("/v1/scenarios", json=tutorial(), headers=headers)
    assert created.status_code == 201, created.text
    scenario_id = created.json()["id"]
    published, draft = solve(client, key, scenario_id), solve(client, key, scenario_id)
    assert client.post(f"/v1/plans/{published}/publish", headers=headers).status_code == 200
    invites = client.get(f"/v1/plans/{published}/invites", headers=headers).json()["items"]
    sent = [i for i in invites if i["invite_url"]]
    assert sent, "publishing the tutorial sent no invite"
    clinician = TUTORIAL["clinicians"][0]["id"]
    token = client.post(f"/v1/scenarios/{scenario_id}/calendar-tokens", headers=headers,
                        json={"kind": "clinician", "subject_id": clinician})
    assert token.status_code == 201, token.text
    token = token.json()
    plans = {p: client.get(f"/v1/plans/{p}", headers=headers).json() for p in (published, draft)}
    secrets = [url_path(i["invite_url"]).rsplit("/", 1)[1].removesuffix(".ics") for i in sent]
    secrets.append(url_path(token["url"]).rsplit("/", 1)[1].removesuffix(".ics"))
    return {
        "scenario_id": scenario_id, "version": 1, "published_plan": published, "draft_plan": draft,
        "jobs": [plans[published]["job_id"], plans[draft]["job_id"]], "reference": sent[0]["reference"],
        "references": [i["reference"] for i in invites], "token_id": token["id"], "token_url": token["url"],
        "clinician": clinician, "calendar_secrets": secrets, "patient": sent[0]["patient_id"],
    }


def organisation_identifiers(estate: dict) -> set[str]:
    """Everything in a `seed_organisation` result that names the organisation's data (and its
    queued job, if the test added one): another organisation must never be shown any of it."""
    return {estate["scenario_id"], estate["published_plan"], estate["draft_plan"], *estate["jobs"],
            *([estate["queued_job"]] if "queued_job" in estate else []), estate["token_id"],
            *estate["references"], *estate["calendar_secrets"]}
