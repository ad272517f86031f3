# _ldt_embed.py — shows loopscope's timeline (the server's ?embed=1 page, in an iframe) inside
# litestar-debug-toolbar: in the toolbar's LoopscopePanel and on a request's detail page.
#
# Why an adaptation is needed: the toolbar renders a third-party panel's stats as an escaped
# table (its toolbar.js `renderPanelById` knows only its own panels; the detail pages print stats
# as text), so no panel can put an iframe there by itself. The least intrusive way that works in
# the tested versions: the toolbar.js the toolbar serves gets one `case 'LoopscopePanel'` in
# renderPanelById and a few functions appended (what they do is below, escaping included); the
# toolbar's Python code is not touched. Everything is gated: another major version, or a
# toolbar.js without the exact spot this edits, and nothing is changed — the panel then shows its
# stats table with the timeline URL, never a broken page or a script error.
from __future__ import annotations

import importlib.metadata
import logging

log = logging.getLogger("loopscope")

TESTED = ("1.1.1",)           # litestar-debug-toolbar versions this was tested with (docs/toolbar.md)
MAJOR = "1."                  # what the adaptation is tried on at all

ANCHOR = "    renderPanelById(panelId, data, requestId) {\n        switch (panelId) {\n"
CASE = "            case 'LoopscopePanel':\n                return loopscopePanelHtml(this, data);\n"

# Only an http(s) URL of plain characters becomes an iframe's src: no quote, angle bracket or
# space can reach the markup (the toolbar's escapeHtml leaves quotes alone).
JS = r"""
/* loopscope (loopscope/_ldt_embed.py): the request's timeline in the LoopscopePanel and on the
   request's detail page. Any failure here leaves the toolbar's own rendering as it was. */
function loopscopeEmbedUrl(data) {
    const u = data && typeof data.embed_url === 'string' ? data.embed_url : '';
    return /^https?:\/\/[A-Za-z0-9.:\[\]\/%?=&~_-]+$/.test(u) ? u : '';
}
const LOOPSCOPE_FRAME_STYLE = 'width:100%;height:420px;border:0;display:block;margin-bottom:8px';
function loopscopePanelHtml(tb, data) {
    let html = tb.renderPanelData(data);
    try {
        const url = loopscopeEmbedUrl(data);
        if (url) {
            html = '<iframe class="loopscope-timeline" src="' + url + '" title="loopscope timeline of this request"' +
                   ' style="' + LOOPSCOPE_FRAME_STYLE + '"></iframe>' + html;
        }
    } catch (e) { /* the table alone */ }
    return html;
}
document.addEventListener('DOMContentLoaded', () => {
    try {
        if (document.getElementById('debug-toolbar')) return;
        const m = location.pathname.match(/^(.*)\/([0-9a-fA-F]{8}-[0-9a-fA-F-]{27})\/?$/);
        if (!m) return;
        let host = document.querySelector('#panel-LoopscopePanel .panel-content');
        if (!host) {
            const h = Array.from(document.querySelectorAll('.panel-section h3'))
                .find(e => e.textContent.trim() === 'LoopscopePanel');
            host = h ? h.parentNode : null;
        }
        if (!host) return;
        fetch(m[1] + '/api/requests/' + m[2])
            .then(r => r.json())
            .then(d => {
                const url = loopscopeEmbedUrl(d && d.panel_data && d.panel_data.LoopscopePanel);
                if (!url) return;
                const f = document.createElement('iframe');
                f.className = 'loopscope-timeline';
                f.src = url;
                f.title = 'loopscope timeline of this request';
                f.style.cssText = LOOPSCOPE_FRAME_STYLE;
                host.insertBefore(f, host.firstChild);
            })
            .catch(() => {});
    } catch (e) { /* the page as the toolbar made it */ }
});
"""

_state = {"tried": False, "active": False, "why": ""}


def adapt(js: str) -> str | None:
    """toolbar.js with the LoopscopePanel case and the functions above, or None when it does not
    have the one spot this edits exactly once."""
    if js.count(ANCHOR) != 1 or "loopscopePanelHtml" in js:
        return None
    return js.replace(ANCHOR, ANCHOR + CASE) + JS


def install() -> bool:
    """Adapts the installed toolbar once per process; True when the timeline will show."""
    if _state["tried"]:
        return bool(_state["active"])
    _state["tried"] = True
    try:
        version = importlib.metadata.version("litestar-debug-toolbar")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    if not version.startswith(MAJOR):
        _state["why"] = f"litestar-debug-toolbar {version or '(unknown version)'} is not 1.x"
        log.info("loopscope: %s: the panel shows its stats and the timeline's URL only", _state["why"])
        return False
    try:
        from debug_toolbar.core import assets
        original = assets.get_toolbar_js
        adapted = adapt(original())
    except Exception as e:  # a toolbar of another shape: keep it as it is
        adapted, original = None, None
        _state["why"] = f"cannot read the toolbar's script: {e}"
    if adapted is None:
        _state["why"] = _state["why"] or f"litestar-debug-toolbar {version}'s toolbar.js has another shape"
        log.info("loopscope: %s: the panel shows its stats and the timeline's URL only", _state["why"])
        return False

    def get_toolbar_js() -> str:
        return adapted

    get_toolbar_js.__wrapped__ = original  # type: ignore[attr-defined]
    assets.get_toolbar_js = get_toolbar_js
    # Litestar's routes imported the function by name when they were imported (the Starlette
    # ones import it per request from assets, patched above)
    try:
        from debug_toolbar.litestar.routes import handlers
    except Exception:  # Litestar not installed: Starlette/FastAPI only
        handlers = None
    if handlers is not None and getattr(handlers, "get_toolbar_js", None) is original:
        handlers.get_toolbar_js = get_toolbar_js
    _state["active"] = True
    if version not in TESTED:
        log.info("loopscope: litestar-debug-toolbar %s was not tested (tested: %s); its script had the "
                 "expected shape, so the timeline is embedded", version, ", ".join(TESTED))
    return True


def status() -> dict:
    """Whether the timeline is embedded, and why not (for tests and the docs)."""
    return {"active": bool(_state["active"]), "why": _state["why"]}
