"""test_export_round_trip.py — export?format=json of a session of any size posts back: the export
is JSON Lines of ingest-v1 batches of the session, each within ingest's limits, and a 150,000-event
session posted back line by line to another server gives back the same statistics and views."""
import json
import time

from batches import batch, example

EVENTS = 150_000
TASKS, STEPS, AWAITS, LAG = 6000, 12, 9, 10_000
BLOCKS = EVENTS - 2 * TASKS - TASKS * (STEPS + AWAITS) - LAG - 2  # - the drop and the end


def big_session(sid):
    """EVENTS events of one session: a task tree (4 children each), each task's steps with awaits
    between them, blocks on the loop, lag samples, a drop count and the end."""
    ev = []
    end = 0
    for i in range(1, TASKS + 1):
        created = i * 10_000
        ev.append({"k": "task", "id": i, "parent": (i - 1) // 4, "name": f"Task-{i}",
                   "coro": f"app.mod{i % 17}.handler{i % 5}", "t": created})
        t = created + 5_000
        for j in range(STEPS):
            d = 7_000 + (i * j % 13) * 100
            ev.append({"k": "step", "id": i, "t": t, "d": d})
            gap = 33_000 + (i + j) % 7 * 1000
            if j < AWAITS:
                ev.append({"k": "await", "id": i, "t": t + d, "d": gap, "what": f"sleep{j % 5}",
                           "file": f"app/mod{i % 17}.py", "line": 10 + j, "func": f"handler{i % 5}"})
            t += d + gap
        state = ("ok", "ok", "cancelled", "error")[i % 4]
        done = {"k": "done", "id": i, "t": t, "state": state}
        if state == "error":
            done["exc"] = f"ValueError: task {i}"
        if i % 10 == 0:
            done["status"] = 200 + i % 3
        ev.append(done)
        end = max(end, t)
    for k in range(BLOCKS):
        ev.append({"k": "block", "id": k % TASKS + 1, "t": k * 60_000, "d": 20_000 + k % 50 * 1000,
                   "stack": [{"file": "app/views.py", "line": 40 + k % 9, "func": "view", "src": "time.sleep(0.1)"},
                             {"file": f"app/mod{k % 17}.py", "line": k % 300, "func": "work", "src": None}]})
    for k in range(LAG):
        ev.append({"k": "lag", "t": k * 50_000, "d": k * 7919 % 5_000_000})
    ev.append({"k": "drop", "n": 12345})
    ev.append({"k": "end", "t": end + 1000})
    assert len(ev) == EVENTS
    return ev


VIEWS = ["", "/tasks", "/awaits?min_ms=0&limit=100000", "/blocks", "/lag", "/concurrency", "/timeline",
         "/timeline?px=3000", "/awaits?min_ms=0.04"]


def views(server, sid):
    return {v: server.get_json(f"/api/v1/sessions/{sid}{v}") for v in VIEWS}


def post_lines(server, body):
    lines = body.split(b"\n")
    assert lines[-1] == b""  # every batch ends its line
    for line in lines[:-1]:
        r = server.request("POST", "/api/v1/ingest", body=line, headers={"Content-Type": "application/json"})
        assert r.status == 202, r.body[:300]
    return [json.loads(line) for line in lines[:-1]]


def test_150k_event_session_round_trip(make_server, tmp_path):
    a, b = make_server(), make_server(db=str(tmp_path / "copy.db"))
    sid = "s-big"
    ev = big_session(sid)
    # route and fraction too (they were left out of the export before the fraction came)
    meta = dict(example()["meta"], name="GET /big", route="GET /{what}", fraction=0.25)
    t0 = time.monotonic()
    for k in range(0, EVENTS, 25_000):
        r = a.ingest(batch(sid, f"b{k}", ev[k:k + 25_000], meta=meta if k == 0 else None))
        assert r.status == 202, r.body[:300]
    t1 = time.monotonic()
    before = views(a, sid)
    assert before[""]["tasks"] == TASKS and before[""]["blocks"] == BLOCKS and before[""]["dropped"] == 12345
    assert len(before["/awaits?min_ms=0&limit=100000"]["awaits"]) == TASKS * AWAITS

    t2 = time.monotonic()
    r = a.get(f"/api/v1/sessions/{sid}/export?format=json")
    t3 = time.monotonic()
    assert r.status == 200 and r.header("content-type") == "application/x-ndjson"
    batches = post_lines(b, r.body)
    t4 = time.monotonic()
    assert len(batches) >= 3
    assert [x["batch"] for x in batches] == [f"export-{sid}"] + [f"export-{sid}-{k}" for k in range(1, len(batches))]
    assert all(x["session"] == sid and x["meta"] == meta and len(x["events"]) <= 50_000 for x in batches)
    assert sum(len(x["events"]) for x in batches) == EVENTS
    assert max(len(line) for line in r.body.split(b"\n")) <= 9 << 20

    after = views(b, sid)
    for v in VIEWS:
        assert after[v] == before[v], v
    again = b.get(f"/api/v1/sessions/{sid}/export?format=json")
    assert again.body == r.body  # the copy exports byte for byte what the original did
    print(f"\nround trip: {EVENTS} events ({TASKS} tasks, {BLOCKS} blocks, {LAG} lag samples); "
          f"ingest {t1 - t0:.2f} s; export {len(r.body) / 2**20:.1f} MiB in {len(batches)} batches "
          f"{t3 - t2:.2f} s; posted back {t4 - t3:.2f} s; {len(VIEWS)} views identical")


def test_small_session_is_one_batch(server):
    assert server.ingest(example()).status == 202
    r = server.get("/api/v1/sessions/s-9f1c2e/export?format=json")
    assert r.status == 200 and r.header("content-type") == "application/json"
    assert r.body.count(b"\n") == 1 and r.body.endswith(b"\n")
    assert r.json()["batch"] == "export-s-9f1c2e"


def test_longest_session_id_posts_back(make_server, tmp_path):
    """A 128-byte session id leaves no room for "export-" in a batch id (1–128 bytes): the stem
    becomes the id's first 100 bytes and its CRC-32, and still posts back."""
    a, b = make_server(), make_server(db=str(tmp_path / "copy.db"))
    sid = "s" * 100 + "x" * 28
    assert a.ingest(example(session=sid)).status == 202
    r = a.get(f"/api/v1/sessions/{sid}/export")
    (batch_,) = post_lines(b, r.body)
    assert len(batch_["batch"]) <= 128 and batch_["batch"].startswith("export-" + "s" * 100 + "~")
    assert views(b, sid)[""] == views(a, sid)[""]
