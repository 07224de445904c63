"""API load, open loop: latency of the appointment book's reads at a fixed request rate.

Starts `onevisit serve` on loopback against a throwaway SQLite file (or --database-url, an empty
database: its tables are created there), plans and publishes the practice month through the API,
then loads one route at a time at --rate requests per second for --seconds:

- `summary`: the plan summary, GET /v1/plans/{id};
- `day`: a day's appointments, GET /v1/plans/{id}/appointments?date_from=D&date_to=D&limit=1000,
  every day of the month in turn;
- `clinician`: a clinician's week (clinician_id=C, date_from=Monday, date_to=Sunday), every
  clinician and week in turn;
- `room`: a room's week (room_id=R, the same weeks), every room and week in turn;
- `book-day`: the web page's appointment book, a day by clinician, GET /plans/{id}/book.json?date=D
  with the session cookie of a signed-in browser, every day in turn;
- `book-week`: the book's week by room, GET /plans/{id}/book.json?date=Monday&days=7&rows=room;
- `invites`, `feeds` (only when asked for with --routes): patient invites and clinician feeds
  (.ics), by their link tokens, no API key.

Open loop: request i of a route is due at t0 + i / rate and is sent then, whether or not earlier
requests have been answered (each on its own task; the connection pool grows up to
--connections). Latency is measured from the request's *scheduled* time to the end of its
response, so time spent queueing anywhere (client, kernel, server) counts: a stalled server
cannot hide behind a client that waited for it (no coordinated omission). `late p99` reports how
late the client itself sent (it should stay near zero; if it does not, the client was starved).

Per route it prints requests sent, errors (a status other than 200, or no answer within 10 s),
the achieved rate (answers per second over the run), p50, p99 and max latency, and PASS when p99
is under 50 ms with no errors. The official figure needs at least 30 s per route (the default).

    .venv/bin/python benchmarks/api_load.py                      # SQLite, 200 req/s, 30 s a route
    .venv/bin/python benchmarks/api_load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/load

The client shares the 2 cores with the server, so it is kept cheap: one process, uvloop, plain
HTTP/1.1 keep-alive requests written as bytes and answers read with httptools (both come with
uvicorn[standard]), no JSON parsing of answers; about 0.2 ms of client CPU per request, against
1.5-2 ms with httpx.AsyncClient. httpx is used only to set up (plan, publish, list the paths).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httptools
import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.scenario_io import load_scenario

TARGET_P99_MS = 50.0
ANSWER_SECONDS = 10.0  # no answer by then is an error
OFFICIAL_SECONDS = 30.0
ROUTES = ("summary", "day", "clinician", "room", "book-day", "book-week", "invites", "feeds")
DEFAULT_ROUTES = ("summary", "day", "clinician", "room", "book-day", "book-week")
TITLES = {
    "summary": "plan summary", "day": "appointments by day", "clinician": "by clinician (a week)",
    "room": "by room (a week)", "book-day": "web book, a day", "book-week": "web book, a week by room",
    "invites": "patient invites (.ics)", "feeds": "clinician feeds (.ics)",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the service did not start")


def database_kind(url: str) -> str:
    """'SQLite 3.40.1' or 'PostgreSQL 15.4': the server the service talks to."""
    from sqlalchemy import text

    from api.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                return f"SQLite {connection.execute(text('select sqlite_version()')).scalar()}"
            return f"PostgreSQL {connection.execute(text('show server_version')).scalar().split()[0]}"
    finally:
        engine.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return math.nan


@dataclass
class Result:
    sent: int
    errors: int
    rate: float  # answers per second, first scheduled send to last answer
    p50_ms: float
    p99_ms: float
    max_ms: float
    late_p99_ms: float  # how late the client sent, against the schedule
    first_error: str
    server_cpu_ms: float = math.nan  # the server process's CPU per request sent
    client_cpu_ms: float = math.nan  # this process's CPU per request sent


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..1); NaN for an empty list."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time. Responses are parsed by
    httptools (the C parser uvicorn uses) and their bodies counted, not kept, except the start of
    an error's body."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"unreadable response: {exc}"))

    def on_body(self, body: bytes) -> None:
        if len(self.head) < 200:
            self.head += body[:200]

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        status, head, self.head = self.parser.get_status_code(), self.head, b""
        if not self.parser.should_keep_alive():
            self.transport.close()
        if waiter is not None and not waiter.done():
            waiter.set_result((status, head))

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self)
        self._fail(ConnectionError(f"connection closed: {exc}"))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def send(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter


class Pool:
    """Up to `size` connections to host:port; a request finding none idle opens one, or waits
    for one once `size` are open (that wait counts in its latency)."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.idle: list[Connection] = []
        self.open = 0
        self.waiting: collections.deque[asyncio.Future[Connection]] = collections.deque()

    async def acquire(self) -> Connection:
        while self.idle:
            connection = self.idle.pop()
            if connection.transport is not None and not connection.transport.is_closing():
                return connection
        if self.open < self.size:
            self.open += 1
            try:
                _, connection = await asyncio.get_running_loop().create_connection(
                    lambda: Connection(self), self.host, self.port)
            except OSError:
                self.open -= 1
                raise
            return connection
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:  # timed out: a connection handed over meanwhile goes back
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise

    def release(self, connection: Connection) -> None:
        if connection.transport is None or connection.transport.is_closing():
            return
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self.idle.append(connection)

    def lost(self, connection: Connection) -> None:
        self.open -= 1
        if connection in self.idle:
            self.idle.remove(connection)
        if self.waiting:  # a request waiting for a connection gets a new one in its place
            self.open += 1
            asyncio.get_running_loop().create_task(self._replace())

    async def _replace(self) -> None:
        try:
            _, connection = await asyncio.get_running_loop().create_connection(
                lambda: Connection(self), self.host, self.port)
        except OSError:
            self.open -= 1  # the waiting requests time out instead
            return
        self.release(connection)

    def close(self) -> None:
        for connection in self.idle:
            connection.transport.close()


async def open_loop(base: str, paths: list[str], headers: dict[str, str], rate: float, seconds: float,
                    connections: int) -> Result:
    """Send rate x seconds GETs, request i at t0 + i / rate, cycling through `paths`, and measure
    each from its scheduled time to the end of its response."""
    total = max(1, round(rate * seconds))
    url = httpx.URL(base)
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    raws = [f"GET {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n{extra}\r\n".encode() for path in paths]
    pool = Pool(url.host, url.port, connections)
    latencies: list[float] = []
    late: list[float] = []
    errors = 0
    first_error = ""
    last_answer = 0.0

    async def one(i: int, due: float) -> None:
        nonlocal errors, first_error, last_answer
        late.append(time.perf_counter() - due)
        connection = None

        async def exchange() -> tuple[int, bytes]:
            nonlocal connection
            connection = await pool.acquire()
            return await connection.send(raws[i % len(raws)])

        try:  # waiting for a connection counts towards the time limit too
            status, head = await asyncio.wait_for(exchange(), ANSWER_SECONDS)
            ok = status == 200
            if not ok and not first_error:
                first_error = f"{status} {head[:200].decode(errors='replace')}"
            pool.release(connection)
        except (OSError, asyncio.TimeoutError) as exc:
            ok = False
            first_error = first_error or f"{type(exc).__name__}: {str(exc) or f'no answer in {ANSWER_SECONDS:g} s'}"
            if connection is not None and connection.transport is not None:
                connection.transport.close()  # its answer may still come: never reuse it
        done = time.perf_counter()
        last_answer = max(last_answer, done)
        if ok:
            latencies.append(done - due)
        else:
            errors += 1

    # Open some connections before the clock starts, so the first requests do not pay for them.
    warm = [await pool.acquire() for _ in range(min(connections, 16))]
    for connection in warm:
        pool.release(connection)
    t0 = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        due = t0 + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    pool.close()
    ordered = sorted(latencies)
    late.sort()
    return Result(
        sent=total, errors=errors, rate=len(ordered) / max(1e-9, last_answer - t0),
        p50_ms=1000 * percentile(ordered, 0.50), p99_ms=1000 * percentile(ordered, 0.99),
        max_ms=1000 * (ordered[-1] if ordered else math.nan), late_p99_ms=1000 * percentile(late, 0.99),
        first_error=first_error,
    )


def web_session(base: str, key: str) -> dict[str, str]:
    """Sign in to the web page with the key as a browser does (the sign-in form and its CSRF
    cookie); returns the Cookie header of the session."""
    with httpx.Client(base_url=base, timeout=30) as browser:
        form = browser.get("/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        signed = browser.post("/sign-in", data={"api_key": key, "csrf_token": token}, follow_redirects=False)
        if signed.status_code != 303:
            raise SystemExit(f"could not sign in to the web page: {signed.status_code}")
        return {"Cookie": f"onevisit_session={browser.cookies['onevisit_session']}"}


def weeks(dates: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Monday-to-Sunday weeks covering the dates."""
    mondays = sorted({d - dt.timedelta(days=d.weekday()) for d in dates})
    return [(m, m + dt.timedelta(days=6)) for m in mondays]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, per route (default 200)")
    parser.add_argument("--seconds", type=float, default=OFFICIAL_SECONDS,
                        help=f"seconds per route (default {OFFICIAL_SECONDS:g}; the official figure needs at "
                             f"least {OFFICIAL_SECONDS:g})")
    parser.add_argument("--routes", nargs="+", choices=ROUTES, default=list(DEFAULT_ROUTES),
                        help=f"routes to load, one after another (default: {' '.join(DEFAULT_ROUTES)})")
    parser.add_argument("--connections", type=int, default=128,
                        help="most connections open at once (default 128; more requests than that wait for one)")
    parser.add_argument("--database-url", default=None, help="an empty database (default: a throwaway SQLite file)")
    args = parser.parse_args()
    if not 1 <= args.rate <= 5000 or not 1 <= args.seconds <= 3600 or not 1 <= args.connections <= 1000:
        raise SystemExit("--rate 1..5000, --seconds 1..3600, --connections 1..1000")

    folder = Path(tempfile.mkdtemp(prefix="onevisit-load-"))
    url = args.database_url or f"sqlite:///{folder / 'onevisit.db'}"
    onevisit = [sys.executable, "-m", "api.cli"]
    key = subprocess.run([*onevisit, "keys", "create", "--role", "manager", "--database-url", url],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    kind = database_kind(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([*onevisit, "serve", "--host", "127.0.0.1", "--port", str(port), "--database-url", url],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "ONEVISIT_PUBLIC_URL": base})
    try:
        wait_ready(base)
        headers = {"Authorization": f"Bearer {key}"}
        api = httpx.Client(base_url=base, headers=headers, timeout=120)
        scenario = load_scenario(ROOT / "sample_rosters" / "practice-month.yaml")
        created = api.post("/v1/scenarios", json=scenario.model_dump(mode="json"))
        created.raise_for_status()
        sid = created.json()["id"]
        started = api.post(f"/v1/scenarios/{sid}/plans", json={"time_limit_seconds": 10})
        started.raise_for_status()
        job = started.json()
        while (job := api.get(f"/v1/jobs/{job['id']}").json())["status"] not in ("finished", "failed", "cancelled"):
            time.sleep(0.5)
        plan_id = job["plan_id"]
        if job["status"] != "finished":
            raise SystemExit(f"the plan did not finish: {job}")
        api.post(f"/v1/plans/{plan_id}/publish").raise_for_status()

        dates = sorted({s.date for s in scenario.sessions})
        plan = f"/v1/plans/{plan_id}"
        paths: dict[str, list[str]] = {
            "summary": [plan],
            "day": [f"{plan}/appointments?date_from={d}&date_to={d}&limit=1000" for d in dates],
            "clinician": [f"{plan}/appointments?clinician_id={c.id}&date_from={a}&date_to={b}&limit=1000"
                          for c in scenario.clinicians for a, b in weeks(dates)],
            "room": [f"{plan}/appointments?room_id={r.id}&date_from={a}&date_to={b}&limit=1000"
                     for r in scenario.rooms for a, b in weeks(dates)],
        }
        paths["book-day"] = [f"/plans/{plan_id}/book.json?date={d}" for d in dates]
        paths["book-week"] = [f"/plans/{plan_id}/book.json?date={a}&days=7&rows=room" for a, _ in weeks(dates)]
        browser = web_session(base, key)
        if "invites" in args.routes:
            paths["invites"] = [i["invite_url"].removeprefix(base)
                                for i in api.get(f"{plan}/invites").json()["items"] if i["invite_url"]]
        if "feeds" in args.routes:
            paths["feeds"] = [api.post(f"/v1/scenarios/{sid}/calendar-tokens", json={"kind": "clinician",
                                                                                   "subject_id": c.id})
                              .json()["url"].removeprefix(base) for c in scenario.clinicians]
        appointments = api.get(f"{plan}/appointments?limit=1000").json()
        per_day = [api.get(p).json()["total"] for p in paths["day"]]

        print(f"OneVisit API load, open loop: {args.rate:g} req/s per route for {args.seconds:g} s each, "
              f"loopback, {kind} ({url.split(':')[0]})")
        print(f"practice month plan: {appointments['total']} appointments over {len(dates)} days "
              f"({min(per_day)}-{max(per_day)} a day), {len(scenario.clinicians)} clinicians, "
              f"{len(scenario.rooms)} rooms, {len(weeks(dates))} weeks; latency from each request's scheduled "
              f"send time; cpu ms: server/client CPU per request")
        print(f"{'route':24} {'paths':>5} {'sent':>6} {'errors':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'max ms':>7} {'late p99':>8} {'cpu ms':>11}  p99 < {TARGET_P99_MS:g} ms", flush=True)
        failed = False
        for route in args.routes:
            if not paths[route]:
                raise SystemExit(f"nothing to read for {route}")
            route_headers = ({} if route in ("invites", "feeds") else browser if route.startswith("book")
                             else headers)
            # Each path once first, unmeasured: the first read of a plan fills the service's caches.
            for p in paths[route]:
                api.get(p, headers=route_headers).raise_for_status()
            server_before, client_before = cpu_seconds(server.pid), time.process_time()
            r = uvloop.run(open_loop(base, paths[route], route_headers, args.rate, args.seconds, args.connections))
            r.server_cpu_ms = 1000 * (cpu_seconds(server.pid) - server_before) / r.sent
            r.client_cpu_ms = 1000 * (time.process_time() - client_before) / r.sent
            verdict = "PASS" if r.errors == 0 and r.p99_ms < TARGET_P99_MS else "FAIL"
            failed = failed or verdict == "FAIL"
            if args.seconds < OFFICIAL_SECONDS:
                verdict += f" (under {OFFICIAL_SECONDS:g} s: not the official figure)"
            print(f"{TITLES[route]:24} {len(paths[route]):5d} {r.sent:6d} {r.errors:6d} {r.rate:7.1f} "
                  f"{r.p50_ms:7.1f} {r.p99_ms:7.1f} {r.max_ms:7.1f} {r.late_p99_ms:8.1f} "
                  f"{r.server_cpu_ms:5.2f}/{r.client_cpu_ms:4.2f}  {verdict}", flush=True)
            if r.first_error:
                print(f"    first error: {r.first_error}", flush=True)
            # Let the server settle between routes: an overloaded server may still be working
            # through requests whose clients gave up, and the next route must not pay for them.
            time.sleep(1.0)
            try:
                wait_ready(base, timeout=300)
            except SystemExit:
                raise SystemExit("the service stopped answering after this route (for 5 min); the rest were "
                                 "not run") from None
        if failed:
            raise SystemExit(1)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
