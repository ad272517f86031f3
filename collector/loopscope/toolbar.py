# toolbar.py — AsyncPanel, the "Async" panel of fastapi-debug-toolbar (`debug_toolbar`): one loopscope
# session around each request the toolbar sees, shown as an iframe of the session's timeline page
# (?embed=1) and a short summary read back from the server's REST API. Recording is the C module's,
# opening/closing sessions is session.py's; `import loopscope` never imports this module.
from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

try:
    from debug_toolbar.panels import Panel
except ImportError as exc:  # only reached by someone naming loopscope.toolbar.AsyncPanel
    raise ImportError("loopscope.toolbar needs the ASGI debug toolbar: "
                      "pip install fastapi-debug-toolbar") from exc
from jinja2 import Environment  # a dependency of debug_toolbar

from . import _state
from .asgi import request_name
from .session import Session

# Autoescaping on whatever environment the toolbar was configured with is not ours to rely on:
# task names, request paths and source paths reach this template, so it has its own.
_env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)

INSTALL_HELP = """
<p><strong>loopscope is not recording.</strong> {{ why }}</p>
<pre>pip install ./collector            # the loopscope package (CPython 3.10+)
loopscope-server                   # http://127.0.0.1:7878, data in ./loopscope.db

# at app start-up, before serving:
import loopscope
loopscope.install(server="http://127.0.0.1:7878")</pre>
"""

CONTENT = """
{% if problem %}
<p class="loopscope-problem"><strong>{{ problem }}</strong></p>
<p>Timeline of this request: <code>{{ page }}</code> (session <code>{{ sid }}</code>).</p>
{% else %}
<table class="loopscope-summary">
  <tr><th>Request</th><td>{{ s.name }} &middot; {{ ms(s.duration_ns) }}</td></tr>
  <tr><th>Tasks</th><td>{{ s.tasks }} (at most {{ s.max_concurrency }} at once){% if s.dropped %},
      {{ s.dropped }} events dropped{% endif %}</td></tr>
  <tr><th>Longest block</th><td>{% if block %}{{ ms(block.d) }} in {{ block.func }}() &middot; task
      {{ block.task_name }}{% if s.blocks > 1 %} &middot; {{ s.blocks }} blocks in all{% endif %}
      <code>{{ block.file }}:{{ block.line }}</code>
      {% if block.src %}<code>{{ block.src }}</code>{% endif %}{% else %}none{% endif %}</td></tr>
  <tr><th>Max loop lag</th><td>{{ "%.1f"|format(s.lag.max_ms) }} ms ({{ s.lag.samples }} samples)</td></tr>
</table>
<p><a href="{{ page }}" target="_blank" rel="noopener">Open the full timeline</a></p>
<iframe class="loopscope-timeline" src="{{ page }}?embed=1" title="loopscope timeline of {{ s.name }}"
        style="width: 100%; height: 420px; border: 0;"></iframe>
{% endif %}
"""

_install_help = _env.from_string(INSTALL_HELP)
_content = _env.from_string(CONTENT)


def _ms(ns: Any) -> str:
    ms = (ns or 0) / 1e6
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


class ServerProblem(Exception):
    """Why the server's view of a session could not be read, said so a user can act on it."""


def _get(base: str, path: str, token: str | None, timeout: float) -> Any:
    req = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise LookupError(path) from None
        if e.code == 401:
            raise ServerProblem(f"loopscope server {base} refused the request (401): "
                                "set the same token as the server's --token (LOOPSCOPE_TOKEN)") from None
        raise ServerProblem(f"loopscope server {base} answered {e.code} for {path}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # refused, timed out, not HTTP/JSON
        reason = getattr(e, "reason", e)
        raise ServerProblem(f"loopscope server {base} is unreachable ({reason}). Start it with "
                            "`loopscope-server`; this request's events stay buffered in the app "
                            "until it answers.") from None


def read_session(base: str, sid: str, token: str | None = None, timeout: float = 2.0) -> dict:
    """The summary, blocks and tasks of session `sid` from the server, after flushing what this
    process still holds when the server does not have all of it yet."""
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
    tasks = _get(base, f"/api/v1/sessions/{sid_q}/tasks", token, timeout)["tasks"] if blocks else []
    return {"summary": summary, "blocks": blocks, "tasks": tasks}


def longest_block(blocks: list[dict], tasks: list[dict]) -> dict | None:
    """The longest block with its innermost frame and the name of the task it stalled."""
    if not blocks:
        return None
    b = max(blocks, key=lambda x: x.get("d", 0))
    frame = (b.get("stack") or [{}])[-1]
    names = {t["id"]: str(t.get("name")) for t in tasks}
    name = names.get(b.get("task"), "(none: the loop itself)")
    return {"d": b.get("d", 0), "file": frame.get("file", "?"), "line": frame.get("line", 0),
            "func": frame.get("func", "?"), "src": frame.get("src") or "",
            "task_name": name if len(name) <= 80 else name[:79] + "\u2026"}


class AsyncPanel(Panel):
    """Add with `DebugToolbarMiddleware(app, panels=["loopscope.toolbar.AsyncPanel"])` after
    `loopscope.install(...)`. Each request becomes one session; the panel shows its timeline.
    The toolbar makes one panel object per request, so overlapping requests never share one."""

    title = "Async"
    template = ""  # content is rendered from this module's own autoescaping templates

    _session_id: str | None = None
    _tasks: int = 0

    async def process_request(self, request: Any) -> Any:
        if _state.core is None:
            return await super().process_request(request)
        session = Session(request_name(request.scope))
        try:
            session._start_in_task()
            if session.recording:
                self._session_id = session.id
            return await super().process_request(request)
        finally:
            self._tasks = session.stats().get("tasks", 0)
            session._finish()

    async def generate_stats(self, request: Any, response: Any) -> dict[str, Any]:
        return {"session_id": self._session_id, "tasks": self._tasks}

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()
        if not stats.get("session_id"):
            return "not recording"
        n = stats.get("tasks", 0)
        return f"{n} task{'' if n == 1 else 's'}"

    @property
    def content(self) -> str:
        """Rendered when the panel is opened (the toolbar's render_panel runs in a worker
        thread), so the reads from the server here never stall the event loop."""
        cfg = _state.settings
        sid = self.get_stats().get("session_id")
        if sid is None or cfg is None:
            if cfg is None:
                why = "Call loopscope.install() when the app starts."
            elif not cfg.enabled:
                why = "It is installed with enabled=False (LOOPSCOPE_ENABLED); set it to 1."
            else:
                why = "This request was not recorded; reload the page."
            return _install_help.render(why=why)
        base = cfg.server.rstrip("/")
        page = f"{base}/sessions/{urllib.parse.quote(sid, safe='')}"
        ctx: dict[str, Any] = {"sid": sid, "page": page, "ms": _ms, "problem": None}
        try:
            data = read_session(base, sid, cfg.token, min(cfg.timeout_ms / 1000, 2.0))
            ctx["s"] = data["summary"]
            ctx["block"] = longest_block(data["blocks"], data["tasks"])
        except ServerProblem as e:
            ctx["problem"] = str(e)
        return _content.render(**ctx)
