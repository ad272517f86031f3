# test_loops.py — other ways tasks are made and run: eager tasks (3.12+), a task factory set by
# the app (chained, keyword arguments forwarded), and uvloop, whose own handles are timed through
# the loop's call_soon: test_record.py's ground-truth checks run again on uvloop, steps are
# counted against the default loop's, and the loop's own behaviour is checked unchanged.
from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sys
import time

import pytest

import loopscope

import test_record as rec
from conftest import by_coro, line_of

try:
    import uvloop
except ImportError:  # not installed in this environment: the uvloop tests are skipped (0.23 has 3.10-3.15 wheels)
    uvloop = None

needs_uvloop = pytest.mark.skipif(uvloop is None, reason="uvloop is not installed")


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



# ---- uvloop -----------------------------------------------------------------------------------

class UvloopPolicy(uvloop.EventLoopPolicy if uvloop else object):
    """uvloop's policy (what uvloop.install() sets), remembering the loops it made."""

    def __init__(self):
        super().__init__()
        self.loops = []

    def new_event_loop(self):
        loop = super().new_event_loop()
        self.loops.append(loop)
        return loop


@pytest.fixture
def record_uv(record):
    """record() (asyncio.run inside a session) with asyncio.run making a uvloop loop; checks that
    it did, and that the loop's close() took loopscope's attributes off it again. That the steps
    were seen is for each test's ground truth to show (first_run, steps, awaits and blocks exist
    only through them)."""
    def run(main, name="uvloop", **settings):
        policy = UvloopPolicy()
        old = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(policy)
        try:
            data = record(main, name, **settings)
        finally:
            asyncio.set_event_loop_policy(old)
        assert len(policy.loops) == 1 and isinstance(policy.loops[0], uvloop.Loop), policy.loops
        assert not {"call_soon", "set_task_factory", "close"} & set(vars(policy.loops[0]))
        return data

    return run


def steps_by_task(server, sid: str) -> dict[int, list[dict]]:
    """The step events the server holds for each task id (from the session's export)."""
    return server.steps(sid)


# test_record.py's checks with the program run on uvloop (unchanged but for the sleep's length)

@needs_uvloop
def test_uvloop_hierarchy_parents_and_states(record_uv):
    rec.test_hierarchy_parents_and_states(record_uv)  # first_run/ended of every task: its steps


@needs_uvloop
def test_uvloop_sleep_await_point(record_uv):
    # test_record's check, with one difference of uvloop's own: libuv times sleeps on a
    # millisecond clock read at the start of a loop iteration, so sleep(0.05) really lasts
    # 49-50 ms there when the sleep starts late in an iteration (measured without loopscope too).
    # The upper bound is what the program measured around its await in the same run.
    rec.check_sleep_await(record_uv(rec.sleep_main, "await"), 49_000_000)


@needs_uvloop
def test_uvloop_awaited_object_names(record_uv, tmp_path, monkeypatch):
    try:
        rec.test_awaited_object_names(record_uv, tmp_path, monkeypatch)
    finally:
        sys.modules.pop("fakedb", None)  # test_record's own run imports it again from its tmp_path


@needs_uvloop
def test_uvloop_blocking_sleep_names_the_line(record_uv):
    rec.test_blocking_sleep_names_the_line(record_uv)  # one block: the step, its line


@needs_uvloop
def test_uvloop_blocking_cpu_loop_is_found(record_uv):
    rec.test_blocking_cpu_loop_is_found(record_uv)


@needs_uvloop
def test_uvloop_short_blocks_are_not_reported(record_uv):
    rec.test_short_blocks_are_not_reported(record_uv)


@needs_uvloop
def test_uvloop_tasks_ending_in_their_first_step(record_uv):
    rec.test_tasks_ending_in_their_first_step(record_uv)


@needs_uvloop
@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in 3.12")
def test_uvloop_eager_tasks_are_recorded_with_parents(record_uv):
    async def leaf():
        return 1

    async def eager():
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
        coro = leaf()
        try:
            return await asyncio.create_task(coro)
        except TypeError:
            coro.close()
            raise

    loop = uvloop.new_event_loop()  # without loopscope: can this uvloop run eager tasks at all?
    try:
        loop.run_until_complete(eager())
    except TypeError as e:  # uvloop 0.23 on 3.13.0: "... unexpected keyword argument 'eager_start'"
        pytest.skip(f"uvloop {uvloop.__version__} cannot run asyncio.eager_task_factory here: {e}")
    finally:
        loop.close()
    test_eager_tasks_are_recorded_with_parents(record_uv)  # set_task_factory chains on uvloop too


@needs_uvloop
def test_uvloop_app_factory_is_chained_with_keywords(record_uv):
    test_app_factory_is_chained_with_keywords(record_uv)


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def stepper() -> None:
    for _ in range(3):
        busy(0.005)
        await asyncio.sleep(0)
    busy(0.005)


async def steps_main() -> None:
    await asyncio.gather(asyncio.create_task(stepper()), asyncio.create_task(stepper()))


@needs_uvloop
def test_uvloop_steps_are_those_of_the_default_loop(record, record_uv, server):
    counts = {}
    for loop_name, rec_fn in (("asyncio", record), ("uvloop", record_uv)):
        data = rec_fn(steps_main, f"steps-{loop_name}")
        steps = steps_by_task(server, data["id"])
        counts[loop_name] = sorted((t["coro"].rsplit(".", 1)[-1], len(steps.get(t["id"], []))) for t in data["tasks"])
        for t in by_coro(data["tasks"], "stepper"):
            mine = steps[t["id"]]
            # ground truth: 4 steps of at least 5 ms each (busy-waited), the task's busy time is theirs
            assert len(mine) == 4, (loop_name, mine)
            assert all(s["d"] >= 5_000_000 for s in mine), (loop_name, mine)
            assert t["busy_ns"] == sum(s["d"] for s in mine) >= 20_000_000
        # one thread runs them all: no two steps of the session overlap (a step that wrongly took
        # in the time until the next one would), and every step lies within its task's life
        spans = sorted((s["t"], s["t"] + s["d"]) for evs in steps.values() for s in evs)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), (loop_name, spans)
        for t in data["tasks"]:
            evs = steps.get(t["id"], [])
            assert all(t["created"] <= s["t"] and s["t"] + s["d"] <= t["ended"] for s in evs), (loop_name, t, evs)
    assert counts["uvloop"] == counts["asyncio"] == [("stepper", 4), ("stepper", 4), ("steps_main", 2)]


@needs_uvloop
def test_uvloop_tasks_and_lag(server, collector):
    """A loop made by uvloop itself (not through asyncio.new_event_loop) is hooked by the first
    `async with loopscope.session`, its running task adopted."""
    collector()

    took = []  # each leaf's own measure of its await

    async def leaf():
        t0 = time.perf_counter()
        await asyncio.sleep(0.01)  # LEAF-AWAIT
        took.append(time.perf_counter() - t0)

    async def main():
        async with loopscope.session("uvloop") as s:
            await asyncio.gather(leaf(), leaf())
            time.sleep(0.05)  # a stall: a callback due when it began waits for all of it
            await asyncio.sleep(0.2)
        return s.id

    loop = uvloop.new_event_loop()
    try:
        sid = loop.run_until_complete(main())
        assert type(vars(loop)["call_soon"]).__name__ == "SoonHook"
    finally:
        loop.close()
    assert "call_soon" not in vars(loop)
    assert loopscope.flush(60)
    data = server.session(sid)
    leaves = by_coro(data["tasks"], "leaf")
    assert len(leaves) == 2
    root = by_coro(data["tasks"], "main")[0]
    assert all(t["parent"] == root["id"] for t in leaves)
    # no timer of loopscope's on uvloop either: lag comes from the virtual tick over the steps
    assert any(x["d"] >= 50_000_000 for x in data["lag"]["samples"]), data["lag"]
    steps = steps_by_task(server, sid)
    for t in leaves:
        assert len(steps[t["id"]]) == 2 and t["state"] == "ok"
        (a,) = [a for a in data["awaits"] if a["task"] == t["id"]]
        assert (a["what"], a["func"], a["line"]) == ("sleep", "leaf", line_of(leaf, "LEAF-AWAIT"))
        # as test_record.check_sleep_await: no longer than the leaves saw around their awaits, and
        # from the start of the step that armed the timer to the await's end it covers the timer
        # (libuv: up to 1 ms short, see above). The await alone may be far shorter: a step stalled
        # after arming its timer (the OS on a busy machine: CI saw 16 ms, an await of 0.15 ms)
        # ends late, and its await rightly begins only then.
        armed, resumed = sorted(steps[t["id"]], key=lambda s: s["t"])
        assert 0 < a["d"] <= max(took) * 1e9, (a, took)
        assert armed["t"] + armed["d"] == a["t"] and resumed["t"] >= a["t"] + a["d"], (armed, a, resumed)
        assert a["t"] + a["d"] - armed["t"] >= 9_000_000, (armed, a)
    assert len(steps[root["id"]]) >= 2  # adopted mid-step: the steps after the session began


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_session_opened_inside_a_step_times_that_step(server, collector, loop_name):
    """A task that began with no session open and opens one in its first step (the per-request
    middleware on a server's own task, `loopscope run --per-request`): the rest of that step is
    the session's, so a block in it before the first await is recorded with its line. On uvloop
    too, where no Handle is run through asyncio (every task step goes through SoonHook)."""
    if loop_name == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed")
    collector(blocking_threshold_ms=50)
    ids = []

    async def handler():
        async with loopscope.session("late") as s:
            ids.append(s.id)
            time.sleep(0.12)  # LATE-BLOCK
            await asyncio.sleep(0)

    async def main():
        async with loopscope.session("hook the loop"):
            await asyncio.sleep(0)
        # no session open now: the task's first step starts untimed
        for _ in range(3):
            await asyncio.get_running_loop().create_task(handler())

    loop = uvloop.new_event_loop() if loop_name == "uvloop" else asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert loopscope.flush(60)
    for sid in ids:
        data = server.session(sid)
        (root,) = by_coro(data["tasks"], "handler")
        # the first block is LATE-BLOCK; on a starved machine (one CI run, load average 12) the
        # loop thread may also be held off its core past the threshold later in the step, which is
        # recorded as a block too, rightly
        assert data["blocks"], (loop_name, data)
        b = min(data["blocks"], key=lambda x: x["t"])
        assert b["task"] == root["id"] and b["d"] >= 120_000_000, (loop_name, data["blocks"])
        if b["stack"]:  # (none when the watchdog thread got no core during the block: a busy machine)
            assert b["stack"][-1]["line"] == line_of(handler, "LATE-BLOCK"), (loop_name, b)
        steps = steps_by_task(server, sid)[root["id"]]
        assert steps[0]["d"] >= 120_000_000, (loop_name, steps)  # the adopted step, from the adoption


@needs_uvloop
def test_uvloop_call_soon_given_back(collector):
    from loopscope import _core
    collector()
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        kept, closed = asyncio.new_event_loop(), asyncio.new_event_loop()
    finally:
        asyncio.set_event_loop_policy(old)
    original = uvloop.Loop.call_soon.__get__(kept)
    hook = vars(kept)["call_soon"]
    assert isinstance(hook, _core.SoonHook) and hook.__wrapped__ == original
    assert hook.__self__ is kept and hook.__name__ == "call_soon"  # answered by the original
    closed.close()
    hooks = {"call_soon", "set_task_factory", "get_task_factory", "close"}
    assert closed.is_closed() and not hooks & set(vars(closed))
    kept.set_task_factory(None)  # chained while installed, as on asyncio's loops, and not seen
    assert kept.get_task_factory() is None
    assert isinstance(uvloop.Loop.get_task_factory(kept), _core.TaskFactory)
    loopscope.uninstall()
    assert not hooks & set(vars(kept))
    assert kept.call_soon == original and not kept.is_closed()
    kept.close()
    assert kept.is_closed()
    with pytest.raises(TypeError):
        _core.SoonHook(42)
    with pytest.raises(TypeError):
        _core.SoonHook(original, extra=1)


@needs_uvloop
def test_uvloop_wrappers_are_plain_objects():
    """A SoonHook reads as the method it wraps and takes part in garbage collection."""
    import gc
    import weakref
    from loopscope import _core
    loop = uvloop.new_event_loop()
    try:
        hook = _core.SoonHook(loop.call_soon)
        assert repr(hook) == repr(loop.call_soon) and hook.__func__ is uvloop.Loop.call_soon
        assert hook(lambda: None).cancelled() is False  # no session: straight to uvloop's call_soon
    finally:
        loop.close()

    class Holder:  # a cycle through a SoonHook: collected (traverse and clear)
        def __call__(self, *args):
            return None

    holder = Holder()
    holder.hook = _core.SoonHook(holder)
    ref = weakref.ref(holder)
    del holder
    gc.collect()
    assert ref() is None


@needs_uvloop
def test_uvloop_hooks_leave_nothing_behind(record_uv, server):
    """Every StepCall is freed once its step ran, and a hooked loop is freed after close() (once
    uninstall() let go of the last loop it hooked)."""
    import gc
    import weakref
    from loopscope import _core
    loops = []

    async def many_steps():
        loops.append(weakref.ref(asyncio.get_running_loop()))
        for _ in range(200):
            await asyncio.sleep(0)
        await asyncio.gather(*(asyncio.sleep(0.001) for _ in range(50)))

    data = record_uv(many_steps, "leaks")
    assert len(steps_by_task(server, data["id"])) == 51  # the root and the sleeps
    loopscope.uninstall()
    gc.collect()
    assert loops and loops[0]() is None, gc.get_referrers(loops[0]())
    assert not [o for o in gc.get_objects() if type(o) in (_core.StepCall, _core.SoonHook)]


var: contextvars.ContextVar = contextvars.ContextVar("test_loops_var", default="unset")


@needs_uvloop
def test_uvloop_behaviour_unchanged(collector):
    """Inside a session on a hooked uvloop loop: call_soon's arguments, context and handle, a task's
    context, and a failing callback's report to the exception handler are what uvloop gives."""
    def program():
        seen, errors = [], []

        async def child():
            seen.append(("child", var.get()))
            var.set("inside")  # the task's own copy
            await asyncio.sleep(0)
            seen.append(("child", var.get()))

        def cb(*args):
            seen.append(("cb", args, var.get()))

        def fails():
            raise ValueError("callback exploded")

        async def main():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda lp, ctx: errors.append((ctx["message"], repr(ctx["exception"]))))
            ctx = contextvars.copy_context()
            ctx.run(var.set, "from-ctx")
            handle = loop.call_soon(cb, 1, "two", context=ctx)
            loop.call_soon(cb, 3)
            loop.call_soon(fails)
            var.set("main")
            await asyncio.create_task(child())
            await asyncio.sleep(0.01)
            return type(handle).__name__, handle.cancelled()

        policy = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        try:
            with loopscope.session("unchanged") as s:
                recording = s.recording
                result = asyncio.run(main())
        finally:
            asyncio.set_event_loop_policy(policy)
        return result, seen, [(m.split(" at ")[0], e) for m, e in errors], recording

    expected = program()  # loopscope not installed
    collector()
    got = program()
    assert got[3] is True and expected[3] is False
    assert got[:3] == expected[:3]
    assert got[1] == [("cb", (1, "two"), "from-ctx"), ("cb", (3,), "unset"), ("child", "main"),
                      ("child", "inside")]
    assert got[2] and got[2][0][1] == "ValueError('callback exploded')"


async def slow_child() -> None:
    await asyncio.sleep(0)
    time.sleep(0.12)


async def slow_main() -> None:
    await asyncio.create_task(slow_child())


@needs_uvloop
def test_uvloop_debug_log_names_the_task(collector, caplog):
    """uvloop's debug mode names a slow callback by its task: a timed step reads the same."""
    def run() -> list[str]:
        caplog.clear()
        policy = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        try:
            with caplog.at_level(logging.WARNING, logger="asyncio"), loopscope.session("debug"):
                asyncio.run(slow_main(), debug=True)
        finally:
            asyncio.set_event_loop_policy(policy)
        # the slow step is slow_child's last (its 120 ms sleep, then the task is done); on a
        # loaded machine other callbacks (asyncio.run's own done callbacks) can pass the 100 ms
        # too, in one run and not the other: only the program's slow step is compared
        msgs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Executing")]
        return [re.sub(r"Task-\d+|took [0-9.]+ seconds", "_", m) for m in msgs if "slow_child() done" in m]

    expected = run()
    collector()
    got = run()
    assert len(expected) == 1 and "slow_child" in expected[0], expected
    assert got == expected
