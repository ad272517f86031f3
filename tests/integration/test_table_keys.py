"""test_table_keys.py — /tasks pages read through the stored sort keys (server/store_keys.c) answer
exactly what the in-memory sort answers: the same session is paged while it is still recording
(no keys: sorted in memory) and again once its end made the figures thread store its keys and
tree, for every column and order, offsets at page borders, past the end, and `at=`, on a
session built to have long runs of equal keys, orphans and a deep tree."""
import random
import sqlite3

import pytest

from batches import batch
from conftest import wait_for

META = {"name": "GET /keys", "service": "shop", "pid": 1, "host": "dev", "python": "3.12",
        "started_unix_ns": "1764089000000000000"}
N = 2345  # tasks; with steps, awaits and dones 10,357 events: over the figures thread's 10,000
COLS = ["created", "id", "busy_ns", "wait_ns", "duration"]


def session_events():
    rnd = random.Random(14)
    ev = []
    for i in range(1, N + 1):
        # created in steps of 1000 ns with runs of equal values; parents earlier tasks, some absent
        created = (i // 7) * 1000
        parent = 0 if i <= 3 else (rnd.randrange(1, i) if i % 50 else 10_000 + i)
        ev.append({"k": "task", "id": i, "parent": parent, "name": f"T{i}", "coro": "m.f", "t": created})
        for s in range(1 + i % 3):  # busy: few distinct sums, long runs of ties
            ev.append({"k": "step", "id": i, "t": created + 10 + s * 100, "d": (i % 3) * 50 + 1})
        if i % 4:
            ev.append({"k": "await", "id": i, "t": created + 300, "d": (i % 5) * 1_000_000,
                       "what": "sleep", "file": "m.py", "line": i % 3 + 1, "func": "f"})
        if i % 3:  # a third never ends: their duration runs to the session's end
            ev.append({"k": "done", "id": i, "t": created + 5_000_000 + (i % 4) * 1000, "state": "ok"})
    return ev


def max_t(events):
    return max(e["t"] + e.get("d", 0) for e in events)


def pages_of(server, sid, total):
    """Every answer the comparison looks at, keyed by its query."""
    out = {}
    for col in COLS:
        for order in ("asc", "desc"):
            for limit, offsets in ((100, (0, 100, 200, 2300, 2345, 5000)), (7, (0, 7, 2338, 2344)),
                                   (1000, (0, 1000, 2000))):
                for off in offsets:
                    q = f"tasks?sort={col}&order={order}&offset={off}&limit={limit}"
                    out[q] = server.get_json(f"/api/v1/sessions/{sid}/{q}")
            for at in (1, 2, 7, 100, 1234, 2345, 99_999):
                q = f"tasks?sort={col}&order={order}&limit=100&at={at}"
                out[q] = server.get_json(f"/api/v1/sessions/{sid}/{q}")
    # a whole table in pages of 50 covers every row once
    rows = []
    for off in range(0, total, 500):
        rows += out.setdefault(f"tasks?sort=busy_ns&order=desc&offset={off}&limit=500", server.get_json(
            f"/api/v1/sessions/{sid}/tasks?sort=busy_ns&order=desc&offset={off}&limit=500"))["tasks"]
    assert sorted(t["id"] for t in rows) == list(range(1, N + 1))
    return out


def keys_stored(db, sid):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM task_keys_done d JOIN sessions s ON s.sid = d.sid"
                           " WHERE s.id = ? AND d.n_events = s.n_events AND s.rows_built = 1"
                           " AND NOT EXISTS (SELECT 1 FROM task_rows_add a WHERE a.sid = s.sid)",
                           (sid,)).fetchone()[0] == 1
    finally:
        con.close()


def test_indexed_pages_equal_the_in_memory_pages(server):
    ev = session_events()
    end = max_t(ev)  # the end at the largest t: a running task's duration is the same before and after
    for k in range(0, len(ev), 3000):
        assert server.ingest(batch("s-keys", f"b{k}", ev[k:k + 3000], META)).status == 202
    full = server.get_json("/api/v1/sessions/s-keys/tasks")["tasks"]
    assert not keys_stored(server.db, "s-keys")
    before = pages_of(server, "s-keys", N)
    assert server.ingest(batch("s-keys", "end", [{"k": "end", "t": end}], META)).status == 202
    wait_for(lambda: keys_stored(server.db, "s-keys"), timeout=60, what="the task keys and tree stored")
    after = pages_of(server, "s-keys", N)
    assert before.keys() == after.keys()
    for q in before:
        assert after[q] == before[q], q
    # the tree's fields of a page row are the whole answer's
    by_id = {t["id"]: t for t in full}
    for q, r in after.items():
        assert r["total"] == N
        assert all(by_id[t["id"]] == t for t in r["tasks"]), q
    # ties really are there (the test would not see a wrong tie order otherwise), and at= moved pages
    busy = [t["busy_ns"] for t in full]
    assert len(set(busy)) < 10 and len({t["created"] for t in full}) < N / 5
    assert after["tasks?sort=busy_ns&order=desc&limit=100&at=1234"]["offset"] > 0
    assert after["tasks?sort=id&order=asc&limit=100&at=99999"]["offset"] == 0  # no such task: offset's


def test_a_batch_after_the_keys_makes_them_stale(server):
    """A batch arriving after the keys were stored (a late step) changes busy_ns: the page sorts
    in memory again and shows it at once."""
    ev = session_events()
    end = max_t(ev)
    for k in range(0, len(ev), 3000):
        assert server.ingest(batch("s-late", f"b{k}", ev[k:k + 3000], META)).status == 202
    assert server.ingest(batch("s-late", "end", [{"k": "end", "t": end}], META)).status == 202
    wait_for(lambda: keys_stored(server.db, "s-late"), timeout=60, what="the task keys stored")
    top = server.get_json("/api/v1/sessions/s-late/tasks?sort=busy_ns&order=desc&limit=1")["tasks"][0]
    late = {"k": "step", "id": 77, "t": end - 10, "d": top["busy_ns"] * 3}
    assert server.ingest(batch("s-late", "late", [late], META)).status == 202
    assert not keys_stored(server.db, "s-late")
    first = server.get_json("/api/v1/sessions/s-late/tasks?sort=busy_ns&order=desc&limit=1")
    assert first["tasks"][0]["id"] == 77 and first["total"] == N
