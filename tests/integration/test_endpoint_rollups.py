"""test_endpoint_rollups.py — GET /api/v1/endpoints over more sessions than one rollup block (1024
sids, schema 7): the answer read through the writer's rollups equals a reference computed here
from the posted sessions (docs/api.md), for whole and partial windows, per service and endpoint,
by start time; and stays equal after deletes, retention and a late batch of an old session
(blocks dirty, then rebuilt)."""
import http.client
import json
import random
import sqlite3
import time
import urllib.parse

from batches import batch
from conftest import Server

MS = 1_000_000
ROUTES = ["GET /a/{id}", "GET /b/{id}", None]  # None: no route, the endpoint is the name
SITES = [("app/db.py", 23, "Db.fetch"), ("app/db.py", 40, "Db.save"), ("app/cache.py", 7, "Cache.get")]
FRACTIONS = [0.1, 0.25, 1 / 3, 0.5, 0.001, 1e-9, 0.9999996, 1.0]


def make_session(i, rng):
    r = rng.randrange(len(ROUTES))
    svc = ["shop", None][rng.randrange(2)]
    dur = rng.randint(1, 60) * MS  # ties on purpose: equal durations order by arrival
    awaits = [(SITES[(r + k) % 3], rng.randint(1, 9) * 1000) for k in range(rng.randint(0, 3))]
    own = rng.random() < 0.2
    other = rng.random() < 0.2
    lag = [rng.randint(0, 9) * 100_000 for _ in range(rng.randint(0, 2))]
    ev = [{"k": "task", "id": 1, "parent": 0, "name": "Task-1", "coro": "app.view", "t": 0}]
    for k, ((f, line, what), d) in enumerate(awaits):
        ev.append({"k": "await", "id": 1, "t": 1000 + k * 20000, "d": d, "what": what, "file": f,
                   "line": line, "func": "view"})
    if own:
        ev.append({"k": "block", "id": 1, "t": 500, "d": 100 * MS,
                   "stack": [{"file": "app/views.py", "line": 10 + r, "func": "view", "src": f"sleep({r})"}]})
    if other:  # a stall from elsewhere: not the endpoint's culprit
        ev.append({"k": "block", "t": 900, "d": 120 * MS, "from_session": "s-x",
                   "stack": [{"file": "other.py", "line": 1, "func": "x", "src": "x()"}]})
    for k, d in enumerate(lag):
        ev.append({"k": "lag", "t": k * 1000, "d": d})
    ended = rng.random() < 0.95
    if ended:
        ev.append({"k": "end", "t": dur})
    name = f"job {r}" if ROUTES[r] is None else f"GET /x/{i}"
    meta = {"name": name, "started_unix_ns": str(1_000_000_000 + i * 1000)}
    if svc is not None:
        meta["service"] = svc
    if ROUTES[r] is not None:
        meta["route"] = ROUTES[r]
    # a third recorded as a share of requests (meta.fraction, schema 14), 1.0 as if every one
    fraction = rng.choice(FRACTIONS) if rng.random() < 0.3 else None
    if fraction is not None:
        meta["fraction"] = fraction
    return {"id": f"s-{i:05d}", "i": i, "service": svc, "route": ROUTES[r], "name": name, "dur": dur,
            "awaits": awaits, "own": (f"app/views.py", 10 + r, f"sleep({r})") if own else None,
            "lag": lag, "ended": ended, "started": 1_000_000_000 + i * 1000, "fraction": fraction,
            "batch": batch(f"s-{i:05d}", f"b-{i}", ev, meta)}


def rank(p, n):
    return max((p * n + 99) // 100 - 1, 0)


def ppm(fraction):
    """docs/api.md: a session's share in millionths, the nearest, at least 1; 0 for every request."""
    if fraction is None or not 0 < fraction < 1:
        return 0
    v = max(int(fraction * 1_000_000 + 0.5), 1)
    return 0 if v >= 1_000_000 else v


def requests_u(ss):
    """The requests sessions stand for, in millionths: 1e12 // ppm each, 1e6 for every request."""
    return sum(10**12 // ppm(s["fraction"]) if ppm(s["fraction"]) else 10**6 for s in ss)


def reference(sessions, limit=1000, top=5, service=None, endpoint=None, since=None, until=None):
    """The answer docs/api.md describes, computed from what was posted."""
    win = [s for s in sessions if s["ended"]]
    if since is not None:
        win = [s for s in win if s["started"] >= since]
    if until is not None:
        win = [s for s in win if s["started"] < until]
    if service is not None:
        win = [s for s in win if s["service"] == service]
    if endpoint is not None:
        win = [s for s in win if (s["route"] or s["name"]) == endpoint]
    win = sorted(win, key=lambda s: -s["i"])[:limit]
    groups = {}
    for s in win:
        groups.setdefault((s["service"], s["route"] or s["name"]), []).append(s)
    out = []
    for (svc, ep), ss in groups.items():
        ss.sort(key=lambda s: (s["dur"], s["i"]))
        n = len(ss)
        lags = sorted(max(s["lag"]) for s in ss if s["lag"])
        hot, cul = {}, {}
        for s in sorted(ss, key=lambda s: s["i"]):
            seen = set()
            for (f, line, what), d in s["awaits"]:
                h = hot.setdefault((f, line), {"file": f, "line": line, "func": "view", "what": what, "count": 0,
                                               "total_ns": 0, "max_ns": 0, "sessions": 0})
                h["count"] += 1
                h["total_ns"] += d
                h["max_ns"] = max(h["max_ns"], d)
                if (f, line) not in seen:
                    h["sessions"] += 1
                    seen.add((f, line))
            if s["own"]:
                f, line, src = s["own"]
                c = cul.setdefault((f, line), {"file": f, "line": line, "func": "view", "src": src, "count": 0,
                                               "total_ns": 0, "max_ns": 0, "sessions": 0})
                c["count"] += 1
                c["total_ns"] += 100 * MS
                c["max_ns"] = 100 * MS
                c["sessions"] += 1
        hots = sorted(hot.values(), key=lambda h: (-h["total_ns"], -h["count"], h["file"], h["line"]))[:top]
        culs = sorted(cul.values(), key=lambda c: (-c["count"], -c["total_ns"], c["file"], c["line"]))[:top]
        ref = lambda s: {"id": s["id"], "name": s["name"], "duration_ns": s["dur"]}  # noqa: E731
        out.append({
            "service": svc, "endpoint": ep, "templated": ss[0]["route"] is not None, "count": n,
            "requests": (requests_u(ss) + 500_000) // 1_000_000, "sampled": sum(ppm(s["fraction"]) != 0 for s in ss),
            "duration": {"p50_ns": ss[rank(50, n)]["dur"], "p95_ns": ss[rank(95, n)]["dur"], "max_ns": ss[-1]["dur"]},
            "lag": {"sessions": len(lags), "p95_ms": lags[rank(95, len(lags))] / 1e6 if lags else 0},
            "blocks": {"count": sum(c["count"] for c in cul.values()),
                       "total_ns": sum(c["total_ns"] for c in cul.values())},
            "hotspots": hots, "culprits": culs,
            "slowest": [ref(s) for s in reversed(ss[-top:])], "median": ref(ss[rank(50, n)]),
        })
    out.sort(key=lambda g: (-g["count"], g["service"] is not None, g["service"] or "", g["endpoint"]))
    return out, (requests_u([s for g in groups.values() for s in g]) + 500_000) // 1_000_000


def post_all(server, sessions):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        for s in sessions:
            conn.request("POST", "/api/v1/ingest", body=json.dumps(s["batch"]),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 202
    finally:
        conn.close()


def rolled_up(db, timeout=60.0):
    """Waits until the writer rebuilt every dirty block (it does when idle)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            dirty = con.execute("SELECT count(*) FROM ep_dirty").fetchone()[0]
            blocks = con.execute("SELECT count(DISTINCT blk) FROM ep_groups").fetchone()[0]
        finally:
            con.close()
        if dirty == 0:
            return blocks
        time.sleep(0.2)
    raise AssertionError("the rollups were not rebuilt")


def stored(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    finally:
        con.close()


def check(server, sessions, **window):
    q = {"limit": window.get("limit", 1000), "top": window.get("top", 5)}
    for k, p in (("service", "service"), ("endpoint", "endpoint"), ("since", "since_unix_ns"),
                 ("until", "until_unix_ns")):
        if window.get(k) is not None:
            q[p] = window[k]
    doc = server.get_json("/api/v1/endpoints?" + urllib.parse.urlencode(q))
    got = doc["endpoints"]
    want, requests = reference(sessions, **window)
    assert got == want, (window, [g["endpoint"] for g in got])
    assert doc["window"]["requests"] == requests, (window, doc["window"])
    # the generated shares do show: some endpoint stands for more requests than it has sessions
    assert any(g["requests"] > g["count"] for g in got), window


def check_dirty_then_rolled(server, sessions, **window):
    """Right after a change (its block dirty, read session by session) and once rebuilt."""
    check(server, sessions, **window)
    rolled_up(server.db)
    check(server, sessions, **window)


WINDOWS = [dict(limit=100000), dict(limit=100000, top=100), dict(limit=1500), dict(limit=1024),
           dict(limit=100000, service="shop"), dict(limit=100000, endpoint="GET /a/{id}"),
           dict(limit=100000, since=1_000_000_000 + 300 * 1000, until=1_000_000_000 + 2200 * 1000)]


def started(tmp_path, seed, n):
    """A server holding n generated sessions (posted in order: session i has sid i + 1)."""
    rng = random.Random(seed)
    sessions = [make_session(i, rng) for i in range(n)]
    s = Server(tmp_path).start()
    post_all(s, sessions)
    return s, sessions


def test_rollups_answer_as_the_sessions_do(tmp_path):
    s, sessions = started(tmp_path, 7, 2600)
    try:
        # right away (blocks dirty or being rolled up) and once every block is rolled up
        check(s, sessions, limit=100000)
        assert rolled_up(s.db) == 3  # sids 1..2600: blocks 0, 1 and 2
        for w in WINDOWS:
            check(s, sessions, **w)
        # deletes: the block is dirty (read session by session), then rebuilt without them
        gone = {"s-00010", "s-00500", "s-01500"}
        for sid in gone:
            assert s.request("DELETE", f"/api/v1/sessions/{sid}").status == 200
        sessions = [x for x in sessions if x["id"] not in gone]
        check_dirty_then_rolled(s, sessions, limit=100000)
        # a late batch of an old ended session: one more await, in its block's rollup once rebuilt
        old = sessions[20]
        late = {"k": "await", "id": 1, "t": 900_000, "d": 5 * MS, "what": "Late.one", "file": "app/late.py",
                "line": 1, "func": "view"}
        assert s.ingest(batch(old["id"], "b-late", [late])).status == 202
        old["awaits"] = old["awaits"] + [(("app/late.py", 1, "Late.one"), 5 * MS)]
        check_dirty_then_rolled(s, sessions, limit=100000, top=100)
    finally:
        assert s.stop() == 0


def test_retention_leaves_the_rollups_right(tmp_path):
    s, sessions = started(tmp_path, 8, 2100)
    try:
        rolled_up(s.db)
        check(s, sessions, limit=100000)
    finally:
        assert s.stop() == 0
    # restarted with a limit: the oldest sessions go, their blocks are rebuilt without them
    s = Server(tmp_path, "--max-sessions", "1700").start()
    try:
        deadline = time.monotonic() + 30
        while stored(s.db) > 1700 and time.monotonic() < deadline:
            time.sleep(0.1)
        check_dirty_then_rolled(s, sessions[-1700:], limit=100000)
    finally:
        assert s.stop() == 0


def test_a_window_that_cuts_a_block_counts_each_point_once(tmp_path):
    """Two endpoints whose sessions alternate, each session one await and one block of its own.
    The newest 1024 of 2048 sessions hold block 2 (sid 2048) and block 1 but its oldest session
    (sid 1024, endpoint B): A is whole in block 1 (its points from the rollup), B is not (its
    sessions' rows read one by one). B's sids are 2 apart, so they are read as ranges that also
    hold A's sessions: those rows must be skipped, not added to A a second time (before, A showed
    1.5 times its blocks and awaits)."""
    s = Server(tmp_path).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        for i in range(2048):
            ep = "GET /A" if i % 2 == 0 else "GET /B"
            ev = [{"k": "task", "id": 1, "parent": 0, "name": "Task-1", "coro": "app.view", "t": 0},
                  {"k": "await", "id": 1, "t": 100, "d": 1000, "what": "Db.fetch", "file": "app/db.py",
                   "line": 1 + i % 2, "func": "view"},
                  {"k": "block", "id": 1, "t": 2000, "d": MS,
                   "stack": [{"file": "app/views.py", "line": 10 + i % 2, "func": "view", "src": "sleep()"}]},
                  {"k": "end", "t": 5 * MS}]
            body = batch(f"s-{i:05d}", f"b-{i}", ev, {"name": ep, "started_unix_ns": str(10**9 + i)})
            conn.request("POST", "/api/v1/ingest", body=json.dumps(body), headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 202
        conn.close()
        assert rolled_up(s.db) == 3  # sids 1..1023, 1024..2047, 2048
        for limit in (1024, 1023, 2047, 2048):
            got = s.get_json(f"/api/v1/endpoints?limit={limit}")["endpoints"]
            assert sum(g["count"] for g in got) == limit
            for g in got:
                assert g["blocks"]["count"] == g["count"], (limit, g["endpoint"], g["blocks"], g["count"])
                assert [h["count"] for h in g["hotspots"]] == [g["count"]], (limit, g["endpoint"], g["hotspots"])
                assert [c["sessions"] for c in g["culprits"]] == [g["count"]], (limit, g["endpoint"])
    finally:
        assert s.stop() == 0
