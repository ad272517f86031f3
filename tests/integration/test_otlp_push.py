"""test_otlp_push.py — loopscope-server --otlp-endpoint against an OTLP/HTTP receiver written here
(otlp_receiver.py: every request decoded with the official opentelemetry-proto definitions): what
a trace holds, the retry rules (429/503 with Retry-After, a refusal), a receiver that is down and
comes back, a server killed mid-push and restarted, splitting by size, and the OTEL_EXPORTER_OTLP_*
variables. "Exactly once" is checked on what the receiver accepted (answered 2xx): every span of
every session, no span twice.
"""
import collections
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from batches import EXAMPLE, batch, example
from conftest import BINARY, SLOW, Server, wait_for
from otlp_receiver import Receiver

BASE = 1764089000123456789  # EXAMPLE's started_unix_ns
FAST = ["--otlp-quiet", "1s", "--otlp-max-backoff-ms", "300", "--public-url", "http://loopscope.test:7878/"]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def otlp_metrics(server):
    m = server.metrics()
    out = {k.replace("loopscope_otlp_", ""): int(v) for k, v in m.items() if k.startswith("loopscope_otlp_")}
    return out


def exported_ids(server, session):
    j = server.get_json(f"/api/v1/sessions/{session}/export?format=otlp")
    return sorted(s["spanId"] for s in j["resourceSpans"][0]["scopeSpans"][0]["spans"])


def session_batches(session, tasks, awaits=2, blocks=1, started=True, end=True, name=None):
    """One session: task 1 the root, tasks 2..n its children, each with `awaits` awaits; `blocks`
    blocks on task 1."""
    meta = {"name": name or f"GET /{session}", "service": "shop"}
    if started:
        meta["started_unix_ns"] = str(BASE)
    events = [{"k": "task", "id": 1, "parent": 0, "name": "Task-1", "coro": "app.main", "t": 0}]
    for i in range(2, tasks + 1):
        events.append({"k": "task", "id": i, "parent": 1, "name": f"Task-{i}", "coro": "app.worker", "t": i * 1000})
        for k in range(awaits):
            events.append({"k": "await", "id": i, "t": i * 1000 + 100 + k * 500, "d": 400,
                           "what": "asyncio.sleep", "file": "app/worker.py", "line": 10 + k, "func": "worker"})
        events.append({"k": "done", "id": i, "t": i * 1000 + 5000, "state": "ok"})
    for k in range(blocks):
        events.append({"k": "block", "id": 1, "t": 10 + k, "d": 5,
                       "stack": [{"file": "app/main.py", "line": 3, "func": "<module>", "src": "main()"},
                                 {"file": "app/main.py", "line": 7, "func": "main", "src": "time.sleep(1)"}]})
    if end:
        events.append({"k": "end", "t": tasks * 1000 + 6000})
    return batch(session, "b-1", events, meta=meta)


def exactly_once(receiver, server, sessions):
    """Every span of each session accepted once, the set equal to the session's OTLP export."""
    counts = collections.Counter((s["trace"], s["id"]) for s in receiver.spans())
    dup = [k for k, n in counts.items() if n > 1]
    assert not dup, f"spans accepted twice: {dup[:5]}"
    for sid in sessions:
        got = sorted(s["id"] for s in receiver.session_trace(sid))
        assert got == exported_ids(server, sid), sid


def test_trace_contents(make_server, receiver, tmp_path):
    """A session span, a span per task under its parent, a span per await under its task, a
    span per block under the task it blocked; session attributes on the resource; times from
    started_unix_ns, or from when the server received the first batch when there is none."""
    s = make_server("--otlp-endpoint", receiver.url, *FAST)
    b = example()
    b["events"].append({"k": "done", "id": 1, "t": 240000000, "state": "error", "exc": "ValueError: boom"})
    assert s.ingest(b).status == 202
    before = time.time_ns()
    quiet = batch("s-nostart", "b-1", [{"k": "task", "id": 1, "t": 0, "coro": "app.job"},
                                       {"k": "await", "id": 1, "t": 1000, "d": 2000, "what": "Queue.get",
                                        "file": "app/job.py", "line": 5, "func": "job"}],
                  meta={"name": "job", "service": "worker"})
    assert s.ingest(quiet).status == 202
    after = time.time_ns()
    t0 = time.monotonic()
    wait_for(lambda: len(receiver.traces()) == 2, what="both traces")
    took = time.monotonic() - t0
    assert receiver.errors == []

    spans = receiver.session_trace("s-9f1c2e")
    assert len(spans) == 1 + 2 + 1 + 1  # session + tasks + awaits + blocks
    by_name = {x["name"]: x for x in spans}
    session, t1, t2 = by_name["GET /users/42"], by_name["app.views.user_page"], by_name["app.db.fetch_user"]
    aw, bl = by_name["AsyncSession.execute"], by_name["event loop blocked"]
    assert len({x["trace"] for x in spans}) == 1
    assert session["parent"] == "" and t1["parent"] == session["id"] and t2["parent"] == t1["id"]
    assert aw["parent"] == t2["id"] and bl["parent"] == t1["id"]
    res = session["resource"]
    assert res["service.name"] == "shop" and res["host.name"] == "dev1" and res["process.pid"] == 4711
    assert res["loopscope.session.id"] == "s-9f1c2e" and res["loopscope.session.name"] == "GET /users/42"
    assert res["loopscope.session.url"] == "http://loopscope.test:7878/sessions/s-9f1c2e"
    assert session["attrs"]["loopscope.session.url"] == res["loopscope.session.url"]
    assert session["attrs"]["loopscope.session.start_source"] == "collector"
    assert (session["start"], session["end"]) == (BASE, BASE + 250000000)
    assert (t2["start"], t2["end"]) == (BASE + 120000, BASE + 95000000)
    assert (aw["start"], aw["end"]) == (BASE + 182000, BASE + 182000 + 45000000)
    assert aw["attrs"] == {"code.filepath": "app/db.py", "code.lineno": 23, "code.function": "fetch_user",
                           "loopscope.task.id": 2}
    assert (bl["start"], bl["end"]) == (BASE + 50000000, BASE + 200000000)
    ba = bl["attrs"]
    assert (ba["code.filepath"], ba["code.lineno"], ba["code.function"]) == ("app/views.py", 45, "user_page")
    assert ba["loopscope.block.source"] == "time.sleep(0.15)"
    assert 'File "app/views.py", line 45, in user_page\n    time.sleep(0.15)' in ba["code.stacktrace"]
    assert t1["status"] == (2, "ValueError: boom")
    assert [(e[0], e[2]) for e in t1["events"]] == [
        ("exception", {"exception.type": "ValueError", "exception.message": "boom"})]
    assert [(e[0], e[1], e[2]) for e in session["events"]] == [("loop lag", BASE + 60000000, {"loopscope.lag.ms": 2.3})]
    assert session["attrs"]["loopscope.lag.max_ms"] == 2.3
    assert all(x["kind"] == 1 and x["scope"] == "loopscope" for x in spans)

    # no started_unix_ns, no end: sent after the quiet period, on the server's clock (not 1970)
    q = receiver.session_trace("s-nostart")
    assert len(q) == 3
    qs = {x["name"]: x for x in q}
    assert qs["job"]["attrs"]["loopscope.session.start_source"] == "server"
    assert before - 5 * 10**9 <= qs["job"]["start"] <= after
    assert qs["Queue.get"]["start"] == qs["job"]["start"] + 1000
    assert qs["job"]["resource"]["service.name"] == "worker"

    # the push sends what export?format=otlp gives (same ids), once
    exactly_once(receiver, s, ["s-9f1c2e", "s-nostart"])
    assert all(r["headers"].get("Content-Encoding") == "gzip" for r in receiver.requests)
    m = wait_for(lambda: (lambda m: m if m["outbox_sessions"] == 0 else None)(otlp_metrics(s)), what="outbox empty")
    assert m['requests_total{result="sent"}'] == 2 and m['spans_total{result="sent"}'] == 5 + 3
    assert m['requests_total{result="failed"}'] == 0 and m["sessions_total"] == 2
    assert m["outbox_requests"] == 0
    print(f"\ntrace contents: 2 sessions, {len(receiver.spans())} spans in {len(receiver.requests)} requests, "
          f"both arrived {took:.2f} s after ingest")


def test_retry_after_then_200_and_refusal(make_server, receiver):
    """503 and 429 with Retry-After: 1 are retried after at least that long; a 400 is not retried
    (counted failed) and the next session goes on."""
    receiver.script = [(503, {"Retry-After": "1"}), (429, {"Retry-After": "1"})]
    s = make_server("--otlp-endpoint", receiver.url, *FAST)
    assert s.ingest(session_batches("s-a", 3)).status == 202
    wait_for(lambda: receiver.session_trace("s-a"), what="s-a")
    times = [r["t"] for r in receiver.requests]
    assert [r["status"] for r in receiver.requests] == [503, 429, 200]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= 0.9 for g in gaps), gaps
    m = wait_for(lambda: (lambda m: m if m['requests_total{result="sent"}'] else None)(otlp_metrics(s)))
    assert m['requests_total{result="retried"}'] == 2 and m['spans_total{result="retried"}'] == 2 * (1 + 3 + 4 + 1)
    assert m['requests_total{result="sent"}'] == 1

    receiver.script = [(400, {})]
    assert s.ingest(session_batches("s-bad", 2)).status == 202
    wait_for(lambda: otlp_metrics(s)['requests_total{result="failed"}'] == 1, what="the refusal")
    assert s.ingest(session_batches("s-after", 2)).status == 202
    wait_for(lambda: receiver.session_trace("s-after"), what="s-after")
    assert [r["status"] for r in receiver.requests] == [503, 429, 200, 400, 200]  # s-bad once only
    assert receiver.session_trace("s-bad") == []
    wait_for(lambda: otlp_metrics(s)["outbox_requests"] == 0, what="outbox empty")
    m = otlp_metrics(s)
    assert m['spans_total{result="failed"}'] == 1 + 2 + 2 + 1
    assert "refused request 0 of session" in s.read_log()
    exactly_once(receiver, s, ["s-a", "s-after"])
    print(f"\nretry: gaps after 503/429 with Retry-After: 1 were {', '.join(f'{g:.2f} s' for g in gaps)}")


def test_receiver_down_then_back(make_server, tmp_path):
    """Nothing listens (connection refused) while sessions end: they wait in the outbox, retried
    with backoff; once a receiver listens on that port every session arrives once."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    port = hole.getsockname()[1]
    s = make_server("--otlp-endpoint", f"http://127.0.0.1:{port}/v1/traces", *FAST)
    for k in range(3):
        assert s.ingest(session_batches(f"s-down-{k}", 4)).status == 202
    wait_for(lambda: otlp_metrics(s)["sessions_total"] == 3, what="3 sessions in the outbox")
    wait_for(lambda: otlp_metrics(s)['requests_total{result="retried"}'] >= 3, what="retries")
    m = otlp_metrics(s)
    assert m["outbox_sessions"] == 3 and m["outbox_requests"] == 3 and m['requests_total{result="sent"}'] == 0
    hole.close()
    r = Receiver(port).start()
    try:
        t0 = time.monotonic()
        wait_for(lambda: len(r.traces()) == 3, what="3 traces after the receiver came back")
        took = time.monotonic() - t0
        exactly_once(r, s, [f"s-down-{k}" for k in range(3)])
        wait_for(lambda: otlp_metrics(s)["outbox_requests"] == 0, what="outbox empty")
        assert r.errors == []
    finally:
        r.stop()
    retried = m['requests_total{result="retried"}']
    print(f"\nreceiver down: {retried} retries while down, "
          f"3 sessions arrived {took:.2f} s after it came back")


def test_server_killed_mid_push_and_restarted(tmp_path):
    """A session split into many requests; the receiver holds one request while the server is
    SIGKILLed (that request is then answered 503: not accepted). After a restart on the same
    database the push goes on from that request: every session exactly once, including one that
    ended just before the kill and was not yet taken. Ingest answers while a push hangs."""
    r = Receiver().start()
    held, release = threading.Event(), threading.Event()
    HOLD = 3

    def hold(index, status):
        if index == HOLD:
            held.set()
            release.wait(60)
            return 503
        return status

    r.before_answer = hold
    args = ["--otlp-endpoint", r.url, "--otlp-max-request-bytes", "8K", *FAST]
    s = Server(tmp_path, *args).start()
    try:
        assert s.ingest(session_batches("s-big", 60)).status == 202
        assert held.wait(30 * SLOW), "the push never reached the held request"
        wait_for(lambda: otlp_metrics(s)['requests_total{result="sent"}'] == HOLD, what="3 requests marked sent")
        parts = otlp_metrics(s)["outbox_requests"]  # the held one and those after it
        t0 = time.monotonic()
        assert s.ingest(session_batches("s-late", 5)).status == 202  # the push hangs; ingest does not
        ingest_s = time.monotonic() - t0
        s.kill()
    finally:
        release.set()
    s2 = Server(tmp_path, *args, db=s.db).start()
    try:
        # s-late may go in more than one request: wait for all of its spans, not the first part
        late = len(exported_ids(s2, "s-late"))
        wait_for(lambda: len(r.session_trace("s-late")) >= late
                 and len(r.session_trace("s-big")) == 1 + 60 + 59 * 2 + 1, what="both sessions after the restart")
        assert r.errors == []
        statuses = [q["status"] for q in r.requests]
        sessions = [q["spans"][0]["resource"]["loopscope.session.id"] for q in r.requests]
        # the held request was the only one sent twice: parts sent before the kill are not resent
        assert statuses.count(503) == 1 and statuses[HOLD] == 503
        assert sessions.count("s-big") == HOLD + parts + 1 and statuses.count(200) == len(r.requests) - 1
        assert all(q["bytes"] <= 8192 for q in r.requests)
        exactly_once(r, s2, ["s-big", "s-late"])
        wait_for(lambda: otlp_metrics(s2)["outbox_requests"] == 0, what="outbox empty")
    finally:
        assert s2.stop() == 0
        r.stop()
    print(f"\nkill mid-push: s-big in {HOLD + parts} requests ({HOLD} sent before the SIGKILL, {parts} after the "
          f"restart), s-late taken after the restart; ingest answered in {ingest_s * 1000:.0f} ms during the hang")


def test_size_split(make_server, receiver):
    """With --otlp-max-request-bytes 64K a 400-task session goes in several requests, each at most
    64 KiB of JSON before gzip, every span once, every parent within the trace."""
    s = make_server("--otlp-endpoint", receiver.url, "--otlp-max-request-bytes", "64K", *FAST)
    assert s.ingest(session_batches("s-split", 400, awaits=3, blocks=20)).status == 202
    total = 1 + 400 + 399 * 3 + 20
    wait_for(lambda: len(receiver.session_trace("s-split")) >= total, what="every span")
    assert receiver.errors == []
    sizes = [q["bytes"] for q in receiver.requests]
    assert len(sizes) > 1 and max(sizes) <= 65536, sizes
    spans = receiver.session_trace("s-split")
    ids = {x["id"] for x in spans}
    assert all(x["parent"] in ids for x in spans if x["parent"])
    exactly_once(receiver, s, ["s-split"])
    m = wait_for(lambda: (lambda m: m if m["outbox_requests"] == 0 else None)(otlp_metrics(s)), what="outbox empty")
    assert m['spans_total{result="sent"}'] == total and m['requests_total{result="sent"}'] == len(sizes)
    print(f"\nsize split: {total} spans in {len(sizes)} requests of at most {max(sizes)} bytes "
          f"(gzip'd on the wire: at most {max(q['wire_bytes'] for q in receiver.requests)} bytes)")


def test_otel_environment_variables(make_server, receiver, tmp_path):
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL (/v1/traces appended); OTEL_EXPORTER_OTLP_HEADERS
    values are percent-decoded; COMPRESSION=none sends plain JSON; grpc is refused at start."""
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
               OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20abc , x-tenant=t1",
               OTEL_EXPORTER_OTLP_COMPRESSION="none")
    s = make_server("--otlp-quiet", "1s", env=env)
    assert s.ingest(EXAMPLE).status == 202
    wait_for(lambda: receiver.session_trace("s-9f1c2e"), what="the trace")
    (q,) = receiver.requests
    assert q["path"] == "/v1/traces"
    assert q["headers"]["authorization"] == "Bearer abc" and q["headers"]["x-tenant"] == "t1"
    assert "Content-Encoding" not in q["headers"] and q["headers"]["Content-Type"] == "application/json"
    for bad, says in [({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTLP/HTTP"),
                      ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "127.0.0.1:4318"}, "http:// or https://"),
                      ({"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "name=value")]:
        p = subprocess.run([BINARY, "--listen", "127.0.0.1:0", "--db", str(tmp_path / "x.db")],
                           env=dict(os.environ, **bad), capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and says in p.stderr, (bad, p.stderr)
