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
import urllib.error
import urllib.parse
import urllib.request
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


def _get(base: str, path: str, token: str | None, timeout: float) -> Any:
    req = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 404:
            raise LookupError(path) from None
        if e.code == 401:
            raise ServerProblem(f"loopscope server {base} refused the request (401): "
                                "set the same token as the server's --token (LOOPSCOPE_TOKEN)") from None
        raise ServerProblem(f"loopscope server {base} answered {e.code} for {path}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # refused, timed out, not HTTP/JSON
        reason = getattr(e, "reason", e)
        why = (f"loopscope server {base} is unreachable ({reason}). Start it with "
               "`loopscope-server`; this request's events stay buffered in the app until it answers.")
        with _down_lock:
            _down[base] = (time.monotonic() + DOWN_BACKOFF_S, why)
        raise ServerProblem(why) from None


def read_session(base: str, sid: str, token: str | None = None, timeout: float = 2.0,
                 *, awaits_min_ms: float | None = None) -> dict:
    """The summary, blocks and tasks of session `sid` from the server (and, with awaits_min_ms,
    the awaits at or over it with their hot spots), after flushing what this process still holds
    when the server does not have all of it yet. Raises ServerProblem."""
    with _down_lock:
        until, why = _down.get(base, (0.0, ""))
        if time.monotonic() < until:
            raise ServerProblem(why)
        _down.pop(base, None)
    sid_q = urllib.parse.quote(sid, safe="")
    try:
        summary = _get(base, f"/api/v1/sessions/{sid_q}", token, timeout)
    except LookupError:
        summary = None
    if summary is None or not summary.get("ended"):
        if _state.core is not None:
            _state.core.flush(int(timeout * 1000))
        try:
            summary = _get(base, f"/api/v1/sessions/{sid_q}", token, timeout)
        except LookupError:
            raise ServerProblem(f"loopscope server {base} has no session {sid} yet: its events "
                                "were not delivered in time (see loopscope.stats())") from None
    blocks = _get(base, f"/api/v1/sessions/{sid_q}/blocks", token, timeout)["blocks"]
    tasks = _get(base, f"/api/v1/sessions/{sid_q}/tasks", token, timeout)["tasks"]
    out = {"summary": summary, "blocks": blocks, "tasks": tasks}
    if awaits_min_ms is not None:
        out["awaits"] = _get(base, f"/api/v1/sessions/{sid_q}/awaits?min_ms={awaits_min_ms:g}&limit=20",
                             token, timeout)
    return out


def _short(name: str, cap: int = 80) -> str:
    return name if len(name) <= cap else name[:cap - 1] + "\u2026"


def blocks_longest_first(blocks: list[dict], tasks: list[dict], limit: int = 5) -> list[dict]:
    """The `limit` longest blocks, longest first, each with its innermost frame and the name of
    the task it stalled."""
    names = {t["id"]: str(t.get("name")) for t in tasks}
    out = []
    for b in sorted(blocks, key=lambda x: -x.get("d", 0))[:limit]:
        frame = (b.get("stack") or [{}])[-1]
        out.append({"d": b.get("d", 0), "file": frame.get("file", "?"), "line": frame.get("line", 0),
                    "func": frame.get("func", "?"), "src": frame.get("src") or "",
                    "task_name": _short(names.get(b.get("task"), "(none: the loop itself)"))})
    return out


def longest_block(blocks: list[dict], tasks: list[dict]) -> dict | None:
    """The longest block with its innermost frame and the name of the task it stalled."""
    top = blocks_longest_first(blocks, tasks, 1)
    return top[0] if top else None
