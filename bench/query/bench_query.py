#!/usr/bin/env python3
"""bench/query/bench_query.py — generates a 100k-task / 500k-await session, posts it to a real
loopscope server (started here, or --url) and times the REST queries over HTTP (median of --runs),
printing a table with targets. Measures, asserts nothing; standard library only."""
import argparse
import http.client
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_SERVER = ROOT / "build" / "server" / "loopscope-server"

SITES = [  # (file, line, func, what): the await points of a typical web app
    ("app/db.py", 23, "fetch_user", "AsyncSession.execute"),
    ("app/db.py", 41, "fetch_orders", "AsyncSession.execute"),
    ("app/db.py", 12, "begin", "AsyncConnection.begin"),
    ("app/cache.py", 18, "get", "Redis.get"),
    ("app/cache.py", 27, "set", "Redis.set"),
    ("app/http.py", 55, "call_service", "AsyncClient.get"),
    ("app/http.py", 61, "call_service", "AsyncClient.post"),
    ("app/views.py", 44, "user_page", "gather"),
    ("app/views.py", 88, "order_page", "TaskGroup.__aexit__"),
    ("app/queue.py", 9, "consume", "Queue.get"),
    ("app/auth.py", 31, "check_token", "sleep"),
    ("app/render.py", 72, "render", "Template.render_async"),
    ("asyncpg/pool.py", 401, "acquire", "Future"),
    ("uvicorn/protocols/http/h11_impl.py", 534, "receive", "Event.wait"),
] + [(f"app/services/svc{i}.py", 10 + i, f"op{i}", "Future") for i in range(26)]
COROS = ["app.views.user_page", "app.views.order_page", "app.db.fetch_user", "app.db.fetch_orders",
         "app.cache.get", "app.http.call_service", "app.render.render", "app.queue.consume"]


class Session:
    """Generates the session's events task by task; `tasks` records (id, parent, created, end)."""

    def __init__(self, n_tasks, n_awaits, n_lag, n_blocks, seed=7):
        self.rng = random.Random(seed)
        self.n_tasks, self.n_awaits, self.n_lag, self.n_blocks = n_tasks, n_awaits, n_lag, n_blocks
        self.tasks = []  # (id, parent, created, end)
        self.duration = 0

    def events(self):
        """Yields event dicts: a tree of root → handlers → calls → sub-calls (depths 0..4)."""
        rng = self.rng
        awaits_per_task = self.n_awaits / max(1, self.n_tasks - 1)
        awaits_left, tasks_left = self.n_awaits, self.n_tasks
        next_id = 1
        # the root lives through the whole session (no done: alive until the end)
        yield {"k": "task", "id": 1, "parent": 0, "name": "Task-1", "coro": "uvicorn.main.serve", "t": 0}
        self.tasks.append((1, 0, 0, None))
        next_id, tasks_left = 2, tasks_left - 1
        clock = 1_000_000
        handler_gap = 60_000_000_000 // max(1, self.n_tasks // 50)  # ~60 s session

        def one_task(parent, t0, depth):
            nonlocal next_id, awaits_left, tasks_left
            tid = next_id
            next_id += 1
            tasks_left -= 1
            evs = [{"k": "task", "id": tid, "parent": parent, "name": f"Task-{tid}",
                    "coro": COROS[rng.randrange(len(COROS))], "t": t0}]
            t = t0 + rng.randrange(1_000, 30_000)
            # spread the awaits evenly: floor or ceil of the average, bounded by what is left
            n_aw = int(awaits_per_task) + (1 if rng.random() < awaits_per_task % 1 else 0)
            n_aw = max(0, min(n_aw, awaits_left - tasks_left))
            if tasks_left == 0:
                n_aw = awaits_left
            awaits_left -= n_aw
            for k in range(n_aw + 1):
                d = rng.randrange(5_000, 300_000)
                evs.append({"k": "step", "id": tid, "t": t, "d": d})
                t += d
                if k == n_aw:
                    break
                f, line, func, what = SITES[rng.randrange(len(SITES))]
                w = rng.randrange(10_000_000, 80_000_000) if rng.random() < 0.08 else rng.randrange(50_000, 5_000_000)
                evs.append({"k": "await", "id": tid, "t": t, "d": w, "what": what, "file": f,
                            "line": line, "func": func})
                t += w
            r = rng.random()
            state = "ok" if r < 0.9 else "cancelled" if r < 0.97 else "error"
            done = {"k": "done", "id": tid, "t": t, "state": state}
            if state == "error":
                done["exc"] = "ValueError: user 42 not found"
            evs.append(done)
            self.tasks.append((tid, parent, t0, t))
            return tid, evs, t

        while tasks_left > 0:
            hid, evs, hend = one_task(1, clock, 1)
            yield from evs
            # each handler fans out to calls, some of which fan out again
            for _ in range(8):
                if tasks_left <= 0:
                    break
                cid, evs, _ = one_task(hid, clock + rng.randrange(50_000, 2_000_000), 2)
                yield from evs
                for _ in range(rng.randrange(3, 8)):
                    if tasks_left <= 0:
                        break
                    gid, evs, _ = one_task(cid, clock + rng.randrange(100_000, 3_000_000), 3)
                    yield from evs
                    if rng.random() < 0.15 and tasks_left > 0:
                        _, evs, _ = one_task(gid, clock + rng.randrange(200_000, 4_000_000), 4)
                        yield from evs
            self.duration = max(self.duration, hend)
            clock += handler_gap
        self.duration = max(self.duration, clock)
        for i in range(self.n_lag):
            t = i * (self.duration // max(1, self.n_lag))
            d = rng.randrange(50_000, 3_000_000) if rng.random() < 0.97 else rng.randrange(10_000_000, 200_000_000)
            yield {"k": "lag", "t": t, "d": d}
        for i in range(self.n_blocks):
            t = rng.randrange(0, self.duration)
            yield {"k": "block", "id": rng.randrange(1, self.n_tasks + 1), "t": t,
                   "d": rng.randrange(100_000_000, 400_000_000),
                   "stack": [{"file": "app/main.py", "line": 12, "func": "handle", "src": "await view(request)"},
                             {"file": "app/report.py", "line": 88, "func": "build_report",
                              "src": "time.sleep(0.15)"}]}
        self.duration += 1_000_000
        yield {"k": "end", "t": self.duration}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(host, port, proc, log, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"query bench: the server exited at start (see {log})")
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"query bench: the server did not answer /healthz in {timeout} s (see {log})")


def post_batches(host, port, session_id, events, batch_size, connections, token):
    """Encodes events into batches and posts them over `connections` keep-alive connections."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    bodies = []
    chunk = []
    seq = 0

    def flush():
        nonlocal chunk, seq
        doc = {"v": 1, "batch": f"q-{seq:06d}", "session": session_id, "events": chunk}
        if seq == 0:
            doc["meta"] = {"name": "GET /bench/query", "service": "bench", "pid": os.getpid(),
                           "host": "bench", "python": sys.version.split()[0],
                           "started_unix_ns": str(time.time_ns())}
        bodies.append(json.dumps(doc, separators=(",", ":")).encode())
        chunk = []
        seq += 1

    t0 = time.monotonic()
    n = 0
    for ev in events:
        chunk.append(ev)
        n += 1
        if len(chunk) == batch_size:
            flush()
    if chunk:
        flush()
    t_gen = time.monotonic() - t0

    t_post = post_bodies(host, port, bodies, connections, headers)
    return n, len(bodies), t_gen, t_post


def post_bodies(host, port, bodies, connections, headers):
    """Posts each ingest body once (a 503 is retried) over `connections` keep-alive connections;
    returns the seconds it took. Exits on any other answer than 200 or 202."""
    errors = []
    lock = threading.Lock()
    it = iter(bodies)

    def worker():
        c = http.client.HTTPConnection(host, port, timeout=120)
        while True:
            with lock:
                body = next(it, None)
            if body is None or errors:
                return
            for _ in range(1000):
                c.request("POST", "/api/v1/ingest", body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                if r.status == 503:
                    time.sleep(0.01)
                    continue
                if r.status not in (200, 202):
                    errors.append(f"{r.status} {data[:300]!r}")
                break

    t1 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        sys.exit(f"bench: ingest failed: {errors[0]}")
    return time.monotonic() - t1


def timed_get(conn, path, headers):
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    dt = time.perf_counter() - t0
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
    return dt, body


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server", default=str(DEFAULT_SERVER), help="loopscope-server binary to start")
    ap.add_argument("--url", help="use a running server instead (e.g. http://127.0.0.1:7878)")
    ap.add_argument("--token")
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--awaits", type=int, default=500_000)
    ap.add_argument("--lag", type=int, default=10_000)
    ap.add_argument("--blocks", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=7, help="timed runs per query (median reported)")
    ap.add_argument("--lanes", type=int, default=60)
    ap.add_argument("--px", type=int, default=1500)
    ap.add_argument("--connections", type=int, default=2, help="connections used to post the session")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (db, server log)")
    ap.add_argument("--session-id", help="session id to use (default: a new one)")
    ap.add_argument("--skip-ingest", action="store_true",
                    help="the session is already stored (with --url and --session-id): only time the queries")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="loopscope-qbench-")
    proc = None
    log = os.path.join(tmp, "server.log")
    try:
        if a.url:
            u = urllib.parse.urlparse(a.url)
            host, port = u.hostname, u.port or 80
        else:
            if not os.access(a.server, os.X_OK):
                sys.exit(f"query bench: no server binary at {a.server} (build first)")
            host, port = "127.0.0.1", free_port()
            cmd = [a.server, "--listen", f"{host}:{port}", "--db", os.path.join(tmp, "q.db")]
            if a.token:
                cmd += ["--token", a.token]
            proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        wait_healthy(host, port, proc, log)

        sid = a.session_id or f"qbench-{os.getpid()}-{int(time.time())}"
        print(f"loopscope query benchmark: session {sid}")
        n, t_post = 0, 0.0
        if not a.skip_ingest:
            sess = Session(a.tasks, a.awaits, a.lag, a.blocks)
            n, nb, t_gen, t_post = post_batches(host, port, sid, sess.events(), 1000, a.connections, a.token)
            print(f"  posted {n} events in {nb} batches: generated+encoded in {t_gen:.1f} s (Python), "
                  f"ingested in {t_post:.1f} s = {n / t_post:,.0f} events/s over {a.connections} connections")

        headers = {"Authorization": f"Bearer {a.token}"} if a.token else {}
        conn = http.client.HTTPConnection(host, port, timeout=300)
        base = f"/api/v1/sessions/{sid}"
        _, body = timed_get(conn, base, headers)
        summary = json.loads(body)
        checks = {"tasks": a.tasks, "awaits": a.awaits, "blocks": a.blocks}
        for k, want in checks.items():
            if summary.get(k) != want:
                print(f"  NOTE: summary {k} = {summary.get(k)}, generated {want}")
        if summary.get("lag", {}).get("samples") != a.lag:
            print(f"  NOTE: summary lag.samples = {summary.get('lag', {}).get('samples')}, generated {a.lag}")

        # ~60 visible lanes: a handler's subtree and its neighbours, consecutive in tree order,
        # over a viewport that spans their lifetimes (what the page asks for when zoomed in)
        _, body = timed_get(conn, base + "/tasks", headers)
        tasks = json.loads(body)["tasks"]
        mid = len(tasks) // 2
        while mid < len(tasks) and tasks[mid]["depth"] != 1:
            mid += 1
        lanes = tasks[mid:mid + a.lanes]
        lane_ids = ",".join(str(t["id"]) for t in lanes)
        v_from = min(t["created"] for t in lanes)
        v_to = max((t["ended"] or summary["duration_ns"]) for t in lanes) + 1
        dur = summary["duration_ns"]

        queries = [
            ("summary", base, 100),
            ("task tree (/tasks)", base + "/tasks", 300),
            ("awaits?min_ms=10", base + "/awaits?min_ms=10", None),
            ("concurrency", base + "/concurrency", None),
            ("lag", base + "/lag", None),
            ("blocks", base + "/blocks", None),
            (f"timeline {a.px}px, {len(lanes)} lanes, {(v_to - v_from) / 1e6:.0f} ms viewport",
             f"{base}/timeline?from={v_from}&to={v_to}&px={a.px}&tasks={lane_ids}", 50),
            (f"timeline {a.px}px, {len(lanes)} lanes, whole session",
             f"{base}/timeline?from=0&to={dur}&px={a.px}&tasks={lane_ids}", 50),
            (f"timeline {a.px}px, every lane, whole session",
             f"{base}/timeline?from=0&to={dur}&px={a.px}", None),
        ]
        rows = []
        for name, path, target in queries:
            timed_get(conn, path, headers)  # warm-up (page cache, prepared statements)
            times, size = [], 0
            for _ in range(a.runs):
                dt, body = timed_get(conn, path, headers)
                times.append(dt * 1e3)
                size = len(body)
            med = statistics.median(times)
            verdict = "" if target is None else ("pass" if med < target else "MISS")
            rows.append({"query": name, "path": path, "median_ms": med, "min_ms": min(times),
                         "max_ms": max(times), "bytes": size, "target_ms": target, "verdict": verdict})

        print(f"\n  {'query':<52} {'median ms':>10} {'min':>8} {'max':>8} {'bytes':>11}  target")
        for r in rows:
            tgt = f"< {r['target_ms']} ms {r['verdict']}" if r["target_ms"] else "-"
            print(f"  {r['query']:<52} {r['median_ms']:>10.1f} {r['min_ms']:>8.1f} {r['max_ms']:>8.1f} "
                  f"{r['bytes']:>11,}  {tgt}")
        print(f"  (median of {a.runs} runs after one warm-up, HTTP end to end with http.client on one "
              f"keep-alive connection)")
        if a.json:
            pathlib.Path(a.json).write_text(json.dumps({"events": n, "ingest_s": t_post, "rows": rows}, indent=1))
        missed = [r for r in rows if r["verdict"] == "MISS"]
        return 3 if missed else 0  # 3: ran fine, a target was missed
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if a.keep:
            print(f"  kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
