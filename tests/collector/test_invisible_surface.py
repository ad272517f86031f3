# test_invisible_surface.py — one program that goes over the parts of asyncio a real app leans on
# beyond tasks and sleeps (signal handlers, call_soon_threadsafe from another thread, executors and
# to_thread, a second loop running in another thread at the same time, cancellation with a message
# and its counting, shield, wait, timeouts, async generators finalized at shutdown, an exception
# never retrieved, current_task and all_tasks from callbacks) and writes down everything it
# observes. Run without loopscope and then with it installed and a session open around the run,
# the two transcripts must be equal, and the session must have recorded the program's tasks.
from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import re
import signal
import sys
import threading

import pytest

import loopscope

var: contextvars.ContextVar = contextvars.ContextVar("test_invisible_surface", default="unset")

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")


def _no_addresses(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x", text)


def _program() -> list:
    seen: list = []

    def note(*what: object) -> None:
        seen.append(what)

    def on_error(loop: asyncio.AbstractEventLoop, ctx: dict) -> None:
        exc = ctx.get("exception")
        note("handler", _no_addresses(ctx["message"]), repr(exc), sorted(ctx))

    async def inner_loop(tag: str) -> list:
        # a second loop, in another thread, while the first one runs
        async def leaf(i: int) -> int:
            await asyncio.sleep(0)
            return i * 2
        out = await asyncio.gather(*(leaf(i) for i in range(5)))
        return [tag, out, asyncio.current_task().get_name().startswith("Task-")]  # its number: a global count

    async def agen():
        try:
            for i in range(10):
                yield i
        finally:
            note("agen finally", i)

    async def main() -> str:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(on_error)
        var.set("main")

        # a signal handler runs as a callback, in the loop
        got_signal = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, lambda: (note("signal", var.get(), asyncio.current_task()),
                                                        got_signal.set()))
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(got_signal.wait(), 10)
        loop.remove_signal_handler(signal.SIGUSR1)

        # call_soon_threadsafe from another thread, in a context of its own
        from_thread = asyncio.Event()
        ctx = contextvars.copy_context()
        ctx.run(var.set, "thread-ctx")
        threading.Thread(target=lambda: loop.call_soon_threadsafe(
            lambda: (note("threadsafe", var.get()), from_thread.set()), context=ctx)).start()
        await asyncio.wait_for(from_thread.wait(), 10)

        # executors: the context goes along with to_thread, not with run_in_executor
        note("executor", await loop.run_in_executor(None, var.get))
        note("to_thread", await asyncio.to_thread(var.get))

        # a second loop in another thread at the same time
        box: list = []
        t = threading.Thread(target=lambda: box.append(asyncio.run(inner_loop("other"))))
        t.start()
        while t.is_alive():
            await asyncio.sleep(0.001)
        note("other loop", box)

        # cancellation: the message, who sees it, shield, counting (3.11+)
        async def sleeper() -> None:
            await asyncio.sleep(3600)
        task = asyncio.create_task(sleeper(), name="sleeper")
        await asyncio.sleep(0)
        task.cancel("stop it")
        try:
            await task
        except asyncio.CancelledError as e:
            note("cancelled", e.args, task.cancelled(), task.done())
        inner = asyncio.create_task(asyncio.sleep(0.01, "shielded"), name="inner")
        outer = asyncio.ensure_future(asyncio.shield(inner))
        await asyncio.sleep(0)
        outer.cancel()
        note("shield", await inner, outer.cancelled())
        if sys.version_info >= (3, 11):
            async def counts() -> tuple:
                me = asyncio.current_task()
                try:
                    async with asyncio.timeout(0.001):
                        await asyncio.sleep(3600)
                except TimeoutError:
                    pass
                return me.cancelling(), me.uncancel()
            note("counting", await asyncio.create_task(counts()))

        # wait and wait_for
        fast = asyncio.create_task(asyncio.sleep(0, "fast"), name="fast")
        slow = asyncio.create_task(asyncio.sleep(3600), name="slow")
        done, pending = await asyncio.wait({fast, slow}, return_when=asyncio.FIRST_COMPLETED)
        note("wait", sorted(t.get_name() for t in done), sorted(t.get_name() for t in pending))
        slow.cancel()
        try:
            await asyncio.wait_for(asyncio.sleep(3600), 0.001)
        except asyncio.TimeoutError as e:
            note("wait_for", type(e).__name__)

        # an exception nobody retrieves: reported when the task is collected
        async def fails() -> None:
            raise KeyError("never retrieved")
        lost = asyncio.create_task(fails(), name="lost")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        del lost
        gc.collect()

        # an async generator left open: closed by asyncio.run's shutdown_asyncgens
        g = agen()
        note("agen", await g.__anext__(), await g.__anext__())

        note("tasks", sorted(t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()))
        return var.get()

    note("result", asyncio.run(main()))
    return seen


def test_asyncio_surface_behaves_the_same(collector):
    expected = _program()
    labels = [w[0] for w in expected]
    # what the program observed is all there: the comparison below covers every part of it
    for label in ("signal", "threadsafe", "executor", "to_thread", "other loop", "cancelled", "shield", "wait",
                  "wait_for", "handler", "agen", "agen finally", "tasks", "result"):
        assert label in labels, (label, expected)
    assert ("threadsafe", "thread-ctx") in expected and ("to_thread", "main") in expected
    collector()
    with loopscope.session("surface", summary=True) as s:
        assert s.recording
        got = _program()
    assert got == expected
    tasks = s.summary()["tasks"]  # the program's, recorded: it was not merely left alone
    assert tasks >= 6, s.summary()
