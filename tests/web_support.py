"""The browser tests' harness (tests/test_web.py): Debian's chromium driven by Playwright for
Python, the real service under uvicorn on a free loopback port, an axe-core accessibility scan,
and screenshots written as test artefacts.

* `ensure_chromium()`: /usr/bin/chromium, installed with apt-get when missing and possible
  (root with apt-get); otherwise the test FAILS, never skips: the README's test command must
  run the browser tests on a fresh machine. Playwright downloads no browser of its own.
* `LiveServer`: `api.app.create_app` served by uvicorn in a background thread (jobs running,
  one at a time), ready once /readyz answers; `stop()` ends it cleanly.
* `axe_violations(page)`: axe-core (pinned in tests/js/package.json, installed from
  tests/js/package-lock.json on first use, as the calendar tests install ical.js) run on the
  page for WCAG 2.0/2.1/2.2 A and AA; `assert_accessible` fails on serious or critical ones,
  naming rule, help and the failing elements.
* `screenshot(page, name)`: test-artifacts/screenshots/<name>.png (the folder is gitignored).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.config import Settings
from tests.apt_support import ensure_debian_package

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
AXE = JS / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# WCAG 2.2 AA as axe tags it (wcag22a has no rule of its own in axe 4.x; wcag22aa has target-size).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
BLOCKING_IMPACTS = ("serious", "critical")


# --- the browser -------------------------------------------------------------------------------


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (as root). Fails, never skips:
    the browser tests are part of what the test command promises."""
    return ensure_debian_package(CHROMIUM, "chromium",
                                 "Playwright is pointed at it and downloads no browser of its own")


# --- the service -------------------------------------------------------------------------------


class LiveServer:
    """The whole app (API and pages, jobs running one at a time) served by uvicorn on a free
    127.0.0.1 port in a background thread. `base` is its root URL."""

    def __init__(self, database_url: str) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))  # held from here on: no other process can take the port
        self.port = self._socket.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        app = create_app(Settings(database_url=database_url, workers=1, poll_seconds=0.1, public_url=self.base))
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"uvicorn-{self.port}", daemon=True)

    def start(self, timeout: float = 60) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self._thread.is_alive():
                pytest.fail(f"the service stopped while starting ({self.base})", pytrace=False)
            if self._server.started:
                try:
                    answer = httpx.get(f"{self.base}/readyz", timeout=5)
                    if answer.status_code == 200:
                        return self
                    last = f"{answer.status_code} {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the service at {self.base} was not ready in {timeout} s ({last})", pytrace=False)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._socket.close()

    def client(self, key: str | None = None) -> httpx.Client:
        """An HTTP client for the API, with `key` as its bearer token."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60, follow_redirects=False)


# --- axe-core ----------------------------------------------------------------------------------


def ensure_axe() -> Path:
    """axe-core's axe.min.js, installed from tests/js/package-lock.json when missing (the same
    `npm ci` the calendar tests run for ical.js). Fails, never skips."""
    if not AXE.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is required for the browser tests' accessibility scan (axe-core); install "
                        "Node.js 18 or later", pytrace=False)
        done = subprocess.run([npm, "ci", "--prefix", str(JS), "--no-audit", "--no-fund"],
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0 or not AXE.is_file():
            pytest.fail(f"npm ci --prefix tests/js failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
    return AXE


_AXE_SOURCE: str | None = None


def _axe_source() -> str:
    global _AXE_SOURCE
    if _AXE_SOURCE is None:
        _AXE_SOURCE = ensure_axe().read_text(encoding="utf-8")
    return _AXE_SOURCE


def axe_violations(page) -> list[dict]:
    """axe-core's violations of WCAG 2.0, 2.1 and 2.2 A/AA on the page as it is now.

    The pages' Content-Security-Policy allows only the site's own scripts, so axe is not added
    as a <script> element: Playwright evaluates its source through the DevTools protocol, which
    the page's CSP does not govern (the page's own scripts stay under it)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(f"() => {{ {_axe_source()}\n; return typeof window.axe; }}")
    result = page.evaluate(
        "async (tags) => { const r = await axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']});"
        " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,"
        " tags: v.tags, nodes: v.nodes.map(n => ({target: n.target, html: n.html, impact: n.impact,"
        " summary: n.failureSummary}))})); }",
        WCAG_TAGS)
    return result


def format_violations(name: str, url: str, violations: list[dict]) -> str:
    lines = [f"{name} ({url}):"]
    for v in violations:
        lines.append(f"  [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:8]:
            summary = " ".join((node.get("summary") or "").split())
            lines.append(f"      {node['target']} {node['html'][:160]}")
            if summary:
                lines.append(f"        {summary[:300]}")
        if len(v["nodes"]) > 8:
            lines.append(f"      ... and {len(v['nodes']) - 8} more")
    return "\n".join(lines)


class AxeLog:
    """Scans collected over a test module: `scan(page, name)` records the page's violations;
    `blocking()` lists the pages with serious or critical ones (every violation is printed)."""

    def __init__(self) -> None:
        self.results: dict[str, tuple[str, list[dict]]] = {}

    def scan(self, page, name: str) -> list[dict]:
        violations = axe_violations(page)
        self.results[name] = (page.url, violations)
        if violations:
            print(format_violations(name, page.url, violations))
        return [v for v in violations if v["impact"] in BLOCKING_IMPACTS]

    def blocking(self) -> dict[str, list[dict]]:
        return {name: [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
                for name, (_, violations) in self.results.items()
                if any(v["impact"] in BLOCKING_IMPACTS for v in violations)}

    def report(self, names=None) -> str:
        names = self.results if names is None else names
        return "\n".join(format_violations(n, self.results[n][0], self.results[n][1]) for n in names)


def assert_accessible(page, name: str, log: AxeLog | None = None) -> None:
    """Fail unless axe finds no serious or critical WCAG 2.2 AA violation on the page."""
    violations = (log or AxeLog()).scan(page, name)
    serious = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    assert not serious, "axe-core found serious or critical violations:\n" + format_violations(
        name, page.url, serious)


# --- artefacts ---------------------------------------------------------------------------------


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """The page as it looks now, as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
