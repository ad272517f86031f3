"""bench/table-pages/run.py — what one page of the tasks table costs at 100k and 1M tasks (issue 14):
/tasks?sort=X&order=O&limit=100 at the first page, deep in the table (offset n - 200) and by
`at=`, first while the session is still recording (no stored keys: every task read and sorted in
memory, server/query_page.c — what every session cost before schema 010), then after its end,
once the figures thread stored its sort keys and tree (server/store_keys.c). Same run, same
session, same answers; prints milliseconds (median of --runs) and the ratio memory / indexed, the
keys' build figures from the server's log and the database bytes they added. Figures, not
assertions.

  python3 bench/table-pages/run.py [--server build/server/loopscope-server] [--tasks 100000,1000000]
                                   [--runs 5]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from lsbench import add_server_arg, get_ms, log_lines, post, start, stop  # noqa: E402

SORTS = [("created", "asc"), ("busy_ns", "desc"), ("wait_ns", "desc"), ("duration", "desc"), ("id", "asc"),
         ("busy_ns", "asc")]  # the page's four sorts, then two it does not offer by default


def events(lo, hi):
    """Tasks lo..hi-1 of a wide tree (50 children a root), each with a step, an await and (two in
    three) a done: busy and wait sums with long runs of equal values, as real sessions have."""
    ev = []
    for i in range(lo, hi):
        t = i * 1000
        ev.append({"k": "task", "id": i, "parent": 0 if i % 50 == 1 else i - i % 50 + 1, "t": t,
                   "name": f"Task-{i}", "coro": "app.views.page"})
        ev.append({"k": "step", "id": i, "t": t + 10, "d": (i % 13) * 1000 + 500})
        ev.append({"k": "await", "id": i, "t": t + 20000, "d": (i % 101) * 100_000, "what": "sleep",
                   "file": "app/db.py", "line": 23, "func": "fetch"})
        if i % 3:
            ev.append({"k": "done", "id": i, "t": t + 50_000_000 + (i % 7), "state": "ok"})
    return ev


def queries(n):
    q = []
    for col, order in SORTS:
        base = f"tasks?sort={col}&order={order}&limit=100"
        q += [(f"{col} {order}", base), (f"{col} {order} offset n-200", f"{base}&offset={n - 200}"),
              (f"{col} {order} at=n/2", f"{base}&at={n // 2}")]
    return q


def time_all(url, qs, runs):
    out = {}
    for name, q in qs:
        ms = []
        for _ in range(runs):
            m, body = get_ms(f"{url}/api/v1/sessions/big/{q}")
            ms.append(m)
        out[name] = (statistics.median(ms), body)
    return out


def db_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("b.db"))


def one(server, n, runs):
    proc, log, url, d = start(server, "table-pages-")
    try:
        meta = {"name": "table-pages", "started_unix_ns": "1764089000123456789"}
        t0 = time.monotonic()
        last = 0
        for k in range(1, n + 1, 5000):
            ev = events(k, min(n + 1, k + 5000))
            last = max(last, max(e["t"] + e.get("d", 0) for e in ev))
            b = {"v": 1, "batch": f"b{k}", "session": "big", "events": ev}
            if k == 1:
                b["meta"] = meta
            assert post(url, b) == 202
        print(f"{n} tasks ({n * 11 // 3} events) ingested in {time.monotonic() - t0:.1f} s", flush=True)
        qs = queries(n)
        mem = time_all(url, qs, max(1, runs // 2))  # still recording: sorted in memory
        size0 = db_bytes(d)
        # the end at the largest t: a running task's duration is the same before and after
        assert post(url, {"v": 1, "batch": "end", "session": "big", "events": [{"k": "end", "t": last}]}) == 202
        t1 = time.monotonic()
        while not (log_lines(log, "task keys of session big") and log_lines(log, "task rows of session")):
            if time.monotonic() - t1 > 600:
                raise RuntimeError("the keys were not stored within 600 s")
            time.sleep(0.2)
        time.sleep(0.5)
        idx = time_all(url, qs, runs)
        same = all(mem[k][1] == idx[k][1] for k in mem)
        print(f"  server: {log_lines(log, 'task keys of session big')[0].split('info store: ', 1)[1]}")
        print(f"  server: {log_lines(log, 'task rows of session')[-1].split('info store: ', 1)[1]}")
        print(f"  database {size0 / 1e6:.0f} MB before the keys, {db_bytes(d) / 1e6:.0f} MB after (WAL included)")
        print(f"  answers identical in both paths: {same}")
        print(f"  {'page (limit=100)':34s} {'in memory':>12s} {'indexed':>10s} {'ratio':>8s}")
        for name, _ in qs:
            a, b = mem[name][0], idx[name][0]
            print(f"  {name:34s} {a:9.1f} ms {b:7.1f} ms {a / b:7.1f}x")
        sys.stdout.flush()
    finally:
        stop(proc, log)


def main():
    ap = argparse.ArgumentParser()
    add_server_arg(ap)
    ap.add_argument("--tasks", default="100000,1000000")
    ap.add_argument("--runs", type=int, default=5, help="timed GETs per query on the indexed path (half on the other)")
    a = ap.parse_args()
    for n in (int(x) for x in a.tasks.split(",")):
        for s in a.server.split(","):
            one(s, n, a.runs)


if __name__ == "__main__":
    main()
