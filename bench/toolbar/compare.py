"""bench/toolbar/compare.py — litestar-debug-toolbar's own Async panel (AsyncProfilerPanel) against
loopscope's (loopscope.litestar_toolbar.LoopscopePanel) and against the toolbar with neither, on the
same Litestar app served by real uvicorn (h11, asyncio loop) over real HTTP, in one run.

Each configuration is its own process (spawned, on its own free loopback port), so one panel's
hooks never touch another's loop: `builtin` (extra_panels=[AsyncProfilerPanel]), `loopscope`
(loopscope.install() against a loopscope-server this program starts, extra_panels=[LoopscopePanel])
and `baseline` (neither). The toolbar's other panels are its defaults minus VersionsPanel, the same
in all three. Prints, side by side:

1. per-request cost: N sequential requests of a light handler (no block) per configuration,
   interleaved A B C A B C ..., one keep-alive connection each: median and p90 wall time, the
   ratio to the baseline of the same run, and each panel's own figure in Server-Timing;
2. the handler "gather three 20 ms sleeps, then time.sleep(0.15)", with and without an await
   after the block: does each panel report the block, at which file:line, how long, what loop
   lag, how many tasks — read from the toolbar's JSON API (/_debug_toolbar/api/requests/{id}, the
   id is data-request-id in the returned HTML);
3. two overlapping requests: the second is sent while the first is inside time.sleep (the handler
   sets a multiprocessing Event, the cross-process threading.Event, just before it blocks, and
   after the block waits until another request has entered a handler): the status of both, and
   of a third request sent afterwards. Last, because it may leave an app broken.

It measures and prints; it asserts nothing. Run it with the Python of a venv that has
litestar-debug-toolbar, Litestar and uvicorn, and a collector built for that Python:

    .venvs-fw/py3.13/bin/python bench/toolbar/compare.py --collector build-collector/cmp [--quick]
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.metadata
import importlib.util
import inspect
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ("baseline", "builtin", "loopscope")
PANEL_ID = {"builtin": "AsyncProfilerPanel", "loopscope": "LoopscopePanel"}
TIMING_ENTRY = {"builtin": "async_profiling", "loopscope": "loopscope"}
LABEL = {"baseline": "toolbar, no Async panel", "builtin": "built-in AsyncProfilerPanel",
         "loopscope": "loopscope LoopscopePanel"}

# ---- the app (runs in each child process) ------------------------------------------------------

IN_BLOCK: Any = None     # the multiprocessing Event the parent waits on (child side)
ENTERED = [0]            # handlers entered so far in this process (the overlap check reads it)


async def query(i: int) -> int:
    await asyncio.sleep(0.02)
    return i


async def nothing(i: int) -> int:
    await asyncio.sleep(0)
    return i


async def block_then_return() -> str:
    ENTERED[0] += 1
    await asyncio.gather(query(0), query(1), query(2))
    time.sleep(0.15)  # BLOCK no-await-after
    return "done"


async def block_then_await(signal: bool) -> str:
    ENTERED[0] += 1
    seen = ENTERED[0]
    await asyncio.gather(query(0), query(1), query(2))
    if signal:
        IN_BLOCK.set()
    time.sleep(0.15)  # BLOCK await-after
    await asyncio.sleep(0.02)
    if signal:  # the overlap: wait (at most 2 s) until the request sent during the block has entered
        deadline = time.monotonic() + 2
        while ENTERED[0] == seen and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
    return f"others-entered={ENTERED[0] - seen}"


async def light() -> str:
    ENTERED[0] += 1
    await asyncio.gather(nothing(0), nothing(1), nothing(2))
    return "light"


def build_app(config: str):
    from debug_toolbar.litestar import DebugToolbarPlugin, LitestarDebugToolbarConfig
    from litestar import Litestar, get
    from litestar.response import Response

    def html(text: str) -> Response:
        return Response(content=f"<!doctype html><html><head><title>t</title></head><body><p>{text}</p></body></html>",
                        media_type="text/html")

    @get("/block")
    async def h_block() -> Response:
        return html(await block_then_return())

    @get("/block-await")
    async def h_block_await(signal: int = 0) -> Response:
        return html(await block_then_await(bool(signal)))

    @get("/light")
    async def h_light() -> Response:
        return html(await light())

    extra: list[Any] = []
    if config == "builtin":
        extra = ["debug_toolbar.core.panels.async_profiler.AsyncProfilerPanel"]
    elif config == "loopscope":
        from loopscope.litestar_toolbar import LoopscopePanel
        extra = [LoopscopePanel]
    toolbar = LitestarDebugToolbarConfig(extra_panels=extra, exclude_panels=["VersionsPanel"])
    return Litestar(route_handlers=[h_block, h_block_await, h_light], debug=True,
                    plugins=[DebugToolbarPlugin(toolbar)],
                    signature_namespace={"Response": Response})  # the hints are strings here


def serve(config: str, port: int, in_block: Any, server_url: str, log_path: str) -> None:
    """The child process: one configuration on uvicorn; its output goes to log_path."""
    global IN_BLOCK
    IN_BLOCK = in_block
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if config == "loopscope":
        import loopscope
        loopscope.install(server=server_url)
    import uvicorn
    uvicorn.run(build_app(config), host="127.0.0.1", port=port, loop="asyncio", http="h11",
                log_level="warning", access_log=False)


# ---- the parent: servers, requests, the panels' stats ------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, alive: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            sys.exit(f"compare: {what} exited before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"compare: {what} did not listen on port {port} within {timeout:.0f} s")


def fetch(url: str, timeout: float = 60) -> tuple[int | None, dict, str]:
    """(status, headers, body); a refused or dropped connection is (None, {}, what happened)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), e.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        return None, {}, f"{type(reason).__name__}: {reason}".rstrip(": ")


def panel_stats(app_url: str, config: str, body: str, timeout: float = 60) -> dict | str | None:
    """The configuration's Async panel stats from the toolbar's JSON API: None when it has no such
    panel or the page no request id, a string saying why when the API did not give them."""
    if config not in PANEL_ID:
        return None
    m = re.search(r'data-request-id="([0-9a-f-]{36})"', body)
    if not m:
        return None
    status, _, raw = fetch(f"{app_url}/_debug_toolbar/api/requests/{m.group(1)}", timeout)
    if status != 200:
        return f"toolbar API: {status or raw}"
    return json.loads(raw).get("panel_data", {}).get(PANEL_ID[config])


def short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def view(config: str, stats: dict | str | None) -> dict:
    """What a panel said about one request, the same keys for both panels."""
    if not isinstance(stats, dict):
        return {"blocks": None, "problem": stats}
    if config == "builtin":
        calls = sorted(stats.get("blocking_calls") or [], key=lambda c: -c.get("duration_ms", 0))
        top = calls[0] if calls else None
        return {"blocks": len(calls), "tasks": stats["summary"].get("total_tasks"),
                "lag_ms": stats["summary"].get("max_lag_ms", 0.0),
                "where": f"{short(top['file'])}:{top['line']} {top['function_name']}" if top else None,
                "block_ms": top["duration_ms"] if top else None}
    if not stats.get("recording") or "problem" in stats:
        return {"blocks": None, "problem": stats.get("problem", "not recording")}
    top = (stats.get("longest_blocks") or [None])[0]
    where = None
    if top:
        file, _, line = top["where"].rpartition(":")
        where = f"{short(file)}:{line} {top['func']}"
    return {"blocks": stats["blocks"], "tasks": stats["tasks"], "lag_ms": stats["lag_max_ms"], "where": where,
            "block_ms": top["ms"] if top else None}


def marker_line(func: Any, marker: str) -> str:
    lines, start = inspect.getsourcelines(func)
    n = next(start + i for i, text in enumerate(lines) if marker in text)
    return f"{short(inspect.getsourcefile(func))}:{n} {func.__name__}"


def fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


def summarize_views(views: list[dict], walls: list[float]) -> dict[str, str]:
    n = len(views)
    if all(v["blocks"] is None for v in views):
        problems = {v.get("problem") for v in views if v.get("problem")}
        rows = {"block reported": "no panel" if not problems else "no data: " + "; ".join(sorted(problems))}
        return {**rows, "request wall ms": fmt_ms(statistics.median(walls))}
    reported = [v for v in views if v["blocks"]]
    places = Counter(v["where"] for v in reported)
    where = places.most_common(1)[0][0] if places else "—"
    if len(places) > 1:
        where += f" (+{len(places) - 1} other)"
    med = lambda key, vs: fmt_ms(statistics.median(v[key] for v in vs)) if vs else "—"  # noqa: E731
    return {"block reported": f"{len(reported)}/{n}", "at": where, "block ms": med("block_ms", reported),
            "max loop lag ms": med("lag_ms", views),
            "tasks": "/".join(str(t) for t in sorted({v["tasks"] for v in views})),
            "request wall ms": fmt_ms(statistics.median(walls))}


def table(title: str, rows: list[str], cols: dict[str, dict[str, str]]) -> None:
    print(title)
    names = list(cols)
    w0 = max(len(r) for r in rows) + 2
    widths = {c: max([len(LABEL[c])] + [len(cols[c].get(r, "")) for r in rows]) + 2 for c in names}
    print(" " * w0 + "".join(LABEL[c].ljust(widths[c]) for c in names).rstrip())
    for r in rows:
        print(r.ljust(w0) + "".join(cols[c].get(r, "").ljust(widths[c]) for c in names).rstrip())
    print()


def timing_entry(headers: dict, name: str) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "server-timing"), "")
    m = re.search(rf"(?:^|,)\s*{name};dur=([0-9.]+)", value)
    return float(m.group(1)) if m else None


class App:
    def __init__(self, ctx: Any, config: str, server_url: str, tmp: Path):
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"{config}.log"
        self.in_block = ctx.Event()
        self.proc = ctx.Process(target=serve, name=f"app-{config}", daemon=True,
                                args=(config, self.port, self.in_block, server_url, str(self.log)))
        self.conn: http.client.HTTPConnection | None = None

    def start(self) -> None:
        self.proc.start()

    def wait(self) -> None:
        wait_listening(self.port, self.proc.is_alive, f"the {self.config} app (log: {self.log})")

    def timed(self, path: str) -> tuple[float, int | None, dict]:
        """One request on this app's keep-alive connection: (seconds, status, headers)."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            t0 = time.perf_counter()
            try:
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                r.read()
                return time.perf_counter() - t0, r.status, dict(r.getheaders())
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()

    def log_mentions(self, word: str) -> int:
        try:
            return self.log.read_text(errors="replace").count(word)
        except OSError:
            return 0


def start_server(binary: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(tmp / "loopscope-server.log", "wb")
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--db", str(tmp / "loopscope.db")],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_listening(port, lambda: proc.poll() is None, "loopscope-server")
    if fetch(url + "/healthz", 10)[0] != 200:
        sys.exit(f"compare: loopscope-server at {url} does not answer /healthz")
    return proc, url


def versions(collector: str) -> str:
    v = importlib.metadata.version
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "?"
    return (f"Python {sys.version.split()[0]}, litestar-debug-toolbar {v('litestar-debug-toolbar')}, "
            f"litestar {v('litestar')}, uvicorn {v('uvicorn')} (http=h11, loop=asyncio); "
            f"loopscope at {rev}, collector from {short(collector)}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---- the three measurements --------------------------------------------------------------------

def block_scenarios(apps: dict[str, App], repeat: int) -> None:
    cases = (("/block", "no await after the block", marker_line(block_then_return, "# BLOCK")),
             ("/block-await", "an await after the block", marker_line(block_then_await, "# BLOCK")))
    rows = ["block reported", "at", "block ms", "max loop lag ms", "tasks", "request wall ms"]
    for path, what, expected in cases:
        cols = {}
        for config, app in apps.items():
            views, walls = [], []
            for _ in range(repeat):
                t0 = time.perf_counter()
                status, _, body = fetch(app.url + path)
                walls.append((time.perf_counter() - t0) * 1000)
                views.append(view(config, panel_stats(app.url, config, body)) if status == 200
                             else {"blocks": None, "problem": f"HTTP {status}"})
            cols[config] = summarize_views(views, walls)
        table(f"GET {path}: gather(3 x sleep 20 ms), time.sleep(0.15), {what} — {repeat} request(s) each;"
              f" the handler's line is {expected}", rows, cols)


def overlap(apps: dict[str, App]) -> None:
    rows = ["first (blocks, signals)", "second (sent in the block)", "third (after both)",
            "second entered a handler while first ran", "first's panel: tasks / blocks",
            "second's panel: tasks / blocks", "'RecursionError' in the app's log"]
    cols: dict[str, dict[str, str]] = {}

    def said(status: int | None, body: str) -> str:
        if status is None:
            return f"no answer ({body})"
        return f"{status}" + (" RecursionError" if status >= 500 and "RecursionError" in body else "")

    def panel(config: str, app: App, status: int | None, body: str) -> str:
        if config not in PANEL_ID:
            return "—"
        if status != 200:
            return "— (no page)"
        v = view(config, panel_stats(app.url, config, body, 10))
        return f"— ({v.get('problem')})" if v["blocks"] is None else f"{v['tasks']} / {v['blocks']}"

    with ThreadPoolExecutor(2) as pool:
        for config, app in apps.items():
            app.in_block.clear()
            first = pool.submit(fetch, app.url + "/block-await?signal=1", 120)
            if not app.in_block.wait(60):
                cols[config] = {rows[0]: "never reached its block"}
                first.result(120)
                continue
            second = pool.submit(fetch, app.url + "/block-await", 120)
            (s1, _, b1), (s2, _, b2) = first.result(180), second.result(180)
            s3, _, b3 = fetch(app.url + "/light", 20)  # then the panels' stats, 10 s at most each
            m = re.search(r"others-entered=(\d+)", b1)
            cols[config] = {rows[0]: said(s1, b1), rows[1]: said(s2, b2), rows[2]: said(s3, b3),
                            rows[3]: ("yes" if int(m.group(1)) else "no (2 s)") if m else "?",
                            rows[4]: panel(config, app, s1, b1), rows[5]: panel(config, app, s2, b2),
                            rows[6]: str(app.log_mentions("RecursionError"))}
    table("Two overlapping requests: GET /block-await?signal=1, then GET /block-await sent while the first"
          " is in time.sleep (the first waits after its block until the second has entered a handler);"
          " then GET /light", rows, cols)


def cost(apps: dict[str, App], n: int, warmup: int) -> None:
    walls: dict[str, list[float]] = {c: [] for c in apps}
    own: dict[str, list[float]] = {c: [] for c in apps}
    failed: Counter = Counter()
    for i in range(warmup + n):
        for config, app in apps.items():  # interleaved: A B C A B C ...
            seconds, status, headers = app.timed("/light")
            if status != 200:
                failed[config] += 1
            if i < warmup:
                continue
            walls[config].append(seconds * 1000)
            v = timing_entry(headers, TIMING_ENTRY.get(config, "-"))
            if v is not None:
                own[config].append(v)
    base = statistics.median(walls["baseline"])
    rows = ["median ms/request", "ratio to baseline (median)", "p90 ms/request", "panel's own cost, Server-Timing"]
    cols = {}
    for config in apps:
        w = sorted(walls[config])
        cols[config] = {rows[0]: f"{statistics.median(w):.2f}", rows[1]: f"{statistics.median(w) / base:.2f}x",
                        rows[2]: f"{w[int(0.9 * (len(w) - 1))]:.2f}",
                        rows[3]: (f"{TIMING_ENTRY[config]} {statistics.median(own[config]):.2f} ms"
                                  if own[config] else "—")}
        if failed[config]:
            cols[config]["requests not 200"] = str(failed[config])
    if failed:
        rows.append("requests not 200")
    table(f"Per-request cost: GET /light (gather of 3 x sleep(0), no block), {n} sequential requests per "
          f"configuration after {warmup} warm-up, interleaved, one keep-alive connection each", rows, cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collector", default=os.environ.get("LOOPSCOPE_COLLECTOR"),
                    help="directory holding the loopscope package built for this Python "
                         "(default: $LOOPSCOPE_COLLECTOR, else wherever `import loopscope` finds it)")
    ap.add_argument("--server-bin", default=str(ROOT / "build" / "server" / "loopscope-server"))
    ap.add_argument("--requests", type=int, default=300, help="timed light requests per configuration")
    ap.add_argument("--repeat", type=int, default=3, help="requests per block scenario and configuration")
    ap.add_argument("--quick", action="store_true", help="--requests 40 --repeat 1, 5 warm-up requests")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (app logs, the server's db)")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.repeat = 40, 1
    warmup = 5 if args.quick else 20

    if args.collector:
        sys.path.insert(0, str(Path(args.collector).resolve()))  # spawned children get sys.path too
    if importlib.util.find_spec("loopscope") is None or importlib.util.find_spec("loopscope._core") is None:
        sys.exit("compare: no loopscope collector built for this Python: build one (see bench/toolbar/README.md) "
                 "and pass --collector DIR")
    collector = str(Path(importlib.util.find_spec("loopscope").origin).parent.parent)
    if not os.access(args.server_bin, os.X_OK):
        sys.exit(f"compare: no loopscope-server at {args.server_bin}: cmake --build build, or --server-bin")

    tmp = Path(tempfile.mkdtemp(prefix="ls-toolbar-"))
    print(f"bench/toolbar/compare.py: {versions(collector)}")
    print(f"load average before: {load()}; temp dir {tmp}{'' if args.keep else ' (removed at the end)'}\n")
    ctx = multiprocessing.get_context("spawn")
    server, server_url = start_server(args.server_bin, tmp)
    apps = {c: App(ctx, c, server_url, tmp) for c in CONFIGS}
    try:
        for app in apps.values():
            app.start()
        for app in apps.values():
            app.wait()
        # the cost first, while every app is healthy; the overlap last, as it may break an app
        cost(apps, args.requests, warmup)
        block_scenarios(apps, args.repeat)
        overlap(apps)
    finally:
        for app in apps.values():
            app.stop()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if not args.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
