# test_invisible.py — loopscope must not change or crash the program it watches. Here: a recorded
# task that is destroyed while still pending (its loop closed under it, as CPython's asyncio test
# suite does after a failed test) must not leave the collector holding its address. The task
# table keys entries by a borrowed task pointer and keeps a borrowed coroutine pointer; a stale
# entry was found again by the next task allocated at that address (one made without loopscope's
# factory), whose step then read the dead coroutine: SIGSEGV in BaseEventLoop._run_once, the
# crash of the compatibility gate (scripts/test-compat.sh) in test_tasks on 3.10-3.13.
# Each case runs in a child interpreter so a crash fails the test instead of ending pytest.
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PRELUDE = textwrap.dedent("""
    import asyncio, gc, sys
    import loopscope
    loopscope.install(server="http://127.0.0.1:9")  # nothing listens: events are dropped

    async def forever():
        await asyncio.sleep(3600)

    class SubTask(asyncio.Task):  # a Python subclass of the C Task: its subtype_dealloc
        pass                       # reaches the C Task's (wrapped) dealloc
    # the C Task and its subclasses are watched through the C Task type's dealloc; the
    # pure-Python Task (CPython's own tests run it too) through a weak reference (tasks.c)
    KIND = {"c": asyncio.Task, "sub": SubTask, "py": asyncio.tasks._PyTask}[sys.argv[1]]

    def recorded_task_destroyed_pending():
        # a loop with loopscope's task factory, a recorded task that never runs, the loop
        # closed (its ready queue dropped): the task and its coroutine are freed, pending
        loop = asyncio.new_event_loop()
        if KIND is not asyncio.Task:  # the program's factory, wrapped by loopscope's
            loop.set_task_factory(lambda loop, coro, **kw: KIND(coro, loop=loop, **kw))
        task = loop.create_task(forever())
        addr = id(task)
        loop.close()
        del task, loop
        gc.collect()
        return addr
""")


def run_child(body: str, env: dict | None = None, kind: str = "c") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", PRELUDE + textwrap.dedent(body), kind],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def reuse_env() -> dict:
    """Under scripts/test-collector-asan.sh, ASan's quarantine keeps freed memory from being handed
    out again, so no task could be made at a freed task's address: turn it off for this child (an
    access to freed memory not yet reused is still reported)."""
    asan = os.environ.get("ASAN_OPTIONS")
    return {"ASAN_OPTIONS": asan + ":quarantine_size_mb=0"} if asan else {}


KINDS = pytest.mark.parametrize("kind", ["c", "sub", "py"])


@KINDS
def test_task_destroyed_pending_leaves_no_entry(kind):
    p = run_child("""
        with loopscope.session("gone"):
            recorded_task_destroyed_pending()
            print(loopscope.stats()["tracked_tasks"])
        loopscope.uninstall(timeout=0)
    """, kind=kind)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == ["0"], "the collector still tracks a task that no longer exists"


@KINDS
def test_watch_of_each_task_kind(kind):
    # which watch each kind took: a C Task (or a Python subclass of it) none that the program can
    # see (the C Task type's dealloc is wrapped), the pure-Python Task a weak reference; asyncio
    # holds weak references of its own on some versions (its WeakSet of tasks): the baseline is
    # a task made the same way outside a session (not recorded)
    p = run_child("""
        import weakref

        def weakrefs_of_a_task():
            loop = asyncio.new_event_loop()
            if KIND is not asyncio.Task:
                loop.set_task_factory(lambda loop, coro, **kw: KIND(coro, loop=loop, **kw))
            task = loop.create_task(forever())
            n = weakref.getweakrefcount(task)
            loop.close()
            del task, loop
            gc.collect()
            return n

        base = weakrefs_of_a_task()
        with loopscope.session("kinds"):
            print(weakrefs_of_a_task() - base, loopscope.stats()["tracked_tasks"])
        loopscope.uninstall(timeout=0)
    """, kind=kind)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == ["1" if kind == "py" else "0", "0"]


@pytest.mark.parametrize("kind", ["c", "sub"])  # a pure-Python Task's address was not reused
def test_task_at_the_address_of_a_destroyed_one_runs(kind):
    # The next task made at the freed address without loopscope's factory (asyncio.Task on a
    # loop loopscope did not make, as test_tasks' CTaskSubclass tests do) is stepped through the
    # hooked Handle._run; with the stale entry found, its step end read the freed coroutine.
    p = run_child("""
        async def other(n):
            a = b = c = d = e = f = g = h = n  # another frame size: not where forever()'s was
            await asyncio.sleep(0)
            return a + b + c + d + e + f + g + h

        reused = 0
        with loopscope.session("reuse"):
            for i in range(50):
                addr = recorded_task_destroyed_pending()
                loop = asyncio.SelectorEventLoop()
                made = []
                for _ in range(50):
                    made.append(KIND(other(i), loop=loop))
                    if id(made[-1]) == addr:
                        reused += 1
                        break
                assert loop.run_until_complete(asyncio.gather(*made)) == [8 * i] * len(made)
                loop.close()
        loopscope.uninstall(timeout=0)
        print(reused)
    """, env=reuse_env(), kind=kind)
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stderr[-3000:]}"
    reused = int(p.stdout.split()[-1])
    if reused == 0 and "coverage" in sys.modules:
        # coverage.py's tracer in the child allocates between the free and the next Task, so the
        # address is taken before a task can get it (the coverage lane only; every other lane of
        # scripts/test-collector.sh exercises the reuse, and this lane still ran it crash-free)
        pytest.skip("under coverage no task was made at a freed task's address")
    if reused == 0 and "libasan" in os.environ.get("LD_PRELOAD", ""):
        # scripts/test-collector-asan.sh: PYTHONMALLOC=malloc and ASan's quarantine hold a freed
        # block back from reuse, so no address comes back; there ASan itself reports any read of
        # the freed coroutine (the child above ran clean), which is what the reuse would expose
        pytest.skip("under ASan freed addresses are quarantined, not reused")
    assert reused > 0, "no task was made at a freed task's address: the case was not exercised"


def test_a_patch_made_over_loopscope_survives_uninstall():
    """A library that patches what loopscope patched, after install (aiodebug wraps Handle._run,
    others asyncio.new_event_loop or set_task_factory), wraps loopscope's: uninstall leaves its
    patches in place (before, it put asyncio's originals back over them), and the program runs
    through them as before, through a second install and uninstall too."""
    r = run_child("""
        import asyncio.events
        Handle, Base = asyncio.events.Handle, asyncio.BaseEventLoop
        calls = []

        def wrap(name, fn):
            def wrapper(*args, **kwargs):
                calls.append(name)
                return fn(*args, **kwargs)
            return wrapper

        Handle._run = wrap("run", Handle._run)
        asyncio.new_event_loop = asyncio.events.new_event_loop = wrap("new", asyncio.events.new_event_loop)
        Base.set_task_factory = wrap("set", Base.set_task_factory)
        Base.get_task_factory = wrap("get", Base.get_task_factory)

        def patches():
            return (Handle.__dict__["_run"], asyncio.new_event_loop, asyncio.events.new_event_loop,
                    Base.__dict__["set_task_factory"], Base.__dict__["get_task_factory"])

        theirs = patches()

        def program():
            calls.clear()
            loop = asyncio.new_event_loop()
            factory = lambda lp, coro, **kw: asyncio.Task(coro, loop=lp, **kw)
            loop.set_task_factory(factory)
            same = loop.get_task_factory() is factory

            async def main():
                await asyncio.sleep(0)
                return "done"
            try:
                result = loop.run_until_complete(loop.create_task(main()))
            finally:
                loop.close()
            return same, result, sorted(set(calls))

        runs = [program()]
        loopscope.uninstall()
        kept = patches() == theirs
        runs.append(program())
        loopscope.install(server="http://127.0.0.1:9")
        runs.append(program())
        loopscope.uninstall()
        kept = kept and patches() == theirs
        runs.append(program())
        print(kept, runs)
    """)
    assert r.returncode == 0, r.stderr
    runs = [(True, "done", ["get", "new", "run", "set"])] * 4
    assert r.stdout.strip() == f"True {runs}", (r.stdout, r.stderr)


def test_what_a_module_took_from_asyncio_while_installed_works_after_uninstall():
    """`from asyncio import new_event_loop` in a module imported while loopscope is installed takes
    loopscope's replacement; so does a reference to BaseEventLoop.set_task_factory. After
    uninstall they must still work as asyncio's (before, they raised TypeError: 'NoneType' object is
    not callable, the originals they called having been cleared)."""
    r = run_child("""
        from asyncio import new_event_loop
        set_factory, get_factory = asyncio.BaseEventLoop.set_task_factory, asyncio.BaseEventLoop.get_task_factory
        loopscope.uninstall()
        loop = new_event_loop()
        factory = lambda lp, coro, **kw: asyncio.Task(coro, loop=lp, **kw)
        set_factory(loop, factory)
        print(get_factory(loop) is factory, loop._task_factory is factory, type(loop).__name__)
        loop.close()
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "_UnixSelectorEventLoop"], (r.stdout, r.stderr)


def test_what_loopscope_put_into_asyncio_reads_as_asyncio_own():
    """asyncio.new_event_loop and BaseEventLoop's set_task_factory, get_task_factory (and on 3.13.0
    create_task), replaced while loopscope is installed, keep their originals' names, qualified
    names, docstrings and signatures."""
    script = textwrap.dedent("""
        import asyncio, inspect, loopscope
        def looks():
            B = asyncio.BaseEventLoop
            return [(f.__name__, f.__qualname__, f.__doc__, str(inspect.signature(f)))
                    for f in (asyncio.new_event_loop, asyncio.events.new_event_loop, B.set_task_factory,
                              B.get_task_factory, B.create_task)]
        before = looks()
        loopscope.install(server="http://127.0.0.1:9")
        replaced = asyncio.BaseEventLoop.__dict__["set_task_factory"].__code__.co_filename
        print(looks() == before, "loopscope" in replaced)
        loopscope.uninstall(timeout=0)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"], (r.stdout, r.stderr)


# ---- nothing added to the loop: virtual clocks, task factories ---------------------------------
# (in this process: these cannot crash, they can only differ)

import asyncio  # noqa: E402
import contextvars  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import traceback  # noqa: E402

import pytest  # noqa: E402

import loopscope  # noqa: E402

try:
    import uvloop
except ImportError:
    uvloop = None


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A loop whose time jumps to the next timer when nothing is ready (as looptime's and
    CPython's test_utils.TestLoop do): it never waits, and it notes each timer it jumped to."""

    def __init__(self):
        super().__init__()
        self.now = 1000.0
        self.jumps = []

    def time(self):
        return self.now

    def _run_once(self):
        if not self._ready and self._scheduled:
            self.jumps.append(round(self._scheduled[0]._when - 1000.0, 6))
            self.now = max(self.now, self._scheduled[0]._when)
        super()._run_once()


async def virtual_program(session=None):
    if session:  # entered on the loop, as a middleware does: the loop is hooked
        async with loopscope.session(session):
            return await virtual_program()

    async def worker(n):
        for i in range(3):
            await asyncio.sleep(0.5 * n)
        return n

    res = await asyncio.gather(*(worker(n) for n in (1, 2, 3)))
    await asyncio.wait_for(asyncio.sleep(1), timeout=5)
    return res, asyncio.get_running_loop().time() - 1000.0


def run_virtual(session=None):
    loop = VirtualClockLoop()
    try:
        result = loop.run_until_complete(virtual_program(session))
        pending = len(loop._scheduled)
    finally:
        loop.close()
    return result, loop.jumps, pending


def test_virtual_clock_loop_runs_identically(collector):
    plain = run_virtual()
    collector(sample_rate_ms=1)
    with loopscope.session("virtual-clock"):
        seen = run_virtual("virtual-clock-inside")
    assert seen == plain
    assert plain[0] == ([1, 2, 3], 5.5)


def test_testloop_generator_sees_only_the_program_timers(collector):
    test_utils = pytest.importorskip("test.test_asyncio.utils")

    def gen():
        when = yield
        assert abs(when - 0.1) < 1e-9, when
        when = yield 0.1
        assert abs(when - 0.3) < 1e-9, when
        yield 0.2

    async def main():
        async with loopscope.session("testloop-inside"):
            await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)
        return "done"

    collector(sample_rate_ms=1)
    with loopscope.session("testloop"):
        loop = test_utils.TestLoop(gen)
        try:
            assert loop.run_until_complete(loop.create_task(main())) == "done"
            assert abs(loop.time() - 0.3) < 1e-9
        finally:
            loop.close()


def _factories():
    out = [None, lambda lp, coro, **kw: asyncio.Task(coro, loop=lp, **kw)]
    if sys.version_info >= (3, 12):
        out.append(asyncio.eager_task_factory)
    return out


def _factory_behaviour(new_loop):
    """What get/set_task_factory answer on a new loop of new_loop(), as the program sees it."""
    seen = []
    loop = new_loop()
    try:
        seen.append(loop.get_task_factory())
        for f in _factories():
            loop.set_task_factory(f)
            seen.append(loop.get_task_factory() is f)
        try:
            loop.set_task_factory(1)
            seen.append("accepted 1")
        except TypeError as e:
            seen.append(f"TypeError: {e}")
        seen.append(loop.get_task_factory() is f)  # the refused one changed nothing

        async def child():
            return asyncio.current_task().get_name()

        async def main():
            return await asyncio.create_task(child(), name="kid")

        loop.set_task_factory(_factories()[1])
        seen.append(loop.run_until_complete(main()))
    finally:
        loop.close()
    return seen


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_task_factory_is_what_the_program_set(collector, kind):
    if kind == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed")
    new_loop = asyncio.new_event_loop if kind == "asyncio" else uvloop.new_event_loop
    plain = _factory_behaviour(new_loop)
    collector()
    with loopscope.session("factory-" + kind):
        seen = _factory_behaviour(new_loop)

    async def inside():  # a loop hooked by a session entered on it: still no factory to see
        async with loopscope.session("factory-inside-" + kind):
            return asyncio.get_running_loop().get_task_factory()

    loop = new_loop()
    try:
        own = loop.run_until_complete(inside())
    finally:
        loop.close()
    assert seen == plain
    assert own is None
    assert plain[0] is None and all(x is True for x in plain[1:1 + len(_factories())])
    assert plain[-3].startswith("TypeError")


def test_task_class_replaced_in_asyncio_tasks_is_used(collector):
    """create_task looks up asyncio.tasks.Task at each call; the collector's factory caches it
    (3.12+, until the module's dict changes): a class put there after tasks were made (CPython's
    TestPyGetEventLoop puts the pure-Python Task there) is what the next task is, and the old
    one again once restored."""
    collector()

    class MyTask(asyncio.Task):
        pass

    async def nothing():
        return 1

    async def kinds():
        kinds = [type(asyncio.create_task(nothing()))]
        asyncio.tasks.Task = MyTask
        try:
            kinds.append(type(asyncio.create_task(nothing())))
        finally:
            asyncio.tasks.Task = original
        kinds.append(type(asyncio.create_task(nothing())))
        await asyncio.sleep(0)
        return kinds

    original = asyncio.tasks.Task
    with loopscope.session("task-class"):
        seen = asyncio.run(kinds())
    assert seen == [original, MyTask, original]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in 3.12")
def test_session_closed_inside_an_eager_step_leaves_no_stale_current_task(server, collector):
    """An eager task's first step runs inside the task factory, nested in its creator's step. When
    it closes the creator's session, the creator's entry is freed; the factory and the step then
    used to put the freed entry back as the running task, and the next task made in that step
    read it as its parent (a use after free: ASan reports it with PYTHONMALLOC=malloc)."""
    collector()
    outer = loopscope.session("outer")

    async def closer():
        outer.__exit__(None, None, None)  # runs eagerly: ends 'outer' inside the factory call

    async def grandchild():
        await asyncio.sleep(0)

    async def main():
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        await asyncio.sleep(0)  # from here on main runs in a step timed by Handle._run
        asyncio.create_task(closer())
        with loopscope.session("inner") as inner:
            await asyncio.create_task(grandchild())
        return inner.id

    outer.__enter__()
    inner_id = asyncio.run(main())
    assert loopscope.flush(60)
    tasks = server.get(f"/api/v1/sessions/{inner_id}/tasks")["tasks"]
    assert [(t["coro"].rsplit(".", 1)[-1], t["parent"]) for t in tasks] == [("grandchild", 0)]


def test_factory_keeps_nothing_of_a_task_alive(collector):
    """The collector's factory reuses its argument tuple from task to task (factory.c, task_plain):
    it must hold nothing between calls. A finished task's coroutine, and its loop once closed, are
    freed as they are without loopscope (weak references to them die), for create_task(coro) and
    create_task(coro, name=...) (which reaches the factory with keywords on 3.14+)."""
    import gc
    import weakref

    collector()

    async def work():
        await asyncio.sleep(0)
        return 1

    refs = []

    async def main():
        for kw in ({}, {"name": "named"}):
            coro = work()
            refs.append(weakref.ref(coro))
            task = asyncio.get_running_loop().create_task(coro, **kw)
            del coro
            assert await task == 1
            del task
        return asyncio.get_running_loop()

    with loopscope.session("keeps-nothing"):
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(main()) is loop
        finally:
            loop.close()
        loop_ref = weakref.ref(loop)
        del loop
        gc.collect()
        assert [r() for r in refs] == [None, None]
        assert loop_ref() is None


handle_var: contextvars.ContextVar = contextvars.ContextVar("test_invisible_handle", default="unset")


def _no_addresses(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x", text)


def _handle_behaviour() -> tuple:
    """What asyncio's Handle._run does with the callbacks a program gives call_soon: arguments and
    contexts, a callback that raises (what the exception handler is given, the exception's
    traceback, and whether it is the exception being handled while the handler runs), one with more
    arguments than the C _run handles itself (20), a callable object, one that cancels its own
    handle before it raises (its _args are None by then), and a context already entered
    when its handle runs (the whole run is inside it): run() refuses it, and the handler, run in the
    same context, fails too, which asyncio logs with both exceptions chained."""
    seen: list = []
    errors: list = []
    logged: list = []

    class Counter:
        def __call__(self, *args: object) -> None:
            seen.append(("counter", len(args), handle_var.get()))

    def cb(*args: object) -> None:
        seen.append(("cb", args, handle_var.get()))

    def fails() -> None:
        raise ValueError("callback exploded")

    def cancels_itself_and_fails() -> None:
        own.cancel()  # its _callback and _args become None before it raises
        raise KeyError("after cancel")

    def on_error(loop: asyncio.AbstractEventLoop, ctx: dict) -> None:
        exc = ctx.get("exception")
        errors.append((_no_addresses(ctx["message"]), _no_addresses(repr(exc)), sys.exc_info()[1] is exc,
                       [f.name for f in traceback.extract_tb(exc.__traceback__)]))

    async def child() -> None:
        seen.append(("child", handle_var.get()))
        handle_var.set("inside")  # the task's own copy
        await asyncio.sleep(0)
        seen.append(("child", handle_var.get()))

    async def main(outer: contextvars.Context) -> str:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(on_error)
        ctx = contextvars.copy_context()
        ctx.run(handle_var.set, "from-ctx")
        loop.call_soon(cb, 1, "two", context=ctx)
        loop.call_soon(cb, 3)
        loop.call_soon(fails)
        nonlocal own
        own = loop.call_soon(cancels_itself_and_fails)
        loop.call_soon(Counter(), *range(20))
        loop.call_soon(cb, "entered", context=outer)
        handle_var.set("main")
        await asyncio.create_task(child())
        await asyncio.sleep(0.01)
        return handle_var.get()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(_no_addresses(self.format(record)))

    own = None
    keep = Keep()
    log = logging.getLogger("asyncio")
    log.addHandler(keep)
    try:
        with loopscope.session("handles") as s:
            outer = contextvars.copy_context()  # carries the session
            result = outer.run(asyncio.run, main(outer))
            recording = s.recording
    finally:
        log.removeHandler(keep)
    return result, seen, errors, logged, recording


def test_handle_run_behaviour_unchanged(collector):
    """Handle._run stood in for by C (step.c: Context.run's own function, and the original _run
    again when a callback raised): a program's callbacks see the same arguments and context values,
    and a failure reaches the exception handler, and the log, exactly as without loopscope: the
    same message and exception, _run's line in the traceback, the exception being handled while
    the handler runs, and an exception raised in the handler chained to it."""
    expected = _handle_behaviour()  # not installed: the session records nothing
    collector()
    got = _handle_behaviour()
    assert got[4] is True and expected[4] is False
    assert got[:4] == expected[:4]
    assert got[1][:3] == [("cb", (1, "two"), "from-ctx"), ("cb", (3,), "unset"), ("counter", 20, "unset")]
    (message, exc, handled, frames), cancelled, *entered = got[2]
    assert message.startswith("Exception in callback _handle_behaviour.<locals>.fails() at " + __file__), message
    assert (exc, handled, frames) == ("ValueError('callback exploded')", True, ["_run", "fails"])
    assert cancelled[1:] == ("KeyError('after cancel')", True, ["_run", "cancels_itself_and_fails"]), cancelled
    if sys.version_info >= (3, 12):
        # the handler runs in the handle's context (3.12+), refused as the callback was: asyncio
        # logs that, with the callback's exception chained
        assert not entered and len(got[3]) == 1, (entered, got[3])
        assert "During handling of the above exception" in got[3][0], got[3]
        assert got[3][0].count("in _run") == 1 and "cannot enter context" in got[3][0], got[3][0]
    else:
        (_, exc, handled, frames), = entered
        assert exc.startswith("RuntimeError('cannot enter context: ") and (handled, frames) == (True, ["_run"])
        assert not got[3]
