"""test_ingest_batches.py — multi-batch ingest bodies ({"v": 1, "batches": [...]}, docs/api.md
"Several batches in one body") against the real server: each batch stored as if posted alone, one
answer listing every batch in order, duplicates inside a body, a bad batch refusing the whole body
with its place named and nothing stored, the limits over the whole body (413, events, batches),
gzip, live streams told once per batch, a body with both "batch" and "batches" read as v1, and a
full disk storing a body whole or not at all."""
import gzip
import json
import sqlite3
import threading
import time

from batches import EXAMPLE, EXAMPLE_SUMMARY, batch
from conftest import Server, wait_for
from test_faults import shim_env, stored_sessions
from test_live import Stream


def body(*batches):
    return {"v": 1, "batches": list(batches)}


def end(t):
    return {"k": "end", "t": t}


def task(i, t):
    return {"k": "task", "id": i, "parent": 0, "name": f"Task-{i}", "coro": "app.f", "t": t}


def stored_batches(server):
    db = sqlite3.connect(server.db)
    try:
        return db.execute("select count(*) from batches").fetchone()[0]
    finally:
        db.close()


def session_ids(server):
    return sorted(s["id"] for s in server.get_json("/api/v1/sessions?limit=1000")["sessions"])


def test_mixed_sessions_and_a_duplicate_in_one_body(server):
    # b-1 of s-a is already stored: inside the body it is a duplicate, the rest is new
    assert server.ingest(batch("s-a", "b-1", [task(1, 0)], {"name": "A"})).status == 202
    r = server.ingest(body(
        EXAMPLE,
        batch("s-a", "b-1", [task(1, 0)]),
        batch("s-a", "b-2", [task(2, 5), end(100)]),
        batch("s-b", "b-1", [end(7)], {"name": "B"}),
        batch("s-b", "b-1", [end(7)]),  # the same batch twice in one body: stored once
    ))
    assert r.status == 202
    assert r.json() == {"accepted": 9 + 1 + 2 + 1 + 1, "batches": [
        {"accepted": 9}, {"accepted": 1, "duplicate": True}, {"accepted": 2}, {"accepted": 1},
        {"accepted": 1, "duplicate": True}]}
    # each batch stored as if it had come alone
    assert server.get_json("/api/v1/sessions/s-9f1c2e") == EXAMPLE_SUMMARY
    a = server.get_json("/api/v1/sessions/s-a")
    assert (a["name"], a["tasks"], a["ended"], a["duration_ns"]) == ("A", 2, True, 100)
    b = server.get_json("/api/v1/sessions/s-b")
    assert (b["name"], b["ended"], b["duration_ns"]) == ("B", True, 7)
    assert stored_batches(server) == 4
    m = server.metrics()
    assert m["loopscope_ingest_bodies_total"] == 2  # the single batch's POST and the body's
    assert m["loopscope_batches_total"] == 4
    assert m["loopscope_duplicate_batches_total"] == 2
    assert m["loopscope_events_total"] == 1 + 9 + 2 + 1


def test_a_body_sent_again_is_answered_200_and_stored_once(server):
    b = body(batch("s-1", "x", [task(1, 0)]), batch("s-2", "x", [end(3)]))
    assert server.ingest(b).status == 202
    r = server.ingest(b)
    assert r.status == 200
    assert r.json() == {"accepted": 2, "duplicate": True, "batches": [
        {"accepted": 1, "duplicate": True}, {"accepted": 1, "duplicate": True}]}
    assert stored_batches(server) == 2
    assert server.metrics()["loopscope_duplicate_batches_total"] == 2


def test_a_bad_batch_refuses_the_whole_body_naming_its_place(server):
    good = batch("s-good", "g1", [task(1, 0), end(5)])
    cases = [
        (body(good, batch("s-bad", "b1", [task(1, 0), {"k": "step", "id": 1, "t": -1, "d": 1}])),
         "batches[1].events[1].t: expected an integer in [0, 2^53)"),
        (body(good, batch("s-bad", "b1", [{"k": "block", "t": 1, "d": 1, "stack": [{"line": "x"}]}])),
         "batches[1].events[0].stack[0].line: expected an integer in [0, 2^53)"),
        (body(good, good, {"v": 1, "batch": "b2", "session": "s-bad", "meta": {"pid": "7"}, "events": []}),
         "batches[2].meta.pid: expected an integer in [0, 2^53)"),
        (body(good, {"v": 2, "batch": "b", "session": "s", "events": []}), "batches[1].v: expected 1"),
        (body(good, {"v": 1, "session": "s", "events": []}), "batches[1].batch: missing"),
        (body(good, [good]), "batches[1]: expected an object (a batch)"),
        (body(), "batches: expected at least one batch"),
        ({"v": 1, "batches": good}, "batches: expected an array"),
        ({"batches": [good]}, "v: missing"),
        ({"v": 2, "batches": [good]}, "v: expected 1"),
    ]
    for b, detail in cases:
        r = server.ingest(b)
        assert r.status == 400, (detail, r.body)
        assert r.json() == {"error": "invalid", "detail": detail}
    # nothing of any of those bodies is stored, not even the good batch before the bad one
    assert stored_batches(server) == 0
    assert session_ids(server) == []
    m = server.metrics()
    assert m["loopscope_batches_total"] == 0 and m["loopscope_ingest_bodies_total"] == 0
    assert m['loopscope_rejects_total{reason="invalid"}'] == len(cases)


def test_both_batch_and_batches_is_one_v1_batch(server):
    # version 1 ignores unknown fields: a batch carrying a "batches" member stays a batch
    b = dict(EXAMPLE, batches=[batch("s-other", "o1", [end(1)])])
    r = server.ingest(b)
    assert r.status == 202 and r.json() == {"accepted": 9}
    assert session_ids(server) == ["s-9f1c2e"]


def test_limits_hold_for_the_whole_body(make_server):
    s = make_server("--max-body", "64K")
    # 413: over --max-body, although each batch alone is small
    batches = [batch(f"s-{i}", "b", [task(1, 0), end(5)], {"name": "x" * 400}) for i in range(200)]
    raw = json.dumps(body(*batches)).encode()
    assert len(raw) > 64 << 10 and len(json.dumps(batches[0])) < 1000
    r = s.ingest(None, raw=raw)
    assert r.status == 413
    # also once gunzipped: small on the wire
    r = s.ingest(None, raw=gzip.compress(raw), headers={"Content-Encoding": "gzip"})
    assert r.status == 413
    assert r.json()["detail"] == "body larger than the limit (--max-body) once decompressed"
    assert stored_batches(s) == 0


def test_events_and_batches_are_counted_over_the_body(server):
    # 100000 events at most per body: three batches of 40000 each pass one by one, not together
    lag = [{"k": "lag", "t": 1, "d": 1}] * 40000
    r = server.ingest(body(*[batch(f"s-{i}", "b", lag) for i in range(3)]))
    assert r.status == 400
    assert r.json()["detail"] == "batches[2].events: more than 100000 events in one body (its batches together)"
    # 10000 batches at most
    tiny = batch("s-t", "b", [])
    r = server.ingest(body(*[dict(tiny, batch=f"b{i}") for i in range(10001)]))
    assert r.status == 400 and r.json()["detail"] == "batches: more than 10000 batches in one body"
    assert stored_batches(server) == 0
    r = server.ingest(body(*[batch(f"s-{i}", "b", lag) for i in range(2)]))
    assert r.status == 202 and r.json()["accepted"] == 80000


def test_the_parsed_body_is_capped_as_a_whole(make_server):
    s = make_server("--max-batch-memory", "1M")
    lag = [{"k": "lag", "t": 1, "d": 1}] * 2000  # ~0.4 MB once parsed: one fits, four do not
    assert s.ingest(batch("s-0", "b", lag)).status == 202
    r = s.ingest(body(*[batch(f"s-{i}", "b", lag) for i in range(1, 5)]))
    assert r.status == 413
    assert r.json()["detail"].startswith("body: the parsed batch needs more than 1048576 bytes")
    assert session_ids(s) == ["s-0"]


def test_gzip_multi_batch_body(server):
    raw = json.dumps(body(EXAMPLE, batch("s-z", "z1", [task(1, 0), end(9)]))).encode()
    r = server.ingest(None, raw=gzip.compress(raw), headers={"Content-Encoding": "gzip"})
    assert r.status == 202
    assert r.json() == {"accepted": 11, "batches": [{"accepted": 9}, {"accepted": 2}]}
    assert server.get_json("/api/v1/sessions/s-9f1c2e") == EXAMPLE_SUMMARY
    assert server.get_json("/api/v1/sessions/s-z")["ended"] is True


def test_live_streams_hear_each_batch_of_a_body(server):
    assert server.ingest(batch("s-live", "b1", [task(1, 0)], {"name": "live"})).status == 202
    one = Stream(server.port, "/api/v1/sessions/s-live/events")
    every = Stream(server.port, "/api/v1/events")
    try:
        assert one.next_event()[0] == "state"
        assert every.next_event()[0] == "ready"
        # another session's batch, then this session's end, in one body
        r = server.ingest(body(batch("s-new", "n1", [task(1, 0)], {"name": "new"}),
                               batch("s-live", "b2", [task(2, 10), end(50)])))
        assert r.status == 202
        ev, data, _ = one.next_event()
        assert ev == "update" and data["tasks"] == 2 and data["ended"] is True
        assert one.next_event()[0] == "end"
        # the sessions list hears of both sessions, the new one and the one that ended
        told = {}
        while len(told) < 2:
            ev, data, _ = every.next_event()
            assert ev == "session"
            told[data["id"]] = data["ended"]
        assert told == {"s-new": False, "s-live": True}
    finally:
        one.close()
        every.close()


def test_a_write_fault_stores_a_body_whole_or_not_at_all(tmp_path):
    """Disk full (ENOSPC from the fault shim) under a stream of multi-batch bodies: a body answered
    202 has every batch stored, a body answered 503 none (a part of one never stays behind). The
    fault hits at the commit here (SQLite's 16 MiB page cache holds these bodies until then)."""
    trigger, env = shim_env(tmp_path, "ENOSPC")
    db = str(tmp_path / "loopscope.db")
    s = Server(tmp_path, db=db, env=env).start()
    answers = []  # (session ids of the body, status)
    stop = threading.Event()
    steps = [task(1, 0)] + [{"k": "step", "id": 1, "t": i * 10, "d": 5} for i in range(200)]

    def post():
        i = 0
        while not stop.is_set():
            ids = [f"w{i:05d}-{k}" for k in range(8)]
            r = s.ingest(body(*[batch(sid, "b", steps + [end(5000)]) for sid in ids]), timeout=120)
            answers.append((ids, r.status))
            i += 1
            if r.status != 202:
                time.sleep(0.05)

    t = threading.Thread(target=post, daemon=True)
    t.start()
    try:
        wait_for(lambda: sum(st == 202 for _, st in answers) >= 5, what="bodies stored before the fault")
        trigger.touch()
        wait_for(lambda: any(st == 503 for _, st in answers), what="a 503 once the disk is full")
        time.sleep(1.0)
        trigger.unlink()
        n = len(answers)
        wait_for(lambda: any(st == 202 for _, st in answers[n:]), what="ingest back after the fault")
    finally:
        stop.set()
        t.join(180)
        rc = s.stop()
    assert rc == 0, s.read_log()[-3000:]
    have = stored_sessions(db)
    assert {st for _, st in answers} <= {202, 503}, answers
    for ids, st in answers:
        stored = [sid in have for sid in ids]
        assert all(stored) if st == 202 else not any(stored), (ids, st, stored)
    assert sum(st == 503 for _, st in answers) >= 1
