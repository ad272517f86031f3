"""bench/overhead/litestar_parts.py — LoopscopeMiddleware's per-request work on a Litestar app taken
apart, in one process: loopscope installed (whichever build is first on PYTHONPATH: an
`ab.sh`-style `ablate:hooks` build, build-collector/ab-*, isolates the middleware from the
recording), and bench.py's Litestar app driven in-process (1,500 requests a run) behind each of:

  plain             the app itself, no middleware
  pass              a pure-Python middleware that only awaits the app (its coroutine layer)
  ctxvar            that, setting and resetting a ContextVar around the app
  open-close-first  the request's session opened and closed before the app runs (the C
                    request_open and close: the session's own work, nothing open meanwhile)
  open              the session open while the app runs (send and scope untouched, no header)
  open+send         that, with the request standing in for send, and the route read at close
  full              what LoopscopeMiddleware does (the X-Loopscope-Session header added too)

The modes take turns, in reversed order every other rep; each rep is one run's loop-thread CPU.
Prints each mode's median, the median of its per-rep ratios to plain, and the difference per
request. A figure, not a test.
    PYTHONPATH=build-collector/ab-B python bench/overhead/litestar_parts.py --server URL [--reps 12]
        [--modes plain,ctxvar,open-close-first]
"""
from __future__ import annotations

import argparse
import asyncio
import contextvars
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the Litestar app and its request loop)
import loopscope  # noqa: E402
from litestar_middleware import Passthrough as Pass, time_in_turns  # noqa: E402
from loopscope import _state  # noqa: E402

CV: contextvars.ContextVar = contextvars.ContextVar("litestar_parts")


class CtxVar(Pass):
    async def __call__(self, scope, receive, send) -> None:
        token = CV.set(self)
        try:
            await self.app(scope, receive, send)
        finally:
            CV.reset(token)


class OpenCloseFirst(Pass):
    async def __call__(self, scope, receive, send) -> None:
        _state.core.request_open(scope, send, None, False).close(None)
        await self.app(scope, receive, send)


class Open(Pass):
    async def __call__(self, scope, receive, send) -> None:
        request = _state.core.request_open(scope, send, None, False)
        await self.app(scope, receive, send)
        request.close(None)


class OpenSend(Pass):
    async def __call__(self, scope, receive, send) -> None:
        request = _state.core.request_open(scope, send, None, False)
        await self.app(scope, receive, request)
        request.close(None, scope)


def make_modes() -> dict:
    middleware = bench.make_litestar()
    if middleware is None:
        sys.exit("litestar_parts.py: Litestar does not import here (use a .venvs-fw venv)")
    app = middleware.app
    return {"plain": app, "pass": Pass(app), "ctxvar": CtxVar(app), "open-close-first": OpenCloseFirst(app),
            "open": Open(app), "open+send": OpenSend(app), "full": middleware}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="a loopscope server's URL")
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--modes", default="", help="comma-separated (default: all); plain always runs")
    args = ap.parse_args()
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    every = make_modes()
    wanted = [m for m in args.modes.split(",") if m] or list(every)
    unknown = [m for m in wanted if m not in every]
    if unknown:
        ap.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(every)}")
    modes = {m: every[m] for m in ["plain"] + [m for m in wanted if m != "plain"]}
    loopscope.install(server=args.server, max_tasks=1_000_000)
    for app in modes.values():  # warm-up: imports, caches, the store's chunks
        bench.LITESTAR_APP = app
        asyncio.run(bench.litestar_loop())
    res = time_in_turns(modes, args.reps, before_run=loopscope.flush)  # the sender idle at each start
    base = res["plain"]
    print(f"{sys.version.split()[0]}  Litestar, {bench.REQUESTS} requests a run, {args.reps} reps, loop-thread CPU")
    for m, v in res.items():
        paired = statistics.median(a / b for a, b in zip(v, base))
        per_req = (statistics.median(v) - statistics.median(base)) / bench.REQUESTS * 1e6
        print(f"  {m:17s} {statistics.median(v) * 1000:7.1f} ms  paired {paired:.3f}x  {per_req:+6.1f} us a request")
    loopscope.uninstall()
    return 0


if __name__ == "__main__":
    sys.exit(main())
