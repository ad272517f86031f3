# asgi.py — LoopscopeMiddleware: one loopscope session per HTTP/WebSocket request of any ASGI app
# (Starlette, FastAPI, Litestar, plain ASGI), and an X-Loopscope-Session response header with the
# session's timeline URL. Recording itself is the C module's; this only opens and closes sessions.
from __future__ import annotations

from typing import Any, Awaitable, Callable, MutableMapping

from . import _state
from .session import Session

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"x-loopscope-session"


def request_name(scope: Scope) -> str:
    if scope["type"] == "websocket":
        return f"WS {scope.get('path', '')}"
    return f"{scope.get('method', 'GET')} {scope.get('path', '')}"


class LoopscopeMiddleware:
    """Wrap an ASGI app: `app = LoopscopeMiddleware(app)`. Requests are recorded only while
    loopscope is installed; otherwise the app runs untouched."""

    def __init__(self, app: ASGIApp, *, header: bool = True,
                 name: Callable[[Scope], str] = request_name) -> None:
        self.app = app
        self.header = header
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _state.core is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # what `async with Session(...)` does, without its two extra coroutines per request
        session = Session(self.name(scope))
        try:
            session._start_in_task()
            if session._core is None:
                await self.app(scope, receive, send)
                return
            state = scope.setdefault("state", {})
            try:
                state["loopscope_session"] = session
            except TypeError:  # a read-only state mapping: the header still carries the URL
                pass
            if not self.header:
                await self.app(scope, receive, send)
                return
            url = session.url.encode("latin-1")

            async def send_with_header(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = dict(message)
                    message["headers"] = [*message.get("headers", ()), (HEADER, url)]
                await send(message)

            await self.app(scope, receive, send_with_header)
        finally:
            session._finish()
