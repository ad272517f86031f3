"""bench/overhead/bench.py — what loopscope costs an asyncio program, measured, not guessed.

Workloads: async_tree (6 levels x 6 branches with gather), its TaskGroup variant (3.11+) and
eager-task variant (3.12+), and an ASGI request loop (in-process app, ~20 awaits per request,
through LoopscopeMiddleware, one session per request). Modes, interleaved run by run:
  off       loopscope not installed
  on        installed, full capture (every task, step, await), shipping to --server
  disabled  installed with enabled=False
  yappi     yappi in wall-clock mode (if importable)
  viztracer VizTracer(log_async=True) (if importable)
Prints one line per workload: median seconds per mode, the ratio of medians to `off` and (paired)
the median of the per-rep ratios, wall / loop-thread CPU.
    python bench/overhead/bench.py --server http://127.0.0.1:7878 [--reps 7] [--loop uvloop]
                                   [--only async_tree,...] [--modes off,on,disabled]
--loop uvloop runs async_tree and asgi_requests on uvloop (its policy, so asyncio.run makes
uvloop loops), off vs on.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time

import loopscope
from loopscope.asgi import LoopscopeMiddleware

LEVELS, BRANCHES = 6, 6   # levels 0..5: 9331 tasks, 7776 leaves


async def leaf() -> None:
    await asyncio.sleep(0)


async def tree_gather(level: int = 1) -> None:
    if level == LEVELS:
        await leaf()
        return
    await asyncio.gather(*(tree_gather(level + 1) for _ in range(BRANCHES)))


async def tree_group(level: int = 1) -> None:
    if level == LEVELS:
        await leaf()
        return
    async with asyncio.TaskGroup() as tg:
        for _ in range(BRANCHES):
            tg.create_task(tree_group(level + 1))


async def tree_eager() -> None:
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    await tree_gather()


# ---- the ASGI request loop ---------------------------------------------------------------------

async def db_query(n: int) -> int:
    await asyncio.sleep(0)
    return n


async def handler(scope, receive, send) -> None:
    await receive()
    total = 0
    for i in range(12):                               # 12 sequential awaits
        total += await db_query(i)
    rows = await asyncio.gather(*(db_query(i) for i in range(6)))  # 6 concurrent tasks
    total += sum(rows)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(total).encode()})


APP = LoopscopeMiddleware(handler)
REQUESTS = 1500


async def request_loop() -> None:
    scope = {"type": "http", "method": "GET", "path": "/bench", "headers": [], "query_string": b""}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    for _ in range(REQUESTS):
        await asyncio.create_task(APP(dict(scope), receive, send))


# ---- harness -----------------------------------------------------------------------------------

def run_once(workload, mode: str, server: str) -> tuple[float, float]:
    """(wall seconds, loop-thread CPU seconds) of one asyncio.run of workload under mode; setup,
    teardown and the final flush are not timed. CPU time of the loop thread is what the app pays
    and is far less disturbed than wall time by other load on the machine; the sender thread's
    own CPU time is reported apart (sender_cpu) for the "on" mode.

    In the loopscope modes one untimed run comes first, after install(), and its events are
    flushed: the timed run sees the collector as a long-running app does, with its caches filled
    and the store's chunks recycled (the first requests after install() also pay page faults for
    the store's memory: ~2700 per 1500 requests, measured with getrusage)."""
    tracer = None
    if mode in ("on", "disabled"):
        loopscope.install(server=server, enabled=(mode == "on"), max_tasks=1_000_000,
                          buffer_bytes=256 << 20)
        if workload is request_loop or mode == "disabled":
            asyncio.run(workload())
        else:
            with loopscope.session("bench warm-up"):
                asyncio.run(workload())
        loopscope.flush(60)
    gc.collect()
    session = loopscope.session("bench") if (mode == "on" and workload is not request_loop) else None
    if mode == "yappi":
        import yappi
        yappi.set_clock_type("wall")
        yappi.start()
    elif mode == "viztracer":
        from viztracer import VizTracer
        tracer = VizTracer(log_async=True, verbose=0, tracer_entries=5_000_000)
        tracer.start()
    t0 = time.perf_counter()
    c0 = time.thread_time()
    p0 = time.process_time()
    if session is not None:
        with session:
            asyncio.run(workload())
    else:
        asyncio.run(workload())
    took = time.perf_counter() - t0
    cpu = time.thread_time() - c0
    run_once.process_cpu = time.process_time() - p0
    if mode == "yappi":
        import yappi
        yappi.stop()
        yappi.clear_stats()
    elif tracer is not None:
        tracer.stop()
        tracer.clear()
    if mode in ("on", "disabled"):
        if mode == "on" and not loopscope.flush(60):
            print(f"bench: server did not take every event: {loopscope.stats()}", file=sys.stderr)
        loopscope.uninstall(timeout=30)
    return took, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                    help="the event loop asyncio.run makes (uvloop: async_tree and asgi, off vs on)")
    ap.add_argument("--only", help="comma-separated workloads to run (default: all)")
    ap.add_argument("--modes", help="comma-separated modes to run (default: off,on,disabled and the "
                                    "profilers that import); off is always run")
    args = ap.parse_args()
    workloads = [("async_tree", tree_gather)]
    if sys.version_info >= (3, 11) and args.loop == "asyncio":
        workloads.append(("async_tree_taskgroup", tree_group))
    if sys.version_info >= (3, 12) and args.loop == "asyncio":
        workloads.append(("async_tree_eager", tree_eager))
    workloads.append(("asgi_requests", request_loop))
    modes = ["off", "on", "disabled"]
    for name in ("yappi", "viztracer"):
        try:
            __import__(name)
            modes.append(name)
        except ImportError:
            pass
    if args.loop == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        modes = ["off", "on"]
    if args.modes:
        modes = ["off"] + [m for m in args.modes.split(",") if m in modes and m != "off"]
    if args.only:
        workloads = [(n, f) for n, f in workloads if n in args.only.split(",")]
    results = {}
    for wname, fn in workloads:
        run_once(fn, "off", args.server)  # warm-up
        wall = {m: [] for m in modes}
        cpu = {m: [] for m in modes}
        sender = []
        for rep in range(args.reps):
            order = modes if rep % 2 == 0 else list(reversed(modes))  # interleaved, both orders
            for m in order:
                w, c = run_once(fn, m, args.server)
                wall[m].append(w)
                cpu[m].append(c)
                if m == "on":
                    sender.append(run_once.process_cpu - c)
        mw = {m: statistics.median(v) for m, v in wall.items()}
        mc = {m: statistics.median(v) for m, v in cpu.items()}
        # also the median of per-rep ratios: each rep's runs are neighbours in time, so on a
        # loaded machine a pair shares its load where medians taken apart do not
        results[wname] = {m: {"median_s": mw[m], "ratio": mw[m] / mw["off"], "cpu_s": mc[m],
                              "cpu_ratio": mc[m] / mc["off"],
                              "paired": statistics.median(a / b for a, b in zip(wall[m], wall["off"])),
                              "paired_cpu": statistics.median(a / b for a, b in zip(cpu[m], cpu["off"]))}
                          for m in modes}
        results[wname]["on"]["sender_cpu_s"] = statistics.median(sender) if sender else 0.0
    py = "%d.%d" % sys.version_info[:2]
    if args.json:
        print(json.dumps({"python": py, "loop": args.loop, "results": results}))
        return
    for wname, r in results.items():
        cells = "  ".join(f"{m}={r[m]['ratio']:.3f}x/{r[m]['cpu_ratio']:.3f}x (paired {r[m]['paired']:.3f}x/"
                          f"{r[m]['paired_cpu']:.3f}x)" for m in modes if m != "off")
        name = wname if args.loop == "asyncio" else f"{wname} ({args.loop})"
        print(f"{py}  {name:22s} off={r['off']['median_s']*1000:8.1f} ms  {cells}")


if __name__ == "__main__":
    main()
