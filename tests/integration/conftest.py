"""conftest.py — starts the real loopscope-server binary for the integration tests.

Each Server runs the built binary (path in $LOOPSCOPE_SERVER, set by ctest) on a free loopback
port (--listen 127.0.0.1:0, the bound port read from its log line) with a database in a temporary
directory. Stopping sends SIGTERM and checks the clean exit, so coverage data gets written.
"""
import gzip
import http.client
import json
import os
import re
import signal
import subprocess
import time

import pytest

BINARY = os.environ.get("LOOPSCOPE_SERVER", "")
# e.g. "valgrind --error-exitcode=1 --leak-check=full": every server runs under it
WRAPPER = os.environ.get("LOOPSCOPE_SERVER_WRAPPER", "").split()
SLOW = 10.0 if WRAPPER else 1.0


def wait_for(pred, timeout=30.0, what="condition", interval=0.05):
    """Polls pred until it returns something true and returns that; fails the test after
    `timeout` seconds (scaled by SLOW under a wrapper)."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    v = pred()
    assert v, f"timed out after {timeout * SLOW:.0f} s waiting for {what}"
    return v


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        body = self.body
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return json.loads(body)

    def header(self, name):
        return self.headers.get(name.lower())


class Server:
    def __init__(self, tmp_path, *args, db=None, env=None):
        self.tmp = tmp_path
        self.db = db or str(tmp_path / "loopscope.db")
        self.args = list(args)
        self.env = env
        self.proc = None
        self.port = None
        self.log_path = None

    def start(self, timeout=10.0):
        assert BINARY and os.path.exists(BINARY), "set LOOPSCOPE_SERVER to the built binary"
        self.log_path = str(self.tmp / f"server-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "wb")
        cmd = WRAPPER + [BINARY, "--listen", "127.0.0.1:0", "--db", self.db] + self.args
        timeout *= SLOW
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", self.read_log())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise AssertionError("server exited early:\n" + self.read_log())
            time.sleep(0.02)
        raise AssertionError("server did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout=30.0):
        """SIGTERM, and the exit must be clean (0)."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout * SLOW)
        self.proc = None
        self.log.close()
        return rc

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.log.close()

    def request(self, method, path, body=None, headers=None, timeout=30.0):
        """One request on a connection of its own; `timeout` is scaled by SLOW under a wrapper
        (valgrind builds a 60k-task tree in ~40 s where the plain binary takes 0.3 s)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def get_json(self, path, status=200, **kw):
        r = self.get(path, **kw)
        assert r.status == status, (path, r.status, r.body[:500])
        return r.json()

    def ingest(self, batch, headers=None, raw=None, timeout=30.0):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        body = raw if raw is not None else json.dumps(batch).encode()
        return self.request("POST", "/api/v1/ingest", body=body, headers=h, timeout=timeout)

    def metrics(self, headers=None):
        r = self.get("/metrics", headers=headers)
        assert r.status == 200
        out = {}
        for line in r.body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out


@pytest.fixture
def make_server(tmp_path):
    servers = []

    def make(*args, **kw):
        s = Server(tmp_path, *args, **kw)
        servers.append(s)
        return s.start()

    yield make
    for s in servers:
        if s.proc is not None:
            rc = s.stop()
            assert rc == 0, s.read_log()


@pytest.fixture
def server(make_server):
    return make_server()
