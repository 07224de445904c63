"""The API's /docs (Swagger UI) and /redoc (ReDoc) load nothing from outside the service: NHS
networks often block CDNs, so their assets are vendored in api/static/docs/ (api/docs_pages.py).

Through the ASGI app: the pages name no other host, and every script, stylesheet and image they
name answers from the app. In a real browser (Debian's chromium, driven by Playwright, never a
downloaded one) against a real uvicorn on loopback: both pages render the API's operations while
every request to any other host is blocked and recorded, and none is made.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.config import Settings
from api.docs_pages import ASSETS_DIR
from tests.api_support import running_service

CHROMIUM = Path("/usr/bin/chromium")
PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",), ".png": ("image/png",)}


class _Assets(HTMLParser):
    """The URLs a page's <script src>, <link href> and <img src> load."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        self.urls += [value for name, value in attrs if name == wanted and value]


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    url = f"sqlite:///{tmp_path_factory.mktemp('docs') / 'onevisit.db'}"
    with running_service(url, workers=1, run_jobs=False) as client:
        yield client


@pytest.mark.parametrize("page", PAGES)
def test_the_docs_pages_name_no_other_host(client, page):
    response = client.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    own = f"{client.base_url.scheme}://{client.base_url.host}"
    foreign = [u for u in re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", response.text) if not u.startswith(own)]
    assert not foreign, f"{page} names other hosts: {foreign}"
    # The browser itself may then load from this origin only (see api/docs_pages.py).
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "http" not in policy


@pytest.mark.parametrize("page", ("/docs", "/redoc"))
def test_every_asset_the_docs_pages_load_is_served_here(client, page):
    assets = _assets(client.get(page).text)
    assert any(a.endswith(".js") for a in assets), f"{page} loads no script: {assets}"
    for asset in assets:
        assert urlsplit(asset).netloc == "" and asset.startswith("/static/docs/"), asset
        response = client.get(asset)
        assert response.status_code == 200, f"{asset}: {response.status_code}"
        media_type = response.headers["content-type"].split(";")[0].strip()
        assert media_type in CONTENT_TYPES[Path(asset).suffix], f"{asset} served as {media_type}"
        assert response.content == (ASSETS_DIR / Path(asset).name).read_bytes()


def test_the_openapi_document_still_answers_and_leaves_the_docs_pages_out(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "OneVisit" and "/v1/plans" in document["paths"]
    assert not {"/docs", "/redoc", "/docs/oauth2-redirect"} & set(document["paths"])
    assert not any(path.startswith("/static") for path in document["paths"])


def test_a_missing_asset_is_a_404_in_the_error_shape(client):
    response = client.get("/static/docs/swagger-ui-bundle.js.map")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_vendored_files_are_the_listed_ones():
    """Every vendored file is named in the README (package, version, licence); no source maps."""
    readme = (ASSETS_DIR / "README.md").read_text()
    files = sorted(p.name for p in ASSETS_DIR.iterdir() if p.name != "README.md")
    assert not [name for name in files if name.endswith(".map")]
    assert [name for name in files if f"`{name}`" not in readme] == []
    assert {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "redoc.standalone.js"} <= set(files)


# --- In a real browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live_url(tmp_path_factory) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a background thread."""
    database = f"sqlite:///{tmp_path_factory.mktemp('docs-live') / 'onevisit.db'}"
    app = create_app(Settings(database_url=database, workers=1), run_jobs=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# Violations of the pages' Content-Security-Policy, recorded in the page: such a load is refused
# by the browser before any request is made, so the route below never sees it.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__cspViolations.push({uri: e.blockedURI, directive: e.effectiveDirective}));
"""
# ReDoc 2.x draws the Redocly logo in its side menu from this address, and no option turns it off:
# the policy refuses it (nothing is sent) and ReDoc hides the image. Nothing else may be refused.
KNOWN_REFUSED = ("https://cdn.redoc.ly/redoc/",)


def test_swagger_ui_and_redoc_render_in_chromium_with_nothing_from_outside(live_url):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
                    "the browser tests never download a browser of their own", pytrace=False)
    from playwright.sync_api import sync_playwright

    summary = httpx.get(f"{live_url}/openapi.json").json()["paths"]["/v1/plans"]["get"]["summary"]
    requested: list[str] = []
    blocked: list[str] = []
    refused_by_policy: list[str] = []  # never sent: Chromium reports them as requests failed with "csp"
    errors: list[str] = []

    def only_loopback(route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context()
            context.route("**/*", only_loopback)
            context.on("request", lambda request: requested.append(request.url))
            context.on("requestfailed",
                       lambda request: request.failure == "csp" and refused_by_policy.append(request.url))
            context.add_init_script(RECORD_CSP_VIOLATIONS)
            page = context.new_page()
            page.set_default_timeout(10_000)
            page.on("pageerror", lambda error: errors.append(str(error)))

            page.goto(f"{live_url}/docs")
            # Swagger UI lists the operations, GET /v1/plans among them.
            page.wait_for_selector('.opblock-get .opblock-summary-path[data-path="/v1/plans"]')
            assert page.locator(".opblock").count() > 10
            assert "OneVisit" in page.locator(".information-container .title").inner_text()
            refused = page.evaluate("window.__cspViolations")

            page.goto(f"{live_url}/redoc")
            # ReDoc shows the title and the operations' headings.
            page.locator("h1", has_text="OneVisit").wait_for()
            page.locator("h2", has_text=summary).first.wait_for()
            page.wait_for_timeout(300)  # let the side menu (and its logo) settle
            refused += page.evaluate("window.__cspViolations")
        finally:
            browser.close()

    assert not blocked, f"requests left loopback: {blocked}"
    outside = [u for u in requested if urlsplit(u).scheme in ("http", "https")
               and urlsplit(u).hostname != "127.0.0.1" and u not in refused_by_policy]
    assert not outside, f"requests left loopback: {outside}"
    assert all(u.startswith(KNOWN_REFUSED) for u in refused_by_policy), refused_by_policy
    assert any(urljoin(live_url, "/static/docs/swagger-ui-bundle.js") == u for u in requested)
    assert any(urljoin(live_url, "/static/docs/redoc.standalone.js") == u for u in requested)
    unexpected = [v for v in refused if not (v["directive"] == "img-src" and v["uri"].startswith(KNOWN_REFUSED))]
    assert not unexpected, f"the pages' Content-Security-Policy refused: {unexpected}"
    assert not errors, f"errors in the page: {errors}"
