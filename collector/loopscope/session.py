# session.py — loopscope.session(name): one recorded session, as a sync or async context manager.
# Tasks created inside its context belong to it (a contextvar); the C module records them.
from __future__ import annotations

import contextvars
from typing import Any

from . import _core, _state

# The session of the current context; the task factory reads it in C.
current_session: contextvars.ContextVar = contextvars.ContextVar("loopscope_session", default=None)


class Session:
    """A recorded session. Use `with` around asyncio.run(...) or `async with` inside a coroutine."""

    def __init__(self, name: str = "", *, adopt_current_task: bool = True, summary: bool = False):
        self.name = name or "session"
        self.id = _core.new_session_id()  # the middleware's sessions take theirs from there too
        self._adopt = adopt_current_task
        self._want_summary = summary
        self._summary: dict[str, Any] | None = None
        self._core = None
        self._token: contextvars.Token | None = None

    @property
    def url(self) -> str:
        """The timeline page of this session on the configured server."""
        base = _state.settings.server.rstrip("/") if _state.settings else "http://127.0.0.1:7878"
        return f"{base}/sessions/{self.id}"

    @property
    def recording(self) -> bool:
        return self._core is not None

    def _start(self) -> None:
        core = _state.core
        if core is None:
            return
        s = core.Session(self.id)
        s._open(self.name, _state.settings.max_tasks, self._want_summary)
        self._core = s
        self._token = current_session.set(s)

    def _finish(self) -> None:
        if self._token is not None:
            try:
                current_session.reset(self._token)
            except ValueError:  # exited in another context than entered: leave the var alone
                pass
            self._token = None
        if self._core is not None:
            self._core._close()
            self._summary = self._core._summary()
            self._core = None

    def summary(self) -> dict[str, Any] | None:
        """What the in-process summary kept (a session made with summary=True): tasks,
        max_concurrency, blocks, top_blocks (with stacks), lag, hot_spots, duration_ns. None when
        the session kept none (not installed, or not asked). loopscope.summary formats it."""
        if self._core is not None:
            return self._core._summary()
        return self._summary

    def stats(self) -> dict[str, Any]:
        return self._core._stats() if self._core is not None else {}

    def __enter__(self) -> "Session":
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()

    def _start_in_task(self) -> None:
        """_start() from inside a coroutine: hooks the running loop, starts the lag heartbeat and
        records the running task as the session's root (the toolbar panel calls this directly)."""
        self._start()
        if self._core is not None:
            self._core._enter_loop(self._adopt)

    async def __aenter__(self) -> "Session":
        self._start_in_task()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._finish()


def session(name: str = "", **kwargs: Any) -> Session:
    """A session named `name`: `with loopscope.session("job"): asyncio.run(main())` or
    `async with loopscope.session("GET /users"): ...`. Does nothing when loopscope is not installed."""
    return Session(name, **kwargs)
