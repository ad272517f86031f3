"""test_live.py — the live event streams (Server-Sent Events) of the real server: a page's stream
of one session (state on connect, update after a POST, end), the sessions list's stream, the
--max-streams limit, heartbeats, auth and Host checks, and a shutdown with streams open."""
import json
import socket
import threading
import time

from batches import batch
from conftest import SLOW, wait_for


class Stream:
    """A raw HTTP/1.1 GET read as a text/event-stream: status, headers, then events."""

    def __init__(self, port, path, headers=None, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        self.text = ""  # de-chunked body read so far
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "closed before the headers"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        first, *hs = head.decode().split("\r\n")
        self.status = int(first.split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in hs)}
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.closed = False
        self._dechunk()

    def _dechunk(self):
        if not self.chunked:
            self.text += self.buf.decode()
            self.buf = b""
            return
        while b"\r\n" in self.buf:
            size_line, rest = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                self.closed = True
                self.buf = b""
                return
            if len(rest) < size + 2:
                return
            self.text += rest[:size].decode()
            self.buf = rest[size + 2:]

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        if not chunk:
            self.closed = True
            return
        self.buf += chunk
        self._dechunk()

    def next_block(self, timeout=10.0):
        """The next block up to a blank line (an event or a comment), or None when closed."""
        deadline = time.monotonic() + timeout * SLOW
        while "\n\n" not in self.text:
            if self.closed:
                return None
            assert time.monotonic() < deadline, f"no event within {timeout} s; have {self.text!r}"
            self._fill(deadline)
        block, self.text = self.text.split("\n\n", 1)
        return block

    def next_event(self, timeout=10.0):
        """(event, data as JSON, id) of the next event, skipping comments; None when closed."""
        while True:
            block = self.next_block(timeout)
            if block is None:
                return None
            fields = {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    continue
                k, _, v = line.partition(": ")
                fields[k] = v
            if "event" in fields:
                return fields["event"], json.loads(fields["data"]), fields.get("id")

    def wait_closed(self, timeout=10.0):
        deadline = time.monotonic() + timeout * SLOW
        while not self.closed and time.monotonic() < deadline:
            self._fill(deadline)
        return self.closed

    def close(self):
        self.sock.close()


META = {"name": "GET /live", "service": "shop", "pid": 1, "host": "dev", "python": "3.12",
        "started_unix_ns": "1764089000000000000"}


def task(i, t):
    return {"k": "task", "id": i, "parent": 0 if i == 1 else 1, "name": f"Task-{i}", "coro": "app.f", "t": t}


def test_session_stream_state_update_end(server):
    assert server.ingest(batch("s-live", "b1", [task(1, 0)], META)).status == 202
    st = Stream(server.port, "/api/v1/sessions/s-live/events")
    try:
        assert st.status == 200
        assert st.headers["content-type"].startswith("text/event-stream")
        assert st.headers["cache-control"] == "no-store"
        ev, data, _ = st.next_event()
        assert ev == "state" and data["tasks"] == 1 and data["ended"] is False
        # a batch stored while the page watches: an update with the new counts
        assert server.ingest(batch("s-live", "b2", [task(2, 1000), task(3, 2000)])).status == 202
        ev, data, eid = st.next_event()
        assert ev == "update" and data["tasks"] == 3 and data["ended"] is False
        assert int(eid) >= 1
        # the end event closes the stream
        assert server.ingest(batch("s-live", "b3", [{"k": "end", "t": 5000}])).status == 202
        ev, data, _ = st.next_event()
        assert ev == "update" and data["ended"] is True and data["duration_ns"] == 5000
        assert st.next_event()[0] == "end"
        assert st.wait_closed()
    finally:
        st.close()


def test_ended_session_stream_says_end_at_once(server):
    assert server.ingest(batch("s-done", "b1", [task(1, 0), {"k": "end", "t": 10}], META)).status == 202
    st = Stream(server.port, "/api/v1/sessions/s-done/events")
    try:
        assert st.next_event()[0] == "state"
        assert st.next_event()[0] == "end"
        assert st.wait_closed()
    finally:
        st.close()


def test_deleted_session_stream_says_deleted_and_closes(server):
    assert server.ingest(batch("s-gone", "b1", [task(1, 0)], META)).status == 202
    st = Stream(server.port, "/api/v1/sessions/s-gone/events")
    try:
        assert st.next_event()[0] == "state"
        assert server.request("DELETE", "/api/v1/sessions/s-gone").status == 200
        ev, data, _ = st.next_event()
        assert (ev, data) == ("deleted", {"id": "s-gone"})
        assert st.wait_closed()
    finally:
        st.close()


def test_many_sessions_at_once_reach_the_list(server):
    """Sessions stored faster than a list stream's pacing: each one is told, or (beyond 32 between
    two events) a reset says to ask for the list again; nothing is lost silently."""
    st = Stream(server.port, "/api/v1/events")
    try:
        assert st.next_event()[0] == "ready"
        ids = {f"s-many-{i}" for i in range(40)}
        threads = [threading.Thread(target=server.ingest, args=(batch(i, "b1", [task(1, 0)], META),)) for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen, reset = set(), False
        while not reset and seen != ids:
            ev, data, _ = st.next_event()
            if ev == "reset":
                reset = True
            else:
                assert ev == "session"
                seen.add(data["id"])
        assert reset or seen == ids
    finally:
        st.close()


def test_unknown_session_and_methods(server):
    assert server.get("/api/v1/sessions/nope/events").status == 404
    r = server.request("POST", "/api/v1/sessions/nope/events", body=b"")
    assert r.status == 405 and r.header("allow") == "GET"
    r = server.request("HEAD", "/api/v1/events")
    assert r.status == 405


def test_list_stream_sees_new_and_ended_sessions(server):
    st = Stream(server.port, "/api/v1/events")
    try:
        assert st.status == 200
        ev, data, _ = st.next_event()
        assert ev == "ready" and data["seq"] == 0
        assert server.ingest(batch("s-a", "b1", [task(1, 0)], META)).status == 202
        ev, data, _ = st.next_event()
        assert ev == "session" and data["id"] == "s-a" and data["ended"] is False
        assert server.ingest(batch("s-a", "b2", [{"k": "end", "t": 7}])).status == 202
        ev, data, _ = st.next_event()
        assert ev == "session" and data["id"] == "s-a" and data["ended"] is True
        assert server.request("DELETE", "/api/v1/sessions/s-a").status == 200
        ev, data, _ = st.next_event()
        assert ev == "deleted" and data == {"id": "s-a"}
    finally:
        st.close()


def test_burst_of_batches_coalesces(server):
    """Many batches in a short time give fewer events than batches, and the last one is current."""
    assert server.ingest(batch("s-burst", "b0", [task(1, 0)], META)).status == 202
    st = Stream(server.port, "/api/v1/sessions/s-burst/events")
    try:
        assert st.next_event()[0] == "state"
        n = 30
        for i in range(2, n + 2):
            assert server.ingest(batch("s-burst", f"b{i}", [task(i, i)])).status == 202
        seen = 0
        tasks = 0
        while tasks < n + 1:
            ev, data, _ = st.next_event()
            assert ev == "update"
            seen += 1
            tasks = data["tasks"]
        assert tasks == n + 1
        assert seen <= n  # one event per batch at most; usually far fewer
    finally:
        st.close()


def test_stream_limit(make_server):
    server = make_server("--max-streams", "2")
    a = Stream(server.port, "/api/v1/events")
    b = Stream(server.port, "/api/v1/events")
    try:
        assert a.status == b.status == 200
        c = Stream(server.port, "/api/v1/events")
        assert c.status == 503
        assert c.headers.get("retry-after") == "1"
        c.close()
        a.close()
        # the place is given back once the closed stream's connection is noticed (at the latest
        # at its next heartbeat or event)
        assert server.ingest(batch("s-x", "b1", [task(1, 0)], META)).status == 202
        deadline = time.monotonic() + 20 * SLOW
        while True:
            d = Stream(server.port, "/api/v1/events")
            if d.status == 200 or time.monotonic() > deadline:
                break
            d.close()
            time.sleep(0.2)
        assert d.status == 200
        d.close()
    finally:
        a.close()
        b.close()


def test_max_streams_zero_refuses(make_server):
    server = make_server("--max-streams", "0")
    assert server.get("/api/v1/events").status == 503


def test_heartbeat(make_server):
    server = make_server("--live-heartbeat", "1")
    st = Stream(server.port, "/api/v1/events")
    try:
        assert st.next_event()[0] == "ready"
        assert st.next_block(timeout=5).startswith(": heartbeat")
    finally:
        st.close()


def test_auth_and_host(make_server):
    server = make_server("--token", "s3cret")
    r = Stream(server.port, "/api/v1/events")
    assert r.status == 401
    r.close()
    ok = Stream(server.port, "/api/v1/events", headers={"Authorization": "Bearer s3cret"})
    assert ok.status == 200
    ok.close()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: evil.example\r\n"
                 b"Authorization: Bearer s3cret\r\n\r\n")
    assert sock.recv(100).split()[1] == b"403"
    sock.close()


def test_shutdown_with_open_streams_does_not_hang(make_server):
    server = make_server()
    assert server.ingest(batch("s-open", "b1", [task(1, 0)], META)).status == 202
    streams = [Stream(server.port, "/api/v1/events") for _ in range(3)]
    streams += [Stream(server.port, "/api/v1/sessions/s-open/events") for _ in range(3)]
    for s in streams:
        s.next_event()
    t0 = time.monotonic()
    assert server.stop(timeout=15) == 0
    took = time.monotonic() - t0
    assert took < 10 * SLOW, took
    for s in streams:
        assert s.wait_closed(timeout=5)
        s.close()


def test_stream_while_ingesting_from_threads(server):
    """Streams opening and closing while batches are stored: every stream gets its state and the
    server stays answering (a race would show as a crash, a hang or a lost wake-up)."""
    assert server.ingest(batch("s-race", "b0", [task(1, 0)], META)).status == 202
    stop = threading.Event()

    def post():
        i = 1
        while not stop.is_set():
            i += 1
            server.ingest(batch("s-race", f"b{i}", [task(i, i)]))

    th = threading.Thread(target=post)
    th.start()
    try:
        for _ in range(20):
            st = Stream(server.port, "/api/v1/sessions/s-race/events")
            assert st.next_event()[0] == "state"
            assert st.next_event()[0] == "update"
            st.close()
    finally:
        stop.set()
        th.join()
    assert server.get("/healthz").status == 200


def test_metrics_of_the_streams(make_server):
    """/metrics: loopscope_live_streams (open now), loopscope_live_events_total (events written,
    heartbeats not counted) and loopscope_live_streams_refused_total (503 at --max-streams)."""
    server = make_server("--max-streams", "2", "--live-heartbeat", "1")
    m = server.metrics()
    assert (m["loopscope_live_streams"], m["loopscope_live_events_total"],
            m["loopscope_live_streams_refused_total"]) == (0, 0, 0)
    assert server.ingest(batch("s-m", "b1", [task(1, 0)], META)).status == 202
    a = Stream(server.port, "/api/v1/sessions/s-m/events")
    b = Stream(server.port, "/api/v1/events")
    try:
        assert a.next_event()[0] == "state" and b.next_event()[0] == "ready"
        m = server.metrics()
        assert m["loopscope_live_streams"] == 2 and m["loopscope_live_events_total"] == 2
        c = Stream(server.port, "/api/v1/events")
        assert c.status == 503
        c.close()
        assert server.metrics()["loopscope_live_streams_refused_total"] == 1
        assert server.ingest(batch("s-m", "b2", [task(2, 10)])).status == 202
        assert a.next_event()[0] == "update" and b.next_event()[0] == "session"
        assert server.metrics()["loopscope_live_events_total"] == 4
        a.close()
        # the closed stream leaves the gauge once the server notices (its next heartbeat)
        wait_for(lambda: server.metrics()["loopscope_live_streams"] == 1, timeout=20, what="the gauge at 1")
        assert server.metrics()["loopscope_live_events_total"] == 4  # heartbeats are not events
    finally:
        a.close()
        b.close()
