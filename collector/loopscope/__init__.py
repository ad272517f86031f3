# loopscope — the public API of the in-process asyncio collector: install()/uninstall(),
# session(), flush(), stats(). Importing changes nothing; install() starts the C collector
# (loopscope._core) and hooks asyncio. The ASGI middleware is in loopscope.asgi.
from __future__ import annotations

import asyncio
import atexit
import os
import warnings
from typing import Any

from . import _state
from .session import Session, current_session, session
from .settings import Settings, load as load_settings

__all__ = ["install", "uninstall", "session", "Session", "flush", "stats", "installed", "Settings"]
__version__ = "0.1.0"

_atexit_registered = False
_fork_registered = False


def installed() -> bool:
    return _state.settings is not None


def install(server: str | None = None, **settings: Any) -> Settings:
    """Start recording. Settings come from keyword arguments, then LOOPSCOPE_* variables, then
    defaults (see loopscope.settings). With enabled=False nothing is hooked and nothing costs."""
    global _atexit_registered, _fork_registered
    if _state.settings is not None:
        if _state.installed_by_run:  # `loopscope run` installed it before the program started
            return _state.settings
        raise RuntimeError("loopscope: already installed; call loopscope.uninstall() first")
    if server is not None:
        settings["server"] = server
    cfg = load_settings(settings)
    if not cfg.enabled:
        _state.settings = cfg
        return cfg
    from . import _core
    _core.start(url=cfg.server, token=cfg.token, buffer_cap=cfg.buffer_bytes, timeout_ms=cfg.timeout_ms,
                flush_interval_ms=cfg.flush_interval_ms, blocking_ms=cfg.blocking_threshold_ms,
                max_tasks=cfg.max_tasks, sample_rate_ms=cfg.sample_rate_ms,
                lib_prefixes=_state.lib_prefixes(cfg.library_paths), session_var=current_session,
                asyncio_prefix=_state.asyncio_dir(), meta=_state.meta_static(cfg.service),
                get_running_loop=asyncio.get_running_loop, hook_loop=_state.hook_loop,
                offline=cfg.offline, sink=cfg.sink, batches_per_post=cfg.batches_per_post)
    _state.settings = cfg
    _state.core = _core
    # LoopscopeMiddleware will leave requests out: keep their blocks. Derived afresh at every
    # install, as the C module's flag is (off at stop), so a failed install leaves nothing stale.
    _state.orphan_blocks = cfg.request_fraction < 1
    _core.keep_orphan_blocks(_state.orphan_blocks)
    try:
        _state.apply_hooks()
    except BaseException:
        _state.core = None
        _state.settings = None
        _core.stop(0)
        raise
    if not _atexit_registered:
        atexit.register(_at_exit)
        _atexit_registered = True
    if not _fork_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_child)
        _fork_registered = True
    return cfg


def uninstall(timeout: float | None = None) -> bool:
    """Stop recording: close open sessions, send what is buffered (waiting at most `timeout`
    seconds, default exit_flush_ms), unhook asyncio. True when everything reached the server."""
    cfg = _state.settings
    if cfg is None:
        return True
    core = _state.core
    ok = True
    if core is not None:
        _state.remove_hooks()
        ms = int((cfg.exit_flush_ms / 1000 if timeout is None else timeout) * 1000)
        core.close_sessions()
        ok = core.flush(ms)
        if not ok and not cfg.offline:
            st = core.stats()
            warnings.warn(f"loopscope: server {cfg.server} did not take every event before uninstall "
                          f"({st.get('dropped', 0)} dropped, last status {st.get('last_status')}); "
                          "is loopscope-server running?", RuntimeWarning, stacklevel=2)
        core.stop(0)
    _state.core = None
    _state.settings = None
    return ok


def flush(timeout: float = 5.0) -> bool:
    """Wait until everything recorded so far is acknowledged by the server (True) or timeout."""
    if _state.core is None:
        return True
    return _state.core.flush(int(timeout * 1000))


def stats() -> dict[str, Any]:
    """The collector's counters: events, dropped, bytes_used, batches_sent, posts_failed, ..."""
    return _state.core.stats() if _state.core is not None else {}


def _at_exit() -> None:
    if _state.settings is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uninstall()


def _after_fork_child() -> None:
    from . import _core
    _state.reseed()
    _core.after_fork_child()  # new session ids; when installed, a fresh collector
