"""API load: requests per second and p50/p99 latency for plan reads and calendar reads.

Starts `onevisit serve` on loopback against a throwaway SQLite file (or --database-url, an empty
database: its tables are created there), plans and publishes the practice month through the API,
then sends a bounded number of requests from a few client threads. Loopback only; stops at --requests per kind or --seconds, whichever first.

    .venv/bin/python benchmarks/api_load.py --requests 2000 --clients 8
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.scenario_io import load_scenario


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


def run_kind(base: str, paths: list[str], headers: dict, requests: int, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    counter = iter(range(requests))

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for i in counter:
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                response = client.get(paths[i % len(paths)])
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    errors += response.status_code != 200

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(ordered), "errors": errors, "rps": len(ordered) / wall,
        "p50_ms": 1000 * statistics.median(ordered), "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="per kind of read (at most 20000)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (at most 64)")
    parser.add_argument("--seconds", type=float, default=60, help="time limit per kind of read")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    requests, clients = min(args.requests, 20000), min(args.clients, 64)

    folder = Path(tempfile.mkdtemp(prefix="onevisit-load-"))
    url = args.database_url or f"sqlite:///{folder / 'onevisit.db'}"
    onevisit = [sys.executable, "-m", "api.cli"]
    key = subprocess.run([*onevisit, "keys", "create", "--role", "manager", "--database-url", url],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
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
        invites = [i["invite_url"].removeprefix(base) for i in api.get(f"/v1/plans/{plan_id}/invites").json()["items"]
                   if i["invite_url"]]
        feeds = [api.post(f"/v1/scenarios/{sid}/calendar-tokens", json={"kind": "clinician", "subject_id": c.id})
                 .json()["url"].removeprefix(base) for c in scenario.clinicians]
        if not invites or not feeds:
            raise SystemExit(f"nothing to read: {len(invites)} invites, {len(feeds)} feeds; {api.get(f'/v1/plans/{plan_id}/invites').text[:500]}")
        dates = sorted({s.date for s in scenario.sessions})
        plan_reads = [f"/v1/plans/{plan_id}"] + [
            f"/v1/plans/{plan_id}/appointments?date_from={d}&date_to={d}&limit=200" for d in dates] + [
            f"/v1/plans/{plan_id}/appointments?clinician_id={c.id}&limit=200" for c in scenario.clinicians]
        results = {
            "plan reads (summary, day lists, clinician lists)": run_kind(base, plan_reads, headers, requests, clients, args.seconds),
            "patient invites (.ics)": run_kind(base, invites, {}, requests, clients, args.seconds),
            "clinician feeds (.ics)": run_kind(base, feeds, {}, requests, clients, args.seconds),
        }
        print(f"OneVisit API load: {clients} client threads, loopback, {url.split(':')[0]}, practice month "
              f"({len(invites)} invites, {len(feeds)} clinician feeds)")
        print(f"{'kind':52} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for name, r in results.items():
            print(f"{name:52} {r['requests']:8d} {r['errors']:6d} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
