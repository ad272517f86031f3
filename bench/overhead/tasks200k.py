"""bench/overhead/tasks200k.py — does the sender keep up with a task-heavy program? 200,000 tasks
(400 gathers of 500 tasks, each task one await) recorded under full capture in one session, with
the default buffer (buffer_bytes 16 MiB), shipped to --server. Prints the events recorded and
dropped, how long the run and the final flush took, the events per second the sender encoded and
posted (events / (run + flush)), and the CPU seconds of the threads other than the loop's (the
sender; the watchdog sleeps); with --server-pid also the server's CPU seconds over the same time
(from /proc: what ingesting the events cost the same machine). A figure, not a test: no assertion.
    python bench/overhead/tasks200k.py --server http://127.0.0.1:7878 [--tasks 200000] [--server-pid PID]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

import loopscope
from sessions_burst import proc_cpu

GATHER = 500


async def one(i: int) -> int:
    await asyncio.sleep(0)
    return i


async def main(n: int) -> int:
    total = 0
    for start in range(0, n, GATHER):
        total += sum(await asyncio.gather(*(one(i) for i in range(start, min(n, start + GATHER)))))
    return total


def run() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--server-pid", type=int, default=0)
    args = ap.parse_args()
    loopscope.install(server=args.server, max_tasks=10 * args.tasks)  # full capture, default buffer
    try:
        t0 = time.perf_counter()
        c0, p0, s0 = time.thread_time(), time.process_time(), proc_cpu(args.server_pid)
        with loopscope.session("tasks200k"):
            asyncio.run(main(args.tasks))
        t_run = time.perf_counter() - t0
        delivered = loopscope.flush(120)
        t_all = time.perf_counter() - t0
        loop_cpu = time.thread_time() - c0
        other_cpu = time.process_time() - p0 - loop_cpu
        server_cpu = proc_cpu(args.server_pid) - s0
        st = loopscope.stats()
    finally:
        loopscope.uninstall(timeout=30)
    py = "%d.%d" % sys.version_info[:2]
    print(f"{py}  {args.tasks} tasks: {st['events']} events, dropped {st['dropped']}, "
          f"delivered {'all' if delivered else 'NOT all'} in {st['batches_sent']} batches; run {t_run:.2f} s "
          f"+ flush {t_all - t_run:.2f} s; sender {st['events'] / t_all:,.0f} events/s, "
          f"sender CPU {other_cpu:.2f} s ({other_cpu / t_all * 100:.0f}% of a core; loop thread {loop_cpu:.2f} s)"
          + (f"; server CPU {server_cpu:.2f} s ({server_cpu / max(1, st['events']) * 1e6:.1f} us/event)"
             if args.server_pid else ""))


if __name__ == "__main__":
    run()
