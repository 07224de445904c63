"""The web page's sign-in, sessions and form protection, over real HTTP through the ASGI app on
SQLite and PostgreSQL: cookies' flags, idle and absolute expiry, revoked keys, sign-out, the
console's one-time link, CSRF on every form, redirects that stay on the site, the pages'
security headers, and the API's role rules applied unchanged."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from sqlalchemy import update

from api.cli import first_sign_in_link
from api.db import make_engine, make_sessionmaker, transaction
from api.keys import revoke_key
from api.models import SignInLink, WebSession
from api.web.sessions import IDLE_MINUTES, MAX_HOURS, SESSION_COOKIE
from tests.api_support import auth, checked_plan, make_keys, running_service, solve, tutorial

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(client, key: str, next_path: str = "/scenarios"):
    form = client.get("/sign-in")
    assert form.status_code == 200
    token = CSRF.search(form.text).group(1)
    return client.post("/sign-in", data={"api_key": key, "csrf_token": token, "next": next_path},
                       follow_redirects=False)


def csrf_of(client) -> str:
    return CSRF.search(client.get("/scenarios").text).group(1)


def db_update(database_url: str, statement) -> None:
    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as session:
        session.execute(statement)
    engine.dispose()


@pytest.fixture
def keys(database_url):
    return make_keys(database_url)


def test_signing_in_sets_a_strict_http_only_session_cookie(database_url, keys):
    with running_service(database_url, run_jobs=False) as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/sign-in"
        response = sign_in(client, keys["manager"])
        assert response.status_code == 303 and response.headers["location"] == "/scenarios"
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert "httponly" in flags and "samesite=strict" in flags
        assert "secure" not in flags  # plain http here; over TLS it is set (next test)
        assert keys["manager"] not in cookie
        page = client.get("/scenarios")
        assert page.status_code == 200 and "north · manager" in page.text


def test_the_cookie_is_secure_over_tls(database_url, keys):
    with running_service(database_url, run_jobs=False) as client:
        client.base_url = "https://testserver"
        response = sign_in(client, keys["manager"])
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
        assert "secure" in {part.strip().lower() for part in cookie.split(";")[1:]}


def test_a_wrong_key_or_a_forged_sign_in_form_opens_no_session(database_url, keys):
    with running_service(database_url, run_jobs=False) as client:
        wrong = sign_in(client, keys["manager"] + "x")
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
        client.cookies.clear()
        forged = client.post("/sign-in", data={"api_key": keys["manager"], "csrf_token": "guess"},
                             follow_redirects=False)
        assert forged.status_code == 403 and SESSION_COOKIE not in forged.headers.get("set-cookie", "")
        assert client.get("/scenarios", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_after_sign_in_the_redirect_stays_on_this_site(database_url, keys, target):
    with running_service(database_url, run_jobs=False) as client:
        assert sign_in(client, keys["manager"], target).headers["location"] == "/scenarios"


def test_a_page_asked_for_before_sign_in_is_reached_after_it(database_url, keys):
    with running_service(database_url, run_jobs=False) as client:
        first = client.get("/reception?reference=OV-ABCDEF", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"].startswith("/sign-in?next=")
        assert sign_in(client, keys["manager"], "/reception?reference=OV-ABCDEF").headers["location"] == \
            "/reception?reference=OV-ABCDEF"
        assert client.get("/plans/x/book.json", follow_redirects=False).status_code == 404
        client.cookies.clear()
        assert client.get("/plans/x/book.json", follow_redirects=False).status_code == 401


@pytest.mark.parametrize("column, age", [("last_seen_at", dt.timedelta(minutes=IDLE_MINUTES + 1)),
                                         ("created_at", dt.timedelta(hours=MAX_HOURS, minutes=1))])
def test_a_session_ends_when_idle_or_too_old(database_url, keys, column, age):
    with running_service(database_url, run_jobs=False) as client:
        sign_in(client, keys["manager"])
        assert client.get("/scenarios", follow_redirects=False).status_code == 200
        then = dt.datetime.now(dt.UTC) - age
        db_update(database_url, update(WebSession).values(**{column: then, "last_seen_at": min(then, dt.datetime.now(dt.UTC))}))
        assert client.get("/scenarios", follow_redirects=False).headers["location"].startswith("/sign-in")


def test_revoking_the_key_ends_its_sessions(database_url, keys):
    with running_service(database_url, run_jobs=False) as client:
        sign_in(client, keys["manager"])
        engine = make_engine(database_url)
        with transaction(make_sessionmaker(engine)) as session:
            assert revoke_key(session, keys["manager"].split("_")[1])
        engine.dispose()
        assert client.get("/scenarios", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session_on_the_server(database_url, keys):
    with running_service(database_url, run_jobs=False) as client:
        sign_in(client, keys["manager"])
        token = client.cookies[SESSION_COOKIE]
        out = client.post("/sign-out", data={"csrf_token": csrf_of(client)}, follow_redirects=False)
        assert out.status_code == 303
        client.cookies.set(SESSION_COOKIE, token)  # a copy of the cookie kept elsewhere
        assert client.get("/scenarios", follow_redirects=False).status_code == 303


def test_the_console_link_signs_in_once_and_only_on_a_fresh_install(database_url):
    link = first_sign_in_link(database_url, "http://127.0.0.1:8000")
    assert link and link.startswith("http://127.0.0.1:8000/sign-in/link/")
    path = link.removeprefix("http://127.0.0.1:8000")
    with running_service(database_url, run_jobs=False) as client:
        used = client.get(path, follow_redirects=False)
        assert used.status_code == 303 and SESSION_COOKIE in used.headers["set-cookie"]
        assert "local · manager" in client.get("/scenarios").text
        client.cookies.clear()
        again = client.get(path, follow_redirects=False)
        assert again.status_code == 401 and "already used or has expired" in again.text
        expiring = first_sign_in_link(database_url, "http://x")
        db_update(database_url, update(SignInLink).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        assert client.get(expiring.removeprefix("http://x"), follow_redirects=False).status_code == 401
    make_keys(database_url)
    assert first_sign_in_link(database_url, "http://127.0.0.1:8000") is None


def test_every_form_needs_the_sessions_csrf_token(database_url, keys):
    with running_service(database_url, run_jobs=False) as client:
        scenario = client.post("/v1/scenarios", json=tutorial(), headers=auth(keys["manager"])).json()
        sign_in(client, keys["manager"])
        for path in ("/scenarios/upload", f"/scenarios/{scenario['id']}/plans", "/capacity",
                     f"/scenarios/{scenario['id']}/feed-links"):
            refused = client.post(path, data={"csrf_token": "not-the-token", "time_limit_seconds": "2"},
                                  follow_redirects=False)
            assert refused.status_code == 403 and "Form expired" in refused.text, path
        assert client.get("/v1/jobs", headers=auth(keys["manager"])).json()["items"] == []


def test_pages_carry_security_headers_and_load_nothing_from_elsewhere(database_url, keys):
    with running_service(database_url, run_jobs=False) as client:
        sign_in(client, keys["manager"])
        for path in ("/sign-in", "/scenarios", "/reception", "/capacity", "/plans/nope"):
            page = client.get(path)
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors" in csp, path
            assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
            external = set(re.findall(r'(?:src|href)="(https?://[^"]+)"', page.text))
            assert not external, (path, external)


def test_a_planner_session_cannot_publish_replan_or_hand_out_links(database_url, keys):
    with running_service(database_url, run_jobs=False) as client:
        scenario = client.post("/v1/scenarios", json=tutorial(), headers=auth(keys["manager"])).json()
        sign_in(client, keys["planner"])
        csrf = csrf_of(client)
        page = client.get(f"/scenarios/{scenario['id']}")
        assert page.status_code == 200 and 'id="feed-form"' not in page.text
        link = client.post(f"/scenarios/{scenario['id']}/feed-links",
                           data={"csrf_token": csrf, "kind": "clinician", "subject_id": "gp-khan"})
        assert link.status_code == 403 and "may not hand out calendar links" in link.text
        for path in ("/plans/any/publish", "/plans/any/replan"):
            refused = client.post(path, data={"csrf_token": csrf, "action": "start", "draft": "[]"})
            assert refused.status_code == 403, path
        assert client.get("/v1/scenarios/" + scenario["id"] + "/calendar-tokens",
                          headers=auth(keys["manager"])).json()["items"] == []


def test_the_books_cached_json_follows_publishing_and_discarding(database_url, keys):
    """book.json is cached per plan; publishing (references appear) and discarding (404) still
    show at once, and another organisation's session never gets it."""
    from tests.api_support import solve

    with running_service(database_url) as client:
        scenario = client.post("/v1/scenarios", json=tutorial(), headers=auth(keys["manager"])).json()
        first = solve(client, keys["manager"], scenario["id"])
        second = solve(client, keys["manager"], scenario["id"])
        sign_in(client, keys["manager"])
        day = client.get(f"/v1/plans/{first}/appointments?limit=1", headers=auth(keys["manager"])).json()["items"][0]["date"]
        path = f"/plans/{first}/book.json?date={day}"
        before = client.get(path).json()
        assert before["events"] and all(e["extendedProps"]["reference"] == "" for e in before["events"])
        assert client.post(f"/v1/plans/{first}/publish", headers=auth(keys["manager"])).status_code == 200
        after = client.get(path).json()
        references = {i["reference"] for i in client.get(f"/v1/plans/{first}/invites",
                                                         headers=auth(keys["manager"])).json()["items"]}
        assert {e["extendedProps"]["reference"] for e in after["events"]} <= references
        assert all(e["extendedProps"]["reference"] for e in after["events"])
        second_path = f"/plans/{second}/book.json?date={day}"
        assert client.get(second_path).status_code == 200
        assert client.delete(f"/v1/plans/{second}", headers=auth(keys["manager"])).status_code == 204
        assert client.get(second_path).status_code == 404
        client.cookies.clear()
        sign_in(client, keys["other"])
        assert client.get(path).status_code == 404


def test_a_new_user_signs_in_with_the_link_onevisit_serve_prints(tmp_path):
    """The README's path: `onevisit serve` on a fresh database prints a one-time link on its
    console; opening it shows the rota's pages as the local organisation's manager."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--database-url",
         f"sqlite:///{tmp_path / 'fresh.db'}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        link = None
        for line in server.stdout:
            found = re.search(rf"http://127\.0\.0\.1:{port}/sign-in/link/\S+", line)
            if found:
                link = found.group(0)
                break
        assert link, "onevisit serve printed no sign-in link"
        with httpx.Client(timeout=10) as browser:
            for _ in range(100):  # the link is printed just before the server listens
                try:
                    browser.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            opened = browser.get(link, follow_redirects=True)
            assert opened.status_code == 200 and str(opened.url).endswith("/scenarios")
            assert "local · manager" in opened.text
            assert browser.get(link).status_code == 401  # used once
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The audit trail: the command made the link, the browser's first request used it.
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT actor_kind, action, target, changes FROM audit_log ORDER BY id")).all()
    engine.dispose()
    made = [r for r in rows if r.action == "onevisit serve"]
    assert made and made[0].actor_kind == "cli" and "insert sign_in_links" in made[0].changes
    used = [r for r in rows if r.action == "GET /sign-in/link/{token}"]
    assert used and used[0].actor_kind == "sign_in_link" and "(secret)" in used[0].target
    assert link.rsplit("/", 1)[1] not in str(rows)  # the link's secret is never written down


def test_why_this_visit_is_a_page_of_the_patient(database_url, keys):
    """Issue 18: the patient's page links to why their visit is where it is (the API's
    explanation, probed in the planner), for the signed-in organisation only."""
    with running_service(database_url) as client:
        scenario = client.post("/v1/scenarios", json=tutorial(), headers=auth(keys["manager"])).json()
        plan_id = solve(client, keys["manager"], scenario["id"])
        plan = checked_plan(client, keys["manager"], scenario["id"], 1, plan_id)
        patient = plan.visits[0].patient_id
        sign_in(client, keys["manager"])
        page = client.get(f"/plans/{plan_id}/patients/{patient}")
        assert f'href="/plans/{plan_id}/patients/{patient}/why"' in page.text
        why = client.get(f"/plans/{plan_id}/patients/{patient}/why")
        assert why.status_code == 200, why.text[:500]
        explanation = client.get(f"/v1/plans/{plan_id}/patients/{patient}/explanation",
                                 headers=auth(keys["manager"])).json()
        assert html.escape(explanation["summary"], quote=False) in why.text
        assert "What limited the choice" in why.text and "The next best" in why.text
        client.cookies.clear()
        sign_in(client, keys["other"])  # another organisation's manager
        assert client.get(f"/plans/{plan_id}/patients/{patient}/why").status_code == 404


@pytest.mark.hazard("HAZ-009")
def test_a_plan_of_an_older_scenario_version_is_published_only_when_confirmed(database_url, keys):
    """HAZ-009: a plan made before the scenario last changed (an absence entered since) is not
    published by accident: the page warns and asks for a confirmation, the API answers 409."""
    with running_service(database_url) as client:
        scenario = client.post("/v1/scenarios", json=tutorial(), headers=auth(keys["manager"])).json()
        plan_id = solve(client, keys["manager"], scenario["id"])
        checked_plan(client, keys["manager"], scenario["id"], 1, plan_id)
        changed = tutorial()
        changed["leave"] = [{"clinician_id": changed["clinicians"][0]["id"], "start_date": changed["horizon_start"],
                             "end_date": changed["horizon_start"], "reason": "sick"}]
        client.put(f"/v1/scenarios/{scenario['id']}", json=changed, headers=auth(keys["manager"])).raise_for_status()
        sign_in(client, keys["manager"])
        page = client.get(f"/plans/{plan_id}")
        assert 'data-testid="older-version"' in page.text and 'name="confirm_scenario_version" value="1"' in page.text
        refused = client.post(f"/plans/{plan_id}/publish", data={"csrf_token": csrf_of(client)}, follow_redirects=False)
        assert refused.status_code == 409 and "version 2 is the latest" in refused.text
        assert client.get(f"/v1/plans/{plan_id}", headers=auth(keys["manager"])).json()["published_at"] is None
        done = client.post(f"/plans/{plan_id}/publish", data={"csrf_token": csrf_of(client),
                                                              "confirm_scenario_version": "1"}, follow_redirects=False)
        assert done.status_code == 303
        assert client.get(f"/v1/plans/{plan_id}", headers=auth(keys["manager"])).json()["published_at"]
        entry = client.get("/v1/audit", params={"action": "/publish"}, headers=auth(keys["manager"])).json()["items"][0]
        assert entry["actor_kind"] == "web" and entry["action"] == "POST /plans/{plan_id}/publish"
