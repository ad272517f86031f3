"""common.py — what load.py and crash.py share: starting the real loopscope-server, a small
asyncio HTTP/1.1 keep-alive client (no third-party packages), ingest batches with unique ids,
the database check (acknowledged = stored, integrity_check) and process sampling.

Everything is measured from the client side on the same machine as the server, so on a 2-core
box the latencies include the client's own scheduling."""
import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BINARY = os.path.join(ROOT, "build", "server", "loopscope-server")


class Server:
    """One loopscope-server process on 127.0.0.1:<any free port> (--listen 127.0.0.1:0)."""

    def __init__(self, binary, db, args=(), log_path=None):
        self.binary, self.db, self.args = binary, db, list(args)
        self.log_path = log_path or db + ".log"
        self.proc = None
        self.port = None

    def start(self, timeout=15.0):
        log = open(self.log_path, "ab")
        offset = log.tell()
        self.proc = subprocess.Popen([self.binary, "--listen", "127.0.0.1:0", "--db", self.db] + self.args,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)/", f.read())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            time.sleep(0.02)
        raise RuntimeError(f"server did not start; see {self.log_path}")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def rss_bytes(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return -1


def file_size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port):
        self.port = port
        self.r = self.w = None

    async def open(self):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)

    def close(self):
        if self.w:
            self.w.close()
        self.r = self.w = None

    async def request(self, method, path, body=b"", headers=()):
        """(status, headers dict, body); raises on a broken connection (the caller reopens)."""
        if self.w is None:
            await self.open()
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        head += list(headers)
        if body or method in ("POST", "PUT"):
            head.append(f"Content-Length: {len(body)}")
        self.w.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.w.drain()
        status_line = await self.r.readline()
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        hdrs = {}
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            data = await self.r.readexactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                n = int((await self.r.readline()).split(b";")[0], 16)
                if n == 0:
                    await self.r.readline()
                    break
                parts.append(await self.r.readexactly(n))
                await self.r.readline()
            data = b"".join(parts)
        else:
            data = b""
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, data


def batch_body(session, batch_id, seq, events):
    """An ingest-v1 batch of `events` events: one task, then steps, awaits and a lag sample, all
    at times that depend on `seq` so batches of one session do not repeat (t, task) keys."""
    base = seq * 10_000_000
    ev = [{"k": "task", "id": seq + 1, "parent": 0, "name": f"Task-{seq + 1}", "coro": "bench.load.work", "t": base}]
    i = 0
    while len(ev) < events - 1:
        t = base + 1000 + i * 20_000
        if i % 4 == 3:
            ev.append({"k": "await", "id": seq + 1, "t": t, "d": 15_000, "what": "asyncio.sleep",
                       "file": "bench/load.py", "line": 10 + i % 7, "func": "work"})
        else:
            ev.append({"k": "step", "id": seq + 1, "t": t, "d": 5000})
        i += 1
    ev.append({"k": "lag", "t": base + 500, "d": 100_000 + seq % 1000})
    b = {"v": 1, "batch": batch_id, "session": session, "events": ev}
    if seq == 0:
        b["meta"] = {"name": f"GET /load/{session}", "service": "bench", "pid": 1, "host": "bench"}
    return json.dumps(b, separators=(",", ":")).encode()


def check_db(db, acknowledged):
    """Opens the database after the server stopped (or was killed: SQLite recovers the WAL) and
    compares it with the set of acknowledged (session, batch) pairs. Returns a dict."""
    con = sqlite3.connect(db)
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    stored = set(con.execute("SELECT s.id, b.batch FROM batches b JOIN sessions s USING (sid)"))
    con.close()
    return {"integrity": integrity, "stored": len(stored), "acknowledged": len(acknowledged),
            "lost": sorted(acknowledged - stored)[:10], "lost_count": len(acknowledged - stored),
            "stored_not_acknowledged": len(stored - acknowledged)}


def pct(values, p):
    """Nearest-rank percentile in milliseconds of a list of seconds."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k] * 1000.0
