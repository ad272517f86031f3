"""bench/overhead/ingest_ab.py A_SERVER B_SERVER — what the co-located server spends on a burst of
small sessions (one per web request), two server builds against each other in the same run.

Each round starts A and B in turn (the order alternates round by round) on a fresh database,
drives sessions_burst.py's N in-process requests (one session each, ~60 events) through the real
collector against it, waits until the server has finished with them (its CPU time stops rising:
the figures it computes after answering count too), and reads the server's CPU time from /proc.
Prints each round's µs of server CPU per session, then per build the median, the median split by
the server's threads (named by role: ls-writer, ls-parse, MHD-worker...), the median minor page
faults a session by thread, the database's pages in use a session (free pages and the WAL not
counted: what the sessions take on disk), and the median of the paired ratios B/A with its range.
A figure, not a test: nothing here asserts a time.

    python bench/overhead/ingest_ab.py build-a/server/loopscope-server build/server/loopscope-server \\
        [--python .venvs/py3.13/bin/python] [--pythonpath collector] [--rounds 5] [--requests 3000]
        [--a-burst-args ARGS] [--b-burst-args ARGS]
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import lsbench  # noqa: E402  (a server on a fresh temporary database, /proc CPU times)


def per_thread(pid: int, read) -> dict:
    """{tid: read(that thread's stat file)} of pid's threads now (the server names them by role:
    ls-writer, ls-parse, MHD-worker...); read is lsbench.read_stat (CPU seconds) or
    lsbench.read_faults (minor page faults)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[tid] = read(f"/proc/{pid}/task/{tid}/stat")
        except OSError:  # ended meanwhile
            pass
    return out


def by_role(before: dict, after: dict, total: float | None) -> dict:
    """What threads spent between two per_thread readings, summed by thread name; with the process
    total, what threads that ended in between spent is 'ended threads'."""
    roles: dict = {}
    for tid, (name, spent) in after.items():
        roles[name] = roles.get(name, 0.0) + spent - (before[tid][1] if tid in before else 0.0)
    if total is not None:
        roles["ended threads"] = max(0.0, total - sum(roles.values()))
    return roles


def settled_cpu(pid: int, quiet_s: float = 0.5, limit_s: float = 60.0) -> float:
    """The server's CPU time once it has stayed the same for quiet_s (its deferred work done)."""
    last, since, t_end = lsbench.proc_cpu(pid), time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < t_end:
        time.sleep(0.1)
        now = lsbench.proc_cpu(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def used_bytes(db: str) -> int:
    """Bytes of the database's pages in use (free pages and the WAL not counted), read through a
    read-only connection of its own: what the sessions stored take."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        count, free, size = (con.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
        return (count - free) * size
    finally:
        con.close()


def one(server: str, args, extra: list[str]) -> tuple[float, str, dict, dict, float]:
    """(µs of server CPU per session, the burst's own line, µs per session by thread role, minor
    page faults per session by thread role, database bytes per session) of one burst against a
    fresh server; extra: more arguments for sessions_burst.py (the collector's side of a build)."""
    proc, log, url, tmp = lsbench.start(server, "ingest-ab-")
    try:
        env = dict(os.environ)
        if args.pythonpath:
            env["PYTHONPATH"] = os.path.abspath(args.pythonpath)
        # the burst's own warm-up goes first; the server's CPU is read around the timed burst only
        burst = subprocess.Popen([args.python, os.path.join(HERE, "sessions_burst.py"), "--server", url,
                                  "--requests", str(args.requests), "--ready-file", args.ready, *extra],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        while not os.path.exists(args.ready) and burst.poll() is None:
            time.sleep(0.02)
        c0 = settled_cpu(proc.pid)
        t0, f0 = per_thread(proc.pid, lsbench.read_stat), per_thread(proc.pid, lsbench.read_faults)
        with open(args.ready + ".go", "w"):
            pass
        out, _ = burst.communicate(timeout=600)
        if burst.returncode != 0:
            raise RuntimeError(f"sessions_burst.py failed ({burst.returncode}):\n{out}")
        c1 = settled_cpu(proc.pid)
        roles = by_role(t0, per_thread(proc.pid, lsbench.read_stat), c1 - c0)
        faults = by_role(f0, per_thread(proc.pid, lsbench.read_faults), None)
        line = out.strip().splitlines()[-1]
        if "delivered all" not in line or ", dropped 0," not in line:
            raise RuntimeError(f"not every event reached the server: {line}")
        return ((c1 - c0) / args.requests * 1e6, line, {k: v / args.requests * 1e6 for k, v in roles.items()},
                {k: v / args.requests for k, v in faults.items()}, used_bytes(os.path.join(tmp, "b.db")) / args.requests)
    finally:
        for p in (args.ready, args.ready + ".go"):
            if os.path.exists(p):
                os.unlink(p)
        lsbench.stop(proc, log)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="server binary A (the baseline)")
    ap.add_argument("b", help="server binary B")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs the requests")
    ap.add_argument("--pythonpath", default="", help="where its loopscope is (default: as installed)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3000, help="sessions a burst (one per request)")
    for k in ("a", "b"):
        ap.add_argument(f"--{k}-burst-args", default="", metavar="ARGS",
                        help=f"more arguments for {k.upper()}'s sessions_burst.py, one string split as a shell "
                             "does (e.g. '--batches-per-post 64': the same server, the collector set otherwise)")
    args = ap.parse_args()
    extra = {"A": shlex.split(args.a_burst_args), "B": shlex.split(args.b_burst_args)}
    for b in (args.a, args.b):
        if not os.access(b, os.X_OK):
            ap.error(f"not an executable server: {b}")
    args.ready = os.path.join("/tmp", f"ingest-ab-{os.getpid()}.ready")
    per = {"A": [], "B": []}
    role_runs = {"A": [], "B": []}
    fault_runs = {"A": [], "B": []}
    disk = {"A": [], "B": []}
    ratios = []
    for r in range(args.rounds):
        order = ("A", "B") if r % 2 == 0 else ("B", "A")
        got = {}
        for k in order:
            us, line, roles, faults, nbytes = one(args.a if k == "A" else args.b, args, extra[k])
            got[k] = us
            disk[k].append(nbytes)
            per[k].append(us)
            role_runs[k].append(roles)
            fault_runs[k].append(faults)
            print(f"round {r + 1} {k}: {us:6.1f} us of server CPU a session   ({line.split('sessions: ')[1].split(';')[0]})",
                  flush=True)
        ratios.append(got["B"] / got["A"])
    ma, mb = statistics.median(per["A"]), statistics.median(per["B"])
    print(f"A {args.a}: median {ma:.1f} us/session  ({', '.join(f'{v:.0f}' for v in per['A'])})")
    print(f"B {args.b}: median {mb:.1f} us/session  ({', '.join(f'{v:.0f}' for v in per['B'])})")
    for what, runs, fmt in (("us/session", role_runs, ".0f"), ("page faults/session", fault_runs, ".1f")):
        for k in ("A", "B"):
            names = sorted({n for rr in runs[k] for n in rr}, key=lambda n: -statistics.median(
                rr.get(n, 0.0) for rr in runs[k]))
            print(f"{k} by thread, median {what}: " + ", ".join(
                f"{n} {statistics.median(rr.get(n, 0.0) for rr in runs[k]):{fmt}}" for n in names))
    da, db = statistics.median(disk["A"]), statistics.median(disk["B"])
    print(f"database pages in use a session, median: A {da:.0f} bytes, B {db:.0f} bytes ({db / da:.3f}x)")
    print(f"B/A paired: median {statistics.median(ratios):.3f}x  (range {min(ratios):.3f}-{max(ratios):.3f}, "
          f"{args.rounds} rounds, {args.requests} sessions each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
