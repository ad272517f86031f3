"""test_queries.py — every REST read endpoint over real HTTP with exact answers: sessions and
summary, tasks, awaits and hot spots, blocks, lag, concurrency, timeline (LOD), export round
trip, DELETE, plus their 400/404/405 answers."""
import gzip

from batches import EXAMPLE, EXAMPLE_SUMMARY, batch, example

S = "/api/v1/sessions/s-9f1c2e"


def test_sessions_and_summary(server):
    assert server.get_json("/api/v1/sessions") == {"sessions": []}
    assert server.ingest(EXAMPLE).status == 202
    assert server.get_json("/api/v1/sessions") == {"sessions": [EXAMPLE_SUMMARY]}
    assert server.get_json(S) == EXAMPLE_SUMMARY
    later = example(session="s-later", meta={"name": "POST /x", "started_unix_ns": "1764089000123456790"})
    assert server.ingest(later).status == 202
    ids = [s["id"] for s in server.get_json("/api/v1/sessions")["sessions"]]
    assert ids == ["s-later", "s-9f1c2e"]
    assert [s["id"] for s in server.get_json("/api/v1/sessions?name=POST")["sessions"]] == ["s-later"]
    assert [s["id"] for s in server.get_json("/api/v1/sessions?limit=1")["sessions"]] == ["s-later"]
    r = server.get("/api/v1/sessions?limit=5000")
    assert r.status == 400
    assert r.json() == {"error": "invalid", "detail": "limit: expected an integer in [1, 1000]"}


def test_tasks(server):
    assert server.ingest(EXAMPLE).status == 202
    tasks = server.get_json(S + "/tasks")["tasks"]
    assert tasks == [
        {"id": 1, "name": "Task-1", "coro": "app.views.user_page", "parent": 0, "children": [2],
         "depth": 0, "created": 0, "first_run": None, "ended": None, "state": None, "exc": None,
         "status": None, "busy_ns": 0, "wait_ns": 0},
        {"id": 2, "name": "Task-2", "coro": "app.db.fetch_user", "parent": 1, "children": [],
         "depth": 1, "created": 120000, "first_run": 130000, "ended": 95000000, "state": "ok",
         "exc": None, "status": None, "busy_ns": 52000, "wait_ns": 45000000},
    ]


def test_task_status_in_tasks_and_every_export(server):
    """A request's root task ends with the HTTP status the app responded with (done's optional
    `status`): /tasks returns it, the JSON export carries it so that it re-ingests identically,
    Chrome trace puts it in the done event's args, OTLP as http.response.status_code."""
    b = example()
    b["events"].append({"k": "done", "id": 1, "t": 240000000, "state": "ok", "status": 200})
    assert server.ingest(b).status == 202
    tasks = {t["id"]: t for t in server.get_json(S + "/tasks")["tasks"]}
    assert (tasks[1]["state"], tasks[1]["status"], tasks[1]["ended"]) == ("ok", 200, 240000000)
    assert tasks[2]["status"] is None
    exported = server.get_json(S + "/export?format=json")
    done = [e for e in exported["events"] if e["k"] == "done"]
    assert {"k": "done", "id": 1, "t": 240000000, "state": "ok", "status": 200} in done
    assert all("status" not in e for e in done if e["id"] == 2)
    chrome = server.get_json(S + "/export?format=chrome")["traceEvents"]
    assert {e["tid"]: e["args"] for e in chrome if e["name"] == "done"} == {
        1: {"state": "ok", "exc": None, "status": 200}, 2: {"state": "ok", "exc": None}}
    spans = server.get_json(S + "/export?format=otlp")["resourceSpans"][0]["scopeSpans"][0]["spans"]
    attrs = {a["loopscope.task.id"]["intValue"]: a for a in
             ({a["key"]: a["value"] for a in s["attributes"]} for s in spans) if "loopscope.task.name" in a}
    assert attrs["1"]["http.response.status_code"] == {"intValue": "200"}
    assert "http.response.status_code" not in attrs["2"]
    # re-ingested, the export gives the same answers; an error with a status keeps both
    assert server.request("DELETE", S).status == 200
    assert server.ingest(exported).status == 202
    assert {t["id"]: t for t in server.get_json(S + "/tasks")["tasks"]} == tasks
    e = batch("s-err", "b", [{"k": "task", "id": 1, "t": 0},
                             {"k": "done", "id": 1, "t": 5, "state": "error", "exc": "KeyError: 'x'", "status": 500},
                             {"k": "task", "id": 2, "t": 0},
                             {"k": "done", "id": 2, "t": 5, "state": "ok", "status": None}])
    assert server.ingest(e).status == 202
    t = {x["id"]: x for x in server.get_json("/api/v1/sessions/s-err/tasks")["tasks"]}
    assert (t[1]["state"], t[1]["exc"], t[1]["status"]) == ("error", "KeyError: 'x'", 500)
    assert (t[2]["state"], t[2]["status"]) == ("ok", None)


def test_tasks_split_in_reverse_order_with_missing_parent(server):
    late = batch("s2", "b2", [
        {"k": "step", "id": 5, "t": 40, "d": 7}, {"k": "done", "id": 5, "t": 90, "state": "cancelled"},
        {"k": "task", "id": 6, "parent": 5, "t": 50}, {"k": "end", "t": 100}])
    early = batch("s2", "b1", [
        {"k": "task", "id": 5, "parent": 99, "t": 10, "name": "orphan"},  # parent never arrives
        {"k": "step", "id": 5, "t": 20, "d": 3}], meta={"name": "split"})
    assert server.ingest(late).status == 202
    assert server.ingest(early).status == 202
    tasks = server.get_json("/api/v1/sessions/s2/tasks")["tasks"]
    assert [(t["id"], t["parent"], t["depth"], t["children"]) for t in tasks] == [(5, 0, 0, [6]), (6, 5, 1, [])]
    assert tasks[0]["busy_ns"] == 10 and tasks[0]["first_run"] == 20 and tasks[0]["state"] == "cancelled"
    c = server.get_json("/api/v1/sessions/s2/concurrency")
    # 5 alive [10, 90), 6 alive [50, 100) (no done: until the end)
    assert c == {"max": 2, "series": [{"t": 0, "n": 0}, {"t": 10, "n": 1}, {"t": 50, "n": 2}, {"t": 90, "n": 1}, {"t": 100, "n": 1}]}
    assert server.get_json("/api/v1/sessions/s2")["max_concurrency"] == 2


def test_awaits_and_hotspots(server):
    evs = [
        {"k": "await", "id": 1, "t": 10, "d": 30_000_000, "what": "sleep", "file": "a.py", "line": 3, "func": "f"},
        {"k": "await", "id": 2, "t": 5, "d": 30_000_000, "what": "sleep", "file": "a.py", "line": 3, "func": "f"},
        {"k": "await", "id": 1, "t": 50, "d": 40_000_000, "what": "get", "file": "b.py", "line": 9, "func": "g"},
        {"k": "await", "id": 1, "t": 60, "d": 9_999_999, "what": "get", "file": "b.py", "line": 9, "func": "g"},
    ]
    assert server.ingest(batch("s3", "b", evs)).status == 202
    j = server.get_json("/api/v1/sessions/s3/awaits")
    assert j["min_ms"] == 10 and j["total"] == 3
    assert [(a["t"], a["d"]) for a in j["awaits"]] == [(50, 40_000_000), (5, 30_000_000), (10, 30_000_000)]
    assert j["awaits"][0] == {"task": 1, "t": 50, "d": 40_000_000, "what": "get", "file": "b.py", "line": 9, "func": "g"}
    assert j["hotspots"] == [
        {"file": "a.py", "line": 3, "func": "f", "what": "sleep", "count": 2, "total_ns": 60_000_000, "max_ns": 30_000_000},
        {"file": "b.py", "line": 9, "func": "g", "what": "get", "count": 1, "total_ns": 40_000_000, "max_ns": 40_000_000},
    ]
    j = server.get_json("/api/v1/sessions/s3/awaits?min_ms=0&limit=2")
    assert j["total"] == 4 and len(j["awaits"]) == 2
    assert j["hotspots"][1]["count"] == 2
    assert server.get("/api/v1/sessions/s3/awaits?min_ms=x").status == 400
    # a threshold that underflows a double is a tiny one, not an error (schemathesis found it)
    tiny = server.get_json("/api/v1/sessions/s3/awaits?min_ms=1.1125369292536007e-308&limit=2")
    assert tiny["awaits"] == j["awaits"]
    assert server.get("/api/v1/sessions/s3/awaits?min_ms=1e999").status == 400


# a block of the session's own, whose stack came without when it was taken (stack_t)
OWN = {"elsewhere": False, "from_session": None, "from_task": None, "stack_t": None}


def test_blocks_and_lag(server):
    evs = [
        {"k": "block", "id": 1, "t": 500, "d": 150, "stack": [
            {"file": "app/x.py", "line": 1, "func": "outer"},
            {"file": "app/views.py", "line": 45, "func": "user_page", "src": "time.sleep(0.15)"}]},
        {"k": "block", "t": 100, "d": 10},
        {"k": "lag", "t": 30, "d": 4_000_000}, {"k": "lag", "t": 10, "d": 1_000_000},
        {"k": "lag", "t": 20, "d": 2_000_000}, {"k": "lag", "t": 40, "d": 3_000_000},
    ]
    assert server.ingest(batch("s4", "b", evs)).status == 202
    blocks = server.get_json("/api/v1/sessions/s4/blocks")["blocks"]
    assert blocks == [
        {"task": 0, "t": 100, "d": 10, **OWN, "stack": []},
        {"task": 1, "t": 500, "d": 150, **OWN, "stack": [
            {"file": "app/x.py", "line": 1, "func": "outer", "src": None},
            {"file": "app/views.py", "line": 45, "func": "user_page", "src": "time.sleep(0.15)"}]},
    ]
    lag = server.get_json("/api/v1/sessions/s4/lag")
    # nearest rank of 4 samples: p50 = 2nd, p95 = p99 = 4th
    assert lag["summary"] == {"samples": 4, "avg_ms": 2.5, "p50_ms": 2, "p95_ms": 4, "p99_ms": 4, "max_ms": 4}
    assert [s["t"] for s in lag["samples"]] == [10, 20, 30, 40]


def test_timeline(server):
    assert server.ingest(EXAMPLE).status == 202
    j = server.get_json(S + "/timeline")
    assert j == {
        "from": 0, "to": 250000000, "px": 1000, "ns_per_px": 250000,
        "lanes": [{"task": 2, "items": [
            {"k": "step", "t": 130000, "d": 52000, "n": 1},
            {"k": "await", "t": 182000, "d": 45000000, "what": "AsyncSession.execute",
             "file": "app/db.py", "line": 23, "func": "fetch_user", "n": 1}]}],
        "blocks": [{"task": 1, "t": 50000000, "d": 150000000, "n": 1, "file": "app/views.py", "line": 45,
                    "func": "user_page", "src": "time.sleep(0.15)", "elsewhere": False, "from_session": None,
                    "from_task": None, "stack_t": None}],
        # the lag sample names the block it waited behind (here the session's own)
        "lag": [{"t": 60000000, "d": 2300000, "n": 1,
                 "cause": {"task": 1, "t": 50000000, "d": 150000000, "file": "app/views.py", "line": 45,
                           "func": "user_page", "src": "time.sleep(0.15)", "elsewhere": False,
                           "from_session": None, "from_task": None}}],
    }
    # many narrow steps: at most one per column per kind survives, n counts them all
    steps = [{"k": "step", "id": 7, "t": i * 100, "d": 5 + i % 3} for i in range(5000)]
    assert server.ingest(batch("s5", "b", steps)).status == 202
    j = server.get_json("/api/v1/sessions/s5/timeline?from=0&to=500000&px=50&tasks=7")
    items = j["lanes"][0]["items"]
    assert len(items) == 50 and sum(i["n"] for i in items) == 5000
    assert j["ns_per_px"] == 10000
    j = server.get_json("/api/v1/sessions/s5/timeline?from=0&to=500000&px=50&tasks=8")
    assert j["lanes"] == []
    for q, detail in [("px=0", "px: expected an integer in [1, 10000]"),
                      ("from=5&to=5", "to: must be greater than from"),
                      ("tasks=a", "tasks: expected at most 2000 comma-separated task ids"),
                      ("from=-1", "from: expected an integer in [0, 2^53)")]:
        r = server.get("/api/v1/sessions/s5/timeline?" + q)
        assert r.status == 400 and r.json()["detail"] == detail, q


def test_export_round_trip_and_delete(server):
    b = example()
    b["events"].append({"k": "done", "id": 1, "t": 240000000, "state": "error", "exc": "ValueError: boom"})
    assert server.ingest(b).status == 202
    views = ["", "/tasks", "/awaits?min_ms=0", "/blocks", "/lag", "/concurrency", "/timeline"]
    before = {v: server.get_json(S + v) for v in views}
    exported = server.get_json(S + "/export?format=json")
    assert exported["v"] == 1 and exported["batch"] == "export-s-9f1c2e" and exported["session"] == "s-9f1c2e"
    assert exported["meta"] == EXAMPLE["meta"]
    assert server.get_json(S + "/export") == exported
    r = server.get(S + "/export?format=xml")
    assert r.status == 400 and r.json()["detail"] == "format: expected json, chrome or otlp"

    r = server.request("DELETE", S)
    assert r.status == 200 and r.json() == {"deleted": "s-9f1c2e"}
    assert server.request("DELETE", S).status == 404
    for v in views:
        assert server.get(S + v).status == 404
    assert server.get(S + "/export").status == 404

    assert server.ingest(exported).status == 202
    assert {v: server.get_json(S + v) for v in views} == before


def test_gzip_answers(server):
    evs = [{"k": "task", "id": i, "t": i, "name": f"Task-{i}"} for i in range(1, 300)]
    assert server.ingest(batch("s6", "b", evs)).status == 202
    r = server.get("/api/v1/sessions/s6/tasks", headers={"Accept-Encoding": "gzip"})
    assert r.status == 200 and r.header("content-encoding") == "gzip"
    assert len(r.json()["tasks"]) == 299
    assert len(r.body) < len(gzip.decompress(r.body))
    plain = server.get("/api/v1/sessions/s6/tasks")
    assert plain.header("content-encoding") is None
    assert plain.json() == r.json()


def test_not_found_and_methods(server):
    assert server.ingest(EXAMPLE).status == 202
    cases = [
        ("GET", "/api/v1/nope", 404), ("GET", S + "/nope", 404), ("GET", "/api/v1/sessions/bad%20id", 404),
        ("GET", "/api/v1/sessions/" + "x" * 200, 404), ("GET", "/nope", 404), ("GET", "/static/nope.js", 404),
        ("GET", "/api/v1/ingest", 405), ("PUT", "/api/v1/sessions", 405), ("POST", S, 405),
        ("POST", S + "/tasks", 405), ("DELETE", S + "/export", 405), ("POST", "/healthz", 405),
        ("POST", "/", 405), ("GET", "/api/v1/sessions/", 404), ("GET", "/sessions/bad%20id", 404),
        ("GET", "/sessions/" + "x" * 129, 404),
    ]
    for method, path, status in cases:
        r = server.request(method, path)
        assert r.status == status, (method, path, r.status)
        j = r.json()
        assert set(j) == {"error", "detail"}
        assert j["error"] == {404: "not_found", 405: "method_not_allowed"}[status]
        if status == 405:
            assert r.header("allow")


def test_export_chrome_trace(server):
    assert server.ingest(EXAMPLE).status == 202
    j = server.get_json(S + "/export?format=chrome")
    assert j["displayTimeUnit"] == "ns"
    # Task-2's parent never ran a step that could have made it: no flow arrow, counted
    assert j["otherData"] == {"session": "s-9f1c2e", "started_unix_ns": "1764089000123456789",
                              "unbound_flows": 1}
    assert not [e for e in j["traceEvents"] if e["ph"] in "sf"]
    ev = j["traceEvents"]
    names = {(e["ph"], e["tid"]): e["args"]["name"] for e in ev if e["name"] == "thread_name"}
    assert names == {("M", 0): "event loop", ("M", 1): "Task-1 app.views.user_page",
                     ("M", 2): "Task-2 app.db.fetch_user"}
    assert [e["args"]["name"] for e in ev if e["name"] == "process_name"] == ["GET /users/42"]
    # complete events carry exact microseconds (ns / 1000)
    step = [e for e in ev if e["cat"] == "step"]
    assert step == [{"name": "step", "cat": "step", "ph": "X", "pid": 1, "tid": 2, "ts": 130.0, "dur": 52.0}]
    aw = [e for e in ev if e["cat"] == "await"][0]
    assert (aw["name"], aw["tid"], aw["ts"], aw["dur"]) == ("await AsyncSession.execute", 2, 182.0, 45000.0)
    assert aw["args"] == {"file": "app/db.py", "line": 23, "func": "fetch_user"}
    blk = [e for e in ev if e["cat"] == "block"][0]
    assert (blk["name"], blk["tid"], blk["ts"], blk["dur"]) == ("blocked: time.sleep(0.15)", 0, 50000.0, 150000.0)
    assert blk["args"]["stack"][0]["line"] == 45
    assert [(e["ts"], e["args"]) for e in ev if e["cat"] == "lag"] == [(60000.0, {"lag_ms": 2.3})]
    done = [e for e in ev if e["name"] == "done"]
    assert [(e["tid"], e["ts"], e["args"]["state"]) for e in done] == [(2, 95000.0, "ok")]
    # sub-microsecond times keep their nanoseconds
    assert server.ingest(batch("s-ns", "b", [{"k": "step", "id": 1, "t": 1234567, "d": 5}])).status == 202
    ev = server.get_json("/api/v1/sessions/s-ns/export?format=chrome")["traceEvents"]
    assert [(e["ts"], e["dur"]) for e in ev if e["cat"] == "step"] == [(1234.567, 0.005)]


def test_export_otlp(server):
    """The export is the trace the OTLP push sends (tests/integration/test_otlp_push.py checks it
    in depth): a session span, task spans under it, await and block spans under their tasks."""
    b = example()
    b["events"].append({"k": "done", "id": 1, "t": 240000000, "state": "error", "exc": "ValueError: boom"})
    assert server.ingest(b).status == 202
    j = server.get_json(S + "/export?format=otlp")
    rs = j["resourceSpans"][0]
    attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
    assert attrs["service.name"] == {"stringValue": "shop"}
    assert attrs["process.pid"] == {"intValue": "4711"}
    assert attrs["loopscope.session.id"] == {"stringValue": S.rsplit("/", 1)[1]}
    assert "loopscope.session.url" not in attrs  # listening on port 0: no public URL known
    spans = rs["scopeSpans"][0]["spans"]
    assert rs["scopeSpans"][0]["scope"]["name"] == "loopscope"
    assert [s["name"] for s in spans] == ["GET /users/42", "app.views.user_page", "app.db.fetch_user",
                                          "AsyncSession.execute", "event loop blocked"]
    session, s1, s2, aw, bl = spans
    assert len({s["traceId"] for s in spans}) == 1 and len(s1["traceId"]) == 32
    assert "parentSpanId" not in session and s1["parentSpanId"] == session["spanId"]
    assert s2["parentSpanId"] == s1["spanId"] and len(s1["spanId"]) == 16
    assert aw["parentSpanId"] == s2["spanId"] and bl["parentSpanId"] == s1["spanId"]
    base = 1764089000123456789
    assert s2["startTimeUnixNano"] == str(base + 120000) and s2["endTimeUnixNano"] == str(base + 95000000)
    assert s1["endTimeUnixNano"] == str(base + 240000000)
    assert s1["status"] == {"code": 2, "message": "ValueError: boom"}
    assert aw["startTimeUnixNano"] == str(base + 182000) and aw["endTimeUnixNano"] == str(base + 45182000)
    ea = {a["key"]: a["value"] for a in aw["attributes"]}
    assert ea["code.filepath"] == {"stringValue": "app/db.py"} and ea["code.lineno"] == {"intValue": "23"}
    # the same session exports the same ids
    assert server.get_json(S + "/export?format=otlp") == j
