# lstest.py — what the collector tests (tests/collector) and the framework tests (tests/frameworks)
# share: the real loopscope-server on a free loopback port with a real SQLite file
# (LOOPSCOPE_SERVER_BIN) and a JSON client for its REST API, an ASGI app served by uvicorn in a
# thread of this process, the `server` and `collector` fixtures (each conftest imports them), and
# helpers to find tasks and source lines. Each test dir's conftest puts this dir on sys.path.
from __future__ import annotations

import inspect
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

import loopscope

ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = os.environ.get("LOOPSCOPE_SERVER_BIN", str(ROOT / "build" / "server" / "loopscope-server"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running loopscope-server process and a tiny JSON client for its REST API."""

    def __init__(self, db: Path, port: int | None = None, token: str | None = None,
                 args: list[str] | None = None):
        # No port given: the server binds 127.0.0.1:0 and says which port it got (race-free,
        # where picking a free port first and handing it over leaves a window to lose it).
        self.port = port or 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.token = token
        self.extra_args = list(args or [])  # more of the server's options, e.g. ["--max-body", "16K"]
        self.proc: subprocess.Popen | None = None
        self.log = Path(f"{db}.server.log")

    def start(self) -> "Server":
        if not os.access(SERVER_BIN, os.X_OK):
            pytest.fail(f"loopscope-server not found at {SERVER_BIN}: build it (cmake --build build) "
                        "or set LOOPSCOPE_SERVER_BIN")
        args = [SERVER_BIN, "--listen", f"127.0.0.1:{self.port}", "--db", str(self.db)]
        if self.token:
            args += ["--token", self.token]
        args += self.extra_args
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60  # a condition with a generous deadline: a loaded machine
        while time.monotonic() < deadline:
            if not self.port:
                m = re.findall(r"listening on http://127\.0\.0\.1:(\d+)/", self.log.read_text("utf-8", "replace"))
                if m:
                    self.port = int(m[-1])
                    self.url = f"http://127.0.0.1:{self.port}"
            try:
                if self.port:
                    with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                        if r.status == 200:
                            return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"loopscope-server exited: {self.log.read_text('utf-8', 'replace')[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("loopscope-server did not answer /healthz within 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def get(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def steps(self, sid: str) -> dict[int, list[dict]]:
        """The step events the server holds for each task id, from the session's export (one
        JSON document, or JSON lines of batches for a session over 50,000 events)."""
        req = urllib.request.Request(f"{self.url}/api/v1/sessions/{sid}/export?format=json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        out: dict[int, list[dict]] = {}
        with urllib.request.urlopen(req, timeout=60) as r:
            for line in r.read().splitlines():
                for ev in json.loads(line)["events"]:
                    if ev["k"] == "step":
                        out.setdefault(ev["id"], []).append(ev)
        return out

    def session(self, sid: str) -> dict:
        return {
            "summary": self.get(f"/api/v1/sessions/{sid}"),
            "tasks": self.get(f"/api/v1/sessions/{sid}/tasks")["tasks"],
            "awaits": self.get(f"/api/v1/sessions/{sid}/awaits?min_ms=0&limit=100000")["awaits"],
            "blocks": self.get(f"/api/v1/sessions/{sid}/blocks")["blocks"],
            "lag": self.get(f"/api/v1/sessions/{sid}/lag"),
        }


class AppServer:
    """uvicorn serving the ASGI `app` on a free loopback port in a thread of this process (its own
    event loop, asyncio's): `with AppServer(app) as srv:` requests go to `srv.url`."""

    def __init__(self, app: Any, log_level: str = "warning"):
        import uvicorn  # here, not at the top: only the tests that serve an app need it
        self.port = 0  # uvicorn binds 127.0.0.1:0; the port it got is read once it started
        self.url = ""
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, loop="asyncio",
                                                    lifespan="off", log_level=log_level, access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> "AppServer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    """The real loopscope-server for the whole test session, on a temporary database."""
    srv = Server(tmp_path_factory.mktemp("srv") / "loopscope.db").start()
    yield srv
    srv.stop()


@pytest.fixture
def collector(server):
    """install(**settings) against the test server; uninstalled after the test."""
    def install(**settings: Any):
        settings.setdefault("server", server.url)
        return loopscope.install(**settings)

    yield install
    if loopscope.installed():
        loopscope.uninstall(timeout=2)


# A block is the step it happened in. The programs below read the clock around it: before the
# await that precedes the step (the step cannot start before that wait is over), around the
# blocking section (the step holds all of it) and after the await that ends the step (it ended
# before). check_block compares loopscope's block with these reads, so it holds however late a
# loaded machine runs anything, and still fails if the block is mismeasured.

WAIT_BEFORE = 0.05  # the sleep before each blocking step: longer than any slack allowed below


def check_block(data: dict, b: dict, task: dict, reads: list) -> None:
    before, start, end, after = reads
    # lower bound: the step holds the whole blocking section the program timed
    assert b["d"] >= (end - start) * 1e9, (b["d"], reads)
    # upper bound: the step began after the WAIT_BEFORE sleep (libuv's timers run up to 1 ms
    # early on its millisecond clock) and ended before the program's read after the next await
    assert b["d"] <= (after - before - WAIT_BEFORE + 0.001) * 1e9, (b["d"], reads)
    # the block is that step, no more: it starts exactly where the task's sleep before it ended and
    # ends where its next await begins (a block timed from when the handle was scheduled, or up to
    # the next step, overlaps an await and fails here, deterministically). The sleep's await itself
    # may be a little shorter than WAIT_BEFORE: it begins when its step ends, after the timer was set.
    mine = sorted((a for a in data["awaits"] if a["task"] == task["id"]), key=lambda a: a["t"])
    waits = [a for a in mine if a["t"] + a["d"] == b["t"]]
    assert len(waits) == 1 and waits[0]["what"] == "sleep", (b, mine)
    assert any(a["t"] == b["t"] + b["d"] for a in mine), (b, mine)
    assert all(a["t"] + a["d"] <= b["t"] or a["t"] >= b["t"] + b["d"] for a in mine), (b, mine)


def block_after_sleep(data: dict, file: str, line: int) -> dict:
    """The one block that starts where an `await asyncio.sleep(...)` at file:line ended: the
    blocking step right after that sleep, found by where it starts rather than by its stack (other
    blocks of the request, the framework's or a toolbar's own work on a loaded machine, start
    elsewhere; two blocks starting there fail)."""
    ends = {(a["task"], a["t"] + a["d"]) for a in data["awaits"]
            if (a["file"], a["line"], a["what"]) == (file, line, "sleep")}
    mine = [b for b in data["blocks"] if (b["task"], b["t"]) in ends]
    assert len(mine) == 1, (data["blocks"], sorted(ends))
    return mine[0]


def by_coro(tasks: list[dict], suffix: str) -> list[dict]:
    return [t for t in tasks if t["coro"].endswith(suffix)]


def line_of(func: Callable, marker: str) -> int:
    """The line number of the first source line of func containing marker."""
    lines, start = inspect.getsourcelines(func)
    for i, text in enumerate(lines):
        if marker in text:
            return start + i
    raise AssertionError(f"{marker!r} not in {func.__name__}")


def import_error(module: str) -> str:
    """What `import module` says as ImportError in a fresh interpreter (a toolbar panel's import
    tells which debug_toolbar distribution is installed); fails when it raises something else."""
    import subprocess
    import sys
    code = f"try:\n    import {module}\nexcept ImportError as e:\n    print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
