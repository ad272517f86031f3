"""bench/overhead/ingest_growth.py SERVER — does the co-located server's cost per session grow with
what it has stored? Retention is off by default, so a server left running beside an app only
grows; if each new session cost more as the database grows, the app would pay more the longer the
server runs (it shares the machine's cores).

One server on a fresh database; ROUNDS bursts of sessions_burst.py's N in-process requests (one
session each, ~60 events, through the real collector; each burst's own warm-up of N sessions goes
first and is not counted, so a round stores 2N sessions). Around each timed burst the server's CPU
is read once it has settled (its deferred work, figures and rollups, counts too), from each
thread's schedstat (nanoseconds; threads that ended in between are not counted: the server's
threads live as long as it does). Prints, a round
a line: the sessions stored before the burst, µs of server CPU per session (and the writer
thread's share), the database's size on disk and the server's resident memory. Ends with the
first rounds' median against the last rounds' (the same run's baseline). A figure, not a test.

    python bench/overhead/ingest_growth.py build/server/loopscope-server \\
        [--python .venvs/py3.13/bin/python] [--pythonpath collector] [--rounds 40] [--requests 3000]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
sys.path.insert(0, HERE)
import lsbench  # noqa: E402  (a server on a fresh temporary database, /proc CPU times)
from ingest_ab import settled_cpu  # noqa: E402


def threads_ns(pid: int) -> dict:
    """{thread name: CPU ns so far} of pid's live threads, from schedstat (nanoseconds, where
    /proc's stat counts 10 ms ticks: a burst of 3,000 sessions is ~15 of them)."""
    out: dict = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except OSError:  # ended meanwhile
            continue
        out[tid] = (name, ns)
    return out


def settled_ns(pid: int, quiet_s: float = 0.5) -> dict:
    """threads_ns once the server's CPU time has stayed the same for quiet_s (its deferred work,
    figures and rollups, done)."""
    settled_cpu(pid, quiet_s)
    return threads_ns(pid)


def spent(before: dict, after: dict) -> tuple[float, float]:
    """(all threads' CPU ns, the writer's) between two threads_ns readings."""
    total = writer = 0.0
    for tid, (name, ns) in after.items():
        d = ns - before.get(tid, (name, 0))[1]
        total += d
        if name == "ls-writer":
            writer += d
    return total, writer


def disk_bytes(d: str) -> int:
    """Bytes the database takes on disk, its WAL and shared-memory files included."""
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("b.db"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server", help="the server binary")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs the requests")
    ap.add_argument("--pythonpath", default="", help="where its loopscope is (default: as installed)")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--requests", type=int, default=3000, help="sessions a timed burst (one per request)")
    ap.add_argument("--server-args", default="", help="more arguments for the server, split on spaces (not "
                    "--log-level: its start is read from the log)")
    args = ap.parse_args()
    if not os.access(args.server, os.X_OK):
        ap.error(f"not an executable server: {args.server}")
    if args.rounds < 4:
        ap.error("--rounds must be at least 4 (the first and last quarter are compared)")
    ready = os.path.join("/tmp", f"ingest-growth-{os.getpid()}.ready")
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = os.path.abspath(args.pythonpath)
    proc, log, url, tmp = lsbench.start(args.server, "ingest-growth-", args.server_args.split())
    per, writer = [], []
    stored = 0
    try:
        print(f"{'round':>5} {'stored':>8} {'us/session':>10} {'writer':>7} {'disk MiB':>9} {'RSS MiB':>8}", flush=True)
        for r in range(args.rounds):
            burst = subprocess.Popen([args.python, os.path.join(HERE, "sessions_burst.py"), "--server", url,
                                      "--requests", str(args.requests), "--ready-file", ready],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            while not os.path.exists(ready) and burst.poll() is None:
                time.sleep(0.02)
            t0 = settled_ns(proc.pid)
            stored += args.requests  # the warm-up's
            before = stored
            with open(ready + ".go", "w"):
                pass
            out, _ = burst.communicate(timeout=600)
            for p in (ready, ready + ".go"):
                if os.path.exists(p):
                    os.unlink(p)
            if burst.returncode != 0:
                raise RuntimeError(f"sessions_burst.py failed ({burst.returncode}):\n{out}")
            line = out.strip().splitlines()[-1]
            if "delivered all" not in line or ", dropped 0," not in line:
                raise RuntimeError(f"not every event reached the server: {line}")
            stored += args.requests
            total, wns = spent(t0, settled_ns(proc.pid))
            us = total / args.requests / 1e3
            w = wns / args.requests / 1e3
            per.append(us)
            writer.append(w)
            print(f"{r + 1:5d} {before:8d} {us:10.1f} {w:7.1f} {disk_bytes(tmp) / 2**20:9.1f} "
                  f"{rss_kib(proc.pid) / 1024:8.1f}", flush=True)
    finally:
        lsbench.stop(proc, log)
        shutil.rmtree(tmp, ignore_errors=True)
    q = max(1, args.rounds // 4)
    first, last = statistics.median(per[:q]), statistics.median(per[-q:])
    wf, wl = statistics.median(writer[:q]), statistics.median(writer[-q:])
    print(f"first {q} rounds median {first:.1f} us/session (writer {wf:.1f}); last {q} rounds "
          f"{last:.1f} (writer {wl:.1f}): last/first {last / first:.3f}x (writer {wl / wf:.3f}x), "
          f"{stored} sessions stored in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
