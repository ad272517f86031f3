# test_sessions.py — sessions: the ASGI middleware keeps overlapping requests apart, async and
# sync sessions, the per-session task cap, and tasks outside any session left alone.
from __future__ import annotations

import asyncio
import time

import loopscope
from loopscope.asgi import LoopscopeMiddleware

from conftest import by_coro


async def work_alpha(i: int) -> int:
    await asyncio.sleep(0.01 + i * 0.002)
    return i


async def work_beta(i: int) -> int:
    await asyncio.sleep(0.012 + i * 0.001)
    return -i


async def app(scope, receive, send):
    worker = work_alpha if scope["path"] == "/alpha" else work_beta
    await asyncio.gather(*(worker(i) for i in range(5)))
    await asyncio.create_task(worker(9))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def request(asgi, path: str) -> dict:
    sent = []
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(m):
        sent.append(m)

    await asyncio.create_task(asgi(scope, receive, send))
    return dict(sent[0]["headers"])


def test_overlapping_requests_get_their_own_sessions(server, collector):
    collector()
    asgi = LoopscopeMiddleware(app)

    async def main():
        return await asyncio.gather(request(asgi, "/alpha"), request(asgi, "/beta"))

    headers = asyncio.run(main())
    assert loopscope.flush(10)
    urls = [h[b"x-loopscope-session"].decode() for h in headers]
    assert urls[0] != urls[1]
    assert all(u.startswith(server.url + "/sessions/s-") for u in urls)
    for url, own, other in ((urls[0], "work_alpha", "work_beta"), (urls[1], "work_beta", "work_alpha")):
        sid = url.rsplit("/", 1)[1]
        data = server.session(sid)
        assert data["summary"]["name"] in ("GET /alpha", "GET /beta")
        assert len(by_coro(data["tasks"], own)) == 6
        assert by_coro(data["tasks"], other) == []
        ids = {t["id"] for t in data["tasks"]}
        assert all(a["task"] in ids for a in data["awaits"])
        root = [t for t in data["tasks"] if t["parent"] == 0]
        assert len(root) == 1 and root[0]["coro"].endswith("LoopscopeMiddleware.__call__")
        assert all(t["parent"] == root[0]["id"] for t in data["tasks"] if t is not root[0])


def test_middleware_passes_through_when_not_installed():
    asgi = LoopscopeMiddleware(app)
    headers = asyncio.run(request(asgi, "/alpha"))
    assert b"x-loopscope-session" not in headers


def test_async_session_and_outside_tasks(server, collector):
    collector()

    async def outside():
        await asyncio.sleep(0.001)

    async def main():
        await asyncio.create_task(outside())          # before the session: not recorded
        async with loopscope.session("inner") as s:
            await asyncio.create_task(work_alpha(1))
        await asyncio.create_task(outside())          # after it: not recorded
        return s.id

    sid = asyncio.run(main())
    assert loopscope.flush(10)
    data = server.session(sid)
    assert data["summary"]["name"] == "inner"
    assert data["summary"]["ended"] is True
    coros = sorted(t["coro"].rsplit(".", 1)[-1] for t in data["tasks"])
    assert coros == ["main", "work_alpha"]


def test_task_cap_counts_the_rest_as_dropped(record):
    async def many():
        await asyncio.gather(*(work_alpha(0) for _ in range(30)))

    data = record(many, "cap", max_tasks=10)
    assert len(data["tasks"]) == 10
    assert data["summary"]["dropped"] >= 21


async def blocking_app(scope, receive, send):
    await asyncio.sleep(0.01)
    time.sleep(0.15)  # the request's own task blocks the loop, then ends its session
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_step_in_progress_at_session_end_is_recorded(server, collector):
    """The middleware's task closes its session from inside its last step: that step (with the
    150 ms block in it) still shows as the task's busy time, and the lag heartbeat due during it
    reports its lateness."""
    collector(sample_rate_ms=10)
    headers = asyncio.run(request(LoopscopeMiddleware(blocking_app), "/block"))
    assert loopscope.flush(10)
    sid = headers[b"x-loopscope-session"].decode().rsplit("/", 1)[1]
    data = server.session(sid)
    root = [t for t in data["tasks"] if t["coro"].endswith("LoopscopeMiddleware.__call__")]
    assert len(root) == 1
    assert 140_000_000 <= root[0]["busy_ns"] < 400_000_000
    assert len(data["blocks"]) == 1
    block = data["blocks"][0]
    assert block["task"] == root[0]["id"] and 135_000_000 <= block["d"] < 300_000_000
    tl = server.get(f"/api/v1/sessions/{sid}/timeline?px=10000&tasks={root[0]['id']}")
    steps = [i for lane in tl["lanes"] for i in lane["items"] if i["k"] == "step"]
    b0, b1 = block["t"], block["t"] + block["d"]
    assert any(s["t"] <= b0 + 1_000_000 and s["t"] + s["d"] >= b1 - 1_000_000 for s in steps), steps
    assert data["lag"]["summary"]["max_ms"] >= 100
