"""bench/overhead/profile_run.py — one workload of bench.py under a profiler, loopscope off or on.

Shared by callgrind.sh (instruction counts, simulated caches) and perfclock.sh (where the loop
thread's real time goes, sampled by perf's cpu-clock). Not run by hand as a rule:
    profile_run.py MODE N WORKLOAD SERVER_URL
MODE off|on; N runs of WORKLOAD (tree | taskgroup | asgi | asgi_heavy | asgi_trivial | litestar).
'on' installs loopscope with full capture and runs the trees in a session each (the asgi loops and
litestar: a session per request, the middleware's). Environment:
  LS_CG_LOOP=uvloop   run on uvloop
  LS_CG_SAMPLE_MS     the lag sampling period (default 10)
  LS_CG_SENDER_IDLE=1 the sender sleeps through the runs (flush_interval_ms 600000; the flushes
                      still send): under valgrind all threads share one simulated cache, so the
                      sender's encoding would count as the loop thread's misses
  LS_CG_TIMED=1       a warm-up run, a flush, then one run between two os.getpgrp() calls
                      (callgrind.sh dumps its profile there)
  LS_PERF_CTL=FIFO    a warm-up run and a flush, then "enable" written to FIFO (perf record's
                      --control), the N runs, "disable": only those are sampled
Prints "elapsed SECONDS cpu SECONDS" of the N runs (wall, and the loop thread's CPU time; not in
the LS_CG_TIMED mode); LS_PERF_CTL's mode then flushes and uninstalls, the plain one does not
(callgrind.sh counts start-up to exit).
"""
import asyncio
import gc
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import loopscope  # noqa: E402

warnings.simplefilter("ignore")
if os.environ.get("LS_CG_LOOP") == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
mode, n, wl, server = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
fn = {"tree": bench.tree_gather, "taskgroup": bench.tree_group, "asgi": bench.request_loop,
      "asgi_heavy": bench.request_loop_heavy, "asgi_trivial": bench.request_loop_trivial,
      "litestar": bench.litestar_loop}[wl]
if wl == "litestar":
    bench.LITESTAR_APP = bench.make_litestar()
    if bench.LITESTAR_APP is None:
        sys.exit("profile_run.py: litestar does not import in " + sys.executable)
if mode == "on":
    loopscope.install(server=server, max_tasks=10**6, buffer_bytes=256 << 20,
                      sample_rate_ms=float(os.environ.get("LS_CG_SAMPLE_MS", "10")),
                      **({"flush_interval_ms": 600_000} if os.environ.get("LS_CG_SENDER_IDLE") == "1" else {}))


def one(name):
    if mode == "on" and fn not in bench.PER_REQUEST:
        with loopscope.session(name):
            asyncio.run(fn())
    else:
        asyncio.run(fn())


def warm_up():
    one("warm")
    if mode == "on":
        loopscope.flush(600)
    gc.collect()


def finish():
    if mode == "on":
        loopscope.flush(600)
        loopscope.uninstall(timeout=60)


if os.environ.get("LS_CG_TIMED") == "1":
    warm_up()
    os.getpgrp()  # dump: start-up, install, warm-up run
    one("bench")
    os.getpgrp()  # dump: the timed run
    finish()
    sys.exit(0)
ctl = os.environ.get("LS_PERF_CTL")
if ctl:
    warm_up()
    with open(ctl, "w") as f:
        f.write("enable\n")
t0, c0 = time.perf_counter(), time.thread_time()
for _ in range(n):
    one("profile")
elapsed, cpu = time.perf_counter() - t0, time.thread_time() - c0
if ctl:
    with open(ctl, "w") as f:
        f.write("disable\n")
print("elapsed", elapsed, "cpu", cpu)
if ctl:
    finish()
