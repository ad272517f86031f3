# test_request_fraction.py — LoopscopeMiddleware's `fraction` and the `request_fraction` setting:
# the share of requests recorded, each drawn at random; the requests not drawn pass through with
# no session, no state entry and no header; the app's own `random` sequence is untouched; bad
# values are refused with a message that says what is allowed. A request not drawn that blocks the
# loop still leaves that block on the server, in a session of its own.
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid

import pytest

import loopscope
from loopscope import _state
from loopscope.asgi import LoopscopeMiddleware
from loopscope.settings import load as load_settings

from conftest import line_of

HEADER = b"x-loopscope-session"


def make_app(seen: list):
    async def app(scope, receive, send):
        # what the app saw: its own draw from `random`, and whether it was given a session
        seen.append((random.random(), "loopscope_session" in scope.get("state", {})))
        await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


async def drive(asgi, tag: str, n: int) -> list[dict]:
    """n requests one after another, each in a task of its own as a server runs them: the headers
    of each http.response.start."""
    out = []

    async def one(i: int) -> None:
        sent = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(m):
            sent.append(m)

        await asgi({"type": "http", "method": "GET", "path": f"/{tag}/{i}", "headers": [], "state": {}},
                   receive, send)
        out.append(dict(sent[0]["headers"]))

    for i in range(n):
        await asyncio.create_task(one(i))
    return out


def stored_ids(server, tag: str) -> set[str]:
    return {s["id"] for s in server.get(f"/api/v1/sessions?name={tag}&limit=1000")["sessions"]}


def test_a_fraction_records_that_share_and_no_more(server, collector):
    collector()
    tag = "frac-" + uuid.uuid4().hex[:8]
    seen: list = []
    headers = asyncio.run(drive(LoopscopeMiddleware(make_app(seen), fraction=0.5), tag, 400))
    recorded = [h[HEADER].decode().rsplit("/", 1)[1] for h in headers if HEADER in h]
    # Binomial(400, 0.5): 200 +- 10 (one sigma); 120..280 is eight sigmas either way
    assert 120 < len(recorded) < 280, len(recorded)
    # the app was given a session exactly when the response carries the header
    assert [given for _, given in seen] == [HEADER in h for h in headers]
    assert loopscope.flush(60), loopscope.stats()
    assert stored_ids(server, tag) == set(recorded), "the server holds other sessions than those recorded"
    assert loopscope.stats()["active_sessions"] == 0


@pytest.mark.parametrize("fraction,sent", [(0.25, 0.25), (1 / 3, 0.333333), (1.0, None), (0.9999999, None)])
def test_the_server_counts_what_the_recorded_requests_stand_for(server, collector, fraction, sent):
    """A drawn request's meta carries its share, in millionths (meta.fraction, docs/api.md): each
    stored session says it, and the endpoints view counts each as 1 / fraction requests. A share
    that rounds to every request is sent as none."""
    collector()
    tag = "frac-" + uuid.uuid4().hex[:8]
    seen: list = []
    mw = LoopscopeMiddleware(make_app(seen), fraction=fraction, name=lambda scope: f"GET /{tag}")
    headers = asyncio.run(drive(mw, tag, 200))
    recorded = sum(HEADER in h for h in headers)
    assert recorded > 0
    assert loopscope.flush(60), loopscope.stats()
    shares = {s["fraction"] for s in server.get(f"/api/v1/sessions?name={tag}&limit=1000")["sessions"]}
    assert shares == {sent}, shares
    ep = server.get(f"/api/v1/endpoints?endpoint=GET%20/{tag}")["endpoints"]
    assert [e["count"] for e in ep] == [recorded]
    ppm = round(sent * 1_000_000) if sent else 0
    expect = (recorded * (10**12 // ppm) + 500_000) // 1_000_000 if ppm else recorded
    assert (ep[0]["requests"], ep[0]["sampled"]) == (expect, recorded if sent else 0), ep[0]


def test_none_and_every_request(server, collector):
    collector()
    tag = "frac-" + uuid.uuid4().hex[:8]
    seen: list = []
    none = asyncio.run(drive(LoopscopeMiddleware(make_app(seen), fraction=0), tag + "-none", 50))
    every = asyncio.run(drive(LoopscopeMiddleware(make_app(seen), fraction=1), tag + "-all", 50))
    assert not any(HEADER in h for h in none)
    assert all(HEADER in h for h in every)
    assert loopscope.flush(60)
    assert stored_ids(server, tag + "-none") == set()
    assert len(stored_ids(server, tag + "-all")) == 50


def test_the_installed_setting_and_the_middlewares_own(server, collector):
    collector(request_fraction=0.0)
    assert _state.settings.request_fraction == 0.0
    seen: list = []
    # fraction=None (the default) takes the installed setting; the middleware's own wins
    by_setting = asyncio.run(drive(LoopscopeMiddleware(make_app(seen)), "frac-setting", 20))
    own = asyncio.run(drive(LoopscopeMiddleware(make_app(seen), fraction=1.0), "frac-own", 20))
    assert not any(HEADER in h for h in by_setting)
    assert all(HEADER in h for h in own)


def test_the_apps_random_sequence_is_left_alone(server, collector):
    random.seed(1234)
    expected = [random.random() for _ in range(200)]
    collector()
    seen: list = []
    random.seed(1234)
    headers = asyncio.run(drive(LoopscopeMiddleware(make_app(seen), fraction=0.5), "frac-rng", 200))
    assert [draw for draw, _ in seen] == expected
    assert 0 < sum(HEADER in h for h in headers) < 200


ORPHAN = "loop blocked outside a recorded request"
IN_REQUEST = ": loop blocked (request not recorded)"  # after the request's name (3.12+)


def orphan_ids(server) -> set[str]:
    return {s["id"] for s in server.get("/api/v1/sessions?name=loop%20blocked&limit=1000")["sessions"]
            if s["name"] == ORPHAN or s["name"].endswith(IN_REQUEST)}


def orphan_name(request: str, block: dict) -> str:
    """What an orphan block's session is called: after the request whose middleware frame the
    watchdog found on the blocked stack (3.12+, where it reads the frame's `scope` without
    touching its locals dict), else the plain name (no stack taken in time, or 3.10/3.11)."""
    return request + IN_REQUEST if block["stack"] and sys.version_info >= (3, 12) else ORPHAN


async def blocking_app(scope, receive, send):
    time.sleep(0.15)  # blocks the loop
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def run_blocking_outside_a_session() -> None:
    time.sleep(0.15)  # blocks the loop
    await asyncio.sleep(0)


def test_a_block_in_a_request_not_drawn_gets_a_session_of_its_own(server, collector):
    collector()
    before = orphan_ids(server)
    # the default, every request recorded: a block outside any session stays unrecorded, as before
    asyncio.run(run_blocking_outside_a_session())
    assert loopscope.flush(60)
    assert orphan_ids(server) == before
    # a middleware's own fraction below 1 keeps such blocks from its first request's next step on
    # (install() does from the start when the setting request_fraction is below 1: below)
    asyncio.run(drive(LoopscopeMiddleware(make_app([]), fraction=0), "frac-first", 1))
    headers = asyncio.run(drive(LoopscopeMiddleware(blocking_app, fraction=0), "frac-orphan", 1))
    assert HEADER not in headers[0]
    assert loopscope.flush(60), loopscope.stats()
    (sid,) = orphan_ids(server) - before
    data = server.session(sid)
    (b,) = data["blocks"]
    assert data["summary"]["name"] == orphan_name("GET /frac-orphan/0", b) and data["tasks"] == []
    # the block starts the session (which began when the block did) and lasts the whole sleep
    assert b["t"] == 0 and b["d"] >= 150_000_000 and b["task"] == 0, b
    # named by the handler's line, or unnamed when the watchdog did not get the CPU in time
    if b["stack"]:
        inner = b["stack"][-1]
        assert (inner["file"], inner["line"], inner["func"]) == \
            (__file__, line_of(blocking_app, "time.sleep"), "blocking_app"), b
    # once drawn-out requests were seen, blocks outside any session are kept too (no request to
    # name them after)
    asyncio.run(run_blocking_outside_a_session())
    assert loopscope.flush(60)
    (outside,) = orphan_ids(server) - before - {sid}
    assert server.get(f"/api/v1/sessions/{outside}")["name"] == ORPHAN
    # a fresh install starts without it
    loopscope.uninstall()
    collector()
    before = orphan_ids(server)
    asyncio.run(run_blocking_outside_a_session())
    assert loopscope.flush(60)
    assert orphan_ids(server) == before
    # ... unless request_fraction is below 1: then the first request's block is kept too
    loopscope.uninstall()
    collector(request_fraction=0.0)
    asyncio.run(drive(LoopscopeMiddleware(blocking_app), "frac-orphan-setting", 1))
    assert loopscope.flush(60)
    assert len(orphan_ids(server) - before) == 1


FORKING = """
import os, sys, warnings
import loopscope
from loopscope import _state
warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a process with threads
loopscope.install(offline=True)
pid = os.fork()
draws = repr([_state.draw() for _ in range(4)])
if pid == 0:
    print("child", draws, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("parent", draws, flush=True)
"""


def test_a_forked_child_draws_its_own_sequence(tmp_path):
    """Workers forked from one parent (gunicorn's) must not record the same requests' positions."""
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    script = tmp_path / "forking.py"
    script.write_text(FORKING)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    draws = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert set(draws) == {"child", "parent"} and draws["child"] != draws["parent"], out.stdout


@pytest.mark.parametrize("value, error, text", [
    (1.5, ValueError, "from 0 to 1"),
    (-0.1, ValueError, "from 0 to 1"),
    (float("nan"), ValueError, "from 0 to 1"),
    ("0.5", TypeError, "not str"),
    (True, TypeError, "not bool"),
    (None.__class__, TypeError, "must be a number"),
])
def test_bad_fractions_are_refused(value, error, text):
    with pytest.raises(error, match=text):
        LoopscopeMiddleware(make_app([]), fraction=value)


def test_the_setting_from_the_environment():
    assert load_settings(environ={"LOOPSCOPE_REQUEST_FRACTION": "0.25"}).request_fraction == 0.25
    assert load_settings(environ={}).request_fraction == 1.0
    with pytest.raises(ValueError, match="LOOPSCOPE_REQUEST_FRACTION='half' is not a valid float"):
        load_settings(environ={"LOOPSCOPE_REQUEST_FRACTION": "half"})
    with pytest.raises(ValueError, match="request_fraction=2.0 must be from 0 to 1"):
        load_settings({"request_fraction": 2})
    with pytest.raises(ValueError, match="LOOPSCOPE_REQUEST_FRACTION='nan' must be a finite number"):
        load_settings(environ={"LOOPSCOPE_REQUEST_FRACTION": "nan"})
