# toolbar.py — AsyncPanel, the "Async" panel of fastapi-debug-toolbar (`debug_toolbar`): one loopscope
# session around each request the toolbar sees, shown as an iframe of the session's timeline page
# (?embed=1) and a short summary read back from the server's REST API (readback.py). Recording is
# the C module's, opening/closing sessions is session.py's; `import loopscope` never imports this
# module. The panel for litestar-debug-toolbar (the same top-level `debug_toolbar`, another API)
# is litestar_toolbar.py.
from __future__ import annotations

from typing import Any

try:
    from debug_toolbar.panels import Panel
except ImportError as exc:  # only reached by someone naming loopscope.toolbar.AsyncPanel
    from ._which_toolbar import wrong_toolbar
    raise wrong_toolbar("loopscope.toolbar", "fastapi-debug-toolbar", "litestar-debug-toolbar",
                        "loopscope.litestar_toolbar.LoopscopePanel (extra_panels=[...] in its config)") from exc
from jinja2 import Environment  # a dependency of debug_toolbar

from . import _state
from .readback import ServerProblem, longest_block, ms as _ms, read_session, session_page

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


async def _no_send(message: Any) -> None:  # the response goes out the toolbar's way, not through us
    return None


class AsyncPanel(Panel):
    """Add with `DebugToolbarMiddleware(app, panels=["loopscope.toolbar.AsyncPanel"])` after
    `loopscope.install(...)`. Each request becomes one session; the panel shows its timeline.
    The toolbar makes one panel object per request, so overlapping requests never share one."""

    title = "Async"
    template = ""  # content is rendered from this module's own autoescaping templates

    _session_id: str | None = None
    _tasks: int = 0

    async def process_request(self, request: Any) -> Any:
        core = _state.core
        if core is None:
            return await super().process_request(request)
        # the C module's request: named from the scope, the running task adopted as the root,
        # which ends in the session with the response's status (or what the app raised)
        rec = core.request_open(request.scope, _no_send, None, False)
        self._session_id = rec.id
        try:
            response = await super().process_request(request)
        except BaseException as exc:
            self._tasks = rec.stats().get("tasks", 0)
            rec.close(exc)
            raise
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and 100 <= status <= 599:
            rec.status = status
        self._tasks = rec.stats().get("tasks", 0)
        rec.close()
        return response

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
        page = session_page(base, sid)
        ctx: dict[str, Any] = {"sid": sid, "page": page, "ms": _ms, "problem": None}
        try:
            data = read_session(base, sid, cfg.token, min(cfg.timeout_ms / 1000, 2.0))
            ctx["s"] = data["summary"]
            ctx["block"] = longest_block(data["blocks"], data["tasks"])
        except ServerProblem as e:
            ctx["problem"] = str(e)
        return _content.render(**ctx)
