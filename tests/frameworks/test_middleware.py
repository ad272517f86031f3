# test_middleware.py — loopscope.asgi.LoopscopeMiddleware wrapping a Litestar, a Starlette and a
# FastAPI app, each served by real uvicorn over real HTTP on a loopback port (in a thread of this
# process), Litestar also by hypercorn, against the real server. Every app's handler does the same
# work (handle): concurrent awaits, a task group, a wait_for timeout that cancels a task, and one
# time.sleep(0.15) that blocks the loop. What the server stores of each request is read back through
# its REST API: the session named in the response's X-Loopscope-Session, its tasks, their end
# states, the block with its culprit line, the request's task with the response status.
from __future__ import annotations

import asyncio
import re
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import pytest
from fastapi import FastAPI
from litestar import Litestar, get as litestar_get
from litestar.params import FromPath
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import loopscope
from loopscope.asgi import LoopscopeMiddleware

from lstest import WAIT_BEFORE, AppServer, block_after_sleep, by_coro, check_block, free_port, line_of

TIMEOUT = 60  # a generous deadline for anything awaited: a loaded machine, a slow interpreter


# ---- what every app's handler does ------------------------------------------------------------

async def napper(i: int) -> None:
    await asyncio.sleep(0.002 * (i + 1))


async def grouped(i: int) -> None:
    await asyncio.sleep(0.001 * (i + 1))


async def stuck() -> None:
    await asyncio.sleep(3600)  # never ends by itself: wait_for's timeout cancels it


@dataclass
class Rendezvous:
    """Two overlapping requests, `first` and `second`. The first blocks the loop until the test has
    sent the second (so the second arrives while the first is inside its block), then waits until
    the second's handler runs, so both are in flight at once. No sleep decides any of it."""
    first: str
    second: str
    first_blocking: threading.Event = field(default_factory=threading.Event)
    second_sent: threading.Event = field(default_factory=threading.Event)
    second_in: asyncio.Event = field(default_factory=asyncio.Event)  # bound to the app's loop on use


RENDEZVOUS: dict[str, Rendezvous] = {}  # by request label
READS: dict[str, list[float]] = {}  # by request label: the handler's clock reads around its block


async def handle(label: str) -> dict:
    rv = RENDEZVOUS.get(label)
    if rv is not None and label == rv.second:
        rv.second_in.set()
    await asyncio.gather(*(asyncio.create_task(napper(i), name=f"{label}/nap{i}") for i in range(3)))
    if sys.version_info >= (3, 11):
        async with asyncio.TaskGroup() as tg:
            for i in range(3):
                tg.create_task(grouped(i), name=f"{label}/group{i}")
    else:
        await asyncio.gather(*(asyncio.create_task(grouped(i), name=f"{label}/group{i}") for i in range(3)))
    victim = asyncio.create_task(stuck(), name=f"{label}/stuck")
    try:
        await asyncio.wait_for(victim, 0.01)
    except asyncio.TimeoutError:
        pass
    assert victim.cancelled()
    # the clock around the block's step, for check_block: the block is this step and no more
    reads = [time.perf_counter()]
    await asyncio.sleep(WAIT_BEFORE)
    reads.append(time.perf_counter())
    if rv is not None and label == rv.first:
        rv.first_blocking.set()
        assert rv.second_sent.wait(TIMEOUT), "the test never sent the second request"
    time.sleep(0.15)  # BLOCK-HERE
    reads.append(time.perf_counter())
    await asyncio.sleep(0)
    reads.append(time.perf_counter())
    READS[label] = reads
    if rv is not None and label == rv.first:
        await asyncio.wait_for(rv.second_in.wait(), TIMEOUT)  # both requests are in flight now
    return {"label": label}


MY_TASKS = {"nap0", "nap1", "nap2", "group0", "group1", "group2", "stuck"}


# ---- the three apps, each wrapped in the middleware ---------------------------------------------

def litestar_app() -> LoopscopeMiddleware:
    @litestar_get("/work/{label:str}")
    async def work(label: FromPath[str]) -> dict:
        return await handle(label)

    return LoopscopeMiddleware(Litestar(route_handlers=[work]))


def starlette_app() -> LoopscopeMiddleware:
    async def work(request) -> JSONResponse:
        return JSONResponse(await handle(request.path_params["label"]))

    return LoopscopeMiddleware(Starlette(routes=[Route("/work/{label}", work)]))


def fastapi_app() -> LoopscopeMiddleware:
    app = FastAPI()

    @app.get("/work/{label}")
    async def work(label: str) -> dict:
        return await handle(label)

    return LoopscopeMiddleware(app)


class ThreadServer:
    """An ASGI server run by `serve()` on its own asyncio loop in a thread of this process, on a
    free loopback port; `stop()` (called on that loop) makes serve() return."""

    name = ""

    def __init__(self, app: Any):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self.main()), name=self.name, daemon=True)

    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.serve()

    async def serve(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + TIMEOUT
        while True:  # up once it accepts a connection
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.thread.is_alive() and time.monotonic() < deadline, f"{self.name} did not start"
                time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop)
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), f"{self.name} did not stop"


class HypercornServer(ThreadServer):
    name = "hypercorn"

    async def serve(self) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.loglevel = "WARNING"
        self.stopping = asyncio.Event()
        await serve(self.app, config, shutdown_trigger=self.stopping.wait)

    def stop(self) -> None:
        self.stopping.set()


class GranianServer(ThreadServer):
    """granian's embedded server (experimental, says granian): its Rust threads hand each request
    to this loop, where it runs as an asyncio task."""
    name = "granian"

    async def serve(self) -> None:
        from granian.constants import Interfaces
        from granian.server.embed import Server

        self.server = Server(self.app, address="127.0.0.1", port=self.port, interface=Interfaces.ASGINL,
                             log_level="error")
        await self.server.serve()

    def stop(self) -> None:
        self.server.stop()


APPS: dict[str, Callable[[], Any]] = {"litestar": litestar_app, "starlette": starlette_app,
                                      "fastapi": fastapi_app}
# each server's request task: the root of a request's session, where the handler runs
SERVERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "uvicorn": (AppServer, ".RequestResponseCycle.run_asgi"),
    "hypercorn": (HypercornServer, "hypercorn.asyncio.task_group._handle"),
    "granian": (GranianServer, ".future_watcher"),
}
CASES = [("litestar", "uvicorn"), ("starlette", "uvicorn"), ("fastapi", "uvicorn"), ("litestar", "hypercorn"),
         ("litestar", "granian")]


@dataclass
class Case:
    app: str
    server: str

    def start(self) -> Any:
        """The app, wrapped in the middleware, served by the server: a context manager with .url, .port."""
        return SERVERS[self.server][0](APPS[self.app]())

    @property
    def root_coro(self) -> str:
        return SERVERS[self.server][1]


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def case(request, collector) -> Case:
    """One app on one server; loopscope is installed against the test server."""
    collector()
    return Case(*request.param)


# ---- reading a request back --------------------------------------------------------------------

def labels(n: int) -> list[str]:
    run = uuid.uuid4().hex[:10]
    return [f"r{run}-{i}" for i in range(n)]


def session_id(headers: Any, server) -> str:
    url = headers["x-loopscope-session"]
    m = re.fullmatch(re.escape(server.url) + r"/sessions/(s-[0-9a-f]+-[0-9a-f]+)", url)
    assert m, url
    return m.group(1)


def check_request(server, case: Case, label: str, headers: Any, named_block: bool = True) -> dict:
    """What the server holds of the request `label`, checked; returns its session's data."""
    data = server.session(session_id(headers, server))
    assert data["summary"]["name"] == f"GET /work/{label}" and data["summary"]["ended"] is True
    tasks = data["tasks"]
    # its own tasks, by coroutine and by name, with their ends; no other request's
    assert [len(by_coro(tasks, c)) for c in ("napper", "grouped", "stuck")] == [3, 3, 1], tasks
    named = {t["name"]: t for t in tasks if t["name"] and re.match(r"r[0-9a-f]{10}-\d+/", t["name"])}
    assert set(named) == {f"{label}/{n}" for n in MY_TASKS}, sorted(named)
    assert named[f"{label}/stuck"]["state"] == "cancelled" and named[f"{label}/stuck"]["coro"].endswith("stuck")
    assert all(named[f"{label}/{n}"]["state"] == "ok" for n in MY_TASKS - {"stuck"}), named
    # the request's task: the one root, ended with the response's status
    roots = [t for t in tasks if t["parent"] == 0]
    assert len(roots) == 1, tasks
    (root,) = roots
    assert root["coro"].endswith(case.root_coro), root
    assert (root["state"], root["status"], root["exc"]) == ("ok", 200, None), root
    # the block: the step right after the handler's sleep before it (the block that starts where
    # that await ends; the framework's own work may block too on a loaded machine, elsewhere), at
    # least 150 ms, that step and no more (check_block against the handler's own clock reads);
    # named by the line of time.sleep unless the test held that step longer
    block = block_after_sleep(data, __file__, line_of(handle, "await asyncio.sleep(WAIT_BEFORE)"))
    assert block["d"] >= 150_000_000 and block["task"] == root["id"], block
    check_block(data, block, {"id": block["task"]}, READS[label])
    if named_block:
        if not block["stack"]:
            raise NoStack(block)
        inner = block["stack"][-1]
        assert (inner["file"], inner["line"]) == (__file__, line_of(handle, "BLOCK-HERE")), block["stack"]
        assert inner["func"] == "handle" and inner["src"] == "time.sleep(0.15)  # BLOCK-HERE"
    return data


def get(url: str, label: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        return http.get(f"/work/{label}")


def raw_get(port: int, path: str) -> tuple[socket.socket, Callable[[], tuple[int, dict]]]:
    """Send GET path on a new connection and return the socket and a reader of the answer's status
    and headers. Once this returns, the request is in the kernel's hands: the connection is made
    (the listening socket's backlog accepts it while the app's loop is blocked) and the bytes sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())

    def read() -> tuple[int, dict]:
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:])}
        return int(head[0].split()[1]), headers

    return sock, read


class NoStack(AssertionError):
    """A block was recorded without a stack: the watchdog thread takes it 25 ms into the 150 ms
    sleep, and on a loaded machine (load 13, three suites side by side) it got no core until the
    sleep had returned. The block itself was seen; the test runs its requests again."""


def again_while_stackless(run: Callable[[], None], tries: int = 5) -> None:
    for attempt in range(tries):
        try:
            return run()
        except NoStack:
            if attempt == tries - 1:
                raise


# ---- the tests ---------------------------------------------------------------------------------

def test_request_is_one_session_with_its_tasks_and_block(server, case):
    again_while_stackless(lambda: one_request(server, case))


def one_request(server, case):
    (label,) = labels(1)
    with case.start() as app:
        answer = get(app.url, label)
        assert answer.status_code == 200 and answer.json() == {"label": label}
        assert "x-loopscope-session" in answer.headers
    # the server has stopped: every request's session is closed, so a flush delivers all of it
    assert loopscope.flush(TIMEOUT), loopscope.stats()
    check_request(server, case, label, answer.headers)


def test_overlapping_requests_get_their_own_sessions(server, case):
    again_while_stackless(lambda: overlapping_requests(server, case))


def overlapping_requests(server, case):
    first, second, third = labels(3)
    rv = RENDEZVOUS[first] = RENDEZVOUS[second] = Rendezvous(first, second)
    with case.start() as app, ThreadPoolExecutor(1) as pool:
        one = pool.submit(get, app.url, first)
        try:
            assert rv.first_blocking.wait(TIMEOUT), "the first request never reached its block"
            sock, read_second = raw_get(app.port, f"/work/{second}")  # while the first blocks the loop
        finally:
            rv.second_sent.set()
        with sock:
            status_2, headers_2 = read_second()
        answer_1 = one.result(TIMEOUT)
        answer_3 = get(app.url, third)  # the app still serves
    assert (answer_1.status_code, status_2, answer_3.status_code) == (200, 200, 200)
    assert loopscope.flush(TIMEOUT), loopscope.stats()

    # the first one's block held the loop until the second was sent: its stack may be either call
    one = check_request(server, case, first, answer_1.headers, named_block=False)
    two = check_request(server, case, second, headers_2)
    three = check_request(server, case, third, answer_3.headers)
    assert len({one["summary"]["id"], two["summary"]["id"], three["summary"]["id"]}) == 3
    # both were in flight at once: the first session ended after the second began
    spans = []
    for data in (one, two):
        start = int(data["summary"]["started_unix_ns"])
        spans.append((start, start + data["summary"]["duration_ns"]))
    assert spans[0][0] < spans[1][0] < spans[0][1], spans
