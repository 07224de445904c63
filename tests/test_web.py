"""The rota's web pages in a real browser: Debian's chromium, headless, driven by Playwright.

Run on SQLite and on PostgreSQL. A user signs in, uploads the tutorial scenario, plans it (once
per database, a short solve, shared by every test of the module), reads the appointment book on
a day before and a day after the March 2027 clock change, prints a clinician's day list,
publishes, hands out a feed link, looks a booking up at reception, re-plans from the form and
reads what changed, runs a capacity study; another organisation sees none of it. axe-core scans
every page for WCAG 2.2 AA (no serious or critical violation), and screenshots of the main
pages are written to test-artifacts/screenshots/.

The steps that change the plan's state (plan, publish, re-plan, study) are made once per
database through `Journey.step`, by whichever test needs them first, so each test also runs on
its own (`-k`). The browser runs in Europe/London, as a clinic's would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from sqlalchemy import create_engine, text

from scheduler.plan import Plan
from tests.api_support import checked_plan, make_keys
from tests.conftest import POSTGRES_URL, _postgres_schema_url
from tests.web_support import (
    ARTIFACTS,
    AxeLog,
    LiveServer,
    axe_violations,
    ensure_axe,
    ensure_chromium,
    screenshot,
)

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL_FILE = ROOT / "sample_rosters" / "tutorial.yaml"
LONDON = ZoneInfo("Europe/London")
CLOCK_CHANGE = dt.date(2027, 3, 28)  # clocks go forward at 01:00 GMT on Sunday 28 March 2027
SOLVE_SECONDS = "5"  # the plan form's time limit: enough for the tutorial
STUDY_SECONDS = "2"
JOB_TIMEOUT_MS = 120_000
STUDY_TIMEOUT_MS = 180_000
ID = r"[A-Za-z0-9_-]+"

expect.set_options(timeout=15_000)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web_database(request, tmp_path_factory):
    """(name, url): a fresh SQLite file, or a fresh schema in the real PostgreSQL (dropped
    afterwards), for the whole module: the tutorial is planned once per database."""
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path_factory.mktemp('web') / 'onevisit.db'}"
        return
    url, schema = _postgres_schema_url()
    try:
        yield "postgresql", url
    finally:
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module")
def browser():
    ensure_axe()
    playwright = sync_playwright().start()
    try:
        # --lang: date and time fields in the British order, as a clinic's browser shows them.
        chromium = playwright.chromium.launch(executable_path=ensure_chromium(), args=["--lang=en-GB"])
    except BaseException:
        playwright.stop()
        raise
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture(scope="module")
def journey(web_database, browser):
    name, url = web_database
    keys = make_keys(url)
    server = LiveServer(url).start()
    trip = Journey(name, server, keys, browser)
    started = time.monotonic()
    try:
        yield trip
    finally:
        trip.close()  # the browser's pages first: their event streams end before the service
        server.stop()
    print(f"\nbrowser tests on {name}: {time.monotonic() - started:.1f} s after the service started")


# --- the shared journey --------------------------------------------------------------------------


class Journey:
    """One database's service, its keys and the north manager's signed-in browser, with the
    state-changing steps made once (`step`) and their results kept."""

    def __init__(self, database: str, server: LiveServer, keys: dict[str, str], browser: Browser) -> None:
        self.database, self.server, self.keys, self.browser = database, server, keys, browser
        self.base = server.base
        self.api = server.client(keys["manager"])
        self.contexts: list[BrowserContext] = []
        self._done: dict[str, object] = {}
        self._manager: BrowserContext | None = None

    def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):
                context.close()
        self.api.close()

    # browsers

    def new_context(self, **options) -> BrowserContext:
        options = {"timezone_id": "Europe/London", "locale": "en-GB", "viewport": {"width": 1400, "height": 900},
                   **options}
        context = self.browser.new_context(base_url=self.base, **options)
        context.set_default_timeout(30_000)
        self.contexts.append(context)
        return context

    def sign_in(self, who: str, context: BrowserContext | None = None) -> Page:
        """A new page signed in with `who`'s key ("manager", "planner" or "other") through the
        sign-in form."""
        page = (context or self.new_context()).new_page()
        page.goto("/sign-in")
        page.fill("#api_key", self.keys[who])
        page.locator("#sign-in button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/scenarios$"))
        return page

    @contextlib.contextmanager
    def tab(self):
        """A new page in the north manager's signed-in context, closed afterwards."""
        if self._manager is None:
            self._manager = self.new_context()
            self.sign_in("manager", self._manager).close()
        page = self._manager.new_page()
        try:
            yield page
        finally:
            page.close()

    def step(self, name: str, make):
        """`make()`'s result, made once; a step that failed fails again at once for later tests."""
        if name not in self._done:
            try:
                self._done[name] = make()
            except BaseException as exc:  # noqa: BLE001 - kept to fail the later tests fast
                self._done[name] = exc
                raise
        found = self._done[name]
        if isinstance(found, BaseException):
            raise AssertionError(f"the {name!r} step failed earlier: {found}") from found
        return found

    def has(self, name: str) -> bool:
        return name in self._done and not isinstance(self._done[name], BaseException)

    # the steps

    def scenario(self) -> str:
        return self.step("upload", lambda: upload_tutorial(self))

    def plan(self) -> dict:
        return self.step("plan", lambda: plan_tutorial(self))

    def published(self) -> dict:
        return self.step("publish", lambda: publish_plan(self))

    def replanned(self) -> dict:
        return self.step("replan", lambda: replan_with_absence(self))

    def study(self) -> dict:
        return self.step("study", lambda: run_study(self))

    def references(self) -> dict[str, str]:
        """Visit id -> booking reference of the plan's visits once published, else {}."""
        return self.published()["references"] if self.has("publish") else {}


def upload_tutorial(j: Journey) -> str:
    """Upload sample_rosters/tutorial.yaml on /scenarios; the scenario's id."""
    with j.tab() as page:
        page.goto("/scenarios")
        page.set_input_files("#scenario", str(TUTORIAL_FILE))
        page.locator("#upload-form button[type=submit]").click()
        expect(page).to_have_url(re.compile(rf"/scenarios/{ID}$"))
        expect(page.locator("h1")).to_contain_text("Tutorial")
        return page.url.rsplit("/", 1)[1]


def plan_tutorial(j: Journey) -> dict:
    """Plan the tutorial from its page with a short time limit, follow the job's live progress
    to its end, open the plan; the plan read back and passed by the independent checker."""
    scenario_id = j.scenario()
    with j.tab() as page:
        page.goto(f"/scenarios/{scenario_id}")
        page.fill("#time_limit_seconds", SOLVE_SECONDS)
        page.locator("#plan-form button[type=submit]").click()
        expect(page).to_have_url(re.compile(rf"/jobs/{ID}$"))
        job_id = page.url.rsplit("/", 1)[1]
        # data-finished is set by onevisit.js only when the server-sent `end` event arrives.
        expect(page.locator("#job")).to_have_attribute("data-finished", "finished", timeout=JOB_TIMEOUT_MS)
        expect(page.locator("#job-status")).to_have_text("finished")
        page.locator("#plan-link").click()
        expect(page).to_have_url(re.compile(rf"/plans/{ID}$"))
        plan_id = page.url.rsplit("/", 1)[1]
    summary = j.api.get(f"/v1/plans/{plan_id}").json()
    plan = checked_plan(j.api, j.keys["manager"], scenario_id, summary["scenario_version"], plan_id)
    assert plan.appointments, "the tutorial's plan booked nothing"
    return {"scenario_id": scenario_id, "job_id": job_id, "plan_id": plan_id, "plan": plan,
            "version": summary["scenario_version"]}


def publish_plan(j: Journey) -> dict:
    """Publish the plan with its page's form (as the manager); what the API says was sent and
    each visit's booking reference."""
    plan_id = j.plan()["plan_id"]
    with j.tab() as page:
        page.goto(f"/plans/{plan_id}")
        page.locator("#publish-form button[type=submit]").click()
        expect(page).to_have_url(re.compile(rf"/plans/{plan_id}/invites$"))
    items = j.api.get(f"/v1/plans/{plan_id}/invites").json()["items"]
    references = {}
    for item in items:
        booking = j.api.get(f"/v1/bookings/{item['reference']}")
        assert booking.status_code == 200, booking.text
        references[booking.json()["visit"]["id"]] = item["reference"]
    return {"items": items, "references": references}


def absent_clinician(plan: Plan) -> tuple[str, dt.datetime, dt.datetime]:
    """The clinician with the most appointments from Tuesday 30 March to Thursday 1 April (after
    the clock change), and that window."""
    start, end = dt.datetime(2027, 3, 30, tzinfo=LONDON), dt.datetime(2027, 4, 1, tzinfo=LONDON)
    counts = Counter(c for a in plan.appointments if start <= a.start < end for c in a.clinician_ids)
    assert counts, "the plan books nothing from 30 March to 1 April: nothing to re-plan around"
    return counts.most_common(1)[0][0], start, end


def replan_with_absence(j: Journey) -> dict:
    """On /plans/{id}/replan: add a clinician's absence after the clock change, try an invalid
    entry (refused, the list unchanged), start the re-plan, follow the job, open the diff."""
    made = j.plan()
    plan_id = made["plan_id"]
    clinician, start, end = absent_clinician(made["plan"])
    seen: dict = {"clinician": clinician}
    with j.tab() as page:
        page.goto(f"/plans/{plan_id}/replan")
        page.select_option("#kind", "clinician_absence")
        page.select_option("#clinician", clinician)
        page.fill("#start", start.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#end", end.strftime("%Y-%m-%dT%H:%M"))
        page.locator("#add-disruption").click()
        expect(page.locator("[data-testid=draft] > li")).to_have_count(1)
        expect(page.locator("[data-testid=draft]")).to_contain_text(clinician)
        seen["draft_after_add"] = page.locator("[data-testid=draft] > li").count()
        # An entry that cannot be: the absence ends before it starts.
        page.select_option("#kind", "clinician_absence")
        page.select_option("#clinician", clinician)
        page.fill("#start", "2027-04-01T12:00")
        page.fill("#end", "2027-03-31T09:00")
        page.locator("#add-disruption").click()
        expect(page.locator("table[data-testid=problems]")).to_be_visible()
        seen["problems"] = page.locator("table[data-testid=problems] tbody tr").all_inner_texts()
        seen["draft_after_invalid"] = page.locator("[data-testid=draft] > li").all_inner_texts()
        # Start: as of before the plan begins, so nothing is frozen.
        page.fill("#as_of", "2027-03-22T00:00")
        page.fill("#time_limit_seconds", SOLVE_SECONDS)
        page.locator("#start-replan").click()
        expect(page).to_have_url(re.compile(rf"/jobs/{ID}$"))
        job_id = page.url.rsplit("/", 1)[1]
        expect(page.locator("#job")).to_have_attribute("data-finished", "finished", timeout=JOB_TIMEOUT_MS)
        page.locator("#diff-link").click()
        expect(page).to_have_url(re.compile(rf"/plans/{plan_id}/diff/{ID}$"))
        new_plan_id = page.url.rsplit("/", 1)[1]
    summary = j.api.get(f"/v1/plans/{new_plan_id}").json()
    new_plan = checked_plan(j.api, j.keys["manager"], made["scenario_id"], summary["scenario_version"], new_plan_id)
    return {**seen, "job_id": job_id, "new_plan_id": new_plan_id, "new_plan": new_plan,
            "diff_url": f"/plans/{plan_id}/diff/{new_plan_id}"}


def run_study(j: Journey) -> dict:
    """Start the capacity page's example study (2 s per solve) and wait for its report."""
    j.scenario()
    with j.tab() as page:
        page.goto("/capacity")
        page.fill("#study_time_limit", STUDY_SECONDS)
        page.locator("#study-form button[type=submit]").click()
        expect(page).to_have_url(re.compile(rf"/capacity/{ID}$"))
        study_id = page.url.rsplit("/", 1)[1]
        # The page polls its status and reloads itself when the study ends.
        expect(page.locator("#study-status")).to_have_text(re.compile(r"finished|failed|cancelled"),
                                                          timeout=STUDY_TIMEOUT_MS)
        expect(page.locator("#study-status")).to_have_text("finished")
    return {"study_id": study_id}


# --- reading the appointment book ----------------------------------------------------------------

BOOK_JS = """async () => {
  const el = document.getElementById('book');
  const data = await (await fetch(el.dataset.source, {credentials: 'same-origin'})).json();
  const box = (n) => { const r = n.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,
                                                                    bottom: r.bottom}; };
  return {
    book: box(el),
    resources: data.resources,
    blocks: Array.from(el.querySelectorAll('.ov-appointment')).map(n => ({
      id: n.dataset.appointmentId, visit: n.dataset.visitId, patient: n.dataset.patientId,
      reference: n.dataset.reference, start: n.dataset.start, end: n.dataset.end, row: n.dataset.row,
      box: box(n)})),
    rows: Array.from(el.querySelectorAll('.ec-row-head')).map(n => ({title: n.textContent.trim(), box: box(n)})),
    columns: Array.from(el.querySelectorAll('.ec-col-head time[datetime]')).map(n => n.getAttribute('datetime')),
    slots: Array.from(el.querySelectorAll('.ec-slot time[datetime]')).map(n => ({
      at: n.getAttribute('datetime'), left: n.closest('.ec-slot').getBoundingClientRect().left})),
  };
}"""


def open_book(page: Page, plan_id: str, **query) -> dict:
    """Open the book with `query` and read its blocks, rows and slot labels as laid out."""
    page.goto(f"/plans/{plan_id}/book?{urlencode(query)}")
    expect(page.locator("#book")).to_have_attribute("data-loaded", "true")
    return page.evaluate(BOOK_JS)


def local_iso(value: dt.datetime) -> str:
    return value.astimezone(LONDON).isoformat()


def local_date(value: dt.datetime) -> dt.date:
    return value.astimezone(LONDON).date()


def expected_blocks(plan: Plan, days: list[dt.date], rows: str) -> Counter:
    """(appointment id, row id, local start, local end) for every block the book must show:
    an appointment once per clinician (rows=clinician) or once in its room (rows=room)."""
    out = Counter()
    for a in plan.appointments:
        if local_date(a.start) in days:
            for row in (a.clinician_ids if rows == "clinician" else [a.room_id]):
                out[(a.id, row, local_iso(a.start), local_iso(a.end))] += 1
    return out


def shown_blocks(book: dict) -> Counter:
    """The same tuples read off the page, each block's row found by where it is drawn: the row
    header whose band holds the block's vertical middle."""
    by_title = {r["title"]: r["id"] for r in book["resources"]}
    out = Counter()
    for b in book["blocks"]:
        middle = (b["box"]["top"] + b["box"]["bottom"]) / 2
        heads = [r for r in book["rows"] if r["box"]["top"] <= middle < r["box"]["bottom"]]
        assert len(heads) == 1, f"block {b['id']} is drawn in no single row (middle {middle}, rows {book['rows']})"
        row = by_title.get(heads[0]["title"])
        assert row is not None, f"row header {heads[0]['title']!r} names no resource of {book['resources']}"
        assert row in b["row"].split(), f"block {b['id']} drawn in row {row} but data-row is {b['row']!r}"
        out[(b["id"], row, b["start"], b["end"])] += 1
    return out


def minutes(iso: str) -> int:
    return int(iso[11:13]) * 60 + int(iso[14:16])


def check_positions(book: dict) -> None:
    """Every block starts where its local start time is on the slot labels of its own day."""
    labels: dict[str, list[tuple[int, float]]] = {}
    for s in book["slots"]:
        labels.setdefault(s["at"][:10], []).append((minutes(s["at"]), s["left"]))
    for b in book["blocks"]:
        day = sorted(labels[b["start"][:10]])
        assert len(day) >= 2, f"too few slot labels on {b['start'][:10]}: {day}"
        (m0, x0), (m1, x1) = day[0], day[-1]
        per_minute = (x1 - x0) / (m1 - m0)
        want = x0 + (minutes(b["start"]) - m0) * per_minute
        assert abs(b["box"]["left"] - want) <= 2, (
            f"block {b['id']} ({b['start']}) drawn at x={b['box']['left']:.1f}, its start time is at x={want:.1f}")


# --- 1. signing in and out -----------------------------------------------------------------------


def test_sign_in_errors_cookie_and_sign_out(journey):
    context = journey.new_context()
    page = context.new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/sign-in(\?|$)"))
    page.fill("#api_key", "ov_this_is_not_a_key")
    page.locator("#sign-in button[type=submit]").click()
    expect(page.locator("[data-testid=error]")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/sign-in(\?|$)"))
    assert not [c for c in context.cookies() if c["name"] == "onevisit_session"]

    page.fill("#api_key", journey.keys["manager"])
    page.locator("#sign-in button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/scenarios$"))
    expect(page.locator("[data-testid=who]")).to_have_text("north · manager")
    cookie = next(c for c in context.cookies() if c["name"] == "onevisit_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict", cookie
    assert "onevisit_session" not in page.evaluate("document.cookie")  # no script reads it
    assert journey.keys["manager"] not in str(context.cookies())  # the key is not kept in the browser

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/scenarios$"))

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sign-in(\?|$)"))
    page.goto("/scenarios")
    expect(page).to_have_url(re.compile(r"/sign-in\?next="))
    # The old cookie, set again in a fresh browser, no longer opens anything: the session ended
    # on the server, not only in this browser.
    again = journey.new_context()
    again.add_cookies([{"name": "onevisit_session", "value": cookie["value"], "url": journey.base}])
    other = again.new_page()
    other.goto("/scenarios")
    expect(other).to_have_url(re.compile(r"/sign-in\?next="))
    # Signing in from a page's redirect goes back to that page, but never to another site.
    for target, lands in (("/capacity", "/capacity"), ("//example.org/x", "/scenarios"),
                          ("https://example.org/x", "/scenarios")):
        other.goto(f"/sign-in?{urlencode({'next': target})}")
        other.fill("#api_key", journey.keys["manager"])
        other.locator("#sign-in button[type=submit]").click()
        expect(other).to_have_url(f"{journey.base}{lands}")
    context.close()
    again.close()


# --- 2. CSRF -------------------------------------------------------------------------------------


def test_form_without_its_csrf_token_is_refused(journey):
    scenario_id = journey.scenario()
    with journey.tab() as page:
        page.goto(f"/scenarios/{scenario_id}")
        session = next(c["value"] for c in page.context.cookies() if c["name"] == "onevisit_session")
    jobs_before = journey.api.get("/v1/jobs", params={"scenario_id": scenario_id}).json()["items"]
    with httpx.Client(base_url=journey.base, cookies={"onevisit_session": session}, timeout=30) as client:
        for form in ({"time_limit_seconds": "5"}, {"time_limit_seconds": "5", "csrf_token": "not-the-token"}):
            answer = client.post(f"/scenarios/{scenario_id}/plans", data=form)
            assert answer.status_code == 403, (form, answer.status_code, answer.text[:500])
            assert "Form expired" in answer.text
        # The same session's page is still signed in: a refused form ends nothing.
        assert client.get("/scenarios").status_code == 200
    jobs_after = journey.api.get("/v1/jobs", params={"scenario_id": scenario_id}).json()["items"]
    assert len(jobs_after) == len(jobs_before), "a refused form started a job"


# --- 3. uploads ----------------------------------------------------------------------------------


def test_upload_with_problems_names_them_and_saves_nothing(journey, tmp_path):
    journey.scenario()
    before = journey.api.get("/v1/scenarios").json()["items"]
    text_ = TUTORIAL_FILE.read_text()
    broken = text_.replace("duration_minutes: 25,", 'duration_minutes: "abc",', 1)
    assert broken != text_
    path = tmp_path / "broken-tutorial.yaml"
    path.write_text(broken)
    with journey.tab() as page:
        page.goto("/scenarios")
        page.set_input_files("#scenario", str(path))
        page.locator("#upload-form button[type=submit]").click()
        problems = page.locator("table[data-testid=problems] tbody tr")
        expect(problems.first).to_be_visible()
        rows = problems.all_inner_texts()
        assert any("broken-tutorial.yaml" in r and "duration_minutes" in r for r in rows), rows
        # The list of scenarios on the page is the one from before the upload.
        shown = page.locator("table[data-testid=scenarios] tbody tr").count()
        assert shown == len(before)
    assert journey.api.get("/v1/scenarios").json()["items"] == before, "a scenario with problems was saved"


# --- 4. planning ---------------------------------------------------------------------------------


def test_plan_from_the_browser_passes_the_checker(journey):
    made = journey.plan()  # planned from the scenario page; checked by scheduler.check on the way
    with journey.tab() as page:
        page.goto(f"/plans/{made['plan_id']}")
        expect(page.locator("table[data-testid=before-after]")).to_be_visible()
        expect(page.locator("[data-testid=metrics]")).to_be_visible()
        expect(page.locator("[data-testid=metrics]")).to_contain_text(
            f"{made['plan'].metrics.reviews_booked} of {made['plan'].metrics.reviews}")
        # The job page, opened again after the end, reports the end too (from the event stream).
        page.goto(f"/jobs/{made['job_id']}")
        expect(page.locator("#job")).to_have_attribute("data-finished", "finished")
        expect(page.locator("#plan-link")).to_have_attribute("href", f"/plans/{made['plan_id']}")


# --- 5. the appointment book ---------------------------------------------------------------------


def book_days(plan: Plan) -> tuple[dt.date, dt.date]:
    """The last day with appointments before the clock change and the first one after it."""
    days = sorted({local_date(a.start) for a in plan.appointments})
    before = [d for d in days if d < CLOCK_CHANGE]
    after = [d for d in days if d > CLOCK_CHANGE]
    assert before and after, f"the plan needs appointments on both sides of the clock change: {days}"
    return before[-1], after[0]


@pytest.mark.hazard("HAZ-004")
def test_book_matches_the_plan_on_both_sides_of_the_clock_change(journey):
    made = journey.plan()
    plan, plan_id = made["plan"], made["plan_id"]
    before, after = book_days(plan)
    references = journey.references()
    with journey.tab() as page:
        books = {}
        for day in (before, after):
            for rows in ("clinician", "room"):
                book = open_book(page, plan_id, date=day.isoformat(), rows=rows)
                want, got = expected_blocks(plan, [day], rows), shown_blocks(book)
                assert got == want, f"{day} rows={rows}: page {sorted(got)} != plan {sorted(want)}"
                for b in book["blocks"]:
                    offset = b["start"][19:]
                    assert offset == ("+00:00" if day < CLOCK_CHANGE else "+01:00"), b
                    assert b["reference"] == references.get(b["visit"], ""), b
                check_positions(book)
                books[day, rows] = book
        # The timeline does not shift across the clock change: a time of day is at the same
        # place on both days (the slot labels, and blocks that start at the same local time).
        left = {day: books[day, "clinician"]["book"]["left"] for day in (before, after)}
        slots = {day: {s["at"][11:16]: s["left"] - left[day] for s in books[day, "clinician"]["slots"]}
                 for day in (before, after)}
        assert slots[before].keys() == slots[after].keys(), slots
        assert all(abs(slots[before][t] - slots[after][t]) <= 1 for t in slots[before]), slots
        starts = {day: {} for day in (before, after)}
        for day in (before, after):
            for b in books[day, "clinician"]["blocks"]:
                starts[day].setdefault(b["start"][11:16], b["box"]["left"] - left[day])
        common = set(starts[before]) & set(starts[after])
        for hhmm in common:
            assert abs(starts[before][hhmm] - starts[after][hhmm]) <= 1, (hhmm, starts)
        assert slots[before].get("09:00") is not None
    # A browser whose clock is on another zone (a laptop left on UTC) draws the same London times.
    elsewhere = journey.new_context(timezone_id="UTC")
    page = journey.sign_in("manager", elsewhere)
    for day in (before, after):
        book = open_book(page, plan_id, date=day.isoformat())
        assert shown_blocks(book) == expected_blocks(plan, [day], "clinician"), f"UTC browser, {day}"
        check_positions(book)
    elsewhere.close()


def test_a_block_of_the_book_opens_its_patient_and_why_this_visit(journey):
    """Issue 18: from the patient's block in the book, their page, then "Why this visit?" with
    what limited the choice and the next best, as the API's explanation gives them."""
    made = journey.plan()
    plan, plan_id = made["plan"], made["plan_id"]
    visit = min(plan.visits, key=lambda v: (v.start, v.id))
    with journey.tab() as page:
        open_book(page, plan_id, date=local_date(visit.start).isoformat())
        page.locator(f".ov-appointment[data-visit-id='{visit.id}']").first.click()
        expect(page).to_have_url(re.compile(rf"/plans/{plan_id}/patients/{re.escape(visit.patient_id)}$"))
        page.get_by_test_id("why-link").click()
        expect(page.get_by_test_id("why-summary")).to_be_visible()
        assert page.get_by_role("heading", name="What limited the choice").count() == 1
        assert page.get_by_role("heading", name="The next best").count() == 1


def test_book_week_by_room(journey):
    made = journey.plan()
    plan, plan_id = made["plan"], made["plan_id"]
    with journey.tab() as page:
        for monday in (dt.date(2027, 3, 22), dt.date(2027, 3, 29)):  # the change is on the first week's Sunday
            book = open_book(page, plan_id, date=(monday + dt.timedelta(days=2)).isoformat(), view="week",
                             rows="room")
            days = [monday + dt.timedelta(days=i) for i in range(7)]
            want, got = expected_blocks(plan, days, "room"), shown_blocks(book)
            assert got == want, f"week of {monday}: page {sorted(got)} != plan {sorted(want)}"
            assert {r["id"] for r in book["resources"]} == {"rs-treatment", "rs-nurse", "rs-consult1", "rs-consult2",
                                                            "rs-mdt"}
            check_positions(book)
            # The timeline's columns are the week the page names and book.json serves: Monday to
            # Sunday (EventCalendar's own default starts weeks on Sunday; book.js sets firstDay).
            assert book["columns"] == [d.isoformat() for d in days], (
                f"week of {monday}: the timeline draws {book['columns']}")


def test_book_keyboard_and_filters(journey):
    made = journey.plan()
    plan, plan_id = made["plan"], made["plan_id"]
    before, after = book_days(plan)
    gps = {"gp-khan"}
    with journey.tab() as page:
        # rows=room: the rows are the rooms.
        book = open_book(page, plan_id, date=after.isoformat(), rows="room")
        assert [r["title"] for r in book["rows"]] == [r["title"] for r in book["resources"]]
        assert {r["id"] for r in book["resources"]} == {"rs-treatment", "rs-nurse", "rs-consult1", "rs-consult2",
                                                        "rs-mdt"}
        # role=gp: only GP rows, only their appointments.
        book = open_book(page, plan_id, date=before.isoformat(), role="gp")
        assert {r["id"] for r in book["resources"]} == gps
        assert [r["title"] for r in book["rows"]] == [r["title"] for r in book["resources"]]
        assert all(set(b["row"].split()) <= gps for b in book["blocks"]), book["blocks"]
        want = Counter({k: n for k, n in expected_blocks(plan, [before], "clinician").items() if k[1] in gps})
        assert shown_blocks(book) == want
        # ArrowRight with the focus on the page (not in a field) moves to the next day.
        open_book(page, plan_id, date=before.isoformat())
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.keyboard.press("ArrowRight")
        following = (before + dt.timedelta(days=1)).isoformat()
        expect(page).to_have_url(re.compile(rf"[?&]date={following}(&|$)"))
        expect(page.locator("#book")).to_have_attribute("data-date", following)
        page.keyboard.press("ArrowLeft")
        expect(page).to_have_url(re.compile(rf"[?&]date={before.isoformat()}(&|$)"))


# --- 6. the printable day list -------------------------------------------------------------------


def test_day_list_from_the_book_prints(journey):
    made = journey.plan()
    plan, plan_id = made["plan"], made["plan_id"]
    _, day = book_days(plan)
    on_day = [a for a in plan.appointments if local_date(a.start) == day]
    clinician = Counter(c for a in on_day for c in a.clinician_ids).most_common(1)[0][0]
    mine = sorted((a for a in on_day if clinician in a.clinician_ids), key=lambda a: (a.start, a.id))
    with journey.tab() as page:
        open_book(page, plan_id, date=day.isoformat())
        page.select_option("#day-list-clinician", clinician)
        page.locator("#day-list-form button[type=submit]").click()
        expect(page).to_have_url(re.compile(rf"/plans/{plan_id}/day-list\?"))
        assert f"clinician={clinician}" in page.url and f"date={day.isoformat()}" in page.url
        rows = page.locator("table[data-testid=day-list] tbody tr")
        expect(rows).to_have_count(len(mine))
        for row, a in zip(rows.all(), mine, strict=True):
            cells = row.locator("td").all_inner_texts()
            want = f"{a.start.astimezone(LONDON):%H:%M}–{a.end.astimezone(LONDON):%H:%M}"
            assert cells[0].strip() == want, (cells, a)
            assert cells[2].strip() == a.patient_id, (cells, a)
        page.emulate_media(media="print")
        expect(page.locator(".site-header")).to_be_hidden()
        expect(page.locator("table[data-testid=day-list]")).to_be_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pdf = ARTIFACTS / "day-list.pdf"
        page.pdf(path=str(pdf))
        assert pdf.stat().st_size > 0 and pdf.read_bytes().startswith(b"%PDF")
        page.emulate_media(media="screen")


# --- 7. publishing, feeds, reception -------------------------------------------------------------


def test_planner_cannot_publish_then_manager_publishes(journey):
    made = journey.plan()
    plan, plan_id = made["plan"], made["plan_id"]
    if not journey.has("publish"):  # (the plan is still a draft unless another test published it)
        planner = journey.sign_in("planner")
        expect(planner.locator("[data-testid=who]")).to_have_text("north · planner")
        planner.goto(f"/plans/{plan_id}")
        expect(planner.locator("table[data-testid=before-after]")).to_be_visible()
        expect(planner.locator("#publish-form")).to_have_count(0)
        token = planner.locator("form[action='/sign-out'] input[name=csrf_token]").input_value()
        answer = planner.request.post(f"/plans/{plan_id}/publish", form={"csrf_token": token})
        assert answer.status == 403, (answer.status, answer.text()[:500])
        assert "Not allowed" in answer.text()
        assert journey.api.get(f"/v1/plans/{plan_id}").json()["status"] == "draft"
        planner.context.close()

    published = journey.published()
    items = published["items"]
    assert journey.api.get(f"/v1/plans/{plan_id}").json()["status"] == "published"
    with journey.tab() as page:
        page.goto(f"/plans/{plan_id}/invites")
        rows = page.locator("table[data-testid=invites] tbody tr")
        expect(rows).to_have_count(len(items))
        shown = [tuple(t.strip() for t in row.locator("td").all_inner_texts()[:3]) for row in rows.all()]
        assert sorted(shown) == sorted((i["patient_id"], i["reference"], i["action"]) for i in items)
        assert {s[0] for s in shown} == {v.patient_id for v in plan.visits}
        assert len(items) == len(plan.visits)
        new = sum(1 for i in items if i["action"] == "new")
        assert new > 0
        expect(page.locator("[data-testid=invite-counts]")).to_contain_text(f"{new} new invites")
        # The book now carries each visit's booking reference.
        assert set(published["references"]) == {v.id for v in plan.visits}
        for day in book_days(plan):
            book = open_book(page, plan_id, date=day.isoformat())
            assert book["blocks"]
            for b in book["blocks"]:
                assert b["reference"] == published["references"][b["visit"]], b


def test_feed_links_for_managers_only(journey):
    scenario_id = journey.scenario()
    plan = journey.plan()["plan"]
    journey.published()  # a feed shows the published plan
    clinician = Counter(c for a in plan.appointments for c in a.clinician_ids).most_common(1)[0][0]
    with journey.tab() as page:
        page.goto(f"/scenarios/{scenario_id}")
        page.select_option("#feed-kind", "clinician")
        page.select_option("#feed-subject", clinician)
        page.locator("#feed-form button[type=submit]").click()
        expect(page).to_have_url(re.compile(rf"/scenarios/{scenario_id}\?feed="))
        links = page.locator("table[data-testid=feeds] input")
        expect(links.first).to_be_visible()
        url = links.last.input_value()
        assert url.startswith(f"{journey.base}/"), url
    answer = httpx.get(url, timeout=30)  # no key, no session: the link is the secret
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/calendar")
    assert answer.text.startswith("BEGIN:VCALENDAR") and "BEGIN:VEVENT" in answer.text
    planner = journey.sign_in("planner")
    planner.goto(f"/scenarios/{scenario_id}")
    expect(planner.locator("h1")).to_contain_text("Tutorial")
    expect(planner.locator("#feed-form")).to_have_count(0)
    planner.context.close()


def test_reception_finds_a_booking(journey):
    plan = journey.plan()["plan"]
    references = journey.published()["references"]
    # A visit after the clock change: its local time is an hour after its UTC time.
    visit = min((v for v in plan.visits if local_date(v.start) > CLOCK_CHANGE), key=lambda v: (v.start, v.id))
    reference = references[visit.id]
    start = visit.start.astimezone(LONDON)
    with journey.tab() as page:
        page.goto(f"/reception?{urlencode({'reference': reference})}")
        booking = page.locator("[data-testid=booking]")
        expect(booking).to_be_visible()
        expect(booking).to_contain_text(reference)
        expect(booking).to_contain_text(f"{start:%A %d %B %Y}")
        expect(booking).to_contain_text(f"{start:%H:%M}")  # local time, as on the invite
        expect(booking).to_contain_text(visit.patient_id)
        # Typed in the form, in lower case, it is found too.
        page.fill("#reference", reference.lower())
        page.locator("#reception-form button[type=submit]").click()
        expect(page.locator("[data-testid=booking]")).to_contain_text(reference)
        response = page.goto("/reception?reference=OV-ZZZZZZ")
        assert response is not None and response.status == 404
        expect(page.locator("[data-testid=error]")).to_be_visible()
        expect(page.locator("[data-testid=booking]")).to_have_count(0)


def test_patient_page_in_local_time(journey):
    made = journey.plan()
    plan, plan_id = made["plan"], made["plan_id"]
    visit = min((v for v in plan.visits if local_date(v.start) > CLOCK_CHANGE), key=lambda v: (v.start, v.id))
    steps = sorted((a for a in plan.appointments if a.visit_id == visit.id), key=lambda a: (a.start, a.id))
    with journey.tab() as page:
        page.goto(f"/plans/{plan_id}/patients/{visit.patient_id}")
        section = page.locator(f"section[data-visit-id='{visit.id}']")
        start = visit.start.astimezone(LONDON)
        expect(section.locator("h2")).to_contain_text(f"{start:%A %d %B %Y, %H:%M}")
        times = [t.strip() for t in section.locator("tbody tr td:first-child").all_inner_texts()]
        assert times == [f"{a.start.astimezone(LONDON):%H:%M}–{a.end.astimezone(LONDON):%H:%M}" for a in steps]
        response = page.goto(f"/plans/{plan_id}/patients/NO-SUCH-PATIENT")
        assert response is not None and response.status == 404


# --- 8. re-planning ------------------------------------------------------------------------------


def test_replan_from_the_form_shows_what_changed(journey):
    made = journey.plan()
    done = journey.replanned()
    clinician = done["clinician"]
    assert done["draft_after_add"] == 1
    assert done["problems"], "an absence ending before it starts was accepted"
    assert len(done["draft_after_invalid"]) == 1 and clinician in done["draft_after_invalid"][0], done
    window_start, window_end = absent_clinician(made["plan"])[1:]
    had = [a for a in made["plan"].appointments if clinician in a.clinician_ids and window_start <= a.start < window_end]
    assert had
    # The new plan books nothing for the absent clinician in the window.
    assert not [a for a in done["new_plan"].appointments
                if clinician in a.clinician_ids and window_start <= a.start < window_end]
    api = journey.api.get(f"/v1/plans/{made['plan_id']}/diff/{done['new_plan_id']}").json()["counts"]
    with journey.tab() as page:
        page.goto(done["diff_url"])
        counts = {name: int(page.locator(f"#count-{name.replace('_', '-')}").inner_text())
                  for name in ("moved", "cancelled", "newly_booked", "unchanged")}
        assert counts == {name: api[name] for name in counts}, (counts, api)
        assert counts["moved"] + counts["cancelled"] > 0
        rows = page.locator("table[data-testid=diff] tbody tr")
        expect(rows.first).to_be_visible()
        reasons = [row.locator("td").last.inner_text() for row in rows.all()]
        assert any(f"{clinician} is absent" in r for r in reasons), reasons
        assert rows.count() == counts["moved"] + counts["cancelled"] + counts["newly_booked"]


# --- 10. capacity --------------------------------------------------------------------------------


def test_capacity_study_from_the_page(journey):
    study_id = journey.study()["study_id"]
    with journey.tab() as page:
        page.goto(f"/capacity/{study_id}")
        expect(page.locator("#study-status")).to_have_text("finished")
        files = page.locator("[data-testid=report-files] li a").all_inner_texts()
        assert "report.html" in files, files
        assert any(f.endswith(".png") for f in files), files
        for img in page.locator("img.plot").all():
            expect(img).to_be_visible()
            assert img.evaluate("(n) => n.complete && n.naturalWidth > 0"), img.get_attribute("src")
        frame = page.frame_locator("iframe.report")
        expect(frame.locator("body")).to_contain_text("One more nurse session")
        page.goto("/capacity")
        expect(page.locator("table[data-testid=studies]")).to_contain_text("One more nurse session")


# --- 9. organisations ----------------------------------------------------------------------------


def test_another_organisation_sees_nothing(journey):
    made = journey.plan()
    plan = made["plan"]
    references = journey.published()["references"]
    done = journey.replanned()
    study_id = journey.study()["study_id"]
    day = book_days(plan)[0]
    patient = plan.appointments[0].patient_id
    north = {*(p.patient_id for p in plan.visits), *references.values(), "Tutorial - Riverside Surgery",
             "Dr A Khan", made["scenario_id"], made["plan_id"], done["new_plan_id"]}
    page = journey.sign_in("other")
    expect(page.locator("[data-testid=who]")).to_have_text("south · manager")
    for path in ("/scenarios", "/capacity", "/reception"):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        html = page.content()
        assert not [x for x in north if x in html], (path, [x for x in north if x in html])
    reference = next(iter(references.values()))
    pages = [f"/plans/{made['plan_id']}", f"/plans/{made['plan_id']}/book?date={day}",
             f"/plans/{made['plan_id']}/day-list?clinician=gp-khan&date={day}",
             f"/plans/{made['plan_id']}/patients/{patient}", f"/plans/{made['plan_id']}/invites",
             f"/plans/{made['plan_id']}/replan", done["diff_url"], f"/jobs/{made['job_id']}",
             f"/jobs/{done['job_id']}", f"/scenarios/{made['scenario_id']}", f"/reception?reference={reference}",
             f"/capacity/{study_id}", f"/capacity/{study_id}/report/report.html"]
    for path in pages:
        response = page.goto(path)
        assert response is not None and response.status == 404, (path, response and response.status)
        html = page.content()
        leaked = [x for x in north if x in html and x not in path]  # (what the URL itself says aside)
        assert not leaked, (path, leaked)
        expect(page.locator("[data-testid=booking]")).to_have_count(0)
    for path in (f"/plans/{made['plan_id']}/book.json?date={day}", f"/jobs/{made['job_id']}/events",
                 f"/capacity/{study_id}/status.json"):
        answer = page.request.get(path)
        assert answer.status == 404, (path, answer.status)
        leaked = [x for x in north if x in answer.text() and x not in path]
        assert not leaked, (path, leaked)
    # Forms posted with south's own (valid) token against north's objects change nothing.
    token = page.locator("form[action='/sign-out'] input[name=csrf_token]").input_value()
    jobs_before = len(journey.api.get("/v1/jobs").json()["items"])
    for path, form in ((f"/scenarios/{made['scenario_id']}/plans", {"time_limit_seconds": "5"}),
                       (f"/plans/{done['new_plan_id']}/publish", {}),
                       (f"/scenarios/{made['scenario_id']}/feed-links", {"kind": "clinician", "subject_id": "gp-khan"})):
        answer = page.request.post(path, form={**form, "csrf_token": token})
        assert answer.status == 404, (path, answer.status, answer.text()[:300])
    assert len(journey.api.get("/v1/jobs").json()["items"]) == jobs_before
    assert journey.api.get(f"/v1/plans/{done['new_plan_id']}").json()["status"] == "draft"
    page.context.close()


# --- 11, 12. accessibility and screenshots -------------------------------------------------------


def test_every_page_is_accessible(journey, tmp_path):
    """axe-core (WCAG 2.0, 2.1 and 2.2, A and AA) on every page the tests visit: no serious or
    critical violation. Every violation found is printed; screenshots of the main pages are
    written on the way."""
    made = journey.plan()
    plan, plan_id = made["plan"], made["plan_id"]
    published = journey.published()
    done = journey.replanned()
    study_id = journey.study()["study_id"]
    before, after = book_days(plan)
    log = AxeLog()
    shots = {"sign-in", "scenarios", "plan", "book-day", "book-week-rooms", "day-list", "invites", "replan",
             "diff", "study"}

    def scan(page: Page, name: str) -> None:
        log.scan(page, name)
        if name in shots:
            screenshot(page, name)

    signed_out = journey.new_context().new_page()
    signed_out.goto("/sign-in")
    scan(signed_out, "sign-in")
    signed_out.fill("#api_key", "ov_not_a_key")
    signed_out.locator("#sign-in button[type=submit]").click()
    expect(signed_out.locator("[data-testid=error]")).to_be_visible()
    scan(signed_out, "sign-in-error")
    signed_out.context.close()

    broken = tmp_path / "broken.yaml"
    broken.write_text(TUTORIAL_FILE.read_text().replace("duration_minutes: 25,", 'duration_minutes: "abc",', 1))
    visit = min(plan.visits, key=lambda v: (v.start, v.id))
    clinician = Counter(c for a in plan.appointments if local_date(a.start) == after
                        for c in a.clinician_ids).most_common(1)[0][0]
    with journey.tab() as page:
        for name, path in (("scenarios", "/scenarios"), ("scenario", f"/scenarios/{made['scenario_id']}"),
                           ("plan", f"/plans/{plan_id}"), ("invites", f"/plans/{plan_id}/invites"),
                           ("patient", f"/plans/{plan_id}/patients/{visit.patient_id}"),
                           ("why", f"/plans/{plan_id}/patients/{visit.patient_id}/why"),
                           ("day-list", f"/plans/{plan_id}/day-list?clinician={clinician}&date={after}"),
                           ("reception", f"/reception?reference={published['references'][visit.id]}"),
                           ("reception-not-found", "/reception?reference=OV-ZZZZZZ"),
                           ("diff", done["diff_url"]), ("capacity", "/capacity"), ("not-found", "/plans/no-such-plan")):
            page.goto(path)
            scan(page, name)
        page.goto(f"/jobs/{made['job_id']}")
        expect(page.locator("#job")).to_have_attribute("data-finished", "finished")
        scan(page, "job")
        page.goto(f"/capacity/{study_id}")
        expect(page.locator("#study-status")).to_have_text("finished")
        expect(page.frame_locator("iframe.report").locator("h1")).to_be_visible()
        expect(page.locator("img.plot").first).to_be_visible()
        scan(page, "study")
        page.goto(f"/capacity/{study_id}/report/report.html")  # the report the study page frames
        scan(page, "study-report")
        open_book(page, plan_id, date=before.isoformat())
        scan(page, "book-day")
        open_book(page, plan_id, date=after.isoformat(), view="week", rows="room")
        scan(page, "book-week-rooms")
        page.goto("/scenarios")
        page.set_input_files("#scenario", str(broken))
        page.locator("#upload-form button[type=submit]").click()
        expect(page.locator("table[data-testid=problems]")).to_be_visible()
        scan(page, "upload-problems")
        page.goto(f"/plans/{plan_id}/replan")
        page.select_option("#kind", "clinician_absence")
        page.select_option("#clinician", done["clinician"])
        page.fill("#start", "2027-03-30T00:00")
        page.fill("#end", "2027-04-01T00:00")
        page.locator("#add-disruption").click()
        expect(page.locator("[data-testid=draft] > li")).to_have_count(1)
        scan(page, "replan")
        page.fill("#start", "2027-04-01T12:00")
        page.fill("#end", "2027-03-31T09:00")
        page.locator("#add-disruption").click()
        expect(page.locator("table[data-testid=problems]")).to_be_visible()
        scan(page, "replan-problems")

    # The scan itself works under the pages' CSP: a field without a label is found.
    with journey.tab() as page:
        page.goto("/plans/no-such-plan")
        page.evaluate("() => document.querySelector('main').appendChild(document.createElement('input'))")
        assert "label" in {v["id"] for v in axe_violations(page)}, "axe-core did not run on the page"

    # The appointment book is the page most at risk: EventCalendar's own markup misuses ARIA
    # table roles and its timeline scrolls sideways (book.js tidies both).
    blocking = log.blocking()
    assert not blocking, ("axe-core found serious or critical WCAG 2.2 AA violations on "
                          f"{', '.join(blocking)}:\n" + log.report(blocking))
