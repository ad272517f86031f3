"""test_export_chrome.py — export?format=chrome keeps the Trace Event Format's rules on a session
recorded by the collector (tests/data/recorded-tree.json, made by tests/data/recorded_tree.py):
complete events nest on every track, times are microseconds, every parent -> child flow has a
start and a finish bound to slices on the parent's and the child's tracks, the lag counter is
numeric, threads and the process are named. And on ingested sessions that break the rules the
collector keeps (overlapping slices, a child created outside its parent's steps)."""
import json
import pathlib
from collections import defaultdict

from batches import batch

RECORDED = json.loads((pathlib.Path(__file__).resolve().parents[1] / "data" / "recorded-tree.json").read_text())
SID = RECORDED["session"]


def ns(us):
    """Trace microseconds (three decimals) back to integer nanoseconds."""
    return round(us * 1000)


def slices_by_tid(events):
    out = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            out[e["tid"]].append((ns(e["ts"]), ns(e["ts"]) + ns(e["dur"]), e))
    for sl in out.values():
        sl.sort(key=lambda s: (s[0], -s[1]))
    return out


def check_nesting(by_tid):
    """Each slice of a track lies inside the one enclosing it or after it: no partial overlap."""
    for tid, sl in by_tid.items():
        stack = []
        for start, end, e in sl:
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1], (tid, e, stack)
            stack.append(end)


def enclosing(by_tid, tid, t):
    """The slices of track tid with t strictly inside them."""
    return [e for start, end, e in by_tid.get(tid, []) if start < t < end]


def test_recorded_session_follows_the_format(server):
    assert server.ingest(RECORDED).status == 202
    j = server.get_json(f"/api/v1/sessions/{SID}/export?format=chrome")
    ev = j["traceEvents"]
    assert j["displayTimeUnit"] == "ns"
    assert j["otherData"] == {"session": SID, "started_unix_ns": RECORDED["meta"]["started_unix_ns"],
                              "unbound_flows": 0}
    rec = defaultdict(list)
    for e in RECORDED["events"]:
        rec[e["k"]].append(e)
    assert {e["ph"] for e in ev} == {"M", "X", "i", "s", "f", "C"}
    for e in ev:
        assert e["pid"] == 1 and isinstance(e["tid"], int) and isinstance(e["ts"], (int, float)), e

    # metadata: the process is the session, the loop and every task a named thread
    threads = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    assert [e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "process_name"] == \
        [RECORDED["meta"]["name"]]
    assert threads[0] == "event loop"
    for t in rec["task"]:
        assert threads[t["id"]] == f"{t['name']} {t['coro']}"
    assert {e["tid"] for e in ev} <= set(threads)

    # microseconds: every step, await and block at t / 1000 for d / 1000, exactly
    by_tid = slices_by_tid(ev)
    got = sorted((e["cat"], e["tid"], ns(e["ts"]), ns(e["dur"])) for e in ev if e["ph"] == "X")
    want = sorted([("step", s["id"], s["t"], s["d"]) for s in rec["step"]]
                  + [("await", a["id"], a["t"], a["d"]) for a in rec["await"]]
                  + [("block", 0, b["t"], b["d"]) for b in rec["block"]])
    assert got == want
    assert all(e["tid"] == 0 for e in ev if e["cat"] == "block") and rec["block"]
    assert not [e for e in ev if "clipped_ns" in e.get("args", {})]
    check_nesting(by_tid)

    # flows: one per child that ran, from the parent's step that made it to the child's first step
    flows = defaultdict(dict)
    for e in ev:
        if e["ph"] in "sf":
            assert e["ph"] not in flows[e["id"]], e
            flows[e["id"]][e["ph"]] = e
    tasks = {t["id"]: t for t in rec["task"]}
    children = {t["id"] for t in rec["task"] if t.get("parent")}
    assert set(flows) == children and len(children) >= 10
    for child, f in flows.items():
        s, fin = f["s"], f["f"]
        assert (s["name"], s["cat"]) == (fin["name"], fin["cat"]) == ("spawn", "task")
        assert s["tid"] == tasks[child]["parent"] and fin["tid"] == child and fin["bp"] == "e"
        made_in = enclosing(by_tid, s["tid"], ns(s["ts"]))
        assert len(made_in) == 1 and made_in[0]["cat"] == "step", (s, made_in)
        start, dur = ns(made_in[0]["ts"]), ns(made_in[0]["dur"])
        assert start <= tasks[child]["t"] <= start + dur  # the step that created the child
        runs_in = enclosing(by_tid, child, ns(fin["ts"]))
        first = min(x["t"] for x in rec["step"] if x["id"] == child)
        assert len(runs_in) == 1 and runs_in[0]["cat"] == "step" and ns(runs_in[0]["ts"]) == first, (fin, runs_in)

    # the lag counter: one numeric sample per lag event, in milliseconds
    counters = [e for e in ev if e["ph"] == "C"]
    assert len(counters) == len(rec["lag"]) > 0
    for e, lag in zip(sorted(counters, key=lambda e: e["ts"]), sorted(rec["lag"], key=lambda x: x["t"])):
        assert e["name"] == "loop lag" and ns(e["ts"]) == lag["t"]
        (value,) = e["args"].values()
        assert type(value) in (int, float) and abs(value - lag["d"] / 1e6) < 1e-6


def test_overlapping_slices_are_cut_to_nest(server):
    """An ingested session whose step and await of one task overlap, and whose blocks overlap:
    every track still nests; the cut slices say by how much."""
    events = [{"k": "task", "id": 1, "t": 0},
              {"k": "step", "id": 1, "t": 1000, "d": 5000},
              {"k": "await", "id": 1, "t": 4000, "d": 9000, "what": "sleep"},  # 2000 past the step
              {"k": "step", "id": 1, "t": 2000, "d": 1000},                   # inside the first
              {"k": "block", "id": 1, "t": 1000, "d": 5000},
              {"k": "block", "id": 1, "t": 3000, "d": 10000}]
    assert server.ingest(batch("s-overlap", "b", events)).status == 202
    ev = server.get_json("/api/v1/sessions/s-overlap/export?format=chrome")["traceEvents"]
    check_nesting(slices_by_tid(ev))
    cut = sorted((e["cat"], ns(e["ts"]), ns(e["dur"]), e["args"]["clipped_ns"])
                 for e in ev if "clipped_ns" in e.get("args", {}))
    assert cut == [("await", 4000, 2000, 7000), ("block", 3000, 3000, 7000)]


def test_flows_only_where_both_ends_bind(server):
    """A child created outside every step of its parent, and one that never ran, get no flow
    (a dangling arrow would bind to whatever slice is near): otherData counts them."""
    events = [{"k": "task", "id": 1, "t": 0}, {"k": "step", "id": 1, "t": 100, "d": 10000},
              {"k": "task", "id": 2, "parent": 1, "t": 5000}, {"k": "step", "id": 2, "t": 20000, "d": 3000},
              {"k": "task", "id": 3, "parent": 1, "t": 50000}, {"k": "step", "id": 3, "t": 60000, "d": 3000},
              {"k": "task", "id": 4, "parent": 1, "t": 6000}]
    assert server.ingest(batch("s-flows", "b", events)).status == 202
    j = server.get_json("/api/v1/sessions/s-flows/export?format=chrome")
    flows = sorted((e["ph"], e["id"], e["tid"]) for e in j["traceEvents"] if e["ph"] in "sf")
    assert flows == [("f", 2, 2), ("s", 2, 1)]
    assert j["otherData"]["unbound_flows"] == 2
