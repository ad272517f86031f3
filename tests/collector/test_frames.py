# test_frames.py — how the collector reads coroutines on each CPython (test_sessions.py checks the
# fast way is in use): the path each version takes and the frame states it learnt from samples, the
# public fallback (forced) passing test_record.py's ground-truth checks, and 3.14's call-graph
# introspection (asyncio.capture_call_graph, python -m asyncio pstree) unchanged by loopscope.
from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap

import pytest

import loopscope
from loopscope import _core

import test_record as rec

# The path each version takes to read a suspended coroutine (code.c), and the frame states
# (created, suspended, finished) CPython's internal pycore_frame.h gives: loopscope never reads
# that header, it learns the values from sample coroutines at install; these are what it must find.
PATHS = {
    (3, 10): ("PyFrameObject fields", None),
    (3, 11): ("3.11 frame layout", ([-2], [-1], [4])),
    (3, 12): ("PyUnstable_InterpreterFrame", ([-2], [-1], [4])),
    (3, 13): ("PyUnstable_InterpreterFrame", ([-3], [-2, -1], [4])),
    (3, 14): ("learnt offsets, verified", ([-3], [-2, -1], [4])),  # opaque PyCoroObject
    (3, 15): ("learnt offsets, verified", ([0], [1, 2], [5])),     # states renumbered
}


@pytest.fixture
def installed(server):
    loopscope.install(server=server.url)
    yield
    loopscope.uninstall(timeout=2)


def test_each_version_reads_coroutines_its_own_way(installed):
    layout = _core._layout()
    path, states = PATHS.get(sys.version_info[:2], ("learnt offsets, verified", None))
    assert layout["frames"] == _core._frame_reading() == path, layout
    if sys.version_info >= (3, 14):
        assert layout["iframe_offset"] and layout["state_offset"], layout
    # the C Task's _state and _exception getters, called directly at each task's end
    assert layout["task_getters"] is True, layout
    if states is not None:
        assert (layout["created"], layout["suspended"], layout["finished"]) == states, layout
    elif sys.version_info >= (3, 11):  # a newer CPython: learnt, whatever the numbers are
        assert layout["created"] and layout["suspended"] and layout["finished"], layout


@pytest.fixture
def record_fallback(record):
    """record() with the checks of setup_done forced to fail: await points, task ends and eager
    first steps all come through the slow public path (attributes, frame objects, task._state)."""
    _core._force_frame_fallback(True)
    try:
        def run(main, name="fallback", **settings):
            data = record(main, name, **settings)
            layout = _core._layout()
            assert layout["frames"] == "frame objects" and layout["state_offset"] is None, layout
            return data
        yield run
    finally:
        _core._force_frame_fallback(False)


def test_fallback_hierarchy_parents_and_states(record_fallback):
    rec.test_hierarchy_parents_and_states(record_fallback)


def test_fallback_sleep_await_point(record_fallback):
    rec.test_sleep_await_point(record_fallback)


def test_fallback_awaited_object_names(record_fallback, tmp_path, monkeypatch):
    rec.test_awaited_object_names(record_fallback, tmp_path, monkeypatch)


def test_fallback_tasks_ending_in_their_first_step(record_fallback):
    rec.test_tasks_ending_in_their_first_step(record_fallback)


def test_fallback_blocking_sleep_names_the_line(record_fallback):
    rec.test_blocking_sleep_names_the_line(record_fallback)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in 3.12")
def test_fallback_eager_tasks_are_recorded_with_parents(record_fallback):
    import test_loops
    test_loops.test_eager_tasks_are_recorded_with_parents(record_fallback)


def test_fallback_is_left_after_uninstall(server):
    """The forced fallback lasts one install: the next one reads the fast way again."""
    _core._force_frame_fallback(True)
    try:
        loopscope.install(server=server.url)
        assert _core._frame_reading() == "frame objects"
        loopscope.uninstall(timeout=0)
    finally:
        _core._force_frame_fallback(False)
    loopscope.install(server=server.url)
    try:
        assert _core._frame_reading() == PATHS.get(sys.version_info[:2], ("learnt offsets, verified",))[0]
    finally:
        loopscope.uninstall(timeout=0)


# ---- 3.14 call-graph introspection ----------------------------------------------------------------

needs_314 = pytest.mark.skipif(sys.version_info < (3, 14), reason="asyncio call graphs are new in 3.14")

# A program whose tasks wait in a known tree: main -> TaskGroup -> two mid tasks -> leaf -> Event.
# It prints the call graph of one mid task and of the current task, then (for pstree) its pid and
# waits. Its argv: on|off (loopscope installed with a session open around the run), server, wait.
PROGRAM = textwrap.dedent('''
    import asyncio, os, sys
    mode, server, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if mode == "on":
        import loopscope
        loopscope.install(server=server)

    async def leaf(ev):
        await ev.wait()

    async def mid(ev):
        await leaf(ev)

    async def main():
        ev = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(mid(ev), name="mid-a")
            tg.create_task(mid(ev), name="mid-b")
            await asyncio.sleep(0.02)
            print(asyncio.format_call_graph(a))
            print(asyncio.format_call_graph())
            graph = asyncio.capture_call_graph(a)
            print("awaited_by", [g.future.get_name() for g in graph.awaited_by])
            print("READY", os.getpid(), flush=True)
            await asyncio.sleep(wait)
            ev.set()

    if mode == "on":
        with loopscope.session("call graph"):
            asyncio.run(main())
        print("events", loopscope.stats()["events"] > 0)
    else:
        asyncio.run(main())
''')


def normalized(text: str) -> str:
    """Without what differs between two runs of the same program: addresses and the pid."""
    return re.sub(r"READY \d+", "READY", re.sub(r"0x[0-9a-f]+", "0x?", text))


def run_program(tmp_path, server, mode: str) -> str:
    prog = tmp_path / "callgraph_program.py"
    prog.write_text(PROGRAM)
    r = subprocess.run([sys.executable, str(prog), mode, server.url, "0"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


@needs_314
def test_capture_call_graph_is_unchanged(tmp_path, server):
    off = run_program(tmp_path, server, "off")
    on = run_program(tmp_path, server, "on")
    assert "mid-a" in off and "async leaf()" in off and "async main()" in off, off
    assert "awaited_by ['Task-1']" in off, off
    assert on.endswith("events True\n"), on  # loopscope was recording meanwhile
    # the same tasks, frames and lines, down to the default task names (Task-<n>: loopscope's own
    # probe tasks at install take no number from asyncio's counter)
    assert normalized(on[: -len("events True\n")]) == normalized(off), (on, off)


def pstree(pid: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asyncio", "pstree", str(pid)], capture_output=True, text=True,
                          timeout=60)


@needs_314
def test_pstree_is_unchanged(tmp_path, server):
    """python -m asyncio pstree PID reads a running process from outside (its memory, through
    _remote_debugging): the same tree with loopscope recording as without."""
    prog = tmp_path / "callgraph_program.py"
    prog.write_text(PROGRAM)
    trees = {}
    for mode in ("off", "on"):
        child = subprocess.Popen([sys.executable, str(prog), mode, server.url, "30"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            pid = None
            for line in child.stdout:
                if line.startswith("READY"):
                    pid = int(line.split()[1])
                    break
            assert pid == child.pid, child.stderr.read() if pid is None else pid
            r = pstree(pid)
            if r.returncode and re.search(r"Operation not permitted|Permission denied|ptrace", r.stderr):
                pytest.skip(f"pstree cannot read another process here: {r.stderr.strip()[-300:]}")
            assert r.returncode == 0, r.stderr
            trees[mode] = r.stdout
        finally:
            child.kill()
            child.wait()
    assert "(T) mid-a" in trees["off"] and "leaf" in trees["off"] and "Task-1" in trees["off"], trees["off"]
    assert trees["on"] == trees["off"], trees


# ---- the task class the program put in asyncio ----------------------------------------------------

def test_tasks_are_of_the_class_asyncio_has_now(server, collector):
    """BaseEventLoop.create_task makes a tasks.Task looked up at each call; CPython's
    TestPyGetEventLoop puts the pure-Python Task there, and a C task made instead fails on 3.14
    ("loop ... is not the running loop") and hung the gate's test_events."""
    py_task = getattr(asyncio.tasks, "_PyTask", None)
    if py_task is None:
        pytest.skip("no pure-Python Task here")
    collector()
    saved = asyncio.tasks.Task
    made = []

    async def child():
        await asyncio.sleep(0)
        return 7

    async def main():
        t = asyncio.get_running_loop().create_task(child())
        made.append(type(t))
        return await t

    asyncio.Task = asyncio.tasks.Task = py_task
    try:
        with loopscope.session("py task"):
            assert asyncio.run(main()) == 7
    finally:
        asyncio.Task = asyncio.tasks.Task = saved
    assert made == [py_task]


def test_task_name_and_coroutine_fields_found_on_every_interpreter(server):
    """install() finds the C Task's name and coroutine fields (a request's task is adopted without
    a get_coro() call); what they read is what the methods answer, for a Task subclass too."""
    loopscope.install(server=server.url)
    try:
        assert _core._task_fields() == {"name": True, "coro": True}

        class MyTask(asyncio.Task):
            pass

        async def child():
            await asyncio.sleep(0)

        async def main():  # runs in a MyTask: the session adopts it, reading its coroutine field
            async with loopscope.session("fields") as s:
                await asyncio.create_task(child())
                return s.id

        async def outer():
            return await MyTask(main(), name="mine")

        sid = asyncio.run(outer())
        assert loopscope.flush(60)
        tasks = server.get(f"/api/v1/sessions/{sid}/tasks")["tasks"]
        assert sorted(t["coro"].rsplit(".", 1)[-1] for t in tasks) == ["child", "main"], tasks
    finally:
        loopscope.uninstall(timeout=0)
