# test_loops.py — other ways tasks are made and run: eager tasks (3.12+), a task factory set by
# the app (chained, keyword arguments forwarded), and uvloop (its own handles: see the README).
from __future__ import annotations

import asyncio
import sys

import pytest

import loopscope

from conftest import by_coro


async def eager_leaf(n: int) -> int:
    if n % 2:
        await asyncio.sleep(0.002)
    return n


async def eager_mid() -> list:
    return await asyncio.gather(*(eager_leaf(i) for i in range(4)))


async def eager_main() -> list:
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    return await asyncio.create_task(eager_mid())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in 3.12")
def test_eager_tasks_are_recorded_with_parents(record):
    data = record(eager_main, "eager")
    assert data["result"] == [0, 1, 2, 3]
    tasks = data["tasks"]
    mid = by_coro(tasks, "eager_mid")[0]
    leaves = by_coro(tasks, "eager_leaf")
    assert len(leaves) == 4
    assert all(t["parent"] == mid["id"] for t in leaves)
    assert mid["parent"] == by_coro(tasks, "eager_main")[0]["id"]
    assert all(t["state"] == "ok" for t in tasks)
    # an eager leaf that never suspended still has its (only) step
    assert all(t["first_run"] is not None for t in leaves)


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, loop, coro, **kwargs):
        self.calls.append(sorted(kwargs))
        return asyncio.Task(coro, loop=loop, **kwargs)


def test_app_factory_is_chained_with_keywords(record):
    factory = Recorder()

    async def child():
        await asyncio.sleep(0)

    async def main():
        asyncio.get_running_loop().set_task_factory(factory)
        import contextvars
        if sys.version_info >= (3, 11):
            await asyncio.create_task(child(), name="named-child", context=contextvars.copy_context())
        else:  # no context= before 3.11
            await asyncio.create_task(child(), name="named-child")

    data = record(main, "chained")
    assert factory.calls, "the app's factory was not called"
    if sys.version_info >= (3, 11):
        assert any("context" in call for call in factory.calls), factory.calls
    assert by_coro(data["tasks"], "child")[0]["name"] == "named-child"


uvloop = pytest.importorskip("uvloop") if sys.version_info < (3, 14) else None


def test_uvloop_tasks_and_lag(server, collector):
    collector()

    async def leaf():
        await asyncio.sleep(0.01)

    async def main():
        async with loopscope.session("uvloop") as s:
            await asyncio.gather(leaf(), leaf())
            await asyncio.sleep(0.2)
        return s.id

    loop = uvloop.new_event_loop()
    try:
        sid = loop.run_until_complete(main())
    finally:
        loop.close()
    assert loopscope.flush(10)
    data = server.session(sid)
    leaves = by_coro(data["tasks"], "leaf")
    assert len(leaves) == 2
    root = by_coro(data["tasks"], "main")[0]
    assert all(t["parent"] == root["id"] for t in leaves)
    assert data["lag"]["summary"]["samples"] >= 10
