# test_request_end.py — a request's own task ends in its session when the session does: a Starlette
# app wrapped in LoopscopeMiddleware, served by uvicorn over real HTTP (httpx) on a loopback port in
# a thread of this process, against the real server. The request's task is uvicorn's
# RequestResponseCycle.run_asgi, which runs on after the app returns: its lane must say how the
# request ended (ok / error, and the response status), not "running" forever.
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import loopscope
from loopscope.asgi import LoopscopeMiddleware, route_template

from lstest import AppServer

# tasks a handler leaves behind; they must stay "running" (only the request's task ends)
LEFT_BEHIND: list[asyncio.Task] = []


async def ok(request) -> PlainTextResponse:
    await asyncio.sleep(0.001)
    LEFT_BEHIND.append(asyncio.create_task(asyncio.sleep(0.5), name="left-behind"))
    return PlainTextResponse("ok")


async def created(request) -> PlainTextResponse:
    return PlainTextResponse("made", status_code=201)


async def boom(request) -> PlainTextResponse:
    await asyncio.sleep(0)
    raise KeyError("no such thing")


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/{tag}/ok", ok), Route("/{tag}/created", created),
                             Route("/{tag}/boom", boom)])


async def raw_raises(scope, receive, send) -> None:
    """A bare ASGI app that raises before it sends anything: the server answers 500 by itself,
    outside the app, so no status reaches the middleware."""
    raise RuntimeError("bare app failed")


def root_task(server, path: str) -> dict:
    """The root task of the one session named "GET <path>"."""
    (s,) = [s for s in server.get("/api/v1/sessions?name=" + path)["sessions"] if s["name"] == "GET " + path]
    tasks = server.get(f"/api/v1/sessions/{s['id']}/tasks")["tasks"]
    roots = [t for t in tasks if t["parent"] == 0]
    assert len(roots) == 1, tasks
    return {"root": roots[0], "tasks": tasks, "id": s["id"]}


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_request_task_ends_with_the_response_status(server, collector, header):
    collector()
    tag = uuid.uuid4().hex[:12]
    LEFT_BEHIND.clear()
    with AppServer(LoopscopeMiddleware(starlette_app(), header=header), log_level="critical") as app:
        with httpx.Client(base_url=app.url, timeout=60) as http:
            answers = {p: http.get(f"/{tag}/{p}") for p in ("ok", "created", "missing", "boom")}
    assert [answers[p].status_code for p in ("ok", "created", "missing", "boom")] == [200, 201, 404, 500]
    assert ("x-loopscope-session" in answers["ok"].headers) is header
    assert loopscope.flush(60), loopscope.stats()

    ok_ = root_task(server, f"/{tag}/ok")
    root = ok_["root"]
    assert root["coro"].endswith("run_asgi"), root  # uvicorn's task, still running when the app returned
    assert (root["state"], root["status"], root["exc"]) == ("ok", 200, None)
    assert root["ended"] is not None and root["ended"] >= root["created"]
    # what the handler left running stays running: only the request's own task ends
    left = [t for t in ok_["tasks"] if t["name"] == "left-behind"]
    assert len(left) == 1 and left[0]["ended"] is None and left[0]["state"] is None and left[0]["status"] is None

    assert (lambda r: (r["state"], r["status"]))(root_task(server, f"/{tag}/created")["root"]) == ("ok", 201)
    assert (lambda r: (r["state"], r["status"]))(root_task(server, f"/{tag}/missing")["root"]) == ("ok", 404)
    # Starlette's ServerErrorMiddleware sends a 500 through send, then raises again
    err = root_task(server, f"/{tag}/boom")["root"]
    assert (err["state"], err["status"], err["exc"]) == ("error", 500, "KeyError: 'no such thing'")
    assert err["ended"] is not None


def test_bare_app_that_raises_ends_with_its_error_and_no_status(server, collector):
    collector()
    tag = uuid.uuid4().hex[:12]
    # log_level: uvicorn would log the app's error, which is the point here
    with AppServer(LoopscopeMiddleware(raw_raises, header=False), log_level="critical") as app:
        with httpx.Client(base_url=app.url, timeout=60) as http:
            assert http.get(f"/{tag}/raw").status_code == 500  # uvicorn's own answer
    assert loopscope.flush(60)
    root = root_task(server, f"/{tag}/raw")["root"]
    assert (root["state"], root["status"], root["exc"]) == ("error", None, "RuntimeError: bare app failed")
    assert root["ended"] is not None


def test_websocket_and_cancelled_requests_end_without_a_status(server, collector):
    """A WebSocket session's task ends ok without a status (its handshake answer is not an HTTP
    response of the app's); a request cancelled under the app ends cancelled."""
    collector()

    async def ws_app(scope, receive, send):
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    async def cancelled_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise asyncio.CancelledError()

    async def serve(app, scope):
        async def receive():
            return {"type": "websocket.connect"}

        async def send(message):
            pass

        task = asyncio.create_task(app(scope, receive, send))
        try:
            await task
        except asyncio.CancelledError:
            pass

    tag = uuid.uuid4().hex[:12]
    asyncio.run(serve(LoopscopeMiddleware(ws_app), {"type": "websocket", "path": f"/{tag}/ws", "headers": []}))
    asyncio.run(serve(LoopscopeMiddleware(cancelled_app),
                      {"type": "http", "method": "GET", "path": f"/{tag}/c", "headers": []}))
    assert loopscope.flush(60)
    (s,) = [s for s in server.get("/api/v1/sessions?name=" + tag)["sessions"] if s["name"] == f"WS /{tag}/ws"]
    (ws_root,) = [t for t in server.get(f"/api/v1/sessions/{s['id']}/tasks")["tasks"] if t["parent"] == 0]
    assert (ws_root["state"], ws_root["status"]) == ("ok", None) and ws_root["ended"] is not None
    c = root_task(server, f"/{tag}/c")["root"]
    assert (c["state"], c["status"], c["exc"]) == ("cancelled", 200, None)


def test_session_tasks_still_pending_at_close_stay_running(server, collector):
    """loopscope.session() (not the middleware): a task still pending when the session closes,
    the adopted one included, is not given an end it did not have."""
    collector()

    async def main():
        async with loopscope.session("pending-" + uuid.uuid4().hex[:8]) as s:
            pending = asyncio.create_task(asyncio.sleep(30))
            await asyncio.sleep(0)
        pending.cancel()
        return s.id

    sid = asyncio.run(main())
    assert loopscope.flush(60)
    tasks = server.get(f"/api/v1/sessions/{sid}/tasks")["tasks"]
    assert len(tasks) == 2 and all(t["ended"] is None and t["status"] is None for t in tasks), tasks


def test_request_named_and_given_its_status_after_it_opened(server, collector):
    """What litestar-debug-toolbar's panel does (it gets no ASGI scope): open the request with a
    provisional name, rename it once the request line is known, set the status it saw; the
    session's later batch carries the new name, and the root task ends with that status. Bad
    values are refused precisely and change nothing."""
    from loopscope import _state
    collector()
    core = _state.core
    tag = uuid.uuid4().hex[:8]

    async def no_send(message):
        return None

    async def main():
        req = core.request_open({"type": "http"}, no_send, "request", False)
        await asyncio.sleep(0.001)
        assert loopscope.flush(30)  # a first batch goes out with the provisional name
        assert server.get(f"/api/v1/sessions/{req.id}")["name"] == "request"
        with pytest.raises(TypeError, match="must be a str"):
            req.rename(42)
        with pytest.raises(UnicodeEncodeError):
            req.rename("bad \udc80 name")
        with pytest.raises(ValueError, match=r"\[100, 599\]"):
            req.status = 99
        with pytest.raises(ValueError, match=r"\[100, 599\]"):
            req.status = 600
        assert req.status == 0
        req.rename(f"GET /{tag}/renamed")
        req.status = 418
        assert req.status == 418
        await asyncio.sleep(0.001)
        req.close()
        req.rename("after close: ignored")
        return req.id

    sid = asyncio.run(main())
    assert loopscope.flush(30)
    assert server.get(f"/api/v1/sessions/{sid}")["name"] == f"GET /{tag}/renamed"
    found = root_task(server, f"/{tag}/renamed")
    assert found["id"] == sid
    assert (found["root"]["state"], found["root"]["status"]) == ("ok", 418)


class _Route:
    def __init__(self, path):
        self.path = path


class _BadRoute:
    @property
    def path(self):
        raise RuntimeError("a route that cannot say its path")


class _Scope(dict):
    """A scope that is a mapping but not exactly a dict."""


async def _routed_app(scope, receive, send) -> None:
    if scope["path"] == "/raises":
        raise ValueError("the app failed")
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


ROUTE_CASES = [
    ({"type": "http", "method": "POST", "path": "/a/1", "path_template": "/a/{b}"}, "POST /a/{b}"),
    ({"type": "websocket", "path": "/ws/1", "path_template": "/ws/{n}"}, "WS /ws/{n}"),
    ({"type": "http", "path": "/m", "path_template": "/m"}, "GET /m"),  # no method: GET, as route_template
    ({"type": "http", "method": "GET", "path": "/caf\u00e9/1", "path_template": "/caf\u00e9/{n}"}, "GET /caf\u00e9/{n}"),
    ({"type": "http", "method": "GET", "path": "/r/5", "route": _Route("/r/{x}")}, "GET /r/{x}"),
    ({"type": "http", "method": "GET", "path": "/r/6", "route": _Route("/{x}"), "root_path": "/p/api",
      "app_root_path": "/p"}, "GET /api/{x}"),
    ({"type": "http", "method": "GET", "path": "/odd", "path_template": 5}, None),
    ({"type": "http", "method": "GET", "path": "/odd2", "path_template": "", "route": _Route("/o/{x}")}, "GET /o/{x}"),
    ({"type": "http", "method": "GET", "path": "/bad", "route": _BadRoute()}, None),
    ({"type": "http", "method": "GET", "path": "/none"}, None),
    (_Scope(type="http", method="PUT", path="/s/1", path_template="/s/{id}"), "PUT /s/{id}"),
    ({"type": "http", "method": "GET", "path": "/raises", "path_template": "/raises"}, "GET /raises"),
]


def test_session_route_from_the_scope(server, collector):
    """The route the middleware's close reads from the scope (Litestar's path_template in C, a
    route object through route_template) is the route the session carries; what cannot be read
    leaves none and never fails the request, and an app's own exception goes on unchanged."""
    collector()
    for scope, route in ROUTE_CASES:  # what the Python function says (the C reading must agree)
        if not isinstance(scope.get("route"), _BadRoute):
            assert route_template(scope) == route, scope
    app = LoopscopeMiddleware(_routed_app)

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    async def main() -> list:
        ids = []
        for scope, _ in ROUTE_CASES:
            try:
                await asyncio.create_task(app(scope, receive, send))
            except ValueError as exc:
                assert str(exc) == "the app failed" and scope["path"] == "/raises"
            ids.append(scope["state"]["loopscope_session"].id)
        return ids

    ids = asyncio.run(main())
    assert loopscope.flush(60), loopscope.stats()
    got = [server.get(f"/api/v1/sessions/{sid}")["route"] for sid in ids]
    assert got == [r for _, r in ROUTE_CASES]


def test_overlapping_requests_keep_their_ids_urls_and_the_count_of_open_sessions(server, collector):
    """Five requests open together and end out of their order (the open sessions are a linked list;
    a request's id becomes a str only when asked): each request's header URL, request.url,
    request.id (read after it ended too) and the session its app sees in current_session agree, the
    server has each under that id and name, the count of open sessions follows every end, and the
    app's own headers (a list, or a tuple) go out first and are not changed in place."""
    from loopscope.session import current_session

    collector()
    tag = uuid.uuid4().hex[:12]
    names = [str(i) for i in range(5)]
    gates = {n: asyncio.Event() for n in names}
    seen, headers_out, app_lists = {}, {}, {}

    async def app(scope, receive, send):
        n = scope["path"].rsplit("/", 1)[1]
        seen[n] = current_session.get().id
        # the request is its own session: the context variable holds the object scope["state"] has
        assert current_session.get() is scope["state"]["loopscope_session"]
        await gates[n].wait()
        mine = [(b"content-type", b"text/plain")]
        app_lists[n] = mine
        await send({"type": "http.response.start", "status": 200,
                    "headers": tuple(mine) if n == "3" else mine})
        await send({"type": "http.response.body", "body": b""})

    mw = LoopscopeMiddleware(app)

    async def receive():
        return {"type": "http.request", "body": b""}

    async def one(n):
        async def send(message):
            if message["type"] == "http.response.start":
                headers_out[n] = list(message["headers"])
        scope = {"type": "http", "method": "GET", "path": f"/{tag}/{n}", "headers": []}
        await mw(scope, receive, send)
        return scope["state"]["loopscope_session"]

    async def main():
        tasks = {n: asyncio.create_task(one(n)) for n in names}
        while len(seen) < len(names):
            await asyncio.sleep(0)
        counts = [loopscope.stats()["active_sessions"]]
        for n in ["2", "0", "4", "1", "3"]:
            gates[n].set()
            await tasks[n]
            counts.append(loopscope.stats()["active_sessions"])
        return {n: t.result() for n, t in tasks.items()}, counts

    reqs, counts = asyncio.run(main())
    assert counts == [5, 4, 3, 2, 1, 0]
    from loopscope import _core
    assert all(isinstance(r, _core.Session) for r in reqs.values())
    with pytest.raises(TypeError):
        type(reqs["0"])("s-made-by-hand")  # only request_open makes one
    assert loopscope.stats()["active_sessions"] == 0
    ids = {n: r.id for n, r in reqs.items()}
    assert len(set(ids.values())) == len(names) and all(isinstance(i, str) and i.startswith("s-") for i in ids.values())
    assert loopscope.flush(60), loopscope.stats()
    for n, r in reqs.items():
        assert r.id is r.id  # made once, then the same str
        assert seen[n] == ids[n]
        assert r.url.endswith("/sessions/" + ids[n]) and not r.recording
        assert headers_out[n] == [(b"content-type", b"text/plain"), (b"x-loopscope-session", r.url.encode())]
        assert app_lists[n] == [(b"content-type", b"text/plain")]
        got = server.get(f"/api/v1/sessions/{ids[n]}")
        assert (got["id"], got["name"]) == (ids[n], f"GET /{tag}/{n}")
