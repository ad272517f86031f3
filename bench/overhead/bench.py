"""bench/overhead/bench.py — what loopscope costs an asyncio program, measured, not guessed.

Workloads: async_tree (6 levels x 6 branches with gather), its TaskGroup variant (3.11+) and
eager-task variant (3.12+), an ASGI request loop (in-process app, ~20 awaits per request,
through LoopscopeMiddleware, one session per request), the same with 36 more awaits per request
(asgi_requests_heavy: the difference of the two gives the fixed cost per request and the cost per
recorded step in ns, printed as `cost`), asgi_requests_trivial (no task or await of its own: the
fixed cost per request measured directly), asgi_requests_long (only when named in --only: the
light loop LONG_ROUNDS times in one timed run, ~1 s, so that the sender's periodic POSTs and the
co-located server's work on them fall inside the window the wall clock measures, as in a
long-running app; a 1,500-request run is shorter than the sender's 200 ms period and sees none of
it: sender_window.py), and where Litestar imports a Litestar app (routing, path
parameters, JSON request and response bodies, a few awaits and a gather) driven in-process the
same way (litestar_requests). Modes, interleaved run by run:
  off       loopscope not installed
  on        installed, full capture (every task, step, await), shipping to --server
  disabled  installed with enabled=False
  yappi     yappi in wall-clock mode (if importable)
  viztracer VizTracer(log_async=True) (if importable)
  off2      off again, only when named in --modes: an A/A control, its ratios to off are the
            noise of this very run
  sampled   on, with request_fraction --fraction (default 0.1): LoopscopeMiddleware records that
            share of requests, the rest pass through; only when named in --modes (the workloads
            that are not requests are recorded whole, as in on)
Prints one line per workload: median seconds per mode, the ratio of medians to `off` and (paired)
the median of the per-rep ratios, wall / loop-thread CPU.
    python bench/overhead/bench.py --server http://127.0.0.1:7878 [--reps 7] [--loop uvloop]
                                   [--only async_tree,...] [--modes off,on,disabled]
--pin CPU keeps the loop thread on that CPU during each timed run (the collector's threads, started
before, keep every core).
--sender-idle keeps the sender thread asleep during the timed runs (a diagnostic: what its work
beside the loop costs the loop thread).
--flush-interval-ms MS sets how often the sender wakes in 'on' (what a shorter period does to the
store's memory in flight, and so to the loop thread's cache misses).
--offline runs 'on' with the collector offline: the sender encodes every batch as usual and posts
none, so no server works beside the app (a diagnostic: the app's cost with the server on another
machine, against the same run's 'off').
--loop uvloop runs async_tree and asgi_requests on uvloop (its policy, so asyncio.run makes
uvloop loops), off vs on.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
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


SEQ_LIGHT, SEQ_HEAVY = 12, 48  # sequential awaits per request: asgi_requests, asgi_requests_heavy


async def handler(scope, receive, send, seq: int = SEQ_LIGHT) -> None:
    await receive()
    total = 0
    for i in range(seq):                              # 12 sequential awaits (48: heavy)
        total += await db_query(i)
    rows = await asyncio.gather(*(db_query(i) for i in range(6)))  # 6 concurrent tasks
    total += sum(rows)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(total).encode()})


async def handler_heavy(scope, receive, send) -> None:
    await handler(scope, receive, send, SEQ_HEAVY)


async def handler_trivial(scope, receive, send) -> None:
    """No task and no await of its own: what loopscope adds to it is the fixed cost of a request
    (the middleware, the session's open and close, the request's task), measured directly."""
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


APP = LoopscopeMiddleware(handler)
APP_HEAVY = LoopscopeMiddleware(handler_heavy)
APP_TRIVIAL = LoopscopeMiddleware(handler_trivial)
REQUESTS = 1500


async def _requests(app) -> None:
    scope = {"type": "http", "method": "GET", "path": "/bench", "headers": [], "query_string": b""}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    for _ in range(REQUESTS):
        await asyncio.create_task(app(dict(scope), receive, send))


async def request_loop() -> None:
    await _requests(APP)


LONG_ROUNDS = 12  # asgi_requests_long: 18,000 requests a run, several of the sender's periods


async def request_loop_long() -> None:
    for _ in range(LONG_ROUNDS):
        await _requests(APP)


async def request_loop_heavy() -> None:
    await _requests(APP_HEAVY)


async def request_loop_trivial() -> None:
    await _requests(APP_TRIVIAL)


# ---- a realistic app: Litestar, driven in-process ------------------------------------------------

def make_litestar():
    """A Litestar app in LoopscopeMiddleware: a GET with a path parameter (one await and a gather
    of two tasks, a JSON response) and a POST with a JSON body (one await); None without Litestar."""
    try:
        from litestar import Litestar, get, post
    except ImportError:
        return None

    async def db(n: int) -> int:
        await asyncio.sleep(0)
        return n

    @get("/users/{user_id:int}")
    async def get_user(user_id: int) -> dict:
        a = await db(user_id)
        b, c = await asyncio.gather(db(1), db(2))
        return {"id": a, "name": f"user{a}", "friends": [b, c]}

    @post("/orders")
    async def create_order(data: dict) -> dict:
        await db(1)
        return {"ok": True, "items": len(data.get("items", []))}

    return LoopscopeMiddleware(Litestar([get_user, create_order], debug=False))


LITESTAR_APP = None


async def litestar_loop() -> None:
    """REQUESTS requests, alternately GET /users/{id} and POST /orders with a JSON body."""
    body = json.dumps({"items": [1, 2, 3], "note": "bench"}).encode()
    base = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
            "root_path": "", "query_string": b"", "server": ("bench", 80), "client": ("127.0.0.1", 1)}
    get_headers = [(b"host", b"bench")]
    post_headers = [(b"host", b"bench"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]

    async def receive_get():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def receive_post():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        pass

    for i in range(REQUESTS):
        if i % 2:
            scope = dict(base, method="POST", path="/orders", raw_path=b"/orders", headers=post_headers)
            await asyncio.create_task(LITESTAR_APP(scope, receive_post, send))
        else:
            path = f"/users/{i}"
            scope = dict(base, method="GET", path=path, raw_path=path.encode(), headers=get_headers)
            await asyncio.create_task(LITESTAR_APP(scope, receive_get, send))


# ---- harness -----------------------------------------------------------------------------------

def server_idle(limit_s: float = 60.0) -> None:
    """Waits until the co-located server (--server-pid) has used no CPU for 0.3 s: after a
    session ends, the server computes its figures and stores its sort keys (a session of 50k
    events: about a second of one core). Done during the next timed run, that work shared the
    machine with it, and whether it did depended on the order of the modes: measured on the
    2-core development machine, the same async_tree run took 117-295 ms with the server's work
    overlapping, 113-131 ms without. A server that is never idle (other clients) is waited for
    limit_s at most."""
    if not SERVER_PID:
        return
    def cpu_ticks() -> int:
        with open(f"/proc/{SERVER_PID}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    deadline = time.monotonic() + limit_s
    last, quiet = cpu_ticks(), 0
    while quiet < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu_ticks()
        quiet = quiet + 1 if now == last else 0
        last = now


def p10(xs: list[float]) -> float:
    """The 10th percentile (nearest rank, the same as abstat.py's)."""
    xs = sorted(xs)
    return xs[int(0.1 * (len(xs) - 1))]


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
    if mode in ("on", "disabled", "sampled"):
        # --sender-idle: the sender thread sleeps through the timed run (its flush comes after):
        # tells what the sender's work beside the loop costs the loop thread
        extra = {}
        if SENDER_IDLE:
            extra["flush_interval_ms"] = 600_000
        elif FLUSH_MS:  # --flush-interval-ms: how often the sender wakes
            extra["flush_interval_ms"] = FLUSH_MS
        if OFFLINE:  # --offline: batches encoded and counted as delivered, none posted
            extra["offline"] = True
        if mode == "sampled":
            extra["request_fraction"] = FRACTION
        loopscope.install(server=server, enabled=(mode != "disabled"), max_tasks=1_000_000,
                          buffer_bytes=256 << 20, **extra)
        if workload in PER_REQUEST or mode == "disabled":
            asyncio.run(workload())
        else:
            with loopscope.session("bench warm-up"):
                asyncio.run(workload())
        loopscope.flush(60)
    gc.collect()
    server_idle()
    session = loopscope.session("bench") if (mode in ("on", "sampled") and workload not in PER_REQUEST) else None
    if PIN is not None:
        # this thread only (Linux: pid 0 is the calling thread), after install(): the sender and
        # watchdog threads it started keep every core, the loop thread stays on one
        os.sched_setaffinity(0, {PIN})
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
    if PIN is not None:
        os.sched_setaffinity(0, ALL_CPUS)
    if mode == "yappi":
        import yappi
        yappi.stop()
        yappi.clear_stats()
    elif tracer is not None:
        tracer.stop()
        tracer.clear()
    if mode in ("on", "disabled", "sampled"):
        if mode != "disabled" and not loopscope.flush(60):
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
    ap.add_argument("--server-pid", type=int, default=0,
                    help="the server's process id, when it runs on this machine: each timed run waits "
                         "until it is idle (its figures for the last session are done)")
    ap.add_argument("--verbose", action="store_true", help="print every timed run to stderr")
    ap.add_argument("--sender-idle", action="store_true",
                    help="'on' without the sender's work during the timed runs (a diagnostic)")
    ap.add_argument("--offline", action="store_true",
                    help="'on' with the collector offline: batches encoded, none posted, no server "
                         "working beside the app (a diagnostic)")
    ap.add_argument("--flush-interval-ms", type=int, default=0, metavar="MS",
                    help="'on' with the sender waking every MS ms (the collector's flush_interval_ms; "
                         "default: its own, 200)")
    ap.add_argument("--modes", help="comma-separated modes to run (default: off,on,disabled and the "
                                    "profilers that import); off is always run; off2 is off again, "
                                    "an A/A control: its ratio to off is the noise of this run")
    ap.add_argument("--fraction", type=float, default=0.1, metavar="F",
                    help="the 'sampled' mode's request_fraction, 0 to 1 (default 0.1)")
    ap.add_argument("--pin", type=int, metavar="CPU",
                    help="run the loop thread on this CPU during each timed run (the collector's "
                         "threads and the server elsewhere)")
    args = ap.parse_args()
    if args.sender_idle and args.flush_interval_ms:
        ap.error("--sender-idle and --flush-interval-ms both set how often the sender wakes: give one")
    if args.flush_interval_ms < 0:
        ap.error("--flush-interval-ms takes a positive number of milliseconds")
    if not 0 <= args.fraction <= 1:
        ap.error("--fraction is a share of requests, from 0 to 1")
    global SENDER_IDLE, OFFLINE, FLUSH_MS, SERVER_PID, PIN, FRACTION
    FRACTION = args.fraction
    SENDER_IDLE = args.sender_idle
    OFFLINE = args.offline
    FLUSH_MS = args.flush_interval_ms
    SERVER_PID = args.server_pid
    PIN = args.pin
    workloads = [("async_tree", tree_gather)]
    if sys.version_info >= (3, 11) and args.loop == "asyncio":
        workloads.append(("async_tree_taskgroup", tree_group))
    if sys.version_info >= (3, 12) and args.loop == "asyncio":
        workloads.append(("async_tree_eager", tree_eager))
    workloads.append(("asgi_requests", request_loop))
    workloads.append(("asgi_requests_heavy", request_loop_heavy))
    workloads.append(("asgi_requests_trivial", request_loop_trivial))
    if args.only and "asgi_requests_long" in args.only.split(","):
        workloads.append(("asgi_requests_long", request_loop_long))
    global LITESTAR_APP
    LITESTAR_APP = make_litestar() if args.loop == "asyncio" else None
    if LITESTAR_APP is not None:
        workloads.append(("litestar_requests", litestar_loop))
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
        modes = ["off"] + [m for m in args.modes.split(",") if (m in modes or m in ("off2", "sampled")) and m != "off"]
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
                if args.verbose:
                    print(f"{wname} rep {rep} {m:9s} wall {w * 1000:8.2f} ms  loop-thread cpu {c * 1000:8.2f} ms",
                          file=sys.stderr)
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
                              "paired_cpu": statistics.median(a / b for a, b in zip(cpu[m], cpu["off"])),
                              # the fastest run of each mode: noise on a shared machine only ever
                              # adds time, so of CPU-bound runs the minimum is the one least disturbed
                              "min_cpu_ratio": min(cpu[m]) / min(cpu["off"]),
                              # the fastest tenth (abstat.py's p10): as undisturbed, less at the
                              # mercy of one lucky run
                              "p10_cpu_ratio": p10(cpu[m]) / p10(cpu["off"])}
                          for m in modes}
        results[wname]["on"]["sender_cpu_s"] = statistics.median(sender) if sender else 0.0
    py = "%d.%d" % sys.version_info[:2]
    cost = request_cost(results)
    if cost:
        results["cost"] = cost
    steady = steady_cost(results)
    if args.json:
        print(json.dumps({"python": py, "loop": args.loop, "results": results,
                          **({"steady": steady} if steady else {})}))
        return
    for wname, r in results.items():
        if wname == "cost":
            continue
        cells = "  ".join(f"{m}={r[m]['ratio']:.3f}x/{r[m]['cpu_ratio']:.3f}x (paired {r[m]['paired']:.3f}x/"
                          f"{r[m]['paired_cpu']:.3f}x, min {r[m]['min_cpu_ratio']:.3f}x)" for m in modes if m != "off")
        name = wname if args.loop == "asyncio" else f"{wname} ({args.loop})"
        print(f"{py}  {name:22s} off={r['off']['median_s']*1000:8.1f} ms  {cells}")
    if cost:
        print(f"{py}  cost of a request (loop-thread CPU, on - off): fixed {cost['fixed_ns']:.0f} ns per request, "
              f"{cost['per_step_ns']:.0f} ns per recorded step+await (light {cost['light_ns']:.0f} ns, heavy "
              f"{cost['heavy_ns']:.0f} ns per request, {SEQ_HEAVY - SEQ_LIGHT} steps apart)")
    if steady:
        print(f"{py}  light loop, steady state (asgi_requests_long - asgi_requests, loop-thread CPU): on/off "
              f"{steady['ratio']:.3f}x over {steady['requests']} requests; each run's fixed part off "
              f"{steady['fixed_off_ms']:.1f} ms, on {steady['fixed_on_ms']:.1f} ms")
    trivial = results.get("asgi_requests_trivial")
    if trivial and "on" in trivial:
        added = (trivial["on"]["cpu_s"] - trivial["off"]["cpu_s"]) / REQUESTS * 1e9
        paired = (trivial["on"]["paired_cpu"] - 1) * trivial["off"]["cpu_s"] / REQUESTS * 1e9
        print(f"{py}  fixed cost of a request, measured (asgi_requests_trivial, loop-thread CPU, on - off): "
              f"{added:.0f} ns per request ({paired:.0f} ns by the paired median)")


def steady_cost(results: dict) -> dict | None:
    """The light loop's on/off in the steady state, with what each run pays once taken out: the
    short and the long run differ only by LONG_ROUNDS - 1 rounds of REQUESTS requests, so the
    difference of their median loop-thread CPU is those requests alone. A part each run pays once
    (asyncio.run's loop, the first requests on cold caches, in 'on' the loop hooked anew) would
    pull the short run's ratio toward 1; this takes it out, and says how large it is per mode
    (what the short run takes beyond its requests' share). A difference of two medians: as noisy
    as both runs together (3.14, 2026-12-07: fixed parts of -8 to +35 ms from run to run)."""
    short, long_ = results.get("asgi_requests"), results.get("asgi_requests_long")
    if not short or not long_ or "on" not in short or "on" not in long_:
        return None
    rounds = LONG_ROUNDS - 1
    d = {m: long_[m]["cpu_s"] - short[m]["cpu_s"] for m in ("off", "on")}
    if d["off"] <= 0:
        return None
    return {"ratio": d["on"] / d["off"], "requests": rounds * REQUESTS,
            "fixed_off_ms": (short["off"]["cpu_s"] - d["off"] / rounds) * 1000,
            "fixed_on_ms": (short["on"]["cpu_s"] - d["on"] / rounds) * 1000}


def request_cost(results: dict) -> dict | None:
    """The collector's cost per request split into a fixed part and a part per step: the loop-thread
    CPU added per request (median on - median off) of the light and the heavy request loop, whose
    requests differ only by SEQ_HEAVY - SEQ_LIGHT sequential awaits (one step and one await point
    each); a straight line through the two."""
    light, heavy = results.get("asgi_requests"), results.get("asgi_requests_heavy")
    if not light or not heavy or "on" not in light or "on" not in heavy:
        return None
    light_ns = (light["on"]["cpu_s"] - light["off"]["cpu_s"]) / REQUESTS * 1e9
    heavy_ns = (heavy["on"]["cpu_s"] - heavy["off"]["cpu_s"]) / REQUESTS * 1e9
    per_step = (heavy_ns - light_ns) / (SEQ_HEAVY - SEQ_LIGHT)
    return {"light_ns": light_ns, "heavy_ns": heavy_ns, "per_step_ns": per_step,
            "fixed_ns": light_ns - per_step * STEPS_LIGHT}


# Task steps of one light request: the request's task runs 1 + SEQ_LIGHT steps until the gather, 1
# after it, and each of the 6 gathered tasks 2; "fixed" is what is left once those are paid, i.e. the
# session's open and close, the middleware, and the 6 tasks' creation and end.
STEPS_LIGHT = 1 + SEQ_LIGHT + 1 + 6 * 2


PER_REQUEST = (request_loop, request_loop_heavy, request_loop_trivial, request_loop_long, litestar_loop)  # one session per request
SENDER_IDLE = False
OFFLINE = False
FLUSH_MS = 0
FRACTION = 0.1
SERVER_PID = 0
PIN: int | None = None
ALL_CPUS = os.sched_getaffinity(0)

if __name__ == "__main__":
    main()
