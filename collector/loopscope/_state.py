# _state.py — the process-wide install state: the settings in force, the C module once started,
# and the hooks put into asyncio (Handle._run, task factories, call_soon of uvloop's loops).
# install()/uninstall() live in __init__.py; this module only holds and applies state.
from __future__ import annotations

import asyncio
import asyncio.events
import functools
import random
import sys
import sysconfig
from typing import Any

settings: Any = None   # Settings while installed
core: Any = None       # loopscope._core while installed and enabled
installed_by_run = False  # `loopscope run` (or the pytest plugin) installed it: install() returns its settings
# LoopscopeMiddleware's draws for request_fraction: a generator of our own, so that the app's
# `random` sequence (seeded for a test, say) is the same with loopscope as without; seeded from
# os.urandom, and again in a forked child (workers forked from one parent would draw alike)
_rng = random.Random()
orphan_blocks = False  # the C module keeps blocks no session owns (set at install, and by asgi.py)
draw = _rng.random
reseed = _rng.seed
_orig_set_task_factory: Any = None
_orig_get_task_factory: Any = None


def asyncio_dir() -> str:
    import os
    return os.path.dirname(asyncio.__file__).rstrip("/") + "/"


def lib_prefixes(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Directories whose frames are library code: await points name the user's frame instead."""
    import os
    paths = sysconfig.get_paths()
    out = [os.path.abspath(p).rstrip("/") + "/" for p in extra]
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = paths.get(key)
        if p and p not in out:
            out.append(p.rstrip("/") + "/")
    import loopscope
    pkg = loopscope.__path__[0].rstrip("/") + "/"
    if pkg not in out:
        out.append(pkg)
    return tuple(out)


def task_types() -> tuple[type, ...]:
    types = [asyncio.Task]
    py_task = getattr(asyncio.tasks, "_PyTask", None)
    if py_task is not None and py_task not in types:
        types.append(py_task)
    return tuple(types)


def callback_samples() -> list:
    """(callback, task) pairs of the handles a loop uses to step a task, seen on a throwaway loop:
    the C module learns the step-wrapper types of this Python from them."""
    samples = []
    loop = asyncio.SelectorEventLoop()
    try:
        async def nothing():
            return None

        for task_type in task_types():
            # named: a default name would take a number from asyncio's Task-<n> counter, and the
            # program's own tasks would be numbered differently with loopscope installed
            task = task_type(nothing(), loop=loop, name="loopscope-probe")
            for handle in list(loop._ready):
                if getattr(handle._callback, "__self__", None) is task:
                    samples.append((handle._callback, task))
            loop.run_until_complete(task)
    finally:
        loop.close()
    return samples


_loop_numbers: Any = None  # WeakKeyDictionary: each loop seen by hook_loop -> its number
_loops_seen = 0


def loop_number(loop: asyncio.AbstractEventLoop) -> int:
    """The loop's number in this process (1, 2, ... in the order loopscope first saw them): a
    session's meta carries it, so the server can tell which sessions shared a loop. A counter,
    not id(loop): an address is reused once a loop is gone. 0 for a loop without weak refs."""
    global _loop_numbers, _loops_seen
    import weakref
    if _loop_numbers is None:
        _loop_numbers = weakref.WeakKeyDictionary()
    try:
        no = _loop_numbers.get(loop)
        if no is None:
            _loops_seen += 1
            no = _loop_numbers[loop] = _loops_seen
        return no
    except TypeError:
        return 0


def hook_loop(loop: asyncio.AbstractEventLoop) -> int:
    """Put loopscope's task factory on `loop`, chaining the one already there; on a loop that does
    not run callbacks through asyncio's Handle (uvloop), also its call_soon (see hook_steps).
    The program never sees the wrapper: get_task_factory() answers what it set (see
    _replacements), and set_task_factory validates the program's own argument.
    Answers the loop's number (loop_number)."""
    if core is None:
        return 0
    no = loop_number(loop)
    if not isinstance(loop, asyncio.BaseEventLoop):
        hook_steps(loop)
        get_raw = getattr(vars(loop).get("get_task_factory"), "loopscope_raw", loop.get_task_factory)
        set_raw = getattr(vars(loop).get("set_task_factory"), "loopscope_raw", loop.set_task_factory)
    elif _orig_set_task_factory is not None:
        get_raw = lambda: _orig_get_task_factory(loop)  # noqa: E731
        set_raw = lambda f: _orig_set_task_factory(loop, f)  # noqa: E731
    else:
        get_raw, set_raw = loop.get_task_factory, loop.set_task_factory
    current = get_raw()
    if not isinstance(current, core.TaskFactory):
        set_raw(core.TaskFactory(current))
    return no


_step_hooked: Any = None  # WeakSet of the loops whose call_soon is a core.SoonHook


def hook_steps(loop: asyncio.AbstractEventLoop) -> None:
    """Tasks schedule their steps with loop.call_soon, looked up on the loop object: an instance
    attribute (core.SoonHook around the loop's own method) sees them on uvloop too. The loop's
    set_task_factory is wrapped the same way, so a factory the app sets later is chained as on
    asyncio's loops, and close() takes all three away again."""
    global _step_hooked
    attrs = getattr(loop, "__dict__", None)
    if attrs is None or isinstance(attrs.get("call_soon"), core.SoonHook) or loop.is_closed():
        return
    import weakref
    try:
        if _step_hooked is None:
            _step_hooked = weakref.WeakSet()
        _step_hooked.add(loop)
    except TypeError:  # no weak references: it could not be unhooked at uninstall
        return
    close, set_factory, get_factory = loop.close, loop.set_task_factory, loop.get_task_factory

    def closing() -> None:
        unhook_steps(loop)
        close()

    def set_task_factory(factory: Any) -> None:
        set_factory(factory)  # the loop's own checks and errors, on what the program gave
        if core is not None:
            set_factory(core.TaskFactory(factory))

    def get_task_factory() -> Any:
        return _unwrapped(get_factory())

    closing.loopscope_hook = set_task_factory.loopscope_hook = get_task_factory.loopscope_hook = True
    set_task_factory.loopscope_raw, get_task_factory.loopscope_raw = set_factory, get_factory
    attrs["call_soon"] = core.SoonHook(loop.call_soon)
    attrs["set_task_factory"] = set_task_factory
    attrs["get_task_factory"] = get_task_factory
    attrs["close"] = closing


def unhook_steps(loop: asyncio.AbstractEventLoop) -> None:
    attrs = getattr(loop, "__dict__", {})
    for name in ("call_soon", "set_task_factory", "get_task_factory", "close"):
        value = attrs.get(name)
        if (core is not None and isinstance(value, core.SoonHook)) or getattr(value, "loopscope_hook", False):
            del attrs[name]
    if _step_hooked is not None:
        _step_hooked.discard(loop)


def _unwrapped(factory: Any) -> Any:
    """What the program set, behind loopscope's TaskFactory (None when it set none)."""
    while type(factory).__name__ == "TaskFactory" and type(factory).__module__ == "loopscope._core":
        factory = factory.chained
    return factory


def _factory_loses_names() -> bool:
    """CPython 3.13.0 calls task.set_name(None) after any task factory, naming tasks "None"."""
    loop = asyncio.SelectorEventLoop()
    try:
        # the probe task is named: a default name would take a number from asyncio's Task-<n>
        # counter, visible to the program (3.13.0 still renames it "None" after the factory)
        loop.set_task_factory(lambda lp, coro, **kw: asyncio.Task(
            coro, loop=lp, **{**kw, "name": kw.get("name") or "loopscope-probe"}))

        async def nothing():
            return None

        task = loop.create_task(nothing())
        loop.run_until_complete(task)
        return task.get_name() == "None"
    finally:
        loop.close()


# What loopscope puts into asyncio is made afresh by each install, for that install only: a library
# may patch the same attribute after install (aiodebug wraps Handle._run, others new_event_loop or
# set_task_factory), wrapping ours. uninstall then puts back the original only where ours is still
# in place, and leaves theirs; ours, still called by theirs, passes straight through from then on
# (its install is no longer the live one), so the program runs as it would without loopscope.
_hooks_gen = 0  # the live install's number; the replacements below compare it with their own
_patched: list = []  # (owner, name, ours, original), as apply_hooks put them in


def _live(gen: int) -> bool:
    return core is not None and _hooks_gen == gen


def _replacements(gen: int, orig_new_event_loop: Any, orig_set: Any, orig_get: Any, orig_create: Any) -> dict:
    def new_event_loop(*args: Any, **kwargs: Any) -> Any:
        loop = orig_new_event_loop(*args, **kwargs)
        if _live(gen):
            hook_loop(loop)
        return loop

    def set_task_factory(self: Any, factory: Any) -> None:
        # asyncio's own set_task_factory sees the program's factory first (its checks, its
        # errors); then loopscope's TaskFactory goes in front of it, chaining it (None: asyncio.Task)
        orig_set(self, factory)
        if _live(gen):
            orig_set(self, core.TaskFactory(factory))

    def get_task_factory(self: Any) -> Any:
        # what the program set, never loopscope's wrapper (one may outlive its install on a loop)
        return _unwrapped(orig_get(self))

    def create_task(self: Any, coro: Any, *, name: Any = None, context: Any = None) -> Any:
        # 3.13.0's BaseEventLoop.create_task with the later fix: a factory's task keeps its default
        # name when no name is given, exactly as without a factory
        if not _live(gen):
            return orig_create(self, coro, name=name, context=context)
        self._check_closed()
        if self._task_factory is None:
            return orig_create(self, coro, name=name, context=context)
        if context is None:
            task = self._task_factory(self, coro)
        else:
            task = self._task_factory(self, coro, context=context)
        if name is not None:
            task.set_name(name)
        return task

    # each with its original's name, qualified name, docstring and (inspect.signature, through
    # __wrapped__) signature, as the program would find them without loopscope
    return {"new_event_loop": functools.wraps(orig_new_event_loop)(new_event_loop),
            "set_task_factory": functools.wraps(orig_set)(set_task_factory),
            "get_task_factory": functools.wraps(orig_get)(get_task_factory),
            "create_task": functools.wraps(orig_create)(create_task)}


def _patch(owner: Any, name: str, ours: Any) -> None:
    """owner.name = ours, noted (with what was there) for remove_hooks."""
    _patched.append((owner, name, ours, getattr(owner, name)))
    setattr(owner, name, ours)


async def _returns() -> None:
    return None


async def _raises() -> None:
    raise ValueError("loopscope sample")


async def _awaits(fut: Any) -> None:
    await fut  # a sample suspends on this line: co_firstlineno + 1


async def _awaits_coro(fut: Any) -> None:
    await _awaits(fut)  # co_firstlineno + 1


def _bare_yield() -> Any:
    yield  # co_firstlineno + 1


_bare_yield = __import__("types").coroutine(_bare_yield)  # a generator-based coroutine


async def _awaits_gen() -> None:
    await _bare_yield()  # co_firstlineno + 1


def frame_samples(loop: asyncio.AbstractEventLoop) -> list:
    """(kind, object, line) samples of coroutines and generators in each frame state: created,
    suspended (awaiting a future: a yield from; at a bare yield in a generator-based coroutine) and
    finished (returned, raised, closed), with the line a suspended one waits at. From them the C
    module learns where this Python keeps a coroutine's frame and frame state, and what each state
    value means, and checks it (core.setup_done); the caller closes them after."""
    def started(obj: Any) -> Any:
        obj.send(None)
        return obj

    def run(obj: Any) -> Any:
        try:
            obj.send(None)
        except (StopIteration, ValueError):
            pass
        return obj

    def line(fn: Any) -> int:
        return fn.__code__.co_firstlineno + 1

    closed = started(_awaits(loop.create_future()))
    closed.close()
    return [
        ("created", _returns(), 0),
        ("created", _awaits(loop.create_future()), 0),
        ("created", _bare_yield(), 0),
        ("suspended", started(_awaits(loop.create_future())), line(_awaits)),
        ("suspended", started(_awaits_coro(loop.create_future())), line(_awaits_coro)),
        ("suspended", started(_awaits_gen()), line(_awaits_gen)),
        ("suspended", started(_bare_yield()), line(_bare_yield)),
        ("finished", run(_returns()), 0),
        ("finished", run(_raises()), 0),
        ("finished", closed, 0),
    ]


def apply_hooks() -> None:
    global _orig_set_task_factory, _orig_get_task_factory, _hooks_gen
    loop = asyncio.SelectorEventLoop()
    try:
        fut = loop.create_future()
        fut_iter = fut.__await__()

        async def nothing():
            return None

        name = "loopscope-probe-" + str(id(loop))
        named = asyncio.Task(nothing(), loop=loop, name=name)
        unnamed = asyncio.Task(nothing(), loop=loop, name=name + "-2")  # no Task-<n> number taken
        core.setup(asyncio.current_task, asyncio.Task, sys.version_info >= (3, 12), fut, fut_iter,
                   asyncio.BaseEventLoop, named, name, unnamed)
        loop.run_until_complete(asyncio.gather(named, unnamed))

        samples = frame_samples(loop)
        try:
            core.setup_done(samples)
        finally:
            for _, obj, _ in samples:
                obj.close()
        del fut_iter, fut, samples
    finally:
        loop.close()
    core.patch_handle(asyncio.events.Handle, task_types(), callback_samples())
    _hooks_gen += 1
    _orig_set_task_factory = asyncio.BaseEventLoop.set_task_factory
    _orig_get_task_factory = asyncio.BaseEventLoop.get_task_factory
    ours = _replacements(_hooks_gen, asyncio.events.new_event_loop, asyncio.BaseEventLoop.set_task_factory,
                         asyncio.BaseEventLoop.get_task_factory, asyncio.BaseEventLoop.create_task)
    _patch(asyncio.events, "new_event_loop", ours["new_event_loop"])
    _patch(asyncio, "new_event_loop", ours["new_event_loop"])
    if _factory_loses_names():
        _patch(asyncio.BaseEventLoop, "create_task", ours["create_task"])
    _patch(asyncio.BaseEventLoop, "set_task_factory", ours["set_task_factory"])
    _patch(asyncio.BaseEventLoop, "get_task_factory", ours["get_task_factory"])
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        hook_loop(loop)


def meta_static(service: str) -> str:
    """The session meta fields that never change in this process, pre-encoded for the C module."""
    import json
    import platform
    import socket
    return "," + json.dumps({"service": service, "host": socket.gethostname(),
                             "python": platform.python_version()})[1:-1]


def remove_hooks() -> None:
    global _orig_set_task_factory, _orig_get_task_factory, _hooks_gen
    for loop in list(_step_hooked or ()):
        unhook_steps(loop)
    core.unpatch_handle()  # it too leaves a Handle._run patched over its own
    _hooks_gen += 1  # this install's replacements pass through from now on
    for owner, name, ours, original in reversed(_patched):
        if vars(owner).get(name) is ours:
            setattr(owner, name, original)
    _patched.clear()
    _orig_set_task_factory = _orig_get_task_factory = None
