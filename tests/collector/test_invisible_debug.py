# test_invisible_debug.py — what a debugger, a profiler and asyncio's debug mode see of a program
# is what they see without loopscope: the frames a callback or a task's step runs under (the C
# Handle._run gives way to asyncio's own while the thread has a trace or profile function, or a
# debug-mode loop tracks coroutine origins: step.c), and where debug mode says each task was made
# (its _source_traceback, from which loopscope's task factory drops create_task's line as
# create_task does when no factory is set: factory.c). Without any of those, the frame of
# asyncio's Handle._run is missing from the stack, and nothing else differs: pinned below, so that
# a second difference fails.
from __future__ import annotations

import asyncio
import os
import sys
import traceback

import pytest

import loopscope

EVENTS_PY = os.path.join(os.path.dirname(asyncio.__file__), "events.py")


def _below_program(frames: list) -> list:
    """(file, line, function) of the frames inside _program's call, outermost first: what is above
    it (pytest, the test function) differs between the two calls only by the test's own lines."""
    i = max(i for i, f in enumerate(frames) if f[2] == "_program")
    return [tuple(f) for f in frames[i + 1:]]


def _program(debug: bool) -> dict:
    """A program that looks at its own stack from a plain callback, a timer callback and task
    steps, and, in debug mode, at where its tasks were made: by loop.create_task, asyncio.create_task,
    ensure_future, gather, a TaskGroup (3.11+), create_task(eager_start=True) (3.14+), and through a
    task factory of its own (asyncio keeps create_task's line then; loopscope chains that factory)."""
    seen: dict = {}

    def where(label: str) -> None:
        seen[label] = _below_program([(f.filename, f.lineno, f.name) for f in traceback.extract_stack()[:-1]])

    def made_at(label: str, task: asyncio.Future) -> None:
        tb = task._source_traceback
        seen["made " + label] = _below_program(tb) if tb else tb

    async def child(label: str) -> None:
        where(label + " first step")
        await asyncio.sleep(0)
        where(label + " after an await")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(where, "callback")
        loop.call_later(0.001, where, "timer")
        t1 = loop.create_task(child("loop.create_task"))
        t2 = asyncio.create_task(child("asyncio.create_task"))
        t3 = asyncio.ensure_future(child("ensure_future"))
        gathered = asyncio.gather(child("gather"))
        for label, t in (("loop.create_task", t1), ("asyncio.create_task", t2), ("ensure_future", t3)):
            made_at(label, t)
        await asyncio.gather(t1, t2, t3, gathered)
        await asyncio.sleep(0.002)
        if sys.version_info >= (3, 11):
            async with asyncio.TaskGroup() as tg:
                made_at("TaskGroup", tg.create_task(child("TaskGroup")))
        if sys.version_info >= (3, 14):
            made_at("eager_start", loop.create_task(child("eager_start"), eager_start=True))
        loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))
        own = loop.create_task(child("own factory"))
        made_at("own factory", own)
        await own
        where("main")

    with loopscope.session("stacks"):  # records only when installed
        asyncio.run(main(), debug=debug)
    return seen


# Two known differences, both of create_task's frame, where loopscope's task factory stands in
# for "no factory": CPython 3.13.0 names a factory's task "None" unless given a name, so loopscope
# puts in its place a BaseEventLoop.create_task with the later fix (_state.py), whose frame is then
# loopscope's; and on 3.14+ an eager first step that create_task(eager_start=True) runs (inside the
# factory's call) is under create_task's line that calls the factory, not the one that makes the
# Task. Both are compared by create_task's function name alone, where they apply.
STANDS_IN_FOR_CREATE_TASK = sys.version_info[:3] == (3, 13, 0)


def _create_task_unplaced(seen: dict) -> dict:
    """create_task's frames by their function's name alone where one of the above applies."""
    def unplaced(key: str) -> bool:
        return STANDS_IN_FOR_CREATE_TASK or key.startswith("eager_start ")

    return {k: v if not (isinstance(v, list) and unplaced(k))
            else [("create_task",) if f[2] == "create_task" else f for f in v]
            for k, v in seen.items()}


def _without_handle_run(frames):
    return frames if not isinstance(frames, list) else [f for f in frames if f[::2] != (EVENTS_PY, "_run")]


def _check_meaningful(expected: dict, debug: bool) -> None:
    # the stacks compared hold the frame in question, and debug mode's origins hold what asyncio
    # drops or keeps: if these stopped holding, the comparisons would prove nothing
    for label in ("callback", "timer", "loop.create_task first step", "gather after an await"):
        assert (EVENTS_PY, "_run") in [(f[0], f[2]) for f in expected[label]], (label, expected[label])
    if debug:
        assert expected["made loop.create_task"][-1][2] == "main", expected["made loop.create_task"]
        assert [f[2] for f in expected["made own factory"][-2:]] == ["create_task", "<lambda>"], expected["made own factory"]
    else:
        assert expected["made loop.create_task"] is None


def test_debug_mode_sees_the_same_frames_and_task_origins(collector):
    """asyncio.run(debug=True): every stack the program looks at, and where each task was made, as
    without loopscope."""
    expected = _program(debug=True)
    _check_meaningful(expected, debug=True)
    collector()
    got = _program(debug=True)
    assert _create_task_unplaced(got) == _create_task_unplaced(expected)


@pytest.mark.parametrize("hook", ["profile", "trace"])
def test_a_profiler_or_debugger_sees_the_same_frames(collector, hook):
    """With a profile function (cProfile's kind) or a trace function (pdb's, a tracing coverage
    tool's) on the thread, the stacks are the program's own, _run's frame among them."""
    setter = sys.setprofile if hook == "profile" else sys.settrace
    before = sys.getprofile() if hook == "profile" else sys.gettrace()

    def quiet(frame, event, arg):  # a trace function that traces no frame's lines
        return None

    def run() -> dict:
        setter(before or quiet)
        try:
            return _program(debug=False)
        finally:
            setter(before)

    expected = run()
    _check_meaningful(expected, debug=False)
    collector()
    assert _create_task_unplaced(run()) == _create_task_unplaced(expected)


def test_otherwise_only_the_frame_of_handle_run_is_missing(collector):
    """No tracer, no debug mode: the C Handle._run runs, with no Python frame of its own. That frame
    is the one difference in every stack (a tool measuring this suite with a trace function, as
    coverage's C tracer does, sees none)."""
    expected = _program(debug=False)
    _check_meaningful(expected, debug=False)
    traced = sys.gettrace() is not None or sys.getprofile() is not None
    collector()
    got = _create_task_unplaced(_program(debug=False))
    expected = _create_task_unplaced(expected)
    assert got == (expected if traced else {k: _without_handle_run(v) for k, v in expected.items()})
    if not traced:
        assert got != expected
