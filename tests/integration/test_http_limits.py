"""test_http_limits.py — the HTTP layer's limits: --max-body above the 64 MiB an error body is
read for (202 up to the limit, 413 beyond it, never a reset); slow clients (per-address and total
connection limits, the whole-request deadline, the idle timeout) leave a normal client served."""
import json
import resource
import socket
import statistics
import subprocess
import threading
import time

from batches import batch
from conftest import BINARY

MIB = 1 << 20


def padded(session, batch_id, size):
    """A valid batch of exactly `size` bytes: JSON whitespace before its closing brace."""
    head = json.dumps(batch(session, batch_id, [{"k": "lag", "t": 1, "d": 1}]))[:-1]
    return head.encode() + b" " * (size - len(head) - 1) + b"}"


def chunked_post(port, body, chunk=MIB, timeout=300):
    """POST body with Transfer-Encoding: chunked (no length announced); the answer's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(b"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for i in range(0, len(body), chunk):
            part = body[i:i + chunk]
            c.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        c.sendall(b"0\r\n\r\n")
        head = b""
        while b"\r\n" not in head:
            got = c.recv(4096)
            if not got:
                break
            head += got
        return int(head.split(b" ", 2)[1])


def test_max_body_above_64_mib(make_server):
    """--max-body 100M: 65 and 99 MiB bodies are stored (202), with or without a length; 101 MiB
    is refused 413 whether announced or not. Before the fix any body past 64 MiB got no answer."""
    s = make_server("--max-body", "100M")
    # Each answer may take long (the test is about which answer, not how fast): a 65 MiB body's parse
    # on the coverage build beside a CPU hog at load 18 took over the default 30 s once.
    for i, size in enumerate([65 * MIB, 99 * MIB, 100 * MIB]):
        r = s.ingest(None, raw=padded("s-big", f"b{i}", size), timeout=300)
        assert r.status == 202, (size, r.status, r.body[:200])
    assert chunked_post(s.port, padded("s-big", "chunked", 99 * MIB)) == 202
    over = padded("s-big", "over", 101 * MIB)
    r = s.ingest(None, raw=over, timeout=300)
    assert r.status == 413 and r.json()["detail"] == "body larger than the limit (--max-body)"
    assert chunked_post(s.port, over) == 413
    assert s.get_json("/api/v1/sessions/s-big")["lag"]["samples"] == 4  # one per stored batch
    m = s.metrics()
    assert m["loopscope_batches_total"] == 4
    assert m['loopscope_rejects_total{reason="too_large"}'] == 2


# ---------------------------------------------------------------- slow clients

def is_closed(c):
    """True once the server has closed (or reset) the connection c (a non-blocking peek)."""
    try:
        c.setblocking(False)
        return c.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def open_drips(port, n, sources, request=b"GET /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: "):
    """n connections from the given loopback source addresses, each having sent the start of a
    request it never finishes."""
    socks = []
    for i in range(n):
        c = socket.socket()
        try:
            c.bind((sources[i % len(sources)], 0))
            c.settimeout(10)
            c.connect(("127.0.0.1", port))
            c.sendall(request)
        except OSError:
            c.close()
            continue
        socks.append(c)
    return socks


class Dripper:
    """Sends one more byte on every connection still open, every `every` seconds."""

    def __init__(self, socks, every=1.0):
        self.socks, self.every, self.stop = socks, every, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(self.every):
            for c in self.socks:
                try:
                    c.setblocking(False)
                    c.send(b"x")
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join()
        for c in self.socks:
            c.close()


def normal_client(s, rounds, tag):
    """rounds of (list the sessions, post a batch) on fresh connections; each request's seconds."""
    times = []
    for i in range(rounds):
        t0 = time.monotonic()
        r = s.get("/api/v1/sessions?limit=5", timeout=60)
        times.append(time.monotonic() - t0)
        assert r.status == 200, (tag, i, r.status)
        t0 = time.monotonic()
        r = s.ingest(batch("s-normal", f"{tag}-{i}", [{"k": "lag", "t": 1 + i, "d": 1}]))
        times.append(time.monotonic() - t0)
        assert r.status == 202, (tag, i, r.status, r.body)
    return times


def ms(times):
    t = sorted(times)
    return f"p50 {statistics.median(t) * 1000:.1f} ms, max {t[-1] * 1000:.1f} ms over {len(t)} requests"


def test_a_normal_client_is_served_under_a_slow_drip(make_server):
    """Defect 2: 1,100 connections dripping one header byte a second from 11 addresses (100 each,
    under --max-per-ip) fill more than --max-connections, and 300 more come from one address.
    A normal client on 127.0.0.1 is still served, every request; its latency is printed beside
    a baseline from the same run. The one address keeps at most --max-per-ip connections and the
    server at most --max-connections (the longest-arriving requests make room)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    spread = min(1100, soft - 500)  # this test's own descriptors: the drips, the client, pytest
    one_ip = min(300, max(0, soft - 500 - spread))
    s = make_server("--request-timeout", "600")  # the drips stay for the whole measurement
    base = normal_client(s, 20, "base")
    sources = [f"127.0.0.{i}" for i in range(2, 13)]
    t0 = time.monotonic()
    drips = open_drips(s.port, spread, sources)
    single = open_drips(s.port, one_ip, ["127.0.0.13"])
    opened = time.monotonic() - t0
    dripper = Dripper(drips + single)
    try:
        time.sleep(2)  # the server has accepted (and refused) them all by now
        under = normal_client(s, 20, "under")
        open_spread = sum(not is_closed(c) for c in drips)
        open_single = sum(not is_closed(c) for c in single)
    finally:
        dripper.close()
    print(f"\nslow drip: {len(drips)} connections from {len(sources)} addresses + {len(single)} from one, "
          f"opened in {opened:.1f} s; still open after the normal client: {open_spread} + {open_single} "
          f"(limits: --max-connections 1000, --max-per-ip 128)"
          f"\nnormal client, baseline:      {ms(base)}"
          f"\nnormal client, under attack:  {ms(under)}")
    assert len(drips) == spread  # every drip connection was made (the kernel accepts them)
    assert open_single <= 128
    assert open_spread + open_single <= 1000
    assert s.get_json("/api/v1/sessions/s-normal")["lag"]["samples"] == 40


def wait_closed(conns, limit):
    """{name: seconds on the monotonic clock when the server closed it (None: not within limit)}."""
    closed = {name: None for name in conns}
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit and None in closed.values():
        for name, c in conns.items():
            if closed[name] is None and is_closed(c):
                closed[name] = time.monotonic()
        time.sleep(0.02)
    return closed


def test_request_deadline(make_server):
    """--request-timeout 2: a request whose headers drip, one whose body drips and a kept-alive
    connection left silent after its answer are each closed 2 s after they began (never sooner;
    a generous bound on later), while a request made at a normal pace is served."""
    s = make_server("--request-timeout", "2", "--idle-timeout", "600")
    began = {}
    began["head"] = time.monotonic()
    head = open_drips(s.port, 1, ["127.0.0.1"])[0]
    began["body"] = time.monotonic()
    body = open_drips(s.port, 1, ["127.0.0.1"], b"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")[0]
    kept = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    began["kept"] = time.monotonic()  # the server's clock starts once the answer is sent
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert kept.recv(4096).startswith(b"HTTP/1.1 200")
    dripper = Dripper([head, body], every=0.2)
    try:
        closed = wait_closed({"head": head, "body": body, "kept": kept}, 60)
        assert s.get_json("/healthz")["ok"]  # served meanwhile
    finally:
        dripper.close()
        kept.close()
    after = {name: None if closed[name] is None else round(closed[name] - began[name], 2) for name in began}
    print(f"\n--request-timeout 2: closed after (s) {after}")
    assert all(v is not None and v >= 2 for v in after.values()), after


def test_idle_timeout(make_server):
    s = make_server("--idle-timeout", "1", "--request-timeout", "600")
    t0 = time.monotonic()
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    try:
        closed = wait_closed({"silent": c}, 60)["silent"]
    finally:
        c.close()
    assert closed is not None and closed - t0 >= 1, closed


def test_connection_options_are_checked():
    for args, msg in [(["--max-connections", "0"], "--max-connections takes an integer in [1, 100000]"),
                      (["--max-per-ip", "-1"], "--max-per-ip takes an integer in [0, 100000]"),
                      (["--request-timeout", "soon"], "--request-timeout takes an integer in [1, 86400]"),
                      (["--idle-timeout"], "--idle-timeout needs a value")]:
        r = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
