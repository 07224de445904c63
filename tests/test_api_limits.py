"""Hostile and malformed input at the service: body size limits, numeric ranges, strict types,
ISO dates in queries, the scenario body's real OpenAPI schema, readable 403s, and a SIGTERM that
stops the server while a request is open and a solve is running.

Every service test runs on SQLite and on the real PostgreSQL (`database_url`); time limits in
these tests are hang bounds (how long before a test gives up), never benchmarks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.config import DEFAULT_MAX_BODY_BYTES, Settings
from api.db import make_engine, make_sessionmaker, transaction
from api.models import Job, PlanRecord, ScenarioVersion
from scheduler.scenario_io import load_scenario
from tests.api_support import ROOT, auth, make_keys, running_service, tutorial

MIB = 1024 * 1024
HANG_SECONDS = 20  # how long a stopping server or a refused request may take before the test fails
BOUNDARY = "onevisit-test-boundary"


def _json_headers(key: str) -> dict[str, str]:
    return {**auth(key), "Content-Type": "application/json"}


def _chunks(total: int, size: int = MIB) -> Iterator[bytes]:
    """`total` bytes of JSON-looking filler, sent as a chunked body (no Content-Length)."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield b" " * piece
        sent += piece


def _multipart(filler: int) -> tuple[bytes, bytes, str]:
    """A scenario upload's multipart head and tail around `filler` bytes of file content."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"scenario\"; filename=\"big.yaml\"\r\n"
            "Content-Type: application/x-yaml\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, tail, f"multipart/form-data; boundary={BOUNDARY}"


def _assert_too_large(response: httpx.Response, limit_text: str) -> None:
    assert response.status_code == 413, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"] == "body_too_large" and error["field"] == "body", error
    assert limit_text in error["message"] and "nothing was read or saved" in error["message"], error
    assert response.headers.get("connection") == "close"


def _scenario_state(client: TestClient | httpx.Client, key: str) -> list[tuple[str, int]]:
    """What is stored: (scenario id, latest version) for every scenario the key sees."""
    items = client.get("/v1/scenarios", headers=auth(key)).json()["items"]
    return [(s["id"], s["latest_version"]) for s in items]


# --- body size ------------------------------------------------------------------------------


def test_bodies_over_the_default_limit_are_413_on_every_way_in_and_nothing_is_written(database_url):
    key = make_keys(database_url)["manager"]
    over = DEFAULT_MAX_BODY_BYTES + 1
    with running_service(database_url, run_jobs=False) as client:
        created = client.post("/v1/scenarios", json=tutorial(), headers=auth(key))
        assert created.status_code == 201
        scenario_id = created.json()["id"]
        before = _scenario_state(client, key)
        assert before == [(scenario_id, 1)]
        json_routes = [("POST", "/v1/scenarios"), ("POST", "/v1/validate"), ("PUT", f"/v1/scenarios/{scenario_id}")]
        for method, path in json_routes:
            # Declared with Content-Length: refused up front.
            declared = client.request(method, path, content=b" " * over, headers=_json_headers(key))
            _assert_too_large(declared, "20 MiB")
            # Chunked, no Content-Length: refused once the count passes the limit.
            chunked = client.request(method, path, content=_chunks(over), headers=_json_headers(key))
            assert "content-length" not in chunked.request.headers
            _assert_too_large(chunked, "20 MiB")
            assert _scenario_state(client, key) == before
        head, tail, content_type = _multipart(over)
        for path in ("/v1/scenarios/upload", f"/v1/scenarios/{scenario_id}/upload"):
            headers = {**auth(key), "Content-Type": content_type}
            declared = client.post(path, content=head + b"a" * over + tail, headers=headers)
            _assert_too_large(declared, "20 MiB")

            def body() -> Iterator[bytes]:
                yield head
                yield from (chunk.replace(b" ", b"a") for chunk in _chunks(over))
                yield tail

            chunked = client.post(path, content=body(), headers=headers)
            assert "content-length" not in chunked.request.headers
            _assert_too_large(chunked, "20 MiB")
            assert _scenario_state(client, key) == before
        # A body of exactly the limit is read: the tutorial padded to 20 MiB validates.
        text = json.dumps(tutorial()).encode()
        padded = text + b" " * (DEFAULT_MAX_BODY_BYTES - len(text))
        report = client.post("/v1/validate", content=padded, headers=_json_headers(key))
        assert report.status_code == 200 and report.json()["ok"] is True, report.text[:300]


def test_the_body_limit_is_a_setting(database_url):
    key = make_keys(database_url)["manager"]
    app = create_app(Settings(database_url=database_url, workers=1, max_body_bytes=4096), run_jobs=False)
    body = json.dumps(tutorial()).encode()
    assert len(body) > 4096
    with TestClient(app) as client:
        refused = client.post("/v1/scenarios", content=body, headers=_json_headers(key))
        _assert_too_large(refused, "4 KiB")
        refused = client.post("/v1/validate", content=_chunks(4097, 1000), headers=_json_headers(key))
        _assert_too_large(refused, "4 KiB")
        assert _scenario_state(client, key) == []
        # Small bodies are unaffected.
        assert client.post("/v1/scenarios/nope/plans", json={}, headers=auth(key)).status_code == 404


def test_the_body_limit_and_shutdown_time_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("ONEVISIT_MAX_BODY_BYTES", raising=False)
    monkeypatch.delenv("ONEVISIT_SHUTDOWN_SECONDS", raising=False)
    assert Settings.from_env().max_body_bytes == 20 * MIB == DEFAULT_MAX_BODY_BYTES
    assert Settings.from_env().shutdown_seconds == 5
    monkeypatch.setenv("ONEVISIT_MAX_BODY_BYTES", "1234")
    monkeypatch.setenv("ONEVISIT_SHUTDOWN_SECONDS", "2.5")
    assert Settings.from_env().max_body_bytes == 1234
    assert Settings.from_env().shutdown_seconds == 2.5
    for name, bad in (("ONEVISIT_MAX_BODY_BYTES", "0"), ("ONEVISIT_MAX_BODY_BYTES", "20MB"),
                      ("ONEVISIT_SHUTDOWN_SECONDS", "-1"), ("ONEVISIT_SHUTDOWN_SECONDS", "nan")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=name):
            Settings.from_env()
        monkeypatch.setenv(name, "10")
    # `onevisit serve` says which variable is wrong, exit 2, and never starts.
    refused = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--port", str(_free_port())],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                             env={**os.environ, "ONEVISIT_MAX_BODY_BYTES": "20MB"})
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "ONEVISIT_MAX_BODY_BYTES" in refused.stdout and "Traceback" not in refused.stdout + refused.stderr


# --- numbers, types and dates -----------------------------------------------------------------

BAD_PLAN_REQUESTS = [
    ({"seed": False}, "seed"), ({"seed": -1}, "seed"), ({"seed": 2**31}, "seed"), ({"seed": 10**12}, "seed"),
    ({"seed": 1.5}, "seed"), ({"seed": "7"}, "seed"),
    ({"time_limit_seconds": 5e-324}, "time_limit_seconds"), ({"time_limit_seconds": 0.5}, "time_limit_seconds"),
    ({"time_limit_seconds": 3601}, "time_limit_seconds"), ({"time_limit_seconds": True}, "time_limit_seconds"),
    ({"time_limit_seconds": "10"}, "time_limit_seconds"), ({"time_limit_seconds": 1e308}, "time_limit_seconds"),
    ({"workers": 0}, "workers"), ({"workers": 65}, "workers"), ({"workers": 2.0}, "workers"),
    ({"workers": True}, "workers"), ({"version": 0}, "version"), ({"version": 2**31}, "version"),
    ({"version": True}, "version"), ({"sneaky": 1}, "sneaky"),
]


def test_plan_request_numbers_are_refused_outside_their_ranges_never_clamped(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        scenario_id = client.post("/v1/scenarios", json=tutorial(), headers=auth(key)).json()["id"]
        path = f"/v1/scenarios/{scenario_id}/plans"
        for body, field in BAD_PLAN_REQUESTS:
            response = client.post(path, json=body, headers=auth(key))
            assert response.status_code == 422, (body, response.status_code, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_request" and error["field"] == f"body.{field}", (body, error)
        # NaN is not JSON: refused as unreadable, not read as a number.
        nan = client.post(path, content=b'{"time_limit_seconds": NaN}', headers=_json_headers(key))
        assert nan.status_code == 422, nan.text
        assert client.get("/v1/jobs", headers=auth(key)).json()["items"] == []
        # The edges of every range are accepted, and kept exactly.
        edges = {"time_limit_seconds": 1, "workers": 64, "seed": 2**31 - 1, "version": 1}
        job = client.post(path, json=edges, headers=auth(key))
        assert job.status_code == 202, job.text
        assert job.json()["time_limit_seconds"] == 1
        job = client.post(path, json={"time_limit_seconds": 3600, "workers": 1, "seed": 0}, headers=auth(key))
        assert job.status_code == 202 and job.json()["time_limit_seconds"] == 3600


def test_a_stored_version_with_settings_out_of_range_is_a_422_not_a_500(database_url):
    """Versions saved before the ranges existed may hold a seed CP-SAT cannot take."""
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        scenario_id = client.post("/v1/scenarios", json=tutorial(), headers=auth(key)).json()["id"]
        engine = make_engine(database_url)
        with transaction(make_sessionmaker(engine)) as session:
            version = session.scalar(select(ScenarioVersion).where(ScenarioVersion.scenario_id == scenario_id))
            version.content = {**version.content, "solver": {**version.content["solver"], "seed": 10**12}}
        engine.dispose()
        refused = client.post(f"/v1/scenarios/{scenario_id}/plans", json={}, headers=auth(key))
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_settings" and error["field"] == "solver.seed", error
        assert client.get("/v1/jobs", headers=auth(key)).json()["items"] == []
        overridden = client.post(f"/v1/scenarios/{scenario_id}/plans", json={"seed": 5}, headers=auth(key))
        assert overridden.status_code == 202, overridden.text


def test_query_dates_must_be_written_yyyy_mm_dd_and_paging_is_bounded(database_url):
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        path = "/v1/plans/no-such-plan/appointments"
        for name, value in (("date_to", "0"), ("date_from", "1700000000"), ("date_to", "2027-02-30"),
                            ("date_from", "22/03/2027"), ("date_to", "2027-3-22"), ("date_to", "20270322"),
                            ("date_from", "2027-03-22T00:00:00"), ("limit", "0"), ("limit", "1001"),
                            ("offset", "-1"), ("offset", str(10**7 + 1)), ("limit", "1.5"), ("limit", "true")):
            response = client.get(path, params={name: value}, headers=auth(key))
            assert response.status_code == 422, (name, value, response.status_code, response.text)
            assert response.json()["error"]["field"] == f"query.{name}", (name, value, response.json())
        # A proper date passes validation and reaches the route (which finds no such plan).
        fine = client.get(path, params={"date_from": "2027-03-22", "date_to": "2027-03-22"}, headers=auth(key))
        assert fine.status_code == 404 and fine.json()["error"]["code"] == "not_found"
        version = client.get("/v1/scenarios/none/versions/0", headers=auth(key))
        assert version.status_code == 422 and version.json()["error"]["field"] == "path.version"


# --- the OpenAPI document ----------------------------------------------------------------------


def _openapi() -> dict:
    # The document does not need a database: the app is built but never started.
    return create_app(Settings(database_url="sqlite:///unused-openapi.db"), run_jobs=False).openapi()


def _scenario_validator(document: dict) -> jsonschema_rs.Draft202012Validator:
    """Validate against the scenario body exactly as the document declares it (via its $ref).

    Formats are not asserted: pydantic states clock times as `format: time`, which in JSON Schema
    (RFC 3339) requires a UTC offset that scenario times must leave out.
    """
    body = document["paths"]["/v1/scenarios"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


def test_the_scenario_body_is_documented_with_its_real_schema(database_url):
    document = _openapi()
    declared = {(path, method): document["paths"][path][method]["requestBody"]
                for path, method in (("/v1/scenarios", "post"), ("/v1/scenarios/{scenario_id}", "put"),
                                     ("/v1/validate", "post"))}
    for where, body in declared.items():
        assert body["required"] is True, where
        assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Scenario"}, where
    scenario = document["components"]["schemas"]["Scenario"]
    assert {"sites", "rooms", "clinicians", "review_types"} <= set(scenario["required"])
    validator = _scenario_validator(document)
    assert not validator.is_valid({}), "{} must be documented as invalid"
    assert validator.is_valid(tutorial()), list(validator.iter_errors(tutorial()))[:3]

    # The server agrees with the document on both.
    key = make_keys(database_url)["manager"]
    with running_service(database_url, run_jobs=False) as client:
        empty = client.post("/v1/scenarios", json={}, headers=auth(key))
        assert empty.status_code == 422 and empty.json()["error"]["code"] == "invalid_scenario"
        assert "sites" in json.dumps(empty.json()["error"]["problems"])
        assert client.post("/v1/validate", json={}, headers=auth(key)).json()["ok"] is False
        assert _scenario_state(client, key) == []
        assert client.post("/v1/scenarios", json=tutorial(), headers=auth(key)).status_code == 201
        # Not JSON at all, or not declared as JSON: a 422 naming the body, nothing written.
        for content, content_type in ((b"{oops", "application/json"), (b"", "application/json"),
                                      (json.dumps(tutorial()).encode(), "text/plain"),
                                      (b"\xff\xfe{}", "application/json"), (b"[" * 100_000, "application/json"),
                                      (b'{"sites": Infinity}', "application/json")):
            response = client.post("/v1/scenarios", content=content, headers={**auth(key), "Content-Type": content_type})
            assert response.status_code == 422, (content[:20], response.status_code, response.text[:200])
            assert response.json()["error"]["field"] == "body", response.json()
        assert len(_scenario_state(client, key)) == 1


def _numbers_without_range(schema: object, components: dict, where: str, seen: set[str]) -> list[str]:
    found: list[str] = []
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                found += _numbers_without_range(components[name], components, name, seen)
            return found
        if schema.get("type") in ("integer", "number") and "enum" not in schema and "const" not in schema:
            low = "minimum" in schema or "exclusiveMinimum" in schema
            high = "maximum" in schema or "exclusiveMaximum" in schema
            if not (low and high):
                found.append(where)
        for key, value in schema.items():
            found += _numbers_without_range(value, components, f"{where}.{key}", seen)
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += _numbers_without_range(value, components, f"{where}[{index}]", seen)
    return found


def test_every_number_a_client_sends_has_a_documented_range():
    document = _openapi()
    components = document["components"]["schemas"]
    unbounded: list[str] = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                unbounded += _numbers_without_range(parameter["schema"], components,
                                                    f"{method} {path} {parameter['name']}", set())
            for content in operation.get("requestBody", {}).get("content", {}).values():
                unbounded += _numbers_without_range(content["schema"], components, f"{method} {path} body", set())
    assert unbounded == []
    plan = components["PlanRequest"]["properties"]
    ranges = {name: next(s for s in plan[name]["anyOf"] if s.get("type") != "null") for name in plan}
    assert (ranges["time_limit_seconds"]["minimum"], ranges["time_limit_seconds"]["maximum"]) == (1, 3600)
    assert (ranges["seed"]["minimum"], ranges["seed"]["maximum"]) == (0, 2**31 - 1)
    assert (ranges["workers"]["minimum"], ranges["workers"]["maximum"]) == (1, 64)
    # Every route documents the 413 and the error shape it comes in.
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "413" in operation["responses"], (method, path)


# --- 403 wording -------------------------------------------------------------------------------


def test_forbidden_actions_are_refused_in_a_readable_sentence(database_url):
    key = make_keys(database_url)["planner"]
    calls = [
        ("POST", "/v1/plans/p/publish", None, "publish plans"),
        ("GET", "/v1/plans/p/invites", None, "see patients' invites"),
        ("GET", "/v1/invites/REF/message?to=patient@example.org", None, "read patients' invite e-mails"),
        ("POST", "/v1/scenarios/s/calendar-tokens", {"kind": "clinician", "subject_id": "pn-ellis"},
         "hand out calendar links"),
        ("GET", "/v1/scenarios/s/calendar-tokens", None, "list calendar links"),
        ("DELETE", "/v1/calendar-tokens/t", None, "revoke calendar links"),
    ]
    with running_service(database_url, run_jobs=False) as client:
        for method, path, body, doing in calls:
            response = client.request(method, path, json=body, headers=auth(key))
            assert response.status_code == 403, (path, response.text)
            message = response.json()["error"]["message"]
            assert message == f"A planner key may not {doing}; use a manager key.", message
            assert re.fullmatch(r"A planner key may not [a-z' -]+; use a manager key\.", message)


# --- a real server: refusing before reading, and stopping on SIGTERM -----------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _served(database_url: str, tmp_path: Path, **env: str) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """`onevisit serve` in a subprocess on a free loopback port, ready to answer."""
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--database-url", database_url,
             "--workers", "1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, f"server exited at start-up:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"server did not start:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield server, port, log
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (status, headers, body by Content-Length) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _request_head(method: str, path: str, key: str, content_type: str, framing: str) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {content_type}\r\n{framing}\r\n\r\n").encode()


def test_a_real_server_refuses_oversized_bodies_before_reading_them(database_url, tmp_path):
    """Over loopback, with ONEVISIT_MAX_BODY_BYTES=64 KiB: a declared 50 MB body is answered
    before any of it is sent; a chunked one as soon as it passes 64 KiB, while the client has
    not finished sending. Either way the client gets its 413 without sending the rest."""
    key = make_keys(database_url)["manager"]
    limit = 64 * 1024
    with _served(database_url, tmp_path, ONEVISIT_MAX_BODY_BYTES=str(limit)) as (_server, port, log):
        base = f"http://127.0.0.1:{port}"
        for path, content_type, prefix in (
                ("/v1/scenarios", "application/json", b""),
                ("/v1/validate", "application/json", b""),
                ("/v1/scenarios/upload", _multipart(0)[2], _multipart(0)[0])):
            with socket.create_connection(("127.0.0.1", port), timeout=HANG_SECONDS) as sock:
                sock.sendall(_request_head("POST", path, key, content_type, "Content-Length: 50000000"))
                status, headers, body = _response(sock)  # not one byte of the body sent
                assert status == 413 and headers.get("connection") == "close", (path, body, log.read_text()[-2000:])
                assert json.loads(body)["error"]["code"] == "body_too_large" and "64 KiB" in body.decode()
            with socket.create_connection(("127.0.0.1", port), timeout=HANG_SECONDS) as sock:
                sock.sendall(_request_head("POST", path, key, content_type, "Transfer-Encoding: chunked"))
                payload = prefix + b"a" * (limit + 1 - len(prefix))
                for start in range(0, len(payload), 16 * 1024):
                    piece = payload[start:start + 16 * 1024]
                    sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                # The body never ends (no last chunk): only an early answer can arrive.
                status, headers, body = _response(sock)
                assert status == 413, (path, body, log.read_text()[-2000:])
                assert json.loads(body)["error"]["code"] == "body_too_large"
                assert headers.get("connection") == "close"  # the rest of the body is never read
        with httpx.Client(base_url=base, headers=auth(key), timeout=HANG_SECONDS) as client:
            assert client.get("/v1/scenarios").json()["items"] == []
            assert client.post("/v1/validate", json=tutorial()).json()["ok"] is True  # 16 KB: within the limit


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_stops_the_server_during_a_solve_and_open_requests(database_url, tmp_path):
    """SIGTERM while a 600 s solve runs, a progress stream is open and an upload has stalled
    half-way: the server exits within the hang bound, the solver process is gone, and the job
    is failed with code `interrupted` and no plan."""
    key = make_keys(database_url)["manager"]
    practice = load_scenario(ROOT / "sample_rosters" / "practice-month.yaml").model_dump(mode="json")
    with (_served(database_url, tmp_path) as (server, port, log),
          httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth(key), timeout=60) as client):
        scenario = client.post("/v1/scenarios", json=practice)
        assert scenario.status_code == 201, scenario.text[:500]
        job = client.post(f"/v1/scenarios/{scenario.json()['id']}/plans",
                          json={"time_limit_seconds": 600, "workers": 1})
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        deadline = time.monotonic() + 120
        while (state := client.get(f"/v1/jobs/{job_id}").json())["stage"] != "solving":
            assert state["status"] in ("queued", "running"), state
            assert time.monotonic() < deadline, f"the solve did not start: {state}"
            time.sleep(0.3)
        workers = _children(server.pid)
        assert workers, "the solve runs in a child process"
        # An open progress stream (a request that would otherwise last the whole solve) ...
        with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("event: progress")
            # ... and an upload whose body stops half-way.
            with socket.create_connection(("127.0.0.1", port), timeout=HANG_SECONDS) as stalled:
                stalled.sendall(_request_head("POST", "/v1/scenarios", key, "application/json",
                                              "Content-Length: 100000") + b'{"name": "half')
                server.send_signal(signal.SIGTERM)
                try:
                    code = server.wait(timeout=HANG_SECONDS)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"server still running {HANG_SECONDS} s after SIGTERM:\n{log.read_text()[-3000:]}")
    # Exit by the re-raised SIGTERM (uvicorn restores the default handler) or cleanly: not a crash.
    assert code in (0, -signal.SIGTERM), (code, log.read_text()[-3000:])
    deadline = time.monotonic() + HANG_SECONDS
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, f"worker processes outlived the server: {workers}"
        time.sleep(0.1)
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            stored = session.get(Job, job_id)
            assert (stored.status, stored.error_code) == ("failed", "interrupted"), (stored.status, stored.error_code)
            assert stored.plan_id is None and session.scalars(select(PlanRecord)).all() == []
    finally:
        engine.dispose()
