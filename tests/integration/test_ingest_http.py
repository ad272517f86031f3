"""test_ingest_http.py — POST /api/v1/ingest over real HTTP: 202 after commit, 200 for a
retried batch (stored once), 400 naming the first bad field with nothing stored, 413, 415,
401, 503 with Retry-After, gzip bodies, concurrent posters."""
import gzip
import json
import socket
import sqlite3
import threading
import time

from batches import EXAMPLE, EXAMPLE_SUMMARY, batch, example


def test_accepts_and_answers_after_commit(server):
    r = server.ingest(EXAMPLE)
    assert r.status == 202
    assert r.json() == {"accepted": 9}
    assert r.header("content-type") == "application/json"
    # committed: a separate connection to the same file sees it at once
    db = sqlite3.connect(server.db)
    assert db.execute("select count(*) from batches").fetchone()[0] == 1
    db.close()
    assert server.get_json("/api/v1/sessions/s-9f1c2e") == EXAMPLE_SUMMARY


def test_every_ingest_answer_says_what_it_takes_beyond_v1(server):
    """X-Loopscope-Ingest: strings, records (docs/api.md, "A batch's strings table") on each answer to a
    POST /api/v1/ingest, stored or refused, and a batch in that form stored as its plain twin."""
    plain = batch("s-tab-plain", "b-plain", [{"k": "task", "id": 1, "t": 0, "coro": "app.handler"},
                                  {"k": "await", "id": 1, "t": 5, "d": 20000000, "what": "sleep",
                                   "file": "app/views.py", "line": 7, "func": "app.handler"}])
    table = batch("s-tab", "b-tab", [{"k": "task", "id": 1, "t": 0, "coro": 0},
                            {"k": "await", "id": 1, "t": 5, "d": 20000000, "what": 1, "file": 2, "line": 7,
                             "func": 0}])
    table["strings"] = ["app.handler", "sleep", "app/views.py"]
    for body in (plain, table):
        r = server.ingest(body)
        assert r.status == 202 and r.header("x-loopscope-ingest") == "strings, records", (r.status, r.body)
    bad = dict(table, batch="b-bad", strings=["app.handler"])
    r = server.ingest(bad)
    assert r.status == 400 and r.header("x-loopscope-ingest") == "strings, records"
    assert r.json()["detail"] == "events[1].what: expected a string, or an index into strings (0 to 0)"
    a = server.get_json("/api/v1/sessions/s-tab/awaits?min_ms=0")["awaits"]
    b = server.get_json("/api/v1/sessions/s-tab-plain/awaits?min_ms=0")["awaits"]
    assert a == b and a[0]["file"] == "app/views.py", (a, b)
    assert server.get("/healthz").header("x-loopscope-ingest") is None


def varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def wire_str(s: str) -> bytes:
    b = s.encode()
    return varint(len(b)) + b


def test_binary_record_bodies_store_as_their_json_twin(server):
    """A body in the binary record form (docs/api.md, "Binary record bodies"), written here by hand
    and also gzipped, is stored as the same batch in JSON; a bad one is refused naming its place,
    with nothing stored."""
    twin = batch("s-json-twin", "b-json", [
        {"k": "task", "id": 1, "t": 0, "name": "Task-7", "coro": "app.handler"},
        {"k": "await", "id": 1, "t": 5, "d": 20000000, "what": "sleep", "file": "app/views.py", "line": 7,
         "func": "app.handler"},
        {"k": "done", "id": 1, "t": 20000010, "state": "error", "exc": "ValueError: x", "status": 500},
        {"k": "end", "t": 20000020}])
    twin["meta"] = {"name": "GET /x", "route": "GET /x"}
    assert server.ingest(twin).status == 202
    meta = json.dumps(twin["meta"])
    events = (bytes([0x11]) + varint(1) + varint(0) + varint(0) + varint(7) + varint(1)    # task, name Task-7, coro = strings[0]
              + bytes([3]) + varint(1) + varint(10) + varint(20000000) + varint(7)      # await: dt 5 (zigzag 10), line 7
              + varint(3) + varint(5) + varint(1)                                       # what strings[1], file strings[2], func strings[0]
              + bytes([0xE6]) + varint(1) + varint(2 * 20000005) + varint(500)          # done: error, status, exc
              + varint(len(b"ValueError: x") << 1) + b"ValueError: x"
              + bytes([7]) + varint(20))                                                # end: dt 10
    header = (wire_str("b-wire") + wire_str("s-wire") + wire_str(meta)
              + varint(3) + wire_str("app.handler") + wire_str("sleep") + wire_str("app/views.py")
              + b"".join(varint(n) for n in (1, 0, 1, 0, 0, 1, 1)))
    body = b"LSR1" + header + events
    media = {"Content-Type": "application/vnd.loopscope.records"}
    r = server.request("POST", "/api/v1/ingest", body=body, headers=media)
    assert r.status == 202 and r.header("x-loopscope-ingest") == "strings, records", (r.status, r.body)
    gz_body = body.replace(b"b-wire", b"b-wirz").replace(b"s-wire", b"s-wirz")
    r = server.request("POST", "/api/v1/ingest", body=gzip.compress(gz_body), headers=dict(media, **{"Content-Encoding": "gzip"}))
    assert r.status == 202, (r.status, r.body)
    for sid in ("s-wire", "s-wirz"):
        for part in ("", "/tasks", "/awaits?min_ms=0"):
            got = server.get_json(f"/api/v1/sessions/{sid}{part}")
            want = server.get_json(f"/api/v1/sessions/s-json-twin{part}")
            for d in (got, want):
                d.pop("id", None)
            assert got == want, (sid, part, got, want)
    bad = b"LSR1" + header + events.replace(bytes([3]) + varint(1), bytes([3]) + varint(0), 1)
    r = server.request("POST", "/api/v1/ingest", body=bad.replace(b"s-wire", b"s-bad1"), headers=media)
    assert r.status == 400 and r.json()["detail"] == "batches[0].events[1].id: expected a positive integer below 2^53"
    r = server.request("POST", "/api/v1/ingest", body=json.dumps(twin).encode(), headers=media)
    assert r.status == 400 and r.json()["detail"] == 'body: expected the binary record form, which begins with "LSR1"'
    assert server.request("GET", "/api/v1/sessions/s-bad1").status == 404


def test_retried_batch_is_answered_200_and_stored_once(server):
    assert server.ingest(EXAMPLE).status == 202
    for _ in range(3):
        r = server.ingest(EXAMPLE)
        assert r.status == 200
        assert r.json() == {"accepted": 9, "duplicate": True}
    assert server.get_json("/api/v1/sessions/s-9f1c2e") == EXAMPLE_SUMMARY
    m = server.metrics()
    assert m["loopscope_batches_total"] == 1
    assert m["loopscope_duplicate_batches_total"] == 3
    assert m["loopscope_events_total"] == 9
    # the same batch id in another session is another batch
    assert server.ingest(example(session="s-other")).status == 202


BAD = [
    ({"v": 2}, "v: expected 1"),
    ({"batch": ""}, "batch: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]"),
    ({"session": 5}, "session: expected 1 to 128 characters of [A-Za-z0-9._:@+~=-]"),
    ({"events": "x"}, "events: expected an array"),
    ({"meta": {"pid": "7"}}, "meta.pid: expected an integer in [0, 2^53)"),
]


def test_bad_top_level_fields_are_named(server):
    for change, detail in BAD:
        r = server.ingest(example(**change))
        assert r.status == 400, change
        assert r.json() == {"error": "invalid", "detail": detail}


def test_bad_event_is_named_and_nothing_of_the_batch_is_stored(server):
    cases = [
        ({"k": "step", "id": 2, "t": 1.5, "d": 1}, "events[9].t: expected an integer in [0, 2^53)"),
        ({"k": "step", "id": 2, "t": 2 ** 53, "d": 1}, "events[9].t: expected an integer in [0, 2^53)"),
        ({"k": "step", "id": 2, "t": -1, "d": 1}, "events[9].t: expected an integer in [0, 2^53)"),
        ({"k": "await", "id": 2, "t": 1, "d": -5}, "events[9].d: expected an integer in [0, 2^53)"),
        ({"id": 2, "t": 1}, "events[9].k: missing"),
        ({"k": "task", "id": 0, "t": 1}, "events[9].id: expected a positive integer below 2^53"),
        ({"k": "done", "id": 2, "t": 1, "state": "gone"}, "events[9].state: expected one of ok, cancelled, error"),
        ({"k": "task", "id": 3, "t": 1, "name": "x" * 5000}, "events[9].name: longer than 4096 bytes"),
        ({"k": "done", "id": 2, "t": 1, "state": "ok", "status": 99}, "events[9].status: expected an integer in [100, 599]"),
        ({"k": "done", "id": 2, "t": 1, "state": "ok", "status": 600}, "events[9].status: expected an integer in [100, 599]"),
        ({"k": "done", "id": 2, "t": 1, "state": "ok", "status": 200.5}, "events[9].status: expected an integer in [100, 599]"),
        ({"k": "done", "id": 2, "t": 1, "state": "ok", "status": "200"}, "events[9].status: expected an integer in [100, 599]"),
        ({"k": "done", "id": 2, "t": 1, "state": "ok", "status": True}, "events[9].status: expected an integer in [100, 599]"),
    ]
    for ev, detail in cases:
        b = example(session="s-bad")
        b["events"].append(ev)
        r = server.ingest(b)
        assert r.status == 400, ev
        assert r.json()["detail"] == detail
    assert server.get("/api/v1/sessions/s-bad").status == 404
    assert server.get_json("/api/v1/sessions")["sessions"] == []
    assert server.metrics()['loopscope_rejects_total{reason="invalid"}'] == len(cases)


def test_not_json_and_too_deep(server):
    r = server.ingest(None, raw=b'{"v": 1, "batch": ')
    assert r.status == 400
    assert r.json()["detail"].startswith("body: not valid JSON")
    deep = b'{"v":1,"batch":"b","session":"s","events":[],"x":' + b"[" * 40 + b"]" * 40 + b"}"
    r = server.ingest(None, raw=deep)
    assert r.status == 400
    assert r.json()["detail"] == "body: nested deeper than 16 levels"


def test_unknown_kinds_are_counted_not_fatal(server):
    b = example()
    b["events"] += [{"k": "gc", "t": 5}, {"k": "future", "x": 1}]
    r = server.ingest(b)
    assert r.status == 202
    assert r.json() == {"accepted": 11}
    assert server.get_json("/api/v1/sessions/s-9f1c2e")["unknown_events"] == 2
    assert server.metrics()["loopscope_unknown_events_total"] == 2


def test_unknown_session_without_meta_is_fine(server):
    r = server.ingest(batch("s-late", "b2", [{"k": "step", "id": 1, "t": 5, "d": 10}]))
    assert r.status == 202
    s = server.get_json("/api/v1/sessions/s-late")
    assert s["name"] is None and s["duration_ns"] == 15 and s["tasks"] == 0


def test_content_type_and_encoding_415(server):
    body = json.dumps(EXAMPLE).encode()
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/jsonx"}, {},
                    {"Content-Type": "application/json", "Content-Encoding": "br"}):
        r = server.request("POST", "/api/v1/ingest", body=body, headers=headers)
        assert r.status == 415, headers
        assert r.json()["error"] == "unsupported_media_type"
    ok = server.request("POST", "/api/v1/ingest", body=body,
                        headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert ok.status == 202
    assert server.metrics()['loopscope_rejects_total{reason="unsupported_media_type"}'] == 4


def test_gzip_bodies(server):
    body = gzip.compress(json.dumps(EXAMPLE).encode())
    r = server.ingest(None, raw=body, headers={"Content-Encoding": "gzip"})
    assert r.status == 202
    assert server.get_json("/api/v1/sessions/s-9f1c2e") == EXAMPLE_SUMMARY
    r = server.ingest(None, raw=b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"})
    assert r.status == 400
    assert r.json()["detail"].startswith("body: not valid gzip (a member is corrupt or cut short")
    r = server.ingest(None, raw=body[:-10], headers={"Content-Encoding": "gzip"})
    assert r.status == 400


def test_gzip_bodies_of_several_members(server):
    """RFC 1952: a gzip body may be several members back to back (pigz, streaming compressors);
    all of them are the body. Only the first used to be read: this batch, split after its
    events' opening, was refused as cut-short JSON. Bytes after the last member that are not a
    whole member are refused, not dropped."""
    text = json.dumps(dict(EXAMPLE, batch="b-members", session="s-members")).encode()
    cut = text.index(b'"events"') + 10
    body = gzip.compress(text[:cut]) + gzip.compress(text[cut:]) + gzip.compress(b"")
    r = server.ingest(None, raw=body, headers={"Content-Encoding": "gzip"})
    assert r.status == 202, r.text
    assert r.json() == {"accepted": len(EXAMPLE["events"])}
    assert server.get_json("/api/v1/sessions/s-members")["tasks"] == EXAMPLE_SUMMARY["tasks"]
    for tail in (b"\0" * 8, b"\x1f\x8b\x08\x00junk", gzip.compress(b" ")[:-3]):
        r = server.ingest(None, raw=gzip.compress(text) + tail, headers={"Content-Encoding": "gzip"})
        assert r.status == 400, tail
        assert "what follows the last member is not one" in r.json()["detail"]


def test_413_over_the_body_limit(make_server):
    s = make_server("--max-body", "2K")
    small = batch("s1", "b1", [{"k": "lag", "t": 1, "d": 1}])
    assert s.ingest(small).status == 202
    big = batch("s1", "b2", [{"k": "lag", "t": i, "d": 1} for i in range(200)])
    r = s.ingest(big)
    assert r.status == 413
    assert r.json()["error"] == "too_large"
    # a gzip body that is small on the wire but too large once decompressed
    bomb = gzip.compress(json.dumps(big).encode())
    assert len(bomb) < 2048
    r = s.ingest(None, raw=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status == 413
    # a body announced far past the limit is answered before it is sent
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000000\r\n\r\n")
        head = c.recv(4096)
        assert head.startswith(b"HTTP/1.1 413"), head
    # chunked, with no length announced: refused once past the limit
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
        c.sendall(b"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 1000
        for _ in range(3):
            c.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        c.sendall(b"0\r\n\r\n")
        head = c.recv(4096)
        assert head.startswith(b"HTTP/1.1 413"), head
    assert s.metrics()['loopscope_rejects_total{reason="too_large"}'] == 4
    assert s.get_json("/api/v1/sessions/s1")["lag"]["samples"] == 1


def test_401_with_a_token(make_server):
    s = make_server("--token", "sekrit")
    assert s.ingest(EXAMPLE).status == 401
    r = s.ingest(EXAMPLE, headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    assert r.json()["error"] == "unauthorized"
    assert r.header("www-authenticate").startswith("Bearer")
    assert s.ingest(EXAMPLE, headers={"Authorization": "Bearer sekrit-longer"}).status == 401
    assert s.ingest(EXAMPLE, headers={"Authorization": "Bearer sekrit"}).status == 202
    assert s.get("/api/v1/sessions").status == 401
    assert s.get("/api/v1/sessions/s-9f1c2e/tasks").status == 401
    assert s.get("/metrics").status == 401
    assert s.get("/healthz").status == 200
    auth = {"Authorization": "Bearer sekrit"}
    assert s.get_json("/api/v1/sessions/s-9f1c2e", headers=auth) == EXAMPLE_SUMMARY
    assert s.metrics(headers=auth)['loopscope_rejects_total{reason="unauthorized"}'] == 3


def _post_in_thread(s, b, results, key):
    def run():
        results[key] = s.ingest(b)
    t = threading.Thread(target=run)
    t.start()
    return t


def _wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def _writer_groups(s):
    return s.read_log().count("writer: writing a group of")


def test_503_when_the_queue_is_full(make_server):
    s = make_server("--queue", "1", "--log-level", "debug")
    assert s.ingest(batch("s0", "b0", [])).status == 202  # the schema exists
    # another process holds the write lock: the writer waits on it with batch A
    lock = sqlite3.connect(s.db, timeout=0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    results = {}
    try:
        groups = _writer_groups(s)
        ta = _post_in_thread(s, batch("s1", "A", [{"k": "lag", "t": 1, "d": 1}]), results, "A")
        assert _wait_for(lambda: _writer_groups(s) > groups)  # A is taken: waiting for the lock
        tb = _post_in_thread(s, batch("s1", "B", [{"k": "lag", "t": 2, "d": 1}]), results, "B")
        assert _wait_for(lambda: s.metrics()["loopscope_queue_depth"] == 1)
        r = s.ingest(batch("s1", "C", [{"k": "lag", "t": 3, "d": 1}]))
        assert r.status == 503
        assert r.header("retry-after") == "1"
        assert r.json()["error"] == "unavailable"
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    ta.join(20)
    tb.join(20)
    assert results["A"].status == 202
    assert results["B"].status == 202
    assert s.get_json("/api/v1/sessions/s1/lag")["summary"]["samples"] == 2
    assert s.metrics()['loopscope_rejects_total{reason="unavailable"}'] == 1


def test_503_when_the_database_stays_locked(make_server):
    s = make_server()
    assert s.ingest(batch("s0", "b0", [])).status == 202
    lock = sqlite3.connect(s.db, timeout=0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        t0 = time.monotonic()
        r = s.ingest(batch("s1", "A", []))
        waited = time.monotonic() - t0
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert r.status == 503
    assert r.header("retry-after") == "1"
    assert 4.0 <= waited < 30.0  # the 5 s busy timeout, then an honest 503
    assert s.ingest(batch("s1", "A", [])).status == 202  # the retry succeeds


def test_concurrent_posters(server):
    n_threads, n_batches = 8, 20
    errors = []

    def poster(k):
        try:
            for i in range(n_batches):
                events = [{"k": "task", "id": k * 1000 + i + 1, "t": i, "parent": 0}]
                events += [{"k": "step", "id": k * 1000 + i + 1, "t": i * 10 + j, "d": 1} for j in range(50)]
                b = batch("s-conc", f"b-{k}-{i}", events)
                r = server.ingest(b)
                if r.status != 202:
                    errors.append(r.status)
                if i % 5 == 0:  # a retry of the same batch on another connection
                    r = server.ingest(b)
                    if r.status != 200:
                        errors.append(("retry", r.status))
        except Exception as e:  # noqa: BLE001 - surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=poster, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    tasks = server.get_json("/api/v1/sessions/s-conc/tasks")["tasks"]
    assert len(tasks) == n_threads * n_batches
    assert all(t["busy_ns"] == 50 for t in tasks)
    m = server.metrics()
    assert m["loopscope_batches_total"] == n_threads * n_batches
    assert m["loopscope_duplicate_batches_total"] == n_threads * n_batches // 5
    assert m["loopscope_events_total"] == n_threads * n_batches * 51


def test_drop_counts_saturate_below_2_53(server):
    """Drop counts add up across batches without passing 2^53 - 1 (the largest integer of the
    contract): before, 1,025 drops of 2^53 - 1 overflowed (a UBSan report; 2^63 - 1 stored)."""
    top = 2**53 - 1
    for i in range(3):
        drops = [{"k": "drop", "n": top}] * 1025
        assert server.ingest(batch("s-drops", f"b{i}", drops)).status == 202
    assert server.get_json("/api/v1/sessions/s-drops")["dropped"] == top


def test_nul_in_an_id_is_refused_not_taken_for_another(server):
    """"b\\u0000A" and "b\\u0000B" were the same batch id "b": the second was answered as a
    duplicate and lost. Text holding U+0000 is refused, naming where."""
    for tail in ("A", "B"):
        r = server.ingest(batch("s-nul", "b\u0000" + tail, [{"k": "end", "t": 1}]))
        assert r.status == 400
        assert "\\u0000" in r.json()["detail"] and "U+0000" in r.json()["detail"]
    server.get_json("/api/v1/sessions/s-nul", status=404)  # nothing of it stored
