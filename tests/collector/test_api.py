# test_api.py — the Python API and what users see: settings from the environment, install and
# uninstall restoring asyncio, enabled=False hooking nothing, task introspection unchanged, and
# the C encoder's JSON for hostile strings.
from __future__ import annotations

import asyncio
import inspect
import io
import json
import re

import pytest

import loopscope
from loopscope import _core
from loopscope.settings import load

from conftest import Server


def test_settings_from_environment_and_kwargs():
    env = {"LOOPSCOPE_ENABLED": "false", "LOOPSCOPE_AWAIT_THRESHOLD_MS": "25",
           "LOOPSCOPE_BLOCKING_THRESHOLD_MS": "50", "LOOPSCOPE_MAX_TASKS": "7",
           "LOOPSCOPE_SAMPLE_RATE_MS": "5", "LOOPSCOPE_SERVER": "http://127.0.0.1:9",
           "LOOPSCOPE_TOKEN": "sekrit"}
    s = load({}, env)
    assert (s.enabled, s.await_threshold_ms, s.blocking_threshold_ms, s.max_tasks, s.sample_rate_ms,
            s.server, s.token) == (False, 25.0, 50.0, 7, 5.0, "http://127.0.0.1:9", "sekrit")
    assert load({"max_tasks": 3}, env).max_tasks == 3
    d = load({}, {})
    assert (d.enabled, d.await_threshold_ms, d.blocking_threshold_ms, d.max_tasks, d.sample_rate_ms,
            d.server, d.buffer_bytes) == (True, 10.0, 100.0, 1000, 10.0, "http://127.0.0.1:7878", 16 << 20)


@pytest.mark.parametrize("env,kw,msg", [
    ({"LOOPSCOPE_ENABLED": "maybe"}, {}, "not a boolean"),
    ({"LOOPSCOPE_MAX_TASKS": "lots"}, {}, "not a valid int"),
    ({}, {"server": "ftp://x"}, "http://"),
    ({}, {"max_tasks": 0}, "at least 1"),
    ({}, {"sample_rate_ms": -1}, "negative"),
    ({}, {"buffer_bytes": 10}, "at least 65536"),
    ({}, {"blocking_threshold_ms": 0}, "below 1 ms every step would be a block"),
    ({}, {"blocking_threshold_ms": -5}, "negative"),
    ({"LOOPSCOPE_BLOCKING_THRESHOLD_MS": "nan"}, {}, "finite"),
    ({}, {"blocking_threshold_ms": float("inf")}, "finite"),
    ({}, {"sample_rate_ms": float("nan")}, "finite"),
    ({}, {"token": "two words"}, "visible ASCII"),
    ({}, {"token": "x\r\nX-Evil: 1"}, "visible ASCII"),
    ({}, {"token": "t" * 4097}, "1 to 4096"),
])
def test_bad_settings_say_what_to_do(env, kw, msg):
    with pytest.raises(ValueError, match=msg):
        load(kw, env)


def test_long_token_is_sent(tmp_path):
    """A token far over the old 500-byte limit of the sender's header buffer still works."""
    token = "T" * 4096
    srv = Server(tmp_path / "longtok.db", token=token).start()
    try:
        loopscope.install(server=srv.url, token=token)
        try:
            with loopscope.session("long token") as s:
                asyncio.run(asyncio.sleep(0))
            assert loopscope.flush(60), loopscope.stats()
        finally:
            loopscope.uninstall(timeout=2)
        assert srv.get(f"/api/v1/sessions/{s.id}")["name"] == "long token"
    finally:
        srv.stop()


@pytest.mark.parametrize("which,msg", [(1, "cannot start the sender for http://127.0.0.1:9: a thread or libcurl"),
                                       (2, "cannot start the watchdog thread")])
def test_failed_start_leaves_nothing_installed(server, which, msg):
    """A collector that cannot start says why, and install() works afterwards (it used to answer
    "already installed" after a watchdog failure)."""
    _core._fail_next_start(which)
    try:
        with pytest.raises(RuntimeError, match=msg):
            loopscope.install(server="http://127.0.0.1:9")
    finally:
        _core._fail_next_start(0)
    assert not loopscope.installed()
    assert asyncio.new_event_loop.__module__ != "loopscope._state"  # nothing hooked

    async def main():
        await asyncio.sleep(0)

    loopscope.install(server=server.url)
    try:
        with loopscope.session("after a failed start") as s:
            asyncio.run(main())
        assert loopscope.flush(60)
    finally:
        loopscope.uninstall(timeout=2)
    assert server.get(f"/api/v1/sessions/{s.id}")["tasks"] == 1


def test_unknown_setting_is_rejected():
    with pytest.raises(TypeError, match="unknown setting 'colour'"):
        load({"colour": "blue"}, {})


def test_disabled_install_hooks_nothing():
    run_before = asyncio.events.Handle._run
    loopscope.install(enabled=False)
    try:
        assert loopscope.installed()
        assert asyncio.events.Handle._run is run_before
        assert asyncio.new_event_loop.__module__ == "asyncio.events"
        with loopscope.session("x") as s:
            assert not s.recording
        assert loopscope.stats() == {}
        assert loopscope.flush() is True
    finally:
        loopscope.uninstall()
    assert not loopscope.installed()


def test_install_twice_fails_and_uninstall_restores(server):
    run_before = asyncio.events.Handle._run
    loopscope.install(server=server.url)
    try:
        with pytest.raises(RuntimeError, match="already installed"):
            loopscope.install(server=server.url)
        assert asyncio.events.Handle._run is not run_before
    finally:
        assert loopscope.uninstall() is True
    assert asyncio.events.Handle._run is run_before
    loop = asyncio.new_event_loop()
    assert loop.get_task_factory() is None
    loop.close()


async def _introspected() -> None:
    await asyncio.sleep(0.02)


async def _held(gate: asyncio.Future) -> None:
    await gate


async def _observe() -> dict:
    # The observed task waits on a future only this coroutine resolves, after looking: what it sees
    # does not depend on timing (with a 20 ms sleep there, a loop stalled past it by a loaded
    # machine showed the sleep's future finished in one run and pending in the other).
    gate = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_held(gate), name="observed")
    await asyncio.sleep(0)  # the task's first step runs before this one resumes (both call_soon)
    out = io.StringIO()
    task.print_stack(file=out)
    info = {
        "iscoroutine": inspect.iscoroutine(task.get_coro()),
        "coro_name": task.get_coro().__qualname__,
        "repr": re.sub(r"0x[0-9a-f]+", "0x", repr(task)),
        "stack": [(f.f_code.co_name, f.f_lineno) for f in task.get_stack()],
        "printed": re.sub(r"0x[0-9a-f]+", "0x", out.getvalue()),
        "name": task.get_name(),
        "factory": type(asyncio.get_running_loop().get_task_factory()).__name__,
    }
    gate.set_result(None)
    await task
    return info


def test_introspection_is_unchanged(server):
    plain = asyncio.run(_observe())
    loopscope.install(server=server.url)
    try:
        with loopscope.session("introspect"):
            seen = asyncio.run(_observe())
    finally:
        loopscope.uninstall()
    assert seen["factory"] == plain["factory"] == "NoneType"  # loopscope's factory is not seen
    for key in ("iscoroutine", "coro_name", "repr", "stack", "printed", "name"):
        assert seen[key] == plain[key], key
    assert seen["iscoroutine"] is True
    assert plain["stack"] == [("_held", inspect.getsourcelines(_held)[1] + 1)], plain  # suspended at its await


def test_unhandled_task_exception_is_still_logged(server):
    # loopscope reads the exception of a failed task; it must not mark it as retrieved
    messages = []

    async def fail():
        raise KeyError("nobody awaits me")

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda lp, ctx: messages.append(ctx["message"]))
        t = asyncio.create_task(fail())
        await asyncio.sleep(0.01)
        del t
        import gc
        gc.collect()
        await asyncio.sleep(0.001)

    loopscope.install(server=server.url)
    try:
        with loopscope.session("unretrieved"):
            asyncio.run(main())
    finally:
        loopscope.uninstall()
    assert any("never retrieved" in m for m in messages), messages


def test_encoder_escapes_hostile_strings():
    text = _core._encode_selftest('q"uo\\te\n\x00\x1f \u00e9 \U0001F600 </script>')
    events = json.loads(text)
    assert [e["k"] for e in events] == ["task", "step", "await", "block", "lag", "done", "end"]
    # U+0000 becomes U+FFFD: ingest v1 refuses any text holding it (the whole batch would go)
    assert events[0]["name"] == 'q"uo\\te\n\ufffd\x1f \u00e9 \U0001F600 </script>'
    assert events[2]["t"] == 2 ** 53 - 1          # clamped into [0, 2^53)
    assert events[3]["stack"][1]["func"] == 'g"'
    assert events[5]["state"] == "error" and events[5]["exc"].startswith('q"uo')


def test_session_outside_install_records_nothing():
    with loopscope.session("nothing") as s:
        assert not s.recording
    assert s.url.endswith("/sessions/" + s.id)


def test_uninstall_with_the_server_down_does_not_hang():
    from conftest import free_port
    import time
    loopscope.install(server=f"http://127.0.0.1:{free_port()}", exit_flush_ms=300)
    with loopscope.session("lost"):
        asyncio.run(_introspected())
    t0 = time.monotonic()
    with pytest.warns(RuntimeWarning, match="did not take every event"):
        ok = loopscope.uninstall()
    assert ok is False
    # 3 s is the default exit_flush_ms: an uninstall that ignored the 300 ms asked for (or waited on
    # the dead server without a bound) takes at least that long; 2.7 s of slack for a loaded machine
    assert time.monotonic() - t0 < 3.0
    assert not loopscope.installed()


def test_helpers_when_not_installed():
    assert loopscope.flush() is True
    assert loopscope.stats() == {}
    assert loopscope.uninstall() is True


def test_failing_callback_reported_as_without_loopscope(server):
    # loopscope runs Handle._run's body in C: a raising callback must still reach the loop's
    # exception handler with asyncio's own message, exception and handle
    def bad(x):
        raise ValueError(f"bad {x}")

    def run() -> list:
        seen = []

        async def main():
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda lp, ctx: seen.append(
                (ctx["message"].split(" at ")[0], type(ctx["exception"]).__name__, str(ctx["exception"]),
                 type(ctx["handle"]).__name__)))
            loop.call_soon(bad, 7)
            await asyncio.sleep(0.01)
        asyncio.run(main())
        return seen

    plain = run()
    loopscope.install(server=server.url)
    try:
        with loopscope.session("failing callback"):
            recorded = run()
    finally:
        loopscope.uninstall()
    assert plain and recorded == plain
    assert plain[0][1:] == ("ValueError", "bad 7", "Handle")
