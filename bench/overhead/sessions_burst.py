"""bench/overhead/sessions_burst.py — what a burst of small sessions costs to ship: N in-process
requests through LoopscopeMiddleware (bench.py's light request: ~20 awaits, 7 tasks, one session
each) as fast as the loop runs them, then a flush. Prints the sessions, events and dropped, the
POSTs the sender made (several sessions' batches per POST since multi-batch bodies; one per
session with --batches-per-post 1, the same-run baseline), the time the run and the flush took,
the CPU time of the sender (the process's threads other than the loop's) and, with --server-pid,
of the server (from /proc), each per session. A figure, not a test.
    python bench/overhead/sessions_burst.py --server URL [--server-pid PID] [--requests 5000]
        [--batches-per-post N] [--ready-file FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import bench  # noqa: E402  (the request loop and its app)
import loopscope  # noqa: E402
import lsbench  # noqa: E402  (/proc CPU times)


def proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) process pid has used so far, 0.0 without a pid."""
    return lsbench.proc_cpu(pid) if pid else 0.0


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--server-pid", type=int, default=0)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--ready-file", default="",
                    help="after the warm-up, create this file and wait for FILE.go before the burst "
                         "(ingest_ab.py reads the server's CPU in between)")
    ap.add_argument("--batches-per-post", type=int, default=0,
                    help="the collector's batches_per_post (1: one POST per session, as before; default: its own)")
    args = ap.parse_args()
    bench.REQUESTS = args.requests
    kw = {"batches_per_post": args.batches_per_post} if args.batches_per_post else {}
    loopscope.install(server=args.server, **kw)
    try:
        asyncio.run(bench.request_loop())  # warm-up, shipped before the timed burst starts
        loopscope.flush(120)
        if args.ready_file:
            open(args.ready_file, "w").close()
            while not os.path.exists(args.ready_file + ".go"):
                time.sleep(0.02)
        st0 = loopscope.stats()
        s0 = proc_cpu(args.server_pid)
        t0 = time.perf_counter()
        c0, p0 = time.thread_time(), time.process_time()
        asyncio.run(bench.request_loop())
        t_run = time.perf_counter() - t0
        delivered = loopscope.flush(120)
        t_all = time.perf_counter() - t0
        loop_cpu = time.thread_time() - c0
        sender_cpu = time.process_time() - p0 - loop_cpu
        server_cpu = proc_cpu(args.server_pid) - s0
        st = loopscope.stats()
    finally:
        loopscope.uninstall(timeout=30)
    n = args.requests
    # POSTs answered 2xx; a collector from before multi-batch bodies has no posts_sent: one per batch
    key = "posts_sent" if "posts_sent" in st else "batches_sent"
    posts = st[key] - st0[key]
    py = "%d.%d" % sys.version_info[:2]
    server = f", server CPU {server_cpu:.2f} s ({server_cpu / n * 1e6:.0f} us/session)" if args.server_pid else ""
    print(f"{py}  {n} sessions: {st['events'] - st0['events']} events, dropped {st['dropped'] - st0['dropped']}, "
          f"{posts} POSTs ({posts / n:.3f}/session), delivered {'all' if delivered else 'NOT all'}; "
          f"run {t_run:.2f} s + flush {t_all - t_run:.2f} s; loop thread {loop_cpu:.2f} s; sender CPU "
          f"{sender_cpu:.2f} s ({sender_cpu / n * 1e6:.0f} us/session){server}")


if __name__ == "__main__":
    run()
