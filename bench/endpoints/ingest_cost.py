#!/usr/bin/env python3
"""bench/endpoints/ingest_cost.py — what the endpoint rollups (schema 7) cost ingest: posts the
same small request sessions (bench_endpoints.py's generator: one batch of ~15 events each) to two
server binaries in turn (--before, --after), each on a fresh database, several rounds alternating,
and prints per binary the wall-clock sessions/s and the server's CPU time per session (user + sys
from /proc, the writer's housekeeping included: rollup rebuilds happen there), then the ratios.
CPU per session is the steadier figure on a shared machine. Measures and prints; asserts nothing."""
import argparse
import pathlib
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "query"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
from bench_endpoints import request_batch  # noqa: E402
import lsbench  # noqa: E402  (/proc CPU times)
from bench_query import free_port, post_bodies, wait_healthy  # noqa: E402


def one_run(server, bodies, connections, settle):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ls-bench-ingest-cost-"))
    port = free_port()
    log = tmp / "server.log"
    proc = subprocess.Popen([server, "--listen", f"127.0.0.1:{port}", "--db", str(tmp / "b.db")],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_healthy("127.0.0.1", port, proc, log)
        c0 = lsbench.proc_cpu(proc.pid)
        t = post_bodies("127.0.0.1", port, bodies, connections, {"Content-Type": "application/json"})
        time.sleep(settle)  # the idle housekeeping: the newest block's rebuild (after) or nothing
        cpu = lsbench.proc_cpu(proc.pid) - c0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    return len(bodies) / t, cpu / len(bodies) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", required=True, help="server binary without the rollups")
    ap.add_argument("--after", required=True, help="server binary with them")
    ap.add_argument("--sessions", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--settle", type=float, default=2.0)
    a = ap.parse_args()
    rng = random.Random(11)
    bodies = [request_batch(i, rng) for i in range(a.sessions)]
    res = {"before": [], "after": []}
    for r in range(a.rounds):
        for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
            rate, us = one_run(getattr(a, name), bodies, a.connections, a.settle)
            res[name].append((rate, us))
            print(f"round {r + 1} {name:<6}: {rate:8,.0f} sessions/s  {us:7.1f} µs server CPU per session")
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for k, v in res.items()}
    print(f"\nmedian of {a.rounds}, {a.sessions:,} sessions each:")
    for k in ("before", "after"):
        print(f"  {k:<6}: {med[k][0]:8,.0f} sessions/s  {med[k][1]:7.1f} µs server CPU per session")
    print(f"  after/before: sessions/s x{med['after'][0] / med['before'][0]:.3f}, "
          f"CPU per session x{med['after'][1] / med['before'][1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
