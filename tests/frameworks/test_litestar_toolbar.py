# test_litestar_toolbar.py — loopscope.litestar_toolbar.LoopscopePanel inside the real
# litestar-debug-toolbar (PyPI) on Litestar, Starlette and FastAPI apps served by uvicorn over real
# HTTP, recording into the real server: the panel's stats in the toolbar's JSON API and nav bar,
# the timeline URL serving exactly that request's session, overlapping requests, Server-Timing,
# thresholds from the toolbar's config, and the panel's one-sentence answers when it cannot show
# anything (server down, 401, loopscope disabled or not installed).
from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from debug_toolbar.litestar import DebugToolbarPlugin, LitestarDebugToolbarConfig
from litestar import Litestar, get
from litestar.response import Response

import loopscope
from loopscope import _ldt_embed
from loopscope.litestar_toolbar import LoopscopePanel

import lstest
from lstest import AppServer, Server, by_coro, line_of

READS: dict[str, list[float]] = {}          # tag -> the handler's clock reads around its block
IN_BLOCK: dict[str, threading.Event] = {}   # tag -> set just before the handler blocks
RESUME: dict[str, threading.Event] = {}     # tag -> the handler waits (in a thread) for it first


async def db(i: int) -> None:
    await asyncio.sleep(0.005 + i * 0.003)


async def slow() -> None:
    await asyncio.sleep(30)


async def work(tag: str) -> int:
    """What every app's handler does: concurrent awaits, a TaskGroup (3.11+), a timeout that
    cancels, and one blocking call, with the clock read around it (see test_record.check_block:
    the step that blocks starts after `before` and ends before `after`)."""
    await asyncio.gather(db(0), db(1), db(2))
    if sys.version_info >= (3, 11):
        async with asyncio.TaskGroup() as tg:
            for i in range(2):
                tg.create_task(db(i))
    try:
        await asyncio.wait_for(asyncio.create_task(slow()), 0.01)  # a task the timeout cancels
    except asyncio.TimeoutError:
        pass
    if tag in RESUME:
        await asyncio.get_running_loop().run_in_executor(None, RESUME[tag].wait, 60)
    before = time.perf_counter()
    await asyncio.sleep(0.02)
    start = time.perf_counter()
    if tag in IN_BLOCK:
        IN_BLOCK[tag].set()
    time.sleep(0.15)  # the block the panel must name
    end = time.perf_counter()
    await asyncio.sleep(0)
    READS[tag] = [before, start, end, time.perf_counter()]
    return 200


def page(tag: str) -> str:
    return f"<!doctype html><html><head><title>{tag}</title></head><body><p>{tag}</p></body></html>"


PANELS = {"extra_panels": [LoopscopePanel], "exclude_panels": ["AsyncProfilerPanel", "VersionsPanel"]}


def litestar_app(**config: Any):
    @get("/work/{tag:str}")
    async def handler(tag: str) -> Response:
        await work(tag)
        return Response(content=page(tag), media_type="text/html")

    return Litestar(route_handlers=[handler], debug=True,
                    plugins=[DebugToolbarPlugin(LitestarDebugToolbarConfig(**{**PANELS, **config}))])


def starlette_app(**config: Any):
    from debug_toolbar.core import DebugToolbar
    from debug_toolbar.starlette import DebugToolbarMiddleware, StarletteDebugToolbarConfig, create_debug_toolbar_routes
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def handler(request):
        tag = request.path_params["tag"]
        await work(tag)
        return HTMLResponse(page(tag))

    # the way the package's docstring shows (Starlette has no setup helper, FastAPI has)
    cfg = StarletteDebugToolbarConfig(**{**PANELS, **config})
    toolbar = DebugToolbar(cfg)
    return Starlette(debug=True, routes=[Route("/work/{tag}", handler), *create_debug_toolbar_routes(toolbar.storage)],
                     middleware=[Middleware(DebugToolbarMiddleware, config=cfg, toolbar=toolbar)])


def fastapi_app(**config: Any):
    from debug_toolbar.fastapi import FastAPIDebugToolbarConfig, setup_debug_toolbar
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    app = FastAPI(debug=True)

    @app.get("/work/{tag}", response_class=HTMLResponse)
    async def handler(tag: str) -> str:
        await work(tag)
        return page(tag)

    setup_debug_toolbar(app, FastAPIDebugToolbarConfig(**{**PANELS, **config}))
    return app


FRAMEWORKS: dict[str, Callable[..., Any]] = {"litestar": litestar_app, "starlette": starlette_app,
                                             "fastapi": fastapi_app}


def fetch(url: str) -> tuple[int, dict, str]:
    with urllib.request.urlopen(url, timeout=300) as r:
        return r.status, dict(r.headers), r.read().decode()


def panel_of(app_url: str, body: str) -> tuple[dict, str]:
    """The LoopscopePanel's stats from the toolbar's JSON API, and its nav button's text."""
    rid = re.search(r'data-request-id="([0-9a-f-]{36})"', body).group(1)
    _, _, raw = fetch(f"{app_url}/_debug_toolbar/api/requests/{rid}")
    button = re.search(r'data-panel-id="LoopscopePanel"[^>]*>(.*?)</button>', body, re.S)
    assert button, "no LoopscopePanel button in the toolbar"
    nav = " ".join(re.sub(r"<[^>]+>", " ", button.group(1)).split())
    return json.loads(raw)["panel_data"]["LoopscopePanel"], nav


@pytest.fixture
def recording(server, collector):
    collector()
    READS.clear()
    IN_BLOCK.clear()
    RESUME.clear()
    return server


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_panel_names_the_block_and_serves_the_request_timeline(recording, framework):
    server = recording
    tag = f"{framework}-{uuid.uuid4().hex[:6]}"
    with AppServer(FRAMEWORKS[framework]()) as app:
        status, headers, body = fetch(f"{app.url}/work/{tag}")
        assert status == 200
        stats, nav = panel_of(app.url, body)
    assert stats["recording"] is True and "problem" not in stats, stats
    sid = stats["session_id"]
    summary = server.get(f"/api/v1/sessions/{sid}")
    assert summary["name"] == f"GET /work/{tag}" == stats["request"]
    tasks = server.get(f"/api/v1/sessions/{sid}/tasks")["tasks"]
    # the stats agree with the server, the nav says the same, and the tasks are this request's
    assert stats["tasks"] == summary["tasks"] == len(tasks)
    assert stats["max_concurrency"] == summary["max_concurrency"] >= 3
    ne = stats["blocks_elsewhere"]
    assert nav == f"Async {stats['tasks']} tasks \u00b7 {stats['blocks']} block" + ("s" if stats["blocks"] != 1 else "") \
        + (f" ({ne} by others)" if ne else "")
    assert stats["blocks_own"] + ne == stats["blocks"] and stats["blocks_own"] >= 1
    assert stats["blocks_said"].startswith(f"{stats['blocks_own']} block")
    assert len(by_coro(tasks, "db")) == (5 if sys.version_info >= (3, 11) else 3)
    (cancelled,) = by_coro(tasks, "slow")
    assert cancelled["state"] == "cancelled"
    (root,) = [t for t in tasks if t["parent"] == 0]
    assert (root["state"], root["status"]) == ("ok", 200)
    # the block: the handler's time.sleep, its file:line and source, within the handler's clock
    assert stats["blocks"] >= 1
    top = stats["longest_blocks"][0]
    assert top["where"] == f"{__file__}:{line_of(work, 'time.sleep(0.15)')}", stats["longest_blocks"]
    assert top["src"] == "time.sleep(0.15)  # the block the panel must name" and top["func"] == "work"
    before, start, end, after = READS[tag]
    assert (end - start) * 1000 - 0.1 <= top["ms"] <= (after - before - 0.02 + 0.001) * 1000 + 0.1, (top, READS[tag])
    # when its stack was taken: from half the threshold on (the watchdog asks then), within it
    assert stats["blocking_threshold_ms"] / 2 - 0.1 <= top["stack_at_ms"] <= top["ms"] + 0.1, top
    assert stats["lag_max_ms"] >= 100 and stats["lag_samples"] >= 1  # the loop was 150 ms late
    # await hot spots: the awaits of 10 ms and more by file:line, as the server groups them (the
    # 20 ms sleep before the block is one)
    hot = server.get(f"/api/v1/sessions/{sid}/awaits?min_ms=10&limit=20")["hotspots"]
    assert stats["await_threshold_ms"] == 10.0
    assert [h["where"] for h in stats["await_hotspots"]] == [f"{h['file']}:{h['line']}" for h in hot][:5]
    assert f"{__file__}:{line_of(work, 'await asyncio.sleep(0.02)')}" in [h["where"] for h in stats["await_hotspots"]]
    assert stats["dropped_events"] == 0
    # Server-Timing carries loopscope's own cost, the same figure as the stats
    timing = headers.get("server-timing") or headers.get("Server-Timing")
    m = re.search(r'loopscope;dur=([0-9.]+);desc="Async \(loopscope\)"', timing or "")
    assert m and abs(float(m.group(1)) - stats["cost_ms"]) < 0.01, (timing, stats["cost_ms"])
    # the timeline URL and its embed view are this session's page on the server
    assert stats["timeline_url"] == f"{server.url}/sessions/{sid}"
    assert stats["embed_url"] == stats["timeline_url"] + "?embed=1"
    # (the page reads the id from its URL: the browser test checks what it draws)
    status, _, html = fetch(stats["embed_url"])
    assert status == 200 and "the timeline page of one session" in html


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_overlapping_requests_get_their_own_sessions_and_the_app_keeps_serving(recording, framework):
    """The second request starts while the first blocks the loop (the toolbar's own Async panel
    answers it 500 with RecursionError and the app is broken from then on)."""
    server = recording
    first, second = (f"{framework}-{n}-{uuid.uuid4().hex[:6]}" for n in ("a", "b"))
    IN_BLOCK[first] = threading.Event()
    with AppServer(FRAMEWORKS[framework]()) as app, ThreadPoolExecutor(2) as pool:
        a = pool.submit(fetch, f"{app.url}/work/{first}")
        assert IN_BLOCK[first].wait(120), "the first request never reached its block"
        b = pool.submit(fetch, f"{app.url}/work/{second}")  # sent while the loop is blocked
        (sa, _, body_a), (sb, _, body_b) = a.result(300), b.result(300)
        assert sa == sb == 200
        stats_a, _ = panel_of(app.url, body_a)
        stats_b, _ = panel_of(app.url, body_b)
        status, _, body_c = fetch(f"{app.url}/work/{framework}-c-{uuid.uuid4().hex[:6]}")
        assert status == 200 and panel_of(app.url, body_c)[0]["recording"] is True
    assert stats_a["session_id"] != stats_b["session_id"]
    for stats, tag in ((stats_a, first), (stats_b, second)):
        sid = stats["session_id"]
        assert server.get(f"/api/v1/sessions/{sid}")["name"] == f"GET /work/{tag}"
        tasks = server.get(f"/api/v1/sessions/{sid}/tasks")["tasks"]
        # each session holds its own request's tasks only: one root, one cancelled timeout
        assert [t["status"] for t in tasks if t["parent"] == 0] == [200]
        assert len(by_coro(tasks, "slow")) == 1
        assert stats["longest_blocks"][0]["where"].endswith(f":{line_of(work, 'time.sleep(0.15)')}")
        # the loop is shared: the other request's stall, when this session saw it, is listed as
        # caused elsewhere and named by the other request's session
        other = stats_b if stats is stats_a else stats_a
        for b in stats["longest_blocks"]:
            if b["from_elsewhere"]:
                assert b["task"] == f"another request (session {other['session_id']})", b
        assert stats["blocks_own"] >= 1 and stats["blocks_own"] + stats["blocks_elsewhere"] == stats["blocks"]


def test_thresholds_come_from_the_toolbar_config(recording):
    """async_blocking_threshold_ms set in the toolbar's config is the panel's threshold: a 150 ms
    block under a 400 ms threshold is not listed (the server still has it)."""
    server = recording
    tag = f"thr-{uuid.uuid4().hex[:6]}"
    with AppServer(litestar_app(async_blocking_threshold_ms=400.0, async_event_loop_lag_threshold_ms=1000.0)) as app:
        _, _, body = fetch(f"{app.url}/work/{tag}")
        stats, nav = panel_of(app.url, body)
    assert stats["blocking_threshold_ms"] == 400.0 and stats["lag_threshold_ms"] == 1000.0
    assert stats["blocks"] == 0 and stats["longest_blocks"] == [] and nav.endswith("\u00b7 0 blocks")
    assert stats["lag_over_threshold"] is (stats["lag_max_ms"] >= 1000.0)
    assert len(server.get(f"/api/v1/sessions/{stats['session_id']}/blocks")["blocks"]) >= 1


def test_toolbar_script_embeds_the_timeline_and_keeps_its_shape(recording):
    """The toolbar.js served has the LoopscopePanel case (the iframe); a script of another shape
    is left exactly as it is (the panel then shows its table with the URL)."""
    with AppServer(litestar_app()) as app:
        _, _, js = fetch(f"{app.url}/_debug_toolbar/static/toolbar.js")
    assert _ldt_embed.status() == {"active": True, "why": ""}
    assert js.count("case 'LoopscopePanel':") == 1 and "function loopscopePanelHtml" in js
    assert _ldt_embed.adapt("renderPanelById(panelId, data) { return 1; }") is None
    assert _ldt_embed.adapt(js) is None  # never twice
    # the URL check in the script refuses anything that could leave the src attribute
    for bad in ['http://x/"onload="alert(1)', "javascript:alert(1)", "http://x/<script>", "http://x/ y"]:
        assert not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]/%?=&~_-]+", bad)


def test_builtin_async_panel_beside_ours_is_warned_once(recording):
    import loopscope.litestar_toolbar as lt
    lt._warned_builtin = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        builtin = "debug_toolbar.core.panels.async_profiler.AsyncProfilerPanel"
        with AppServer(litestar_app(extra_panels=[LoopscopePanel, builtin], exclude_panels=["VersionsPanel"])) as app:
            for _ in range(2):
                fetch(f"{app.url}/work/both-{uuid.uuid4().hex[:6]}")
    said = [w for w in caught if "AsyncProfilerPanel" in str(w.message)]
    assert len(said) == 1 and "exclude_panels=['AsyncProfilerPanel']" in str(said[0].message)


def test_problems_are_said_in_one_sentence_and_the_toolbar_still_renders(server, tmp_path):
    tag = f"p-{uuid.uuid4().hex[:6]}"
    cases = {}

    def visit(what: str) -> None:
        with AppServer(litestar_app()) as app:
            status, _, body = fetch(f"{app.url}/work/{tag}-{len(cases)}")
            assert status == 200 and 'id="debug-toolbar"' in body, what
            cases[what] = panel_of(app.url, body)

    assert not loopscope.installed()
    visit("not installed")
    loopscope.install(server=server.url, enabled=False)
    try:
        visit("disabled")
    finally:
        loopscope.uninstall()
    # the server is down (nothing listens on the port). The port is held bound, never listened on,
    # to the end: a port only found free could be given to the locked server below (port 0), and
    # the panel's five seconds of "unreachable" for that address would answer for it
    dead_port = socket.socket()
    dead_port.bind(("127.0.0.1", 0))
    try:
        loopscope.install(server=f"http://127.0.0.1:{dead_port.getsockname()[1]}", timeout_ms=500)
        try:
            visit("down")
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "did not take every event": what this case is about
                loopscope.uninstall(timeout=1)
        # the server wants a token the app does not send
        locked = Server(tmp_path / "locked.db", token="s3cret").start()
        try:
            loopscope.install(server=locked.url, timeout_ms=500)
            visit("401")
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loopscope.uninstall(timeout=1)
            locked.stop()
    finally:
        dead_port.close()
    expect = {"not installed": "loopscope.install()", "disabled": "enabled=False",
              "down": "is unreachable", "401": "refused the request (401)"}
    for what, (stats, nav) in cases.items():
        assert expect[what] in stats["problem"], (what, stats)
        assert stats["problem"].count(". ") <= 2, stats["problem"]  # a sentence or two, not a trace
        assert nav == ("Async not recording" if what in ("not installed", "disabled") else "Async no data"), nav


def test_the_other_toolbars_panel_says_which_package_it_needs():
    """Both toolbars install the top-level `debug_toolbar`: here it is litestar-debug-toolbar, so
    the fastapi-debug-toolbar panel's import says so and names the panel to use instead."""
    said = lstest.import_error("loopscope.toolbar")
    assert "fastapi-debug-toolbar" in said and "litestar-debug-toolbar 1." in said
    assert "loopscope.litestar_toolbar.LoopscopePanel" in said


@pytest.fixture
def fresh_embed(monkeypatch):
    """_ldt_embed as before its first install(), the toolbar's own script back in place; all of it
    restored afterwards (monkeypatch undoes in reverse order)."""
    from debug_toolbar.core import assets
    from debug_toolbar.litestar.routes import handlers
    original = getattr(assets.get_toolbar_js, "__wrapped__", assets.get_toolbar_js)
    monkeypatch.setattr(assets, "get_toolbar_js", original)
    monkeypatch.setattr(handlers, "get_toolbar_js", original)
    monkeypatch.setattr(_ldt_embed, "_state", {"tried": False, "active": False, "why": ""})
    return assets, handlers, original


def test_another_toolbar_version_or_script_shape_is_left_alone(fresh_embed, monkeypatch):
    """The adaptation is tried on litestar-debug-toolbar 1.x with the expected toolbar.js only;
    otherwise nothing is changed and the panel keeps its stats table with the URL."""
    assets, handlers, original = fresh_embed
    real_version = _ldt_embed.importlib.metadata.version
    monkeypatch.setattr(_ldt_embed.importlib.metadata, "version",
                        lambda d: "2.0.0" if d == "litestar-debug-toolbar" else real_version(d))
    assert _ldt_embed.install() is False
    assert "2.0.0 is not 1.x" in _ldt_embed.status()["why"]
    assert assets.get_toolbar_js is original and handlers.get_toolbar_js is original
    assert _ldt_embed.install() is False  # tried once per process

    monkeypatch.setattr(_ldt_embed, "_state", {"tried": False, "active": False, "why": ""})
    monkeypatch.setattr(_ldt_embed.importlib.metadata, "version",
                        lambda d: "1.9.0" if d == "litestar-debug-toolbar" else real_version(d))
    monkeypatch.setattr(assets, "get_toolbar_js", lambda: "class DebugToolbar { renderPanelById(p, d) {} }")
    assert _ldt_embed.install() is False
    assert "1.9.0's toolbar.js has another shape" in _ldt_embed.status()["why"]

    monkeypatch.setattr(_ldt_embed, "_state", {"tried": False, "active": False, "why": ""})
    def broken() -> str:
        raise RuntimeError("assets moved")
    monkeypatch.setattr(assets, "get_toolbar_js", broken)
    assert _ldt_embed.install() is False and "assets moved" in _ldt_embed.status()["why"]

    # an untested 1.x with the expected script: adapted, and the log says it was not tested
    monkeypatch.setattr(_ldt_embed, "_state", {"tried": False, "active": False, "why": ""})
    monkeypatch.setattr(assets, "get_toolbar_js", original)
    assert _ldt_embed.install() is True
    assert "loopscopePanelHtml" in assets.get_toolbar_js() and handlers.get_toolbar_js is assets.get_toolbar_js


def test_wrong_toolbar_error_names_what_is_installed():
    from loopscope._which_toolbar import wrong_toolbar
    e = wrong_toolbar("loopscope.toolbar", "fastapi-debug-toolbar", "litestar-debug-toolbar", "the other panel")
    assert str(e).startswith("loopscope.toolbar is the panel for fastapi-debug-toolbar, but the debug_toolbar "
                             "installed here is litestar-debug-toolbar 1.")
    e = wrong_toolbar("m", "fastapi-debug-toolbar", "no-such-toolbar-dist", "x")
    assert str(e) == "m needs fastapi-debug-toolbar (pip install fastapi-debug-toolbar); for no-such-toolbar-dist use x"
