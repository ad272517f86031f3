"""test_elsewhere.py — blocks from elsewhere (issue 12, part 1) over real HTTP: a block event with
from_session/from_task is stored and served beside the session's own in /blocks and /timeline,
the summary splits lost time into own and elsewhere, meta.loop is kept, and bad causes are refused."""
import json

from batches import batch

STACK = [{"file": "demo_app.py", "line": 56, "func": "user", "src": "time.sleep(0.15)"}]


def test_blocks_from_elsewhere_are_stored_served_and_split(server):
    meta = {"name": "GET /users/7", "pid": 4711, "loop": 1, "started_unix_ns": "1764089000123456789"}
    evs = [
        {"k": "task", "id": 1, "parent": 0, "name": "Task-1", "coro": "app.user", "t": 0},
        {"k": "block", "id": 1, "t": 1_000_000, "d": 120_000_000, "stack": STACK},
        {"k": "block", "t": 200_000_000, "d": 150_000_000, "from_session": "s-other", "from_task": 3,
         "stack": STACK},
        {"k": "block", "t": 400_000_000, "d": 110_000_000, "from_session": None, "stack": []},
        {"k": "end", "t": 600_000_000},
    ]
    assert server.ingest(batch("s-seven", "b1", evs, meta)).status == 202
    s = server.get_json("/api/v1/sessions/s-seven")
    assert s["loop"] == 1 and s["pid"] == 4711
    assert (s["blocks"], s["blocks_own"], s["blocks_elsewhere"]) == (3, 1, 2)
    assert (s["blocked_ms_own"], s["blocked_ms_elsewhere"]) == (120, 260)
    blocks = server.get_json("/api/v1/sessions/s-seven/blocks")["blocks"]
    assert [(b["task"], b["elsewhere"], b["from_session"], b["from_task"]) for b in blocks] == [
        (1, False, None, None), (0, True, "s-other", 3), (0, True, None, None)]
    assert blocks[1]["stack"] == STACK
    tl = server.get_json("/api/v1/sessions/s-seven/timeline")["blocks"]
    assert [(b["elsewhere"], b["from_session"], b["from_task"], b["line"]) for b in tl] == [
        (False, None, None, 56), (True, "s-other", 3, 56), (True, None, None, None)]
    # the list carries the split too
    (row,) = [x for x in server.get_json("/api/v1/sessions")["sessions"] if x["id"] == "s-seven"]
    assert row["blocks_elsewhere"] == 2 and row["blocked_ms_elsewhere"] == 260
    # a second batch adds to the split
    more = [{"k": "block", "t": 700_000_000, "d": 100_000_000, "from_session": "s-other", "stack": STACK}]
    assert server.ingest(batch("s-seven", "b2", more)).status == 202
    s = server.get_json("/api/v1/sessions/s-seven")
    assert (s["blocks_own"], s["blocks_elsewhere"], s["blocked_ms_elsewhere"]) == (1, 3, 360)
    # the loopscope JSON export carries the causes and the loop: posted back as another session,
    # it reads the same
    r = server.get("/api/v1/sessions/s-seven/export?format=json")
    assert r.status == 200
    for line in r.body.decode().splitlines():
        b = json.loads(line)
        assert b["meta"]["loop"] == 1
        b["session"] = "s-seven-copy"
        assert server.ingest(b).status == 202
    copy = server.get_json("/api/v1/sessions/s-seven-copy")
    assert {k: copy[k] for k in ("loop", "blocks_own", "blocks_elsewhere", "blocked_ms_elsewhere")} == \
        {k: s[k] for k in ("loop", "blocks_own", "blocks_elsewhere", "blocked_ms_elsewhere")}
    assert server.get_json("/api/v1/sessions/s-seven-copy/blocks") == server.get_json("/api/v1/sessions/s-seven/blocks")


def test_a_session_without_blocks_from_elsewhere_reads_as_before(server):
    evs = [{"k": "block", "t": 5, "d": 100_000_000, "stack": []}]
    assert server.ingest(batch("s-plain", "b1", evs, {"name": "x"})).status == 202
    s = server.get_json("/api/v1/sessions/s-plain")
    assert s["loop"] is None
    assert (s["blocks_own"], s["blocks_elsewhere"], s["blocked_ms_own"], s["blocked_ms_elsewhere"]) == (1, 0, 100, 0)


def test_bad_causes_are_refused(server):
    for bad, detail in (({"from_session": "not an id!"}, "events[0].from_session"),
                        ({"from_session": 7}, "events[0].from_session"),
                        ({"from_session": "s-x", "from_task": -1}, "events[0].from_task"),
                        ):
        ev = {"k": "block", "t": 5, "d": 10, **bad}
        r = server.ingest(batch("s-bad", "b-bad", [ev]))
        assert r.status == 400 and r.json()["detail"].startswith(detail), (bad, r.json())
    r = server.ingest(batch("s-bad", "b-bad", [], {"loop": "one"}))
    assert r.status == 400 and r.json()["detail"].startswith("meta.loop"), r.json()


def test_lag_samples_name_the_block_they_waited_behind(server):
    """/lag and /timeline: each lag sample names the block (own or from elsewhere) overlapping
    its window [t - d, t + d) most, with the causing session and task; none when no block does."""
    evs = [
        {"k": "task", "id": 1, "parent": 0, "name": "Task-1", "coro": "app.user", "t": 0},
        {"k": "block", "id": 1, "t": 10_000_000, "d": 120_000_000, "stack": STACK},
        {"k": "block", "t": 300_000_000, "d": 150_000_000, "from_session": "s-42", "from_task": 3,
         "stack": [{"file": "demo_app.py", "line": 56, "func": "user", "src": "<b>time.sleep(0.15)</b>"}]},
        {"k": "lag", "t": 129_000_000, "d": 119_000_000},   # behind its own block
        {"k": "lag", "t": 449_000_000, "d": 150_000_000},   # behind GET /users/42's
        {"k": "lag", "t": 600_000_000, "d": 1_000_000},     # behind nothing
        {"k": "end", "t": 700_000_000},
    ]
    assert server.ingest(batch("s-seven", "b1", evs, {"name": "GET /users/7"})).status == 202
    samples = server.get_json("/api/v1/sessions/s-seven/lag")["samples"]
    causes = [s["cause"] for s in samples]
    assert causes[0] == {"task": 1, "t": 10_000_000, "d": 120_000_000, "file": "demo_app.py", "line": 56,
                         "func": "user", "src": "time.sleep(0.15)", "elsewhere": False, "from_session": None,
                         "from_task": None}
    assert causes[1] == {"task": 0, "t": 300_000_000, "d": 150_000_000, "file": "demo_app.py", "line": 56,
                         "func": "user", "src": "<b>time.sleep(0.15)</b>", "elsewhere": True,
                         "from_session": "s-42", "from_task": 3}
    assert causes[2] is None
    # the timeline's lag items (each the longest of its pixel column) carry the same
    tl = server.get_json("/api/v1/sessions/s-seven/timeline?px=1000")["lag"]
    assert [(x["t"], x["cause"] and x["cause"]["from_session"]) for x in tl] == [
        (129_000_000, None), (449_000_000, "s-42"), (600_000_000, None)]
    assert tl[0]["cause"]["elsewhere"] is False and tl[2]["cause"] is None
