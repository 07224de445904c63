"""The audit trail (issue 18, api/audit.py): every write through the API and the command line is
recorded with who, what, when and which request, on SQLite and PostgreSQL; the trail is
append-only; only `onevisit audit prune` removes old entries, and says so in the trail."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import typer
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from api.audit import AuditLogIsAppendOnly
from api.cli import app as cli_app
from api.db import make_engine, make_sessionmaker, transaction
from api.models import AuditEntry
from tests import test_api_isolation as isolation
from tests.api_support import auth, running_service, solve, tutorial
from tests.test_api_isolation import (
    TUTORIAL_YAML,
    Call,
    authenticated,
    id_calls,
    operations,
    parameters,
)

north = isolation.north  # the same fixture: north's scenario, plans, links and queued work

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def entries(database_url: str, **where) -> list[AuditEntry]:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            query = select(AuditEntry).order_by(AuditEntry.id)
            for name, value in where.items():
                query = query.where(getattr(AuditEntry, name) == value)
            found = list(session.scalars(query))
            session.expunge_all()
            return found
    finally:
        engine.dispose()


def data_rows(database_url: str) -> dict[str, list[str]]:
    """Every row of every table but the trail itself."""
    rows = isolation.snapshot(database_url)
    rows.pop("audit_log", None)
    return rows


def prefix(key: str) -> str:
    return key.split("_")[1]


def no_path_calls(estate: dict) -> dict[tuple[str, str], Call]:
    """A valid call for every write route without a path parameter."""
    return {
        ("POST", "/v1/scenarios"): Call("POST", "/v1/scenarios", body={"json": tutorial()}),
        ("POST", "/v1/validate"): Call("POST", "/v1/validate", body={"json": tutorial()}),
        ("POST", "/v1/scenarios/upload"): Call("POST", "/v1/scenarios/upload", body={
            "files": {"scenario": ("tutorial.yaml", TUTORIAL_YAML, "application/yaml")}}),
        ("POST", "/v1/capacity-studies"): Call("POST", "/v1/capacity-studies", body={"json": {
            "study": {"name": "audited study"}, "scenario_id": estate["scenario_id"]}}),
    }


# POST routes that write nothing (they check and answer): a call must leave no entry.
NOT_WRITING = {("POST", "/v1/validate")}


def test_every_write_route_is_audited_with_who_what_and_the_request(database_url, north):
    """Walks the OpenAPI document: every authenticated write operation, called successfully by
    north's manager, leaves an entry naming the key's prefix and role, the route and its path
    parameters, under the request id the caller sent. A route the walk cannot call fails here."""
    keys, estate = north
    key = keys["north_manager"]
    with running_service(database_url) as client:  # a plan never published, for the discard
        spare = solve(client, key, estate["scenario_id"])
    with running_service(database_url, run_jobs=False) as client:
        routes = {(m, t) for m, t, op in operations(client.app) if m in WRITE_METHODS and authenticated(op)}
        calls = [c for c in id_calls(client.app, estate) if c.method in WRITE_METHODS]
        extra = no_path_calls(estate)
        missing = [f"{m} {t}" for m, t in routes if (m, t) not in extra
                   and not parameters(dict(next(op for mm, tt, op in operations(client.app) if (mm, tt) == (m, t))),
                                      "path")]
        assert not missing, f"write routes this test cannot call: {missing}; add them to no_path_calls()"
        calls += [extra[r] for r in sorted(extra) if r in routes]
        # The messages of the published plan before the walk publishes the other; the discard of
        # the spare plan last.
        calls.sort(key=lambda c: (not c.template.endswith("/messages"), c.method == "DELETE"))
        calls.append(Call("DELETE", "/v1/plans/{plan_id}", {"plan_id": spare}))
        # The queued job and study ran while the spare plan solved: queue two more to cancel.
        job = client.post(f"/v1/scenarios/{estate['scenario_id']}/plans", json={}, headers=auth(key)).json()
        study = client.post("/v1/capacity-studies", headers=auth(key), json={
            "study": {"name": "to cancel"}, "scenario_id": estate["scenario_id"]}).json()
        # Publishing a plan of version 1 once the walk has saved version 2 needs its version confirmed.
        calls += [Call("POST", "/v1/plans/{plan_id}/publish", {"plan_id": estate["draft_plan"]},
                       {"confirm_scenario_version": 1}),
                  Call("POST", "/v1/jobs/{job_id}/cancel", {"job_id": job["id"]}),
                  Call("POST", "/v1/capacity-studies/{study_id}/cancel", {"study_id": study["id"]})]
        proven: set[tuple[str, str]] = set()
        for call in calls:
            request_id = f"audit-{uuid.uuid4().hex}"
            before = data_rows(database_url)
            got = client.request(call.method, call.url, params=call.query,
                                 headers={**auth(key), "X-Request-ID": request_id}, **call.body)
            assert got.headers["x-request-id"] == request_id
            if got.status_code >= 400:
                continue  # refused or conflicting (a finished job's cancel): nothing was written
            found = entries(database_url, request_id=request_id)
            if (call.method, call.template) in NOT_WRITING:
                assert not found, f"{call} writes nothing, yet left {found}"
                proven.add((call.method, call.template))
                continue
            if not found and data_rows(database_url) == before:
                continue  # a success that changed nothing (messages already sent): nothing to record
            assert found, f"{call}: {got.status_code}, but no audit entry"
            for entry in found:
                assert (entry.actor_kind, entry.actor, entry.role) == ("api_key", prefix(key), "manager"), call
                assert entry.action == f"{call.method} {call.template}"
                assert entry.target == {k: str(v) for k, v in call.path.items()}
                assert entry.organisation_id and entry.changes and entry.change_count >= len(entry.changes)
                assert entry.at.tzinfo is not None
            proven.add((call.method, call.template))
        unproven = sorted(f"{m} {t}" for m, t in routes - proven)
        assert not unproven, f"write routes never called successfully, so their audit is unproven: {unproven}"
        # Reads write nothing and leave no entry.
        before = len(entries(database_url))
        assert client.get(f"/v1/plans/{estate['published_plan']}", headers=auth(key)).status_code == 200
        assert len(entries(database_url)) == before


def test_the_trail_is_listed_per_organisation_with_filters_and_only_to_managers(database_url, north):
    keys, estate = north
    with running_service(database_url, run_jobs=False) as client:
        page = client.get("/v1/audit", headers=auth(keys["north_manager"])).json()
        assert page["items"] and all(e["id"] > 0 for e in page["items"])
        assert [e["id"] for e in page["items"]] == sorted((e["id"] for e in page["items"]), reverse=True)
        published = client.get("/v1/audit", params={"action": "/publish"}, headers=auth(keys["north_manager"]))
        assert published.status_code == 200
        assert {e["action"] for e in published.json()["items"]} == {"POST /v1/plans/{plan_id}/publish"}
        one = client.get("/v1/audit", params={"limit": 1}, headers=auth(keys["north_manager"])).json()
        older = client.get("/v1/audit", params={"limit": 1, "before_id": one["next_before_id"]},
                           headers=auth(keys["north_manager"])).json()
        assert older["items"][0]["id"] < one["items"][0]["id"]
        # South sees only south's entries: nothing of north's scenario or plans.
        south = client.get("/v1/audit", params={"limit": 1000}, headers=auth(keys["south_manager"])).text
        assert estate["scenario_id"] not in south and estate["published_plan"] not in south
        assert prefix(keys["north_manager"]) not in south
        assert client.get("/v1/audit", headers=auth(keys["north_planner"])).status_code == 403
        # Nothing edits it: the only operation on the trail is the read.
        assert {m for m, t, _ in operations(client.app) if t.startswith("/v1/audit")} == {"GET"}
        for method in ("PUT", "PATCH", "DELETE"):
            assert client.request(method, "/v1/audit", headers=auth(keys["north_manager"])).status_code == 405


def test_entries_cannot_be_changed(database_url):
    engine = make_engine(database_url)
    try:
        from api.db import upgrade

        upgrade(database_url)
        with transaction(make_sessionmaker(engine)) as session:
            session.add(AuditEntry(at=dt.datetime.now(dt.UTC), actor_kind="cli", actor="x", role="cli",
                                   action="test", target={}, request_id="r", changes=[], change_count=0))
        with pytest.raises(AuditLogIsAppendOnly):
            with transaction(make_sessionmaker(engine)) as session:
                session.scalars(select(AuditEntry)).first().actor = "someone else"
        with pytest.raises(AuditLogIsAppendOnly):
            with transaction(make_sessionmaker(engine)) as session:
                session.delete(session.scalars(select(AuditEntry)).first())
        with pytest.raises(DBAPIError, match="append-only"):  # the database's own trigger
            with engine.begin() as connection:
                connection.execute(text("UPDATE audit_log SET actor = 'someone else'"))
        assert {e.actor for e in entries(database_url)} == {"x"}
    finally:
        engine.dispose()


def cli(*args: str):
    result = CliRunner().invoke(cli_app, list(args))
    return result


def test_every_command_that_writes_is_audited_as_the_operating_system_user(database_url, tmp_path, monkeypatch):
    """Walks the command list: every command is either one that writes (run here, and its
    entry checked) or declared read-only or file-only; a new command must be classified."""
    import getpass

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tutorial.yaml").write_bytes(TUTORIAL_YAML)
    user = getpass.getuser()
    runs = {
        "plan": ["plan", "tutorial.yaml", "--out", "out", "--time-limit", "3", "--workers", "1",
                 "--database-url", database_url],
        "publish": ["publish", "--database-url", database_url],
        "replan": ["replan", "out/plan.json", "--disruptions", str(ROOT_DISRUPTIONS), "--out", "out2",
                   "--as-of", "2027-03-22T08:00", "--time-limit", "3", "--workers", "1",
                   "--database-url", database_url],
        "keys create": ["keys", "create", "--role", "manager", "--database-url", database_url],
        "keys revoke": None,  # the key just created, by its prefix
        "audit prune": ["audit", "prune", "--older-than-days", "30", "--database-url", database_url],
    }
    read_only = {  # nothing written to the database (files, or nothing at all)
        "check", "diff", "ics", "fhir", "schema", "generate", "capacity", "explain", "import-recall", "audit list",
    }
    elsewhere = {
        "db upgrade": "changes the schema (Alembic), not data; the audit table is one of its tables",
        "serve": "writes through the API (each request audited, above) and its one-time sign-in link "
                 "(tests/test_web_sessions.py, the served link test, checks that entry)",
        "messages": "tests/test_messages.py checks its entries",
    }
    names = set()
    group = typer.main.get_command(cli_app)
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        names |= {f"{name} {s}" for s in sub} if isinstance(sub, dict) else {name}
    unclassified = names - set(runs) - read_only - set(elsewhere)
    assert not unclassified, f"classify these commands in this test (do they write?): {sorted(unclassified)}"
    created_key = ""
    for name, args in runs.items():
        if args is None:
            args = ["keys", "revoke", prefix(created_key), "--database-url", database_url]
        before = {e.id for e in entries(database_url)} if name != "plan" else set()
        result = cli(*args)
        assert result.exit_code == 0, f"{name}: {result.output}"
        if name == "keys create":
            created_key = result.output.strip().splitlines()[-1]
        new = [e for e in entries(database_url) if e.id not in before and e.actor_kind == "cli"]
        assert new, f"onevisit {name} wrote no audit entry"
        assert all((e.actor, e.role, e.action) == (user, "cli", f"onevisit {name}") for e in new), \
            [(e.actor, e.action) for e in new]
    revoked = [e for e in entries(database_url) if e.action == "onevisit keys revoke"]
    assert any(c.startswith("update api_keys") for e in revoked for c in e.changes)


ROOT_DISRUPTIONS = __import__("pathlib").Path(__file__).resolve().parents[1] / "sample_rosters" / "tutorial-disruptions.yaml"


def test_prune_removes_only_old_entries_and_records_itself(database_url):
    from api.db import upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            for when, actor in ((old, "old"), (dt.datetime.now(dt.UTC), "new")):
                session.add(AuditEntry(at=when, actor_kind="cli", actor=actor, role="cli", action="test",
                                       target={}, request_id="r", changes=[], change_count=0))
    finally:
        engine.dispose()
    result = cli("audit", "prune", "--older-than-days", "365", "--database-url", database_url)
    assert result.exit_code == 0, result.output
    assert "Removed 1 audit entry" in result.output
    left = entries(database_url)
    assert "old" not in {e.actor for e in left} and "new" in {e.actor for e in left}
    [pruned] = [e for e in left if e.action == "onevisit audit prune"]
    assert pruned.actor_kind == "cli" and pruned.changes[0].startswith("delete audit_log 1 entries")
