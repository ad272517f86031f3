"""test_endpoints.py — GET /api/v1/endpoints and GET /api/v1/compare against the real server on
hand-computed data: counts, nearest-rank percentiles (docs/api.md), rankings, windows, the compare
differences and their order; the meta's route (schema 5) in summaries."""
import urllib.parse

from batches import batch

MS = 1_000_000
ROUTE = "GET /users/{user_id}"


def session(server, sid, name, route, dur_ms, awaits=(), blocks=(), lag=(), tasks=None,
            service="shop", started=None, end=True, fraction=None):
    """Posts one session: awaits (file, line, what, d_ms), blocks (file, line, src, d_ms), lag
    (d_ms, ...), tasks [(id, parent, coro, t_ms, end_ms)]; fraction: meta.fraction."""
    meta = {"name": name, "service": service}
    if fraction is not None:
        meta["fraction"] = fraction
    if route is not None:
        meta["route"] = route
    if started is not None:
        meta["started_unix_ns"] = str(started)
    ev = []
    for i, (tid, parent, coro, t, e) in enumerate(tasks or [(1, 0, "app.view", 0, dur_ms)]):
        ev.append({"k": "task", "id": tid, "parent": parent, "name": f"Task-{tid}", "coro": coro, "t": t * MS})
        if e is not None:
            ev.append({"k": "done", "id": tid, "t": e * MS, "state": "ok"})
    for i, (f, line, what, d) in enumerate(awaits):
        ev.append({"k": "await", "id": 1, "t": i * 1000, "d": d * MS, "what": what, "file": f, "line": line,
                   "func": "view"})
    for i, (f, line, src, d) in enumerate(blocks):
        ev.append({"k": "block", "id": 1, "t": i * 1000, "d": d * MS,
                   "stack": [{"file": "outer.py", "line": 1, "func": "outer", "src": "outer()"},
                             {"file": f, "line": line, "func": "view", "src": src}]})
    for i, d in enumerate(lag):
        ev.append({"k": "lag", "t": i * 1000, "d": d * MS})
    if end:
        ev.append({"k": "end", "t": dur_ms * MS})
    r = server.ingest(batch(sid, f"b-{sid}", ev, meta))
    assert r.status == 202, r.body


def endpoints(server, **q):
    return server.get_json("/api/v1/endpoints?" + urllib.parse.urlencode(q))


def seed(server):
    # GET /users/{user_id}: 5 sessions, durations 10, 20, 30, 40, 50 ms (posted out of order)
    for i, d in enumerate([30, 10, 50, 20, 40]):
        session(server, f"s-u{i}", f"GET /users/{i}", ROUTE, d,
                awaits=[("db.py", 23, "fetch", d // 2), ("cache.py", 7, "get", 1)] + ([("db.py", 23, "fetch", 2)] if i == 0 else []),
                blocks=[("views.py", 45, "time.sleep(0.01)", 10)] if d >= 40 else [],
                lag=[1, d // 10] if i != 2 else [])
    # a session without route: grouped by its name
    session(server, "s-h", "GET /health", None, 3, awaits=[("h.py", 1, "sleep", 2)],
            blocks=[("h.py", 9, "busy()", 4), ("h.py", 9, "busy()", 4), ("h.py", 8, "slow()", 100)])
    # another service with the same route is another endpoint
    session(server, "s-o", "GET /users/1", ROUTE, 7, service="other")
    # a session still running is not counted
    session(server, "s-run", "GET /users/9", ROUTE, 999, end=False)


def test_endpoints_aggregates_exactly(server):
    seed(server)
    body = endpoints(server)
    assert body["window"] == {"sessions": 7, "requests": 7, "limit": 1000, "since_unix_ns": None,
                              "until_unix_ns": None, "service": None, "endpoint": None}
    eps = body["endpoints"]
    # count descending, then service (null first), endpoint
    assert [(e["service"], e["endpoint"], e["count"]) for e in eps] == [
        ("shop", ROUTE, 5), ("other", ROUTE, 1), ("shop", "GET /health", 1)]
    u = eps[0]
    assert u["templated"] is True and eps[2]["templated"] is False
    # no share of requests was sent: each session is one request
    assert [(e["requests"], e["sampled"]) for e in eps] == [(5, 0), (1, 0), (1, 0)]
    # nearest rank over 10, 20, 30, 40, 50: p50 = 3rd, p95 = ceil(4.75) = 5th
    assert u["duration"] == {"p50_ns": 30 * MS, "p95_ns": 50 * MS, "max_ns": 50 * MS}
    # max lag per session with lag: 1 (10 ms: max(1, 1)), 2, 4, 3 (s-u2 with 50 ms has none) ->
    # sorted 1, 2, 3, 4: p95 = 4th
    assert u["lag"] == {"sessions": 4, "p95_ms": 4.0}
    assert u["blocks"] == {"count": 2, "total_ns": 20 * MS}
    # db.py:23: 15+5+25+10+20 + 2 = 77 ms over 6 awaits; cache.py:7: 5 x 1 ms
    assert u["hotspots"] == [
        {"file": "db.py", "line": 23, "func": "view", "what": "fetch", "count": 6, "total_ns": 77 * MS,
         "max_ns": 25 * MS, "sessions": 5},
        {"file": "cache.py", "line": 7, "func": "view", "what": "get", "count": 5, "total_ns": 5 * MS,
         "max_ns": 1 * MS, "sessions": 5}]
    # the innermost frame is the culprit
    assert u["culprits"] == [{"file": "views.py", "line": 45, "func": "view", "src": "time.sleep(0.01)",
                              "count": 2, "total_ns": 20 * MS, "max_ns": 10 * MS, "sessions": 2}]
    assert [s["id"] for s in u["slowest"]] == ["s-u2", "s-u4", "s-u0", "s-u3", "s-u1"]
    assert u["slowest"][0] == {"id": "s-u2", "name": "GET /users/2", "duration_ns": 50 * MS}
    assert u["median"] == {"id": "s-u0", "name": "GET /users/0", "duration_ns": 30 * MS}
    h = eps[2]
    # culprits by count (2 x h.py:9, 8 ms) before total (1 x h.py:8, 100 ms)
    assert [(c["line"], c["count"], c["total_ns"]) for c in h["culprits"]] == [(9, 2, 8 * MS), (8, 1, 100 * MS)]
    assert h["lag"] == {"sessions": 0, "p95_ms": 0}


def test_endpoints_windows_and_filters(server):
    seed(server)
    # the newest 2 by arrival: s-o and s-h (s-run has not ended)
    assert [(e["endpoint"], e["count"]) for e in endpoints(server, limit=2)["endpoints"]] == [
        (ROUTE, 1), ("GET /health", 1)]
    one = endpoints(server, endpoint=ROUTE, service="shop", top=2)["endpoints"]
    assert len(one) == 1 and one[0]["count"] == 5
    assert [s["id"] for s in one[0]["slowest"]] == ["s-u2", "s-u4"]
    assert len(one[0]["hotspots"]) == 2
    # the newest 3 of one endpoint: s-u4, s-u3, s-u2 -> 40, 20, 50
    three = endpoints(server, endpoint=ROUTE, service="shop", limit=3)["endpoints"][0]
    assert three["duration"] == {"p50_ns": 40 * MS, "p95_ns": 50 * MS, "max_ns": 50 * MS}
    assert endpoints(server, endpoint="GET /nothing")["endpoints"] == []


def test_endpoints_time_window(server):
    t0 = 1_764_089_000_000_000_000
    for i in range(4):
        session(server, f"s-t{i}", "GET /t", "GET /t", 10 * (i + 1), started=t0 + i * 1000)
    e = endpoints(server, since_unix_ns=t0 + 1000, until_unix_ns=t0 + 3000)
    assert e["window"]["since_unix_ns"] == str(t0 + 1000)
    (g,) = e["endpoints"]
    assert g["count"] == 2 and g["duration"]["max_ns"] == 30 * MS


def test_endpoints_bad_parameters(server):
    for q in ["limit=0", "limit=100001", "top=0", "top=x", "since_unix_ns=-1", "until_unix_ns=1e9"]:
        r = server.get("/api/v1/endpoints?" + q)
        assert r.status == 400, q
        assert r.json()["error"] == "invalid"
    assert server.request("POST", "/api/v1/endpoints").status == 405


def test_route_in_summary_and_kept_by_later_meta(server):
    session(server, "s-r", "GET /users/3", ROUTE, 5)
    assert server.get_json("/api/v1/sessions/s-r")["route"] == ROUTE
    # a later meta without route keeps it (a meta overwrites the fields it carries)
    assert server.ingest(batch("s-r", "b-2", [], {"name": "GET /users/3?x"})).status == 202
    s = server.get_json("/api/v1/sessions/s-r")
    assert (s["name"], s["route"]) == ("GET /users/3?x", ROUTE)
    session(server, "s-n", "job", None, 5)
    assert server.get_json("/api/v1/sessions/s-n")["route"] is None


def test_deleted_sessions_leave_the_endpoints(server):
    seed(server)
    assert server.request("DELETE", "/api/v1/sessions/s-u2").status == 200
    u = endpoints(server, endpoint=ROUTE, service="shop")["endpoints"][0]
    assert u["count"] == 4 and u["duration"]["max_ns"] == 40 * MS


def test_compare_orders_differences_by_what_explains_the_duration(server):
    fast_tasks = [(1, 0, "app.view", 0, 20), (2, 1, "app.load", 1, 10), (3, 1, "app.log", 1, 2)]
    slow_tasks = [(1, 0, "app.view", 0, 90), (2, 1, "app.load", 1, 60), (3, 1, "app.log", 1, 2),
                  (4, 2, "app.retry", 30, 55), (5, 2, "app.retry", 56, 60)]
    session(server, "s-fast", "GET /users/1", ROUTE, 20, tasks=fast_tasks,
            awaits=[("db.py", 23, "fetch", 5), ("cache.py", 7, "get", 3)], lag=[1, 2])
    session(server, "s-slow", "GET /users/2", ROUTE, 90, tasks=slow_tasks,
            awaits=[("db.py", 23, "fetch", 40), ("cache.py", 7, "get", 3), ("mail.py", 5, "send", 4)],
            blocks=[("views.py", 45, "time.sleep(0.02)", 20)], lag=[1, 21])
    c = server.get_json("/api/v1/compare?a=s-fast&b=s-slow")
    assert c["a"]["id"] == "s-fast" and c["b"]["id"] == "s-slow"
    assert c["a"]["route"] == ROUTE and c["a"]["duration_ns"] == 20 * MS and c["b"]["tasks"] == 5
    assert c["delta_ns"] == 70 * MS
    got = [(d["kind"], d["file"] or d["path"], d["a_ns"], d["b_ns"], d["delta_ns"]) for d in c["differences"]]
    assert got == [
        ("await", "db.py", 5 * MS, 40 * MS, 35 * MS),
        # two app.retry tasks only in b: lifetimes 25 + 4 ms
        ("task", "app.view > app.load > app.retry", 0, 29 * MS, 29 * MS),
        ("block", "views.py", 0, 20 * MS, 20 * MS),
        ("lag", None, 2 * MS, 21 * MS, 19 * MS),
        ("await", "mail.py", 0, 4 * MS, 4 * MS),
    ]
    retry = c["differences"][1]
    assert (retry["what"], retry["a_count"], retry["b_count"]) == ("app.retry", 0, 2)
    assert c["total"] == 5
    # the other way round: the same differences, b's growth is now what explains a's slowness
    r = server.get_json("/api/v1/compare?a=s-slow&b=s-fast&limit=2")
    assert r["delta_ns"] == -70 * MS and r["total"] == 5
    assert [(d["kind"], d["delta_ns"]) for d in r["differences"]] == [("await", -35 * MS), ("task", -29 * MS)]


def test_compare_errors(server):
    session(server, "s-x", "x", None, 1)
    assert server.get("/api/v1/compare?a=s-x").status == 400
    assert server.get("/api/v1/compare?a=s-x&b=bad%20id").status == 400
    assert server.get("/api/v1/compare?a=s-x&b=s-none").status == 404
    assert server.get("/api/v1/compare?a=s-x&b=s-x&limit=0").status == 400
    same = server.get_json("/api/v1/compare?a=s-x&b=s-x")
    assert same["differences"] == [] and same["delta_ns"] == 0


def test_endpoints_count_the_requests_a_share_stands_for(server):
    """Sessions recorded as a share of requests (meta.fraction, schema 14): each stands for
    1 / fraction requests, kept to a millionth, the rest for one; the session's summary says its
    share (null without one)."""
    for i, f in enumerate([0.1, 0.25, None, 1.0, 1 / 3]):
        session(server, f"s-f{i}", f"GET /f/{i}", "GET /f/{i}", 10 + i, fraction=f)
    session(server, "s-g", "GET /g", "GET /g", 5, fraction=0.5)
    body = endpoints(server)
    # 10 + 4 + 1 + 1 + 3.000003 (1/3 is 333333 millionths) = 19.000003 -> 19; GET /g: 2
    assert body["window"]["sessions"] == 6 and body["window"]["requests"] == 21
    got = {e["endpoint"]: (e["count"], e["requests"], e["sampled"]) for e in body["endpoints"]}
    assert got == {"GET /f/{i}": (5, 19, 3), "GET /g": (1, 2, 1)}
    # a window of one endpoint, and one cut by its limit (the newest 2 of GET /f/{i}: 1/3 and 1.0)
    assert endpoints(server, endpoint="GET /g")["window"]["requests"] == 2
    cut = endpoints(server, endpoint="GET /f/{i}", limit=2)
    assert [(e["count"], e["requests"], e["sampled"]) for e in cut["endpoints"]] == [(2, 4, 1)]
    shares = {s["id"]: s["fraction"] for s in server.get_json("/api/v1/sessions")["sessions"]}
    assert shares == {"s-f0": 0.1, "s-f1": 0.25, "s-f2": None, "s-f3": 1, "s-f4": 1 / 3, "s-g": 0.5}
    assert server.get_json("/api/v1/sessions/s-f0")["fraction"] == 0.1


def test_a_bad_fraction_is_refused_and_nothing_is_stored(server):
    for bad in (0, -0.5, 1.5, "0.1", True, [0.1], {"f": 1}):
        b = batch("s-bad", "b-bad", [{"k": "end", "t": 1}], {"name": "GET /bad", "fraction": bad})
        r = server.ingest(b)
        assert r.status == 400, (bad, r.status, r.body)
        assert b"meta.fraction: expected a number above 0 and at most 1" in r.body, (bad, r.body)
    assert server.request("GET", "/api/v1/sessions/s-bad").status == 404
    # null is absent, as for every meta field
    assert server.ingest(batch("s-null", "b-null", [{"k": "end", "t": 1}], {"name": "x", "fraction": None})).status == 202
    assert server.get_json("/api/v1/sessions/s-null")["fraction"] is None
