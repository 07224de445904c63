"""Organisation isolation, by construction.

The routes are read from the app's OpenAPI document, not listed here: every operation that needs
an API key and takes an id or a reference in its path is called with a manager and a planner key
of another organisation ('south') against the real ids of the first ('north'), and must answer
404 — or 403 where the key's role is refused for that route whatever the id — exactly as it
answers for an id that does not exist. Every list route must show south none of north's items.
South's writes must leave the database exactly as it was. A route with a path parameter this
test cannot fill fails the test by name, so a new route cannot be added uncovered.

The same calls with north's own manager key must not be refused (the mapping of parameters to
north's ids is right, so the 404s above are about ownership), and a leak put into the code for
one test is reported (the test can fail). The public calendar routes take only a token, which is
the credential itself; their tokens are tested in test_api_calendar.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

import api.routes.calendar
import api.routes.plans
import api.routes.scenarios
from api.app import create_app
from api.config import Settings
from api.db import make_engine, make_sessionmaker, transaction, upgrade
from api.deps import CallerDep
from api.errors import not_found
from api.keys import create_key
from api.models import Base, CalendarEvent, PlanRecord, ScenarioRecord
from tests.api_support import (
    ROOT,
    auth,
    organisation_identifiers,
    running_service,
    seed_organisation,
    tutorial,
    url_path,
)

TUTORIAL_YAML = (ROOT / "sample_rosters" / "tutorial.yaml").read_bytes()
# Public calendar files: the token in the path is the only credential (test_api_calendar.py).
TOKEN_ONLY = ("/v1/calendar/",)
# Required query parameters that are not ids, filled with something valid.
REQUIRED_QUERY = {"to": "patient@example.org"}
pytestmark = pytest.mark.timeout(300)  # a hang bound: a stream leaked to another key never ends


def make_org_keys(database_url: str) -> dict[str, str]:
    upgrade(database_url)
    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as session:
        keys = {f"{org}_{role}": create_key(session, org, role)
                for org in ("north", "south") for role in ("manager", "planner")}
    engine.dispose()
    return keys


def path_values(estate: dict) -> dict[str, list[Any]]:
    """North's real value(s) for every path parameter name a route may take."""
    return {
        "scenario_id": [estate["scenario_id"]],
        "version": [estate["version"]],
        "plan_id": [estate["published_plan"], estate["draft_plan"]],
        "other_plan_id": [estate["draft_plan"]],
        "job_id": [*estate["jobs"], estate["queued_job"]],
        "reference": [estate["reference"]],
        "token_id": [estate["token_id"]],
        "study_id": [estate["queued_study"]],
        "file_name": ["report.html"],
        "patient_id": [estate["patient"]],
    }


def bodies(estate: dict) -> dict[tuple[str, str], dict[str, Any]]:
    """A valid request body for every write route that takes one, so a refusal is about ownership."""
    return {
        ("PUT", "/v1/scenarios/{scenario_id}"): {"json": tutorial()},
        ("POST", "/v1/scenarios/{scenario_id}/upload"): {
            "files": {"scenario": ("tutorial.yaml", TUTORIAL_YAML, "application/yaml")}},
        ("POST", "/v1/scenarios/{scenario_id}/plans"): {"json": {}},
        ("POST", "/v1/plans/{plan_id}/replan"): {"json": {"disruptions": []}},
        ("POST", "/v1/scenarios/{scenario_id}/calendar-tokens"): {
            "json": {"kind": "clinician", "subject_id": estate["clinician"]}},
        ("POST", "/v1/plans/{plan_id}/messages"): {
            "files": {"contacts": ("contacts.csv", b"patient_id,mobile\nP001,07700 900001\n", "text/csv")}},
        ("POST", "/v1/scenarios/{scenario_id}/recall"): {
            "files": {"export": ("recalls.csv", b"Patient ID,Registered Practice,Recall Due Date,Read/SNOMED "
                                 b"description,SNOMED CT Concept ID\n", "text/csv")},
            "data": {"profile": "ardens"}},
    }


def made_up(value: Any) -> Any:
    """A value of the same shape that names nothing (integers such as a version stay: the id
    beside them is made up; a booking reference stays a well-formed one, OV-000000, which is
    never issued)."""
    if isinstance(value, str) and value.startswith("OV-"):
        return "OV-" + "0" * (len(value) - 3)
    return "0" * len(value) if isinstance(value, str) else value


@dataclass
class Call:
    method: str
    template: str
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.template.format(**{k: str(v) for k, v in self.path.items()})

    @property
    def route(self) -> str:
        return f"{self.method} {self.template}"

    def __str__(self) -> str:
        query = "?" + "&".join(f"{k}={v}" for k, v in self.query.items()) if self.query else ""
        return f"{self.method} {self.url}{query} ({self.template})"

    def made_up(self) -> Call:
        return Call(self.method, self.template, {k: made_up(v) for k, v in self.path.items()}, self.query,
                    self.body)

    def send(self, client, key: str):
        return client.request(self.method, self.url, params=self.query, headers=auth(key), **self.body)


def operations(app) -> list[tuple[str, str, dict]]:
    """(method, path template, operation) for every operation; an operation without its own
    `security` inherits the document's."""
    document = app.openapi()
    found = []
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                operation = {"security": document.get("security", []), **operation}
                found.append((method.upper(), template, operation))
    return found


def authenticated(operation: dict) -> bool:
    return bool(operation["security"])


def parameters(operation: dict, where: str) -> list[dict]:
    return [p for p in operation.get("parameters", []) if p["in"] == where]


def id_calls(app, estate: dict) -> list[Call]:
    """Every authenticated operation with a path parameter, once per combination of north's ids.

    Fails, naming the route, for a path parameter, a required query parameter or a required body
    it does not know how to fill; and for a route with a path parameter and no API key that is
    not a token-only calendar file (it would be outside this test).
    """
    values, known_bodies = path_values(estate), bodies(estate)
    calls, problems = [], []
    for method, template, operation in operations(app):
        path_params = [p["name"] for p in parameters(operation, "path")]
        if not path_params:
            continue
        if not authenticated(operation):
            if not template.startswith(TOKEN_ONLY) or path_params != ["token"]:
                problems.append(f"{method} {template} takes {path_params} but needs no API key")
            continue
        unknown = [name for name in path_params if name not in values]
        if unknown:
            problems.append(f"{method} {template}: no value of north's for path parameter(s) {unknown}; "
                            "add them to path_values()")
            continue
        query = {}
        for parameter in parameters(operation, "query"):
            if parameter.get("required"):
                if parameter["name"] not in REQUIRED_QUERY:
                    problems.append(f"{method} {template}: no value for required query parameter "
                                    f"{parameter['name']!r}; add it to REQUIRED_QUERY")
                    continue
                query[parameter["name"]] = REQUIRED_QUERY[parameter["name"]]
        body = known_bodies.get((method, template))
        if body is None and operation.get("requestBody", {}).get("required"):
            problems.append(f"{method} {template}: no valid request body; add one to bodies()")
            continue
        for combination in itertools.product(*(values[name] for name in path_params)):
            calls.append(Call(method, template, dict(zip(path_params, combination)), query, body or {}))
    if problems:
        pytest.fail("Routes this isolation test cannot cover:\n" + "\n".join(problems), pytrace=False)
    return sorted(calls, key=lambda call: call.method == "DELETE")  # a discard last: later calls need the plan


def list_calls(app, estate: dict) -> list[Call]:
    """Every authenticated GET without a path parameter: as it is, and with each optional query
    parameter that names an id (a filter) set to each of north's values."""
    values = path_values(estate)
    calls = []
    for method, template, operation in operations(app):
        if method != "GET" or parameters(operation, "path") or not authenticated(operation):
            continue
        calls.append(Call(method, template))
        for parameter in parameters(operation, "query"):
            for value in values.get(parameter["name"], []):
                calls.append(Call(method, template, query={parameter["name"]: value}))
    return calls


def identifiers(estate: dict) -> set[str]:
    """`organisation_identifiers`, and north's queued capacity study."""
    return organisation_identifiers(estate) | {estate["queued_study"]}


def named(text: str, names: set[str], call: Call) -> set[str]:
    """North's identifiers in a response, leaving out any the request itself carried."""
    asked = str(call)
    return {n for n in names if n in text and n not in asked}


def foreign_failures(client, keys: dict, app, estate: dict) -> tuple[list[str], int]:
    """South's manager and planner keys against every route with north's ids, and south's lists.
    Returns what went wrong, one line per call, and how many calls were made."""
    failures, sent, names = [], 0, identifiers(estate)
    for call in id_calls(app, estate):
        # Refused for a planner whatever the id: north's own planner is refused with a made-up id.
        planner_refused = call.made_up().send(client, keys["north_planner"]).status_code == 403
        sent += 1
        for role in ("manager", "planner"):
            key = keys[f"south_{role}"]
            expected = 403 if role == "planner" and planner_refused else 404
            got, baseline = call.send(client, key), call.made_up().send(client, key)
            sent += 2
            if got.status_code != expected:
                failures.append(f"{call} with south's {role} key: {got.status_code} {got.text[:160]!r}, "
                                f"expected {expected}")
            elif (got.status_code, got.content) != (baseline.status_code, baseline.content):
                failures.append(f"{call} with south's {role} key: answers north's id differently from a "
                                f"made-up one ({got.text[:120]!r} / {baseline.text[:120]!r})")
            if leaked := named(got.text, names, call):
                failures.append(f"{call} with south's {role} key: the response names north's {sorted(leaked)}")
    for call in list_calls(app, estate):
        for role in ("manager", "planner"):
            got = call.send(client, keys[f"south_{role}"])
            sent += 1
            # A list only managers may read (the audit trail) refuses every planner, north's too.
            refused_for_role = role == "planner" and got.status_code == 403 and \
                call.send(client, keys["north_planner"]).status_code == 403
            if got.status_code != 200 and not refused_for_role:
                failures.append(f"{call} with south's {role} key: {got.status_code} {got.text[:160]!r}")
            elif leaked := named(got.text, names, call):
                failures.append(f"{call} with south's {role} key lists north's {sorted(leaked)}")
    return failures, sent


def snapshot(database_url: str) -> dict[str, list[str]]:
    """Every row of every table, to show that refused writes wrote nothing at all."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return {table.name: sorted(repr(tuple(row)) for row in connection.execute(select(table)))
                    for table in Base.metadata.sorted_tables}
    finally:
        engine.dispose()


@pytest.fixture
def north(database_url):
    """North's scenario, two plans (the first published), a feed link, an invite reference, and
    a queued job (made while jobs are not running, so it stays queued); south has its own
    scenario, so south's lists are not empty by default."""
    keys = make_org_keys(database_url)
    with running_service(database_url) as client:
        estate = seed_organisation(client, keys["north_manager"])
        own = client.post("/v1/scenarios", json=tutorial(), headers=auth(keys["south_manager"]))
        assert own.status_code == 201, own.text
    with running_service(database_url, run_jobs=False) as client:
        queued = client.post(f"/v1/scenarios/{estate['scenario_id']}/plans", json={},
                             headers=auth(keys["north_manager"]))
        assert queued.status_code == 202 and queued.json()["status"] == "queued", queued.text
        estate["queued_job"] = queued.json()["id"]
        study = client.post("/v1/capacity-studies", headers=auth(keys["north_manager"]), json={
            "study": {"name": "north study"}, "scenario_id": estate["scenario_id"]})
        assert study.status_code == 202 and study.json()["status"] == "queued", study.text
        estate["queued_study"] = study.json()["id"]
    return keys, estate


def test_another_organisation_reaches_nothing_of_north(database_url, north):
    keys, estate = north
    with running_service(database_url, run_jobs=False) as client:
        app = client.app
        north_key = auth(keys["north_manager"])
        plans_before = {p: client.get(f"/v1/plans/{p}", headers=north_key).json()
                        for p in (estate["published_plan"], estate["draft_plan"])}
        before = snapshot(database_url)

        failures, sent = foreign_failures(client, keys, app, estate)

        changed = [name for name, rows in snapshot(database_url).items() if rows != before[name]]
        assert not changed, f"south's refused calls changed north's tables {changed}"
        # The same in north's own words: nothing south sent changed north's data.
        scenario = client.get(f"/v1/scenarios/{estate['scenario_id']}", headers=north_key).json()
        assert scenario["latest_version"] == 1 and len(scenario["versions"]) == 1, scenario
        for plan_id, plan in plans_before.items():
            assert client.get(f"/v1/plans/{plan_id}", headers=north_key).json()["published_at"] == plan["published_at"]
        assert plans_before[estate["draft_plan"]]["published_at"] is None
        job = client.get(f"/v1/jobs/{estate['queued_job']}", headers=north_key).json()
        assert job["status"] == "queued" and not job["cancel_requested"], job
        assert client.get(url_path(estate["token_url"])).status_code == 200  # the feed link still works
        assert not failures, f"{len(failures)} of {sent} calls leak across organisations:\n" + "\n".join(failures)

        # The mapping is right: north's own manager key is not refused on any of these calls (a
        # finished job answers 409 to a cancel), and north's lists show north's items.
        client.post(f"/v1/jobs/{estate['queued_job']}/cancel", headers=north_key)  # its stream then ends
        calls = id_calls(app, estate)
        refused = []
        for call in calls:
            got = call.send(client, keys["north_manager"])
            if got.status_code in (401, 403, 404, 422) or got.status_code >= 500:
                refused.append(f"{call}: {got.status_code} {got.text[:160]!r}")
        assert not refused, "north's own key is refused, so the 404s above prove nothing:\n" + "\n".join(refused)
        for call in list_calls(app, estate):
            got = call.send(client, keys["north_manager"])
            shown = named(got.text, identifiers(estate), call)
            assert got.status_code == 200 and shown, f"{call}: {got.text[:200]}"
        routes = {call.route for call in calls}
        # The walk saw the routes whose leaks once went unnoticed, and every kind of id.
        assert {"GET /v1/plans/{plan_id}", "GET /v1/plans/{plan_id}/document",
                "GET /v1/invites/{reference}/message"} <= routes, routes
        assert {name for call in calls for name in call.path} == set(path_values(estate))
    print(f"\n{len(routes)} routes with ids, {len(calls)} id combinations, {sent} calls with south's keys")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_leak_would_be_reported(database_url, north, monkeypatch):
    """The isolation check can fail: with the organisation filter dropped from the plan routes
    and the invite e-mail (the mutations that once survived) and from the scenario routes (reads
    and writes), it names exactly those routes."""
    keys, estate = north

    def any_organisations_scenario(session, organisation_id, scenario_id):
        record = session.get(ScenarioRecord, scenario_id)
        if record is None:
            raise not_found("scenario")
        return record

    def any_organisations_plan(session, organisation_id, plan_id):
        record = session.get(PlanRecord, plan_id)
        if record is None:
            raise not_found("plan")
        return record

    def any_organisations_event(session, organisation_id, reference):
        event = session.scalar(select(CalendarEvent).where(CalendarEvent.reference == reference))
        if event is None or event.sensitive:
            raise not_found("invite")
        return event

    monkeypatch.setattr(api.routes.plans, "plan_record", any_organisations_plan)
    monkeypatch.setattr(api.routes.calendar, "_event_by_reference", any_organisations_event)
    monkeypatch.setattr(api.routes.scenarios, "scenario_record", any_organisations_scenario)
    with running_service(database_url, run_jobs=False) as client:
        failures, _ = foreign_failures(client, keys, client.app, estate)
    routes = {f'{line.split(" ", 1)[0]} {line.split(" (", 1)[1].split(")", 1)[0]}' for line in failures}
    assert routes == {
        "GET /v1/plans/{plan_id}", "GET /v1/plans/{plan_id}/document", "GET /v1/plans/{plan_id}/appointments",
        "GET /v1/plans/{plan_id}/unbooked", "GET /v1/plans/{plan_id}/clinician-lists.csv",
        "GET /v1/invites/{reference}/message", "GET /v1/scenarios/{scenario_id}", "PUT /v1/scenarios/{scenario_id}",
        "GET /v1/scenarios/{scenario_id}/versions/{version}", "POST /v1/scenarios/{scenario_id}/upload",
        "POST /v1/scenarios/{scenario_id}/plans",
        "GET /v1/jobs",  # south's jobs, started on north's scenario, name it
        "GET /v1/audit",  # south's audit entries of those writes name north's scenario too
        "POST /v1/plans/{plan_id}/replan", "GET /v1/plans/{plan_id}/diff/{other_plan_id}",
        "DELETE /v1/plans/{plan_id}",
    }, "\n".join(failures)
    # The plan summary names north's scenario and job, so the leak is also reported as data shown.
    assert any("names north's" in line and "{plan_id})" in line for line in failures), "\n".join(failures)


def test_a_route_the_walk_cannot_fill_fails_by_name(tmp_path):
    """A new route with an id this test has no value for, or an id route without a key, is not
    skipped: the walk fails and names it (only the OpenAPI document is read, no database)."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"), run_jobs=False)
    estate = {"scenario_id": "s", "version": 1, "published_plan": "p", "draft_plan": "d", "jobs": ["j"],
              "queued_job": "q", "reference": "r", "token_id": "t", "clinician": "c", "queued_study": "st",
              "patient": "P001"}
    assert id_calls(app, estate)  # today's routes are all covered

    @app.get("/v1/rotas/{rota_id}")
    def rota(rota_id: str, caller: CallerDep) -> dict:
        return {}

    @app.get("/v1/open/{plan_id}")
    def open_plan(plan_id: str) -> dict:
        return {}

    app.openapi_schema = None  # the document is built again with the new routes
    with pytest.raises(pytest.fail.Exception) as failed:
        id_calls(app, estate)
    assert "GET /v1/rotas/{rota_id}: no value of north's for path parameter(s) ['rota_id']" in str(failed.value)
    assert "GET /v1/open/{plan_id} takes ['plan_id'] but needs no API key" in str(failed.value)
