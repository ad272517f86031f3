#!/usr/bin/env python3
"""bench/endpoints/bench_endpoints.py — stores 100,000 request sessions (60 endpoints: 30 route
templates in 2 services, a few await points each, a block in 1 of 20, lag samples) in a real
loopscope server (started here), then times GET /api/v1/endpoints over windows of 1,000 to
100,000 sessions, a time window over half of them and for one endpoint (the whole store once
right after the posts, then all after --settle seconds of quiet in which the writer rolls the
blocks up), and GET /api/v1/compare of two 10,000-task sessions (median of --runs, over HTTP, on
one keep-alive connection). Measures and prints; asserts
nothing. Standard library only; the server and session generator are bench/query's."""
import argparse
import http.client
import json
import pathlib
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "query"))
from bench_query import (DEFAULT_SERVER, SITES, Session, free_port, post_batches, post_bodies,  # noqa: E402
                         timed_get, wait_healthy)  # noqa: E402

ROUTES = [f"GET /api/r{i}/{{item_id}}" for i in range(30)]
SERVICES = ["shop", "orders"]
TARGET_MS = 200.0
T0 = 1764089000000000000  # session i started at T0 + i ms


def request_batch(i, rng):
    """Session i: one request of a route, its awaits at the route's points, maybe a block."""
    r = rng.randrange(len(ROUTES))
    sites = [SITES[(r * 3 + k) % len(SITES)] for k in range(4)]
    dur = rng.randint(2, 400) * 1_000_000
    ev = [{"k": "task", "id": 1, "parent": 0, "name": "Task-1", "coro": "app.views.handler", "t": 0},
          {"k": "task", "id": 2, "parent": 1, "name": "Task-2", "coro": "app.db.fetch", "t": 1000}]
    t = 2000
    for k, (f, line, func, what) in enumerate(sites):
        d = rng.randint(1, dur // 8)
        ev.append({"k": "await", "id": 1 + k % 2, "t": t, "d": d, "what": what, "file": f, "line": line, "func": func})
        t += d + 1000
    if rng.random() < 0.05:
        ev.append({"k": "block", "id": 1, "t": t, "d": 120_000_000,
                   "stack": [{"file": "app/views.py", "line": 40 + r, "func": "handler", "src": "time.sleep(0.12)"}]})
    for k in range(3):
        ev.append({"k": "lag", "t": k * 1_000_000, "d": rng.randint(0, 5_000_000)})
    ev += [{"k": "done", "id": 2, "t": dur // 2, "state": "ok"}, {"k": "done", "id": 1, "t": dur, "state": "ok"},
           {"k": "end", "t": dur}]
    meta = {"name": f"GET /api/r{r}/{rng.randrange(10**6)}", "route": ROUTES[r],
            "service": SERVICES[i % 2], "started_unix_ns": str(T0 + i * 1_000_000)}
    return json.dumps({"v": 1, "batch": f"b{i}", "session": f"s-{i:06d}", "meta": meta, "events": ev},
                      separators=(",", ":")).encode()


def post_requests(host, port, n, connections):
    rng = random.Random(11)
    bodies = [request_batch(i, rng) for i in range(n)]
    return post_bodies(host, port, bodies, connections, {"Content-Type": "application/json"})


def median_ms(conn, path, runs):
    times, body = [], b""
    for _ in range(runs):
        dt, body = timed_get(conn, path, {})
        times.append(dt * 1000)
    return statistics.median(times), max(times), json.loads(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server", default=str(DEFAULT_SERVER))
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--tasks", type=int, default=10_000, help="tasks of each compared session")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds of quiet before the timed calls, for the writer to roll blocks up")
    ap.add_argument("--keep", action="store_true", help="keep the temporary database directory")
    ap.add_argument("--page", action="store_true",
                    help="also time the /endpoints and /compare pages in headless Chromium (bench/endpoints/page.mjs)")
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ls-bench-endpoints-"))
    port = free_port()
    log = tmp / "server.log"
    proc = subprocess.Popen([a.server, "--listen", f"127.0.0.1:{port}", "--db", str(tmp / "bench.db")],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    missed = 0
    try:
        wait_healthy("127.0.0.1", port, proc, log)
        t = post_requests("127.0.0.1", port, a.sessions, a.connections)
        print(f"stored {a.sessions:,} request sessions in {t:.1f} s ({a.sessions / t:,.0f} sessions/s)")
        for k, seed in (("cmp-fast", 3), ("cmp-slow", 4)):
            s = Session(a.tasks, a.tasks * 5, 500, 20, seed=seed)
            n, nb, _, tp = post_batches("127.0.0.1", port, k, s.events(), 20_000, a.connections, None)
            print(f"stored {k}: {a.tasks:,} tasks, {n:,} events in {nb} batches, {tp:.1f} s")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        # first call: right after the posts, before the writer's housekeeping rolled the blocks up
        med, _, body = median_ms(conn, "/api/v1/endpoints?limit=100000", 1)
        print(f"right after ingest, every session (blocks not rolled up yet, or some): {med:.1f} ms")
        time.sleep(a.settle)
        one = urllib.parse.urlencode({"service": "shop", "endpoint": ROUTES[7]})
        print(f"\n{'query':<58} {'median ms':>10} {'max ms':>8}  rows")
        cases = [("/api/v1/endpoints (newest 1,000)", "/api/v1/endpoints"),
                 ("/api/v1/endpoints?limit=10000", "/api/v1/endpoints?limit=10000"),
                 ("/api/v1/endpoints?limit=100000 (every session)", "/api/v1/endpoints?limit=100000"),
                 ("/api/v1/endpoints, started in the middle half (a time window)",
                  f"/api/v1/endpoints?limit=100000&since_unix_ns={T0 + a.sessions // 4 * 1_000_000}"
                  f"&until_unix_ns={T0 + a.sessions * 3 // 4 * 1_000_000}"),
                 ("/api/v1/endpoints?service=&endpoint= (newest 1,000 of it)", f"/api/v1/endpoints?{one}"),
                 ("/api/v1/endpoints?service=&endpoint=&limit=100000", f"/api/v1/endpoints?{one}&limit=100000")]
        for label, path in cases:
            med, mx, body = median_ms(conn, path, a.runs)
            ok = med < TARGET_MS
            missed += not ok
            print(f"{label:<58} {med:>10.1f} {mx:>8.1f}  {len(body['endpoints'])} endpoints over "
                  f"{body['window']['sessions']:,} sessions  {'ok' if ok else 'MISS'} (< {TARGET_MS:.0f} ms)")
        med, mx, body = median_ms(conn, "/api/v1/compare?a=cmp-fast&b=cmp-slow", a.runs)
        print(f"{'/api/v1/compare of two ' + format(a.tasks, ',') + '-task sessions':<58} {med:>10.1f} {mx:>8.1f}  "
              f"{body['total']:,} differences ({body['a']['tasks']:,} vs {body['b']['tasks']:,} tasks)")
        if a.page:
            page = pathlib.Path(__file__).resolve().parent / "page.mjs"
            subprocess.run(["node", str(page), f"http://127.0.0.1:{port}", "--runs", str(a.runs)], check=False)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 3 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
