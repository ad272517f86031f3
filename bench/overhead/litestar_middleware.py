"""bench/overhead/litestar_middleware.py [REPS] — what a middleware that does to Litestar's request
what LoopscopeMiddleware does to it (a scope["state"] entry; a send that adds a response header)
costs Litestar itself, with loopscope not installed at all: bench.py's Litestar loop (1,500
requests) plain, through a pass-through middleware, one that sets the state entry, and one that
also wraps send. Modes alternate rep by rep (both orders); loop-thread CPU, medians and paired
medians against plain. Run it with a venv that has Litestar (.venvs-fw/py3.X/bin/python).
Not a test: no asserts."""
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench.py beside this file)


class Passthrough:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


class StateOnly(Passthrough):
    async def __call__(self, scope, receive, send):
        scope.setdefault("state", {})["loopscope_session"] = self
        await self.app(scope, receive, send)


class StateAndSend(Passthrough):
    async def __call__(self, scope, receive, send):
        scope.setdefault("state", {})["loopscope_session"] = self

        async def wrapped(msg):
            if msg["type"] == "http.response.start":
                msg = dict(msg)
                msg["headers"] = list(msg.get("headers", [])) + [(b"x-loopscope", b"0123456789abcdef")]
            await send(msg)

        await self.app(scope, receive, wrapped)


def time_in_turns(modes: dict, reps: int, before_run=None) -> dict:
    """Each mode's app runs bench.py's Litestar loop once a rep, the modes in turns (reversed every
    other rep); before_run() (if given) before each run. {mode: [loop-thread CPU seconds a run]}."""
    res = {m: [] for m in modes}
    for rep in range(reps):
        for m in (list(modes) if rep % 2 == 0 else list(reversed(modes))):
            bench.LITESTAR_APP = modes[m]
            if before_run:
                before_run()
            t0 = time.thread_time()
            asyncio.run(bench.litestar_loop())
            res[m].append(time.thread_time() - t0)
    return res


def main() -> int:
    app = bench.make_litestar()
    if app is None:
        print("litestar_middleware.py: Litestar does not import here (use .venvs-fw)", file=sys.stderr)
        return 2
    inner = app.app  # the Litestar app inside LoopscopeMiddleware
    modes = {"plain": inner, "passthrough": Passthrough(inner), "state": StateOnly(inner),
             "state+send": StateAndSend(inner)}
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    res = time_in_turns(modes, reps)
    base = statistics.median(res["plain"])
    print(f"Python {sys.version.split()[0]}, {reps} reps, {bench.REQUESTS} requests a run, loop-thread CPU")
    for m, v in res.items():
        paired = statistics.median(a / b for a, b in zip(v, res["plain"]))
        print(f"{m:12s} {statistics.median(v) * 1000:8.1f} ms  {statistics.median(v) / base:.3f}x"
              f"  paired {paired:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
