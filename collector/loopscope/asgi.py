# asgi.py — LoopscopeMiddleware: one loopscope session per HTTP/WebSocket request of any ASGI app
# (Starlette, FastAPI, Litestar, plain ASGI), and an X-Loopscope-Session response header with the
# session's timeline URL. The per-request work is the C module's (`request_open`): a tiny request
# would otherwise pay for every Python line here. When the session ends, the request's task ends
# in it (its lane stops "running") with the response status the app sent, and the session carries
# the route template the framework matched (`GET /users/{user_id}`), for the endpoints view.
from __future__ import annotations

from typing import Any, Awaitable, Callable, MutableMapping

from . import _core, _state
from .settings import check_fraction

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"x-loopscope-session"
_RECORDED = ("http", "websocket")


def request_name(scope: Scope) -> str:
    """The default session name: "GET /path" or "WS /path" (what the C module does by itself)."""
    if scope["type"] == "websocket":
        return f"WS {scope.get('path', '')}"
    return f"{scope.get('method', 'GET')} {scope.get('path', '')}"


def route_template(scope: Scope) -> str | None:
    """The route template the framework matched, as "GET /users/{user_id}" (or "WS /path"), once
    the app has routed the request, or None. Litestar puts it in scope["path_template"]; Starlette
    (and FastAPI) put the matched route in scope["route"], whose path is relative to the Mount it
    sits in: the part of root_path a Mount added comes first."""
    template = scope.get("path_template")
    if not isinstance(template, str) or not template:
        template = getattr(scope.get("route"), "path", None)
        if not isinstance(template, str):
            return None
        root, app_root = scope.get("root_path", ""), scope.get("app_root_path", "")
        if isinstance(root, str) and isinstance(app_root, str) and root.startswith(app_root):
            template = root[len(app_root):] + template
    if scope["type"] == "websocket":
        return f"WS {template}"
    return f"{scope.get('method', 'GET')} {template}"


class LoopscopeMiddleware:
    """Wrap an ASGI app: `app = LoopscopeMiddleware(app)`. Requests are recorded only while
    loopscope is installed; otherwise the app runs untouched. During a recorded request
    `scope["state"]["loopscope_session"]` has the session's `id`, `url` and `recording`.

    `fraction` records that share of requests, each drawn at random (0.1: one in ten on average);
    the others pass straight through, with no session, no state entry and no header, and cost
    about nothing. None (the default) takes the installed setting `request_fraction`
    (LOOPSCOPE_REQUEST_FRACTION), which is 1: every request."""

    def __init__(self, app: ASGIApp, *, header: bool = True,
                 name: Callable[[Scope], str] = request_name, fraction: float | None = None) -> None:
        self.app = app
        self.header = header
        self.name = name
        self.fraction = None if fraction is None else check_fraction(fraction)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        core = _state.core
        if core is None or scope["type"] not in _RECORDED:
            await self.app(scope, receive, send)
            return
        fraction = self.fraction
        if fraction is None:
            fraction = _state.settings.request_fraction
        # a draw from loopscope's own generator (the app's `random` sequence is left as it was);
        # 1, the default, draws nothing
        if fraction < 1.0:
            if not _state.orphan_blocks:
                # once per install (install() does it when request_fraction is below 1): a block of
                # the loop in a request not drawn (no session of its own) gets a session of its
                # own, so the share does not hide which line blocked the loop. Steps are timed
                # from the next one on.
                _state.orphan_blocks = True
                core.keep_orphan_blocks(True)
            if _state.draw() >= fraction:
                await self.app(scope, receive, send)
                return
        name = None if self.name is request_name else self.name(scope)
        # a drawn request's meta carries its share (the server counts it as 1 / fraction requests)
        request = core.request_open(scope, send, name, self.header, fraction)
        try:
            # the request stands in for send: it keeps http.response.start's status for the
            # request's end and adds the header to it (unless header=False)
            await self.app(scope, receive, request)
        except BaseException as exc:
            # the request's task (the server's) ends in the session with what the app raised
            request.close(exc, scope)
            raise
        # with the scope, close also reads the route template the framework matched (Litestar's
        # path_template in C; scope["route"] through route_template): no Python call per request
        request.close(None, scope)


# A loop block in a request not drawn has no session of its own to go to: the watchdog, taking the
# blocked stack, finds this frame on it and names the block's session after the request (3.12+).
_core.watch_request_code(LoopscopeMiddleware.__call__.__code__)
