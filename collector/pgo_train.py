"""pgo_train.py — the training run of loopscope's profile-guided build (setup.py runs it once, with
the instrumented _core first on sys.path, then builds _core again from the profile it leaves).

What it runs is what the collector's hot paths are for: task trees under one session (gather,
and TaskGroup and eager tasks where the version has them), and requests through
LoopscopeMiddleware, each with sequential awaits and a gather of tasks, recorded offline with
every batch encoded into a sink file (the sender's encoder runs too). About a second on a laptop.
Not part of the package; `python pgo_train.py SINK_PATH` by hand does the same.
"""
import asyncio
import sys


async def leaf(n: int) -> int:
    await asyncio.sleep(0)
    return n


async def tree(depth: int, width: int) -> int:
    if depth == 0:
        return await leaf(1)
    return sum(await asyncio.gather(*(tree(depth - 1, width) for _ in range(width))))


async def tree_taskgroup(depth: int, width: int) -> int:
    if depth == 0:
        return await leaf(1)
    async with asyncio.TaskGroup() as tg:
        kids = [tg.create_task(tree_taskgroup(depth - 1, width)) for _ in range(width)]
    return sum(k.result() for k in kids)


async def handler(scope, receive, send) -> None:
    await receive()
    for i in range(12):
        await leaf(i)
    await asyncio.gather(*(leaf(i) for i in range(6)))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def requests(app, n: int, at_once: int = 10) -> None:
    """n requests through app, at_once of them in flight together (sessions overlap, as in a
    server)."""
    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    async def one(i: int) -> None:
        scope = {"type": "http", "method": "POST" if i % 2 else "GET", "path": f"/train/{i}",
                 "headers": [], "query_string": b""}
        await app(scope, receive, send)

    for first in range(0, n, at_once):
        await asyncio.gather(*(one(i) for i in range(first, min(n, first + at_once))))


def main(sink: str) -> int:
    import loopscope
    from loopscope.asgi import LoopscopeMiddleware

    loopscope.install(offline=True, sink=sink, max_tasks=1_000_000)
    try:
        for _ in range(2):
            with loopscope.session("pgo-train tree"):
                asyncio.run(tree(4, 6))
            if sys.version_info >= (3, 11):
                with loopscope.session("pgo-train taskgroup"):
                    asyncio.run(tree_taskgroup(4, 6))
            if sys.version_info >= (3, 12):
                async def eager() -> int:
                    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
                    return await tree(3, 6)
                with loopscope.session("pgo-train eager"):
                    asyncio.run(eager())
            asyncio.run(requests(LoopscopeMiddleware(handler), 600))
        loopscope.flush(10)
    finally:
        loopscope.uninstall()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python pgo_train.py SINK_PATH")
    sys.exit(main(sys.argv[1]))
