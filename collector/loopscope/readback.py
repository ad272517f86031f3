# readback.py — a recorded session read back from loopscope-server's REST API, for the toolbar
# panels (toolbar.py for fastapi-debug-toolbar, litestar_toolbar.py for litestar-debug-toolbar):
# the summary, the longest blocks with their culprit line, await hot spots, and problems said so
# a user can act on them. Imports nothing of either toolbar. Blocking I/O: callers run it off the
# event loop (a worker thread), never in a step of the loop they are watching.
from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from typing import Any

from . import _state


class ServerProblem(Exception):
    """Why the server's view of a session could not be read, said so a user can act on it."""


# After the server did not answer, requests do not wait for it again for this long: a toolbar on
# every page must not make each page wait a timeout while loopscope-server is down.
DOWN_BACKOFF_S = 5.0
_down: dict[str, tuple[float, str]] = {}  # base URL -> (monotonic time until, why)
_down_lock = threading.Lock()


def ms(ns: Any) -> str:
    """A duration for people: "150 ms" from 100 ms up, "12.3 ms" below."""
    v = (ns or 0) / 1e6
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms"


def session_page(base: str, sid: str) -> str:
    """The timeline page of session sid on the server at base."""
    return f"{base.rstrip('/')}/sessions/{urllib.parse.quote(sid, safe='')}"


class _Client:
    """GETs to one server over one kept-alive connection (a read-back is several small reads:
    a new connection for each cost as much as the read)."""

    def __init__(self, base: str, token: str | None, timeout: float):
        self.base, self.token, self.timeout = base, token, timeout
        u = urllib.parse.urlsplit(base)
        self._conn_type = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        self._netloc, self._prefix = u.netloc, u.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _request(self, path: str) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (0, 1):  # once more on a fresh connection when a kept one was closed
            if self._conn is None:
                self._conn = self._conn_type(self._netloc, timeout=self.timeout)
            try:
                self._conn.request("GET", self._prefix + path, headers=headers)
                r = self._conn.getresponse()
                body = r.read()
                if r.will_close:
                    self.close()
                return r.status, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        base = self.base
        try:
            status, body = self._request(path)
            if status == 200:
                return json.loads(body)
        except (OSError, ValueError, http.client.HTTPException) as e:  # refused, timed out, not HTTP/JSON
            self.close()
            why = (f"loopscope server {base} is unreachable ({e}). Start it with "
                   "`loopscope-server`; this request's events stay buffered in the app until it answers.")
            with _down_lock:
                _down[base] = (time.monotonic() + DOWN_BACKOFF_S, why)
            raise ServerProblem(why) from None
        if status == 404:
            raise LookupError(path)
        if status == 401:
            raise ServerProblem(f"loopscope server {base} refused the request (401): "
                                "set the same token as the server's --token (LOOPSCOPE_TOKEN)")
        raise ServerProblem(f"loopscope server {base} answered {status} for {path}")


def read_session(base: str, sid: str, token: str | None = None, timeout: float = 2.0,
                 *, awaits_min_ms: float | None = None) -> dict:
    """The summary, blocks and (when there are blocks) tasks of session `sid` from the server,
    and with awaits_min_ms the awaits at or over it with their hot spots, after flushing what
    this process still holds (a session just closed is still in its buffer). Raises ServerProblem."""
    with _down_lock:
        until, why = _down.get(base, (0.0, ""))
        if time.monotonic() < until:
            raise ServerProblem(why)
        _down.pop(base, None)
    if _state.core is not None:
        _state.core.flush(int(timeout * 1000))
    sid_q = urllib.parse.quote(sid, safe="")
    client = _Client(base, token, timeout)
    try:
        try:
            summary = client.get(f"/api/v1/sessions/{sid_q}")
        except LookupError:
            raise ServerProblem(f"loopscope server {base} has no session {sid} yet: its events "
                                "were not delivered in time (see loopscope.stats())") from None
        # the summary counts the blocks: a request without any (most) costs no read of them, and
        # task names are needed for the blocks only
        blocks = client.get(f"/api/v1/sessions/{sid_q}/blocks")["blocks"] if summary.get("blocks", 1) else []
        tasks = client.get(f"/api/v1/sessions/{sid_q}/tasks")["tasks"] if blocks else []
        out = {"summary": summary, "blocks": blocks, "tasks": tasks}
        if awaits_min_ms is not None:
            out["awaits"] = client.get(f"/api/v1/sessions/{sid_q}/awaits?min_ms={awaits_min_ms:g}&limit=20")
        return out
    finally:
        client.close()


def _short(name: str, cap: int = 80) -> str:
    return name if len(name) <= cap else name[:cap - 1] + "\u2026"


def blocks_longest_first(blocks: list[dict], tasks: list[dict], limit: int = 5) -> list[dict]:
    """The `limit` longest blocks, longest first, each with its innermost frame, the name of the
    task it stalled and when its stack was taken (stack_t, ns into the block; None: unknown)."""
    names = {t["id"]: str(t.get("name")) for t in tasks}
    out = []
    for b in sorted(blocks, key=lambda x: -x.get("d", 0))[:limit]:
        frame = (b.get("stack") or [{}])[-1]
        out.append({"d": b.get("d", 0), "file": frame.get("file", "?"), "line": frame.get("line", 0),
                    "func": frame.get("func", "?"), "src": frame.get("src") or "",
                    "task_name": _short(_blocked_by(b) if b.get("elsewhere") else
                                        names.get(b.get("task"), "(none: the loop itself)")),
                    "elsewhere": bool(b.get("elsewhere")), "from_session": b.get("from_session"),
                    "stack_t": b.get("stack_t")})
    return out


def _blocked_by(b: dict) -> str:
    """Who caused a block from elsewhere (another session's task, or code outside any session)."""
    if b.get("from_session"):
        return f"another request (session {b['from_session']})"
    return "code outside any request (a background task or callback)"


def longest_block(blocks: list[dict], tasks: list[dict]) -> dict | None:
    """The longest block with its innermost frame and the name of the task it stalled."""
    top = blocks_longest_first(blocks, tasks, 1)
    return top[0] if top else None
