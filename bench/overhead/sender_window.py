"""bench/overhead/sender_window.py --server URL [--runs N] — how much of the sender's work falls
inside a timed run of bench.py's light request loop, and how much comes after it, at the flush.

bench.py times one run of 1,500 requests (75-180 ms on the machines of 2026-12); the sender wakes
every flush_interval_ms (200 ms by default) unless a flush or a filling buffer kicks it, and paces
its POSTs while sessions keep closing. So a timed run may see no POST at all, and its wall ratio
then carries none of the sender's steady-state work, which a long-running app pays all the time on
the core the co-located server needs too. This prints, per run: the sender's CPU (process CPU less
the loop thread's) and the POSTs made during the run, then the same for the flush after it, and the
sender's CPU a session over both. A figure, not a test: nothing here asserts a time.

    .venvs/py3.13/bin/python bench/overhead/sender_window.py --server http://127.0.0.1:7878
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the workload, as bench.py times it)

import loopscope  # noqa: E402


def posts() -> int:
    return loopscope.stats().get("posts_sent", 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", required=True, help="a running loopscope-server's URL")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    loopscope.install(server=args.server)
    asyncio.run(bench.request_loop())  # warm-up, as bench.py's 'on' mode does
    loopscope.flush(60)
    for r in range(args.runs):
        s0 = loopscope.stats().get("batches_sent", 0)
        p0, c0, q0 = time.process_time(), time.thread_time(), posts()
        t0 = time.perf_counter()
        asyncio.run(bench.request_loop())
        took = time.perf_counter() - t0
        in_run = (time.process_time() - p0) - (time.thread_time() - c0)
        q1 = posts()
        p1 = time.process_time()
        ok = loopscope.flush(60)
        at_flush = time.process_time() - p1
        sessions = loopscope.stats().get("batches_sent", 0) - s0
        per = (in_run + at_flush) / sessions * 1e6 if sessions else 0.0
        print(f"run {r + 1}: {took * 1000:6.1f} ms; sender during the run {in_run * 1000:5.1f} ms CPU, "
              f"{q1 - q0} POSTs; at the flush after it {at_flush * 1000:5.1f} ms CPU, {posts() - q1} POSTs; "
              f"{sessions} sessions, {per:.1f} us of sender CPU a session{'' if ok else ' (flush timed out)'}")
    st = loopscope.stats()
    print(f"sessions sent in all: {st.get('batches_sent', 0)}, dropped {st.get('dropped', 0)}")
    loopscope.uninstall(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
