"""Hostile and malformed input is refused fast and by name, on every way in.

The corpus (`tests/hostile_corpus.py`: alias bombs, self-referencing aliases, deep nesting, huge
numbers, NaN, control characters, malformed CSV) goes through the real command line
(`onevisit plan` in a subprocess) and through the service over HTTP on SQLite and PostgreSQL
(JSON bodies and multipart uploads), plus bodies over the size limit. Each must be refused with
exit 2 or a 4xx in the usual error shape naming the field, row or reason, with no traceback and
nothing written. The time bounds are hang bounds (a bomb used to hang for minutes), not
benchmarks: they are far above the milliseconds a refusal takes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app as cli_app
from tests.api_support import auth, make_keys, running_service
from tests.hostile_corpus import CASES, TUTORIAL_TEXT, Case

ONEVISIT = str(Path(sys.executable).parent / "onevisit")
HANG_BOUND_SECONDS = 20.0  # a process start is ~2 s; a bomb that is expanded takes minutes


def _write(case: Case, folder: Path) -> dict[str, Path]:
    paths = {}
    for role, (name, data) in case.files.items():
        paths[role] = folder / name
        paths[role].write_bytes(data)
    return paths


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ONEVISIT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=HANG_BOUND_SECONDS * 3, stdin=subprocess.DEVNULL,
                          env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"})


def _plan_args(case: Case, folder: Path) -> list[str]:
    paths = _write(case, folder)
    args = ["plan", str(paths["scenario"]), "--out", str(folder / "out"), "--time-limit", "1"]
    if "sessions_csv" in paths:
        args += ["--sessions-csv", str(paths["sessions_csv"])]
    if "due_reviews_csv" in paths:
        args += ["--due-csv", str(paths["due_reviews_csv"])]
    return args


def _assert_cli_refused(code: int, output: str, case: Case, folder: Path) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    for words in case.expect:
        assert words in output, f"{words!r} not in:\n{output}"
    assert not (folder / "out").exists(), "a refused scenario wrote files"
    assert not (folder / "onevisit.db").exists(), "a refused scenario opened the database"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_command_line_refuses_by_name(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `onevisit` command's own code, in this process (a process start per case would cost
    minutes); the real console script is run as a process below for the worst cases."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    started = time.monotonic()
    result = CliRunner().invoke(cli_app, _plan_args(case, tmp_path))
    assert time.monotonic() - started < HANG_BOUND_SECONDS, f"{case.name} took too long (a hang?)"
    _assert_cli_refused(result.exit_code, result.output, case, tmp_path)


@pytest.mark.parametrize("name", ["alias bomb, 9 levels", "self-referencing alias", "name with CR LF",
                                  "CSV with an unterminated quote"])
def test_console_script_refuses_by_name(name: str, tmp_path: Path) -> None:
    case = next(case for case in CASES if case.name == name)
    result = _cli(_plan_args(case, tmp_path), tmp_path)
    _assert_cli_refused(result.returncode, result.stdout + result.stderr, case, tmp_path)


def test_command_line_refuses_a_file_over_the_size_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:  # 51 MB of comments: valid YAML, only too large
        handle.write(TUTORIAL_TEXT.encode())
        line = b"# " + b"x" * 1022 + b"\n"
        for _ in range(51 * 1024):
            handle.write(line)
    result = _cli(["plan", str(big), "--out", str(tmp_path / "out")], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "big.yaml" in output and "largest accepted is 50 MB" in output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option,value,words", [
    ("--seed", "1000000000000", "seed"),
    ("--time-limit", "0.000001", "time-limit"),
    ("--time-limit", "nan", "time-limit"),
    ("--workers", "0", "workers"),
])
def test_command_line_refuses_out_of_range_options(option: str, value: str, words: str, tmp_path: Path) -> None:
    tutorial = tmp_path / "tutorial.yaml"
    tutorial.write_text(TUTORIAL_TEXT)
    result = _cli(["plan", str(tutorial), "--out", str(tmp_path / "out"), option, value], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert words in output and "Traceback" not in output
    assert not (tmp_path / "out").exists()


def _assert_refused(response, case_name: str, expect: tuple[str, ...], status: int = 422) -> None:
    assert response.status_code == status, (case_name, response.status_code, response.text[:2000])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    said = json.dumps(error, ensure_ascii=False)
    for words in expect:
        assert words in said, f"{case_name}: {words!r} not in {said[:2000]}"


def test_service_refuses_the_corpus_by_name(database_url: str) -> None:
    """Every case as a multipart upload, and the JSON ones also as a JSON body (create, new
    version and validate), on SQLite and PostgreSQL; afterwards nothing was stored."""
    keys = make_keys(database_url)
    with running_service(database_url, run_jobs=False) as client:
        headers = auth(keys["manager"])
        existing = client.post("/v1/scenarios/upload", headers=headers,
                               files={"scenario": ("tutorial.yaml", TUTORIAL_TEXT.encode())})
        assert existing.status_code == 201, existing.text
        scenario_id = existing.json()["id"]
        for case in CASES:
            started = time.monotonic()
            files = {role: (name, data) for role, (name, data) in case.files.items()}
            response = client.post("/v1/scenarios/upload", headers=headers, files=files)
            _assert_refused(response, case.name, case.expect)
            response = client.post(f"/v1/scenarios/{scenario_id}/upload", headers=headers, files=files)
            _assert_refused(response, case.name, case.expect)
            if case.json_body:
                body = case.files["scenario"][1]
                for method, path in (("POST", "/v1/scenarios"), ("PUT", f"/v1/scenarios/{scenario_id}")):
                    response = client.request(method, path, headers={**headers, "Content-Type": "application/json"},
                                              content=body)
                    _assert_refused(response, case.name, case.expect)
                report = client.post("/v1/validate", headers={**headers, "Content-Type": "application/json"},
                                     content=body)
                assert report.status_code in (200, 422), report.text
                said = report.text
                assert all(words in said for words in case.expect), (case.name, said[:2000])
            assert time.monotonic() - started < HANG_BOUND_SECONDS, f"{case.name} took too long (a hang?)"
        listing = client.get("/v1/scenarios", headers=headers).json()["items"]
        assert [item["id"] for item in listing] == [scenario_id]
        assert listing[0]["latest_version"] == 1, "a refused upload saved a version"


def test_service_refuses_oversized_bodies_before_reading_them(database_url: str) -> None:
    """Over the 20 MiB default: 413 in the error shape, whether the size is declared or the body
    streams in chunks without a length; nothing stored."""
    keys = make_keys(database_url)
    headers = auth(keys["manager"])
    over = 20 * 1024 * 1024 + 1
    with running_service(database_url, run_jobs=False) as client:
        padding = b'{"name": "big", "description": "' + b"x" * over + b'"}'
        for path in ("/v1/scenarios", "/v1/validate"):
            response = client.post(path, headers={**headers, "Content-Type": "application/json"}, content=padding)
            _assert_refused(response, path, (), status=413)

        def chunks():
            for _ in range(over // (1024 * 1024) + 2):
                yield b" " * (1024 * 1024)

        response = client.post("/v1/scenarios", headers={**headers, "Content-Type": "application/json"},
                               content=chunks())
        _assert_refused(response, "chunked", (), status=413)
        upload = client.post("/v1/scenarios/upload", headers=headers,
                             files={"scenario": ("big.yaml", TUTORIAL_TEXT.encode() + b"#" * over)})
        _assert_refused(upload, "upload", (), status=413)
        assert client.get("/v1/scenarios", headers=headers).json()["items"] == []
