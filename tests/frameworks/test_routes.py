# test_routes.py — LoopscopeMiddleware records the route template the framework matched, besides
# the raw path: Litestar (scope["path_template"]), Starlette (scope["route"], also inside a Mount)
# and FastAPI (through Starlette, an APIRouter with a prefix), each served by real uvicorn against
# the real server; the session's summary carries `route`, and /api/v1/endpoints groups by it.
# A request no route matched (404) has none; a handler that raises still has its route. With
# request_fraction, a share of each framework's requests is recorded and the rest answered alike;
# a block of the loop in a request not recorded still reaches the server, in a session of its own.
from __future__ import annotations

import sys
import urllib.parse

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from litestar import Litestar, get as litestar_get
from litestar.params import FromPath
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import loopscope
from loopscope.asgi import LoopscopeMiddleware, route_template

from lstest import AppServer

TIMEOUT = 60


class Boom(Exception):
    pass


def litestar_app() -> Litestar:
    @litestar_get("/users/{user_id:int}")
    async def user(user_id: FromPath[int]) -> dict:
        return {"id": user_id}

    @litestar_get("/boom/{n:int}")
    async def boom(n: FromPath[int]) -> dict:
        raise Boom(n)

    return Litestar(route_handlers=[user, boom])


def starlette_app() -> Starlette:
    async def user(request) -> JSONResponse:
        return JSONResponse({"id": int(request.path_params["user_id"])})

    async def item(request) -> JSONResponse:
        return JSONResponse({"id": int(request.path_params["item_id"])})

    async def boom(request) -> JSONResponse:
        raise Boom(request.path_params["n"])

    return Starlette(routes=[Route("/users/{user_id}", user), Route("/boom/{n}", boom),
                             Mount("/api", routes=[Route("/items/{item_id}", item)])])


def fastapi_app() -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/v2")

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict:
        return {"id": user_id}

    @app.get("/boom/{n}")
    async def boom(n: int) -> dict:
        raise Boom(n)

    @router.get("/items/{user_id}")
    async def item(user_id: int) -> dict:
        return {"id": user_id}

    app.include_router(router)
    return app


APPS = {"litestar": litestar_app, "starlette": starlette_app, "fastapi": fastapi_app}
# per app: (path requested, status, route expected)
EXPECTED = {
    "litestar": [("/users/7", 200, "GET /users/{user_id}"), ("/users/42", 200, "GET /users/{user_id}"),
                 ("/nowhere/1", 404, None), ("/boom/3", 500, "GET /boom/{n}")],
    "starlette": [("/users/7", 200, "GET /users/{user_id}"), ("/users/42", 200, "GET /users/{user_id}"),
                  ("/api/items/5", 200, "GET /api/items/{item_id}"), ("/nowhere/1", 404, None),
                  ("/boom/3", 500, "GET /boom/{n}")],
    "fastapi": [("/users/7", 200, "GET /users/{user_id}"), ("/users/42", 200, "GET /users/{user_id}"),
                ("/v2/items/5", 200, "GET /v2/items/{user_id}"), ("/nowhere/1", 404, None),
                ("/boom/3", 500, "GET /boom/{n}")],
}


@pytest.mark.parametrize("name", list(APPS))
def test_sessions_carry_the_route_template(server, collector, name):
    service = f"routes-{name}"
    collector(service=service)
    sessions = []
    with AppServer(LoopscopeMiddleware(APPS[name]())) as app, httpx.Client(base_url=app.url, timeout=TIMEOUT) as http:
        for path, status, _ in EXPECTED[name]:
            r = http.get(path)
            assert r.status_code == status, (path, r.text)
            url = r.headers["x-loopscope-session"]
            sessions.append(url.rsplit("/", 1)[1])
    assert loopscope.flush(TIMEOUT), loopscope.stats()
    for sid, (path, status, route) in zip(sessions, EXPECTED[name]):
        s = server.get(f"/api/v1/sessions/{sid}")
        # the raw path stays the name; the template is the route
        assert (s["name"], s["route"], s["ended"]) == (f"GET {path}", route, True), s
    # the endpoints view groups the two /users requests under their template
    q = urllib.parse.urlencode({"service": service, "endpoint": "GET /users/{user_id}"})
    (users,) = server.get(f"/api/v1/endpoints?{q}")["endpoints"]
    assert users["count"] == 2 and users["templated"] is True
    assert {s["name"] for s in users["slowest"]} == {"GET /users/7", "GET /users/42"}


@pytest.mark.parametrize("name", list(APPS))
def test_a_fraction_of_requests_is_recorded(server, collector, name):
    """request_fraction 0.5: about half of 60 requests carry the header, exactly those are stored
    (the endpoints view counts them, each standing for two requests), and every response is the
    app's own either way."""
    service = f"fraction-{name}"
    collector(service=service, request_fraction=0.5)
    recorded = set()
    with AppServer(LoopscopeMiddleware(APPS[name]())) as app, httpx.Client(base_url=app.url, timeout=TIMEOUT) as http:
        for i in range(60):
            r = http.get(f"/users/{i}")
            assert r.status_code == 200 and r.json() == {"id": i}, r.text
            if "x-loopscope-session" in r.headers:
                recorded.add(r.headers["x-loopscope-session"].rsplit("/", 1)[1])
    # Binomial(60, 0.5): none or all of them would be a broken draw (odds ~1e-18)
    assert 0 < len(recorded) < 60, len(recorded)
    assert loopscope.flush(TIMEOUT), loopscope.stats()
    q = urllib.parse.urlencode({"service": service, "endpoint": "GET /users/{user_id}"})
    (users,) = server.get(f"/api/v1/endpoints?{q}")["endpoints"]
    assert users["count"] == len(recorded)
    assert (users["requests"], users["sampled"]) == (2 * len(recorded), len(recorded)), users
    assert {s["id"] for s in users["slowest"]} <= recorded


def test_a_block_in_a_request_not_recorded_is_kept(server, collector):
    """request_fraction 0 on Litestar under real uvicorn: no request is recorded, yet the
    handler's time.sleep that blocks the loop reaches the server, in a session of its own, named
    after the request when the watchdog took the stack (on 3.12+)."""
    import time

    @litestar_get("/slow")
    async def slow() -> dict:
        time.sleep(0.15)  # blocks the loop
        return {"ok": True}

    plain, in_request = "loop blocked outside a recorded request", "GET /slow: loop blocked (request not recorded)"

    def orphans() -> dict:
        found = server.get("/api/v1/sessions?name=loop%20blocked&limit=1000")["sessions"]
        return {s["id"]: s["name"] for s in found if s["name"] in (plain, in_request)}

    collector(request_fraction=0.0)
    before = orphans()
    with AppServer(LoopscopeMiddleware(Litestar(route_handlers=[slow]))) as app, \
            httpx.Client(base_url=app.url, timeout=TIMEOUT) as http:
        r = http.get("/slow")
        assert r.status_code == 200 and "x-loopscope-session" not in r.headers, r.headers
    assert loopscope.flush(TIMEOUT), loopscope.stats()
    new = {sid: name for sid, name in orphans().items() if sid not in before}
    blocks = [(new[sid], b) for sid in new for b in server.get(f"/api/v1/sessions/{sid}/blocks")["blocks"]]
    assert any(b["d"] >= 150_000_000 for _, b in blocks), blocks
    # named by the handler's line, unless the watchdog did not get the CPU in time; and then the
    # session is named after the request (LoopscopeMiddleware's frame was on the stack)
    for name, b in blocks:
        if b["d"] >= 150_000_000 and b["stack"]:
            f = b["stack"][-1]
            assert (f["func"], f["src"].strip()) == ("slow", "time.sleep(0.15)  # blocks the loop"), b
            assert name == (in_request if sys.version_info >= (3, 12) else plain), name


def test_route_template_of_scopes():
    class R:
        path = "/items/{item_id}"
    assert route_template({"type": "http", "method": "POST", "path_template": "/a/{b}"}) == "POST /a/{b}"
    assert route_template({"type": "http", "method": "GET", "route": R()}) == "GET /items/{item_id}"
    assert route_template({"type": "http", "method": "GET", "route": R(), "root_path": "/x/api",
                           "app_root_path": "/x"}) == "GET /api/items/{item_id}"
    assert route_template({"type": "websocket", "route": R()}) == "WS /items/{item_id}"
    assert route_template({"type": "http", "method": "GET"}) is None
    assert route_template({"type": "http", "method": "GET", "route": object()}) is None
