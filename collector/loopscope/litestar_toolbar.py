# litestar_toolbar.py — LoopscopePanel, the "Async" panel of litestar-debug-toolbar (`debug_toolbar`
# on PyPI as litestar-debug-toolbar, for Litestar, Starlette and FastAPI): one loopscope session
# per request, stats read back from the server into the toolbar's own table and JSON API, the
# nav subtitle "12 tasks · 1 block", loopscope's cost in Server-Timing. Showing the timeline itself
# inside the toolbar needs an adaptation of the toolbar's page, kept in _ldt_embed.py.
#
# The toolbar makes ONE panel object for all requests, so nothing about a request lives on it:
# the open request is in a contextvar of ours (set in process_request, in the request's task, and
# seen by the toolbar's process_response in the same task), its stats in the toolbar's
# RequestContext. `import loopscope` never imports this module.
from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import time
import warnings
from typing import Any, ClassVar

try:
    from debug_toolbar.core.panel import Panel
except ImportError as exc:  # only reached by someone naming loopscope.litestar_toolbar
    from ._which_toolbar import wrong_toolbar
    raise wrong_toolbar("loopscope.litestar_toolbar", "litestar-debug-toolbar", "fastapi-debug-toolbar",
                        "loopscope.toolbar.AsyncPanel (panels=[...] of its middleware)") from exc

from . import _ldt_embed, _state
from .readback import ServerProblem, blocks_longest_first, read_session, session_page

log = logging.getLogger("loopscope")

# The request open in this context: set by process_request in the request's task; the toolbar's
# process_response runs in that task too (from the app's send), so it finds it here.
_open: contextvars.ContextVar["_Open | None"] = contextvars.ContextVar("loopscope_ldt_request", default=None)
# The nav subtitle of this context's request: get_nav_subtitle() takes no request, and the toolbar
# clears its own request context before it renders the bar (in the same task, right after).
_subtitle: contextvars.ContextVar[str] = contextvars.ContextVar("loopscope_ldt_subtitle", default="")

# Await hot spots are the awaits of at least this long, grouped by file:line (the REST API's default).
AWAIT_HOTSPOT_MS = 10.0



async def _no_send(message: Any) -> None:  # the request's send is the toolbar's, never ours
    return None


@dataclasses.dataclass
class _Open:
    request: Any          # loopscope._core.Request
    cost_s: float         # wall time the panel itself spent so far


def _config_default(name: str) -> Any:
    from debug_toolbar.core.config import DebugToolbarConfig
    f = DebugToolbarConfig.__dataclass_fields__.get(name)
    return f.default if f is not None else None


def thresholds(config: Any) -> tuple[float, float]:
    """(blocking_ms, lag_ms): the toolbar's async_blocking_threshold_ms and
    async_event_loop_lag_threshold_ms when the app set them (they differ from the toolbar's
    defaults), loopscope's blocking_threshold_ms and 10 ms otherwise. A block shorter than
    loopscope's own threshold is never recorded, so the panel cannot show it either."""
    cfg = _state.settings
    ours = cfg.blocking_threshold_ms if cfg is not None else 100.0
    block = getattr(config, "async_blocking_threshold_ms", None)
    if block is None or block == _config_default("async_blocking_threshold_ms"):
        block = ours
    lag = getattr(config, "async_event_loop_lag_threshold_ms", None)
    if lag is None:
        lag = 10.0
    return max(float(block), ours), float(lag)


_warned_builtin = False


def _warn_builtin_once(toolbar: Any) -> None:
    global _warned_builtin
    if _warned_builtin:
        return
    _warned_builtin = True
    if any(p.get_panel_id() == "AsyncProfilerPanel" for p in getattr(toolbar, "enabled_panels", [])):
        warnings.warn("litestar-debug-toolbar's own AsyncProfilerPanel is on beside loopscope's panel: both "
                      "hook the event loop (it also turns on asyncio debug mode, and overlapping requests "
                      "break it). Take it out of extra_panels, or add exclude_panels=['AsyncProfilerPanel'] "
                      "to the toolbar config.", RuntimeWarning, stacklevel=2)


class LoopscopePanel(Panel):
    """Add with `extra_panels=[LoopscopePanel]` (or "loopscope.litestar_toolbar.LoopscopePanel") in
    LitestarDebugToolbarConfig, StarletteDebugToolbarConfig or FastAPIDebugToolbarConfig, after
    `loopscope.install(...)`. Each request becomes one loopscope session."""

    panel_id: ClassVar[str] = "LoopscopePanel"
    title: ClassVar[str] = "Async (loopscope)"
    nav_title: ClassVar[str] = "Async"
    has_content: ClassVar[bool] = True

    def __init__(self, toolbar: Any) -> None:
        super().__init__(toolbar)
        _ldt_embed.install()

    async def process_request(self, context: Any) -> None:
        _open.set(None)
        _subtitle.set("")
        core = _state.core
        if core is None:
            return
        _warn_builtin_once(self._toolbar)
        t0 = time.perf_counter()
        try:
            # the toolbar gives panels no ASGI scope: a scope of our own (request_open puts the
            # request in its "state", so one per request) and the session is named later
            request = core.request_open({"type": "http"}, _no_send, "request", False)
        except Exception as e:  # never break the app for the panel's sake
            log.warning("loopscope: cannot record this request: %s", e)
            return
        # The toolbar calls no panel when the app raises past it (a 500 its ServerErrorMiddleware
        # sends outside the toolbar): the request's task ending closes the session then.
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _t, r=request: r.close())
        _open.set(_Open(request, time.perf_counter() - t0))

    async def generate_stats(self, context: Any) -> dict[str, Any]:
        opened = _open.get()
        _open.set(None)
        cfg = _state.settings
        if opened is None:
            if cfg is None:
                why = "loopscope is not installed: call loopscope.install() when the app starts."
            elif not cfg.enabled:
                why = "loopscope is installed with enabled=False (LOOPSCOPE_ENABLED=0): set it to 1."
            else:
                why = "loopscope did not record this request (see the app's log)."
            _subtitle.set("not recording")
            return {"recording": False, "problem": why}
        t0 = time.perf_counter()
        request = opened.request
        md = getattr(context, "metadata", {}) or {}
        name = f"{md.get('method', 'GET')} {md.get('path', '')}".strip()
        status = md.get("status_code")
        try:
            request.rename(name)
            if isinstance(status, int) and 100 <= status <= 599:
                request.status = status
        finally:
            request.close()
        sid = request.id
        base = cfg.server.rstrip("/")
        page = session_page(base, sid)
        block_ms, lag_ms = thresholds(self._toolbar.config)
        stats: dict[str, Any] = {"recording": True, "session_id": sid, "timeline_url": page,
                                 "embed_url": page + "?embed=1", "request": name}
        try:
            data = await asyncio.get_running_loop().run_in_executor(
                None, lambda: read_session(base, sid, cfg.token, min(cfg.timeout_ms / 1000, 2.0),
                                           awaits_min_ms=AWAIT_HOTSPOT_MS))
        except ServerProblem as e:
            stats["problem"] = str(e)
            _subtitle.set("no data")
        else:
            stats.update(summarize(data, block_ms, lag_ms))
            n, nb, ne = stats["tasks"], stats["blocks"], stats["blocks_elsewhere"]
            _subtitle.set(f"{n} task{'' if n == 1 else 's'} \u00b7 {nb} block{'' if nb == 1 else 's'}"
                          + (f" ({ne} by others)" if ne else ""))
        stats["cost_ms"] = round((opened.cost_s + time.perf_counter() - t0) * 1000, 3)
        return stats

    def generate_server_timing(self, context: Any) -> dict[str, float]:
        cost = self.get_stats(context).get("cost_ms")
        return {"loopscope": cost / 1000} if isinstance(cost, (int, float)) else {}

    def get_nav_subtitle(self) -> str:
        return _subtitle.get()


def _blocks_said(own: int, elsewhere: int) -> str:
    """"1 block of its own, 1 caused by another request" (or code outside any request)."""
    s = f"{own} block{'' if own == 1 else 's'} of its own"
    if elsewhere:
        s += f", {elsewhere} caused elsewhere (another request or code outside any)"
    return s


def summarize(data: dict, block_ms: float, lag_ms: float) -> dict[str, Any]:
    """The panel's stats from what read_session returned: flat, JSON-serializable, in the units a
    reader wants (ms), each block and hot spot naming its file:line and source."""
    s = data["summary"]
    lag = s.get("lag") or {}
    blocks = [b for b in data["blocks"] if b.get("d", 0) >= block_ms * 1e6]
    own = [b for b in blocks if not b.get("elsewhere")]
    top = blocks_longest_first(blocks, data["tasks"], 5)
    awaits = data.get("awaits") or {}
    return {
        "duration_ms": round(s.get("duration_ns", 0) / 1e6, 3),
        "tasks": s.get("tasks", 0),
        "max_concurrency": s.get("max_concurrency", 0),
        "blocks": len(blocks),
        # the loop is shared: a request also waits on stalls caused by other requests (or by code
        # outside any), which its session records as blocks from elsewhere
        "blocks_own": len(own),
        "blocks_elsewhere": len(blocks) - len(own),
        "blocks_said": _blocks_said(len(own), len(blocks) - len(own)),
        "blocking_threshold_ms": block_ms,
        "await_threshold_ms": AWAIT_HOTSPOT_MS,
        "longest_blocks": [{"ms": round(b["d"] / 1e6, 1), "where": f"{b['file']}:{b['line']}",
                            "func": b["func"], "src": b["src"], "task": b["task_name"],
                            "from_elsewhere": b["elsewhere"],
                            # when the watchdog took the stack: near "ms", a late stack that may
                            # name code that ran after the blocking call in the same step
                            "stack_at_ms": None if b["stack_t"] is None else round(b["stack_t"] / 1e6, 1)}
                           for b in top],
        "await_hotspots": [{"where": f"{h.get('file')}:{h.get('line')}", "func": h.get("func"),
                            "what": h.get("what"), "count": h.get("count", 0),
                            "total_ms": round(h.get("total_ns", 0) / 1e6, 1),
                            "max_ms": round(h.get("max_ns", 0) / 1e6, 1)}
                           for h in (awaits.get("hotspots") or [])[:5]],
        "lag_avg_ms": lag.get("avg_ms", 0), "lag_p95_ms": lag.get("p95_ms", 0),
        "lag_max_ms": lag.get("max_ms", 0), "lag_samples": lag.get("samples", 0),
        "lag_threshold_ms": lag_ms, "lag_over_threshold": lag.get("max_ms", 0) >= lag_ms,
        "dropped_events": s.get("dropped", 0),
    }
