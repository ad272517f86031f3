"""bench_live.py — what live event streams cost ingest, and how soon a page hears of a batch.

Starts build/server/loopscope-server on a free loopback port (temp db), then:
  1. ingest rate (bench_ingest --url, --no-raw) with no stream open and with N list streams
     (GET /api/v1/events, every batch of every session is an event for each) read by threads,
     alternating for R rounds, and prints the medians and their ratio;
  2. latency from a batch's 202 to the `update` event on the session's stream (median, p90 of
     M batches spaced past the 200 ms pacing).
It measures and prints; it asserts nothing. Usage:
  python3 bench/live/bench_live.py [--streams 16] [--seconds 4] [--rounds 3] [--latency-batches 20]
"""
import argparse
import json
import os
import pathlib
import re
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVER = os.environ.get("LOOPSCOPE_SERVER", str(ROOT / "build" / "server" / "loopscope-server"))
INGEST = os.environ.get("LOOPSCOPE_BENCH_INGEST", str(ROOT / "build" / "bench" / "bench_ingest"))


def start(tmp):
    log = open(os.path.join(tmp, "server.log"), "wb")
    p = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--db", os.path.join(tmp, "live.db"),
                          "--max-streams", "1000", "--max-per-ip", "0"], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", open(log.name).read())
        if m:
            return p, int(m.group(1))
        time.sleep(0.02)
    raise SystemExit("server did not start")


class Reader(threading.Thread):
    """Reads one event stream, counting blocks, and noting when each `update` event arrives."""

    def __init__(self, port, path):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        self.events = 0
        self.updates = []  # monotonic arrival times
        self.stop = False

    def run(self):
        buf = b""
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            now = time.monotonic()
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                self.events += 1
                if b"event: update" in block:
                    self.updates.append(now)

    def close(self):
        self.stop = True
        self.sock.close()


def cpu_seconds(pid):
    """User + system CPU time of process pid so far (/proc/PID/stat fields 14 and 15)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_rate(port, seconds, pid, cpu):
    """events/s of one bench_ingest run; appends the server's CPU µs per 1000 events to cpu (a
    figure that a busy machine disturbs much less than a rate)."""
    c0 = cpu_seconds(pid)
    out = subprocess.run([INGEST, "--url", f"http://127.0.0.1:{port}", "--seconds", str(seconds), "--no-raw"],
                         capture_output=True, text=True).stdout  # exit 3: under its own target
    c1 = cpu_seconds(pid)
    events = int(re.search(r"batches, (\d+) events", out).group(1))
    cpu.append((c1 - c0) * 1e6 / max(1, events) * 1000)
    return float(re.search(r"end-to-end\s+([0-9.]+) events/s", out).group(1))


def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/ingest", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status in (200, 202)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--latency-batches", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start(tmp)
        try:
            # rounds alternate without and with streams: the machine's drift (other jobs, the
            # database growing) falls on both sides alike
            without, with_, events = [], [], 0
            cpu_without, cpu_with = [], []
            pid = proc.pid
            for _ in range(a.rounds):
                without.append(ingest_rate(port, a.seconds, pid, cpu_without))
                readers = [Reader(port, "/api/v1/events") for _ in range(a.streams)]
                for r in readers:
                    r.start()
                time.sleep(0.2)
                with_.append(ingest_rate(port, a.seconds, pid, cpu_with))
                time.sleep(0.5)
                events += sum(r.events for r in readers)
                for r in readers:
                    r.close()
            base, live = statistics.median(without), statistics.median(with_)
            print(f"ingest, no stream open      {base:10.0f} events/s (median of {a.rounds}: "
                  + ", ".join(f"{x:.0f}" for x in without) + ")")
            print(f"ingest, {a.streams:3d} list streams     {live:10.0f} events/s (median of {a.rounds}: "
                  + ", ".join(f"{x:.0f}" for x in with_) + ")")
            print(f"  the streams got {events} events ({events / max(1, a.streams * a.rounds):.0f} per stream "
                  f"in {a.seconds:.0f} s)")
            print(f"ratio with / without streams = {live / base:.2f}")
            cw, cs = statistics.median(cpu_without), statistics.median(cpu_with)
            print(f"server CPU per 1000 events: {cw:.0f} µs without streams, {cs:.0f} µs with "
                  f"(ratio {cs / cw:.2f}; rounds: " + ", ".join(f"{x:.0f}" for x in cpu_without) + " / "
                  + ", ".join(f"{x:.0f}" for x in cpu_with) + ")")

            meta = {"name": "latency", "service": "bench", "pid": 1, "host": "h", "python": "3.12",
                    "started_unix_ns": "1764089000000000000"}
            post(port, {"v": 1, "batch": "l0", "session": "s-latency", "meta": meta,
                        "events": [{"k": "task", "id": 1, "parent": 0, "name": "T", "coro": "c", "t": 0}]})
            r = Reader(port, "/api/v1/sessions/s-latency/events")
            r.start()
            time.sleep(0.3)
            lat = []
            for i in range(a.latency_batches):
                t0 = time.monotonic()
                n = len(r.updates)
                post(port, {"v": 1, "batch": f"l{i + 1}", "session": "s-latency",
                            "events": [{"k": "task", "id": i + 2, "parent": 1, "name": "T", "coro": "c", "t": i + 1}]})
                while len(r.updates) == n and time.monotonic() - t0 < 5:
                    time.sleep(0.0005)
                lat.append((r.updates[n] - t0) * 1000 if len(r.updates) > n else float("nan"))
                time.sleep(0.25)  # past the 200 ms pacing: each batch is heard on its own
            r.close()
            lat.sort()
            print(f"batch POST -> update event: median {statistics.median(lat):.1f} ms, "
                  f"p90 {lat[int(len(lat) * 0.9) - 1]:.1f} ms, max {lat[-1]:.1f} ms ({len(lat)} batches)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
