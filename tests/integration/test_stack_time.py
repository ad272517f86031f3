"""test_stack_time.py — when a block's stack was taken (stack_t, schema 11) over real HTTP: a block
event's stack_t is stored and served in /blocks and /timeline (null when the event had none), the
JSON export carries it so a re-import reads the same, and a stack_t outside [0, d] is refused with
nothing stored."""
import json

from batches import batch

STACK = [{"file": "shop.py", "line": 85, "func": "render_price", "src": "time.sleep(0.15)"}]
META = {"name": "GET /product/42", "started_unix_ns": "1764089000123456789"}


def test_stack_time_is_stored_served_and_exported(server):
    evs = [
        {"k": "task", "id": 1, "parent": 0, "name": "Task-1", "coro": "app.product", "t": 0},
        # taken half a threshold in, as the watchdog asks; and one taken late, near the end
        {"k": "block", "id": 1, "t": 1_000_000, "d": 150_000_000, "stack_t": 50_212_000, "stack": STACK},
        {"k": "block", "id": 1, "t": 300_000_000, "d": 181_000_000, "stack_t": 170_000_000, "stack": STACK},
        {"k": "block", "id": 1, "t": 600_000_000, "d": 120_000_000, "stack": STACK},  # unknown
        {"k": "block", "t": 800_000_000, "d": 110_000_000, "stack_t": None, "stack": []},  # unknown
        {"k": "end", "t": 1_000_000_000},
    ]
    assert server.ingest(batch("s-when", "b1", evs, META)).status == 202
    blocks = server.get_json("/api/v1/sessions/s-when/blocks")["blocks"]
    assert [b["stack_t"] for b in blocks] == [50_212_000, 170_000_000, None, None]
    tl = server.get_json("/api/v1/sessions/s-when/timeline")["blocks"]
    assert [(b["t"], b["stack_t"]) for b in tl] == [(1_000_000, 50_212_000), (300_000_000, 170_000_000),
                                                      (600_000_000, None), (800_000_000, None)]
    # the loopscope JSON export carries it (and leaves it out when unknown): posted back as another
    # session, the blocks read the same
    r = server.get("/api/v1/sessions/s-when/export?format=json")
    assert r.status == 200
    exported = [json.loads(line) for line in r.body.decode().splitlines()]
    sent = [e.get("stack_t", "absent") for b in exported for e in b["events"] if e["k"] == "block"]
    assert sorted(sent, key=str) == sorted([50_212_000, 170_000_000, "absent", "absent"], key=str)
    for b in exported:
        b["session"] = "s-when-copy"
        assert server.ingest(b).status == 202
    assert server.get_json("/api/v1/sessions/s-when-copy/blocks") == server.get_json("/api/v1/sessions/s-when/blocks")


def test_a_stack_time_outside_the_block_is_refused_and_nothing_is_stored(server):
    for bad in (150_000_001, -1, 1.5, "5", 2 ** 53):
        ev = {"k": "block", "id": 1, "t": 0, "d": 150_000_000, "stack_t": bad, "stack": STACK}
        ok = {"k": "task", "id": 1, "parent": 0, "t": 0}
        r = server.ingest(batch("s-bad-when", "b-bad", [ok, ev], META))
        assert r.status == 400, (bad, r.status)
        detail = r.json()["detail"]
        assert detail.startswith("events[1].stack_t: expected an integer in"), (bad, detail)
    assert server.get("/api/v1/sessions/s-bad-when").status == 404
    # the bound is the block's own d: stack_t == d is a stack taken at its very end
    ev = {"k": "block", "id": 1, "t": 0, "d": 150_000_000, "stack_t": 150_000_000, "stack": STACK}
    assert server.ingest(batch("s-edge-when", "b1", [ev], META)).status == 202
    assert server.get_json("/api/v1/sessions/s-edge-when/blocks")["blocks"][0]["stack_t"] == 150_000_000
