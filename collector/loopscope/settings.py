# settings.py — the collector's settings: defaults, LOOPSCOPE_* environment variables, keyword
# arguments of install() (highest priority), validated into one frozen object. No side effects.
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    server: str = "http://127.0.0.1:7878"
    token: str | None = None
    await_threshold_ms: float = 10.0     # awaits this long are highlighted (all are kept)
    blocking_threshold_ms: float = 100.0  # a step this long is a block; the watchdog takes its stack
    max_tasks: int = 1000                 # per session; later tasks are counted as dropped
    sample_rate_ms: float = 10.0          # lag: the virtual tick's period
    buffer_bytes: int = 16 << 20          # unsent events kept at most; beyond it they are dropped
    timeout_ms: int = 5000                # per HTTP request of the sender
    flush_interval_ms: int = 200          # the sender ships at least this often
    exit_flush_ms: int = 3000             # how long uninstall()/exit waits for the server
    service: str = ""
    library_paths: tuple = ()             # extra directories whose frames count as library code
    offline: bool = False                 # ship nothing (no HTTP): record for the in-process summary
    sink: str | None = None               # a file each batch is appended to (JSON Lines), before posting
    batches_per_post: int = 1000          # sessions' batches one POST carries together; 1: one per POST
    request_fraction: float = 1.0         # LoopscopeMiddleware records this share of requests, at random


TOKEN_MAX = 4096  # LS_TOKEN_MAX of the C core
BATCHES_PER_POST_MAX = 10000  # the server's limit of batches in one multi-batch body


# environment variable -> field
ENV = {
    "LOOPSCOPE_ENABLED": "enabled",
    "LOOPSCOPE_SERVER": "server",
    "LOOPSCOPE_TOKEN": "token",
    "LOOPSCOPE_AWAIT_THRESHOLD_MS": "await_threshold_ms",
    "LOOPSCOPE_BLOCKING_THRESHOLD_MS": "blocking_threshold_ms",
    "LOOPSCOPE_MAX_TASKS": "max_tasks",
    "LOOPSCOPE_SAMPLE_RATE_MS": "sample_rate_ms",
    "LOOPSCOPE_BUFFER_BYTES": "buffer_bytes",
    "LOOPSCOPE_TIMEOUT_MS": "timeout_ms",
    "LOOPSCOPE_SERVICE": "service",
    "LOOPSCOPE_LIBRARY_PATHS": "library_paths",
    "LOOPSCOPE_OFFLINE": "offline",
    "LOOPSCOPE_SINK": "sink",
    "LOOPSCOPE_BATCHES_PER_POST": "batches_per_post",
    "LOOPSCOPE_REQUEST_FRACTION": "request_fraction",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(name: str, value: Any, kind: type) -> Any:
    if kind is tuple:
        if isinstance(value, str):
            return tuple(p for p in value.split(os.pathsep) if p)
        return tuple(str(p) for p in value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"loopscope: {name}={value!r} is not a boolean (use 1/0, true/false)")
    try:
        converted = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"loopscope: {name}={value!r} is not a valid {kind.__name__}") from None
    if kind is float and not math.isfinite(converted):
        raise ValueError(f"loopscope: {name}={value!r} must be a finite number")
    if kind in (int, float) and converted < 0:
        raise ValueError(f"loopscope: {name}={value!r} must not be negative")
    return converted


_KINDS = {"enabled": bool, "server": str, "token": str, "await_threshold_ms": float,
          "blocking_threshold_ms": float, "max_tasks": int, "sample_rate_ms": float,
          "buffer_bytes": int, "timeout_ms": int, "flush_interval_ms": int, "exit_flush_ms": int,
          "service": str, "library_paths": tuple, "offline": bool, "sink": str,
          "batches_per_post": int, "request_fraction": float}


def load(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then LOOPSCOPE_* variables, then keyword overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var, field in ENV.items():
        if var in env:
            values[field] = _convert(var, env[var], _KINDS[field])
    known = {f.name for f in fields(Settings)}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise TypeError(f"loopscope: unknown setting {key!r}; known: {', '.join(sorted(known))}")
        values[key] = value if value is None and key in ("token", "sink") else _convert(key, value, _KINDS[key])
    settings = replace(Settings(), **values)
    if not settings.server.startswith(("http://", "https://")):
        raise ValueError(f"loopscope: server {settings.server!r} must be an http:// or https:// URL")
    if settings.blocking_threshold_ms < 1:
        raise ValueError(f"loopscope: blocking_threshold_ms={settings.blocking_threshold_ms!r} is too small: a step "
                         "that long counts as blocking the loop, so below 1 ms every step would be a block "
                         "(the default is 100; the debug toolbar uses async_blocking_threshold_ms)")
    if settings.sink == "":
        settings = replace(settings, sink=None)
    if settings.token == "":
        settings = replace(settings, token=None)
    if settings.token is not None:
        if len(settings.token.encode()) > TOKEN_MAX or not all("\x21" <= c <= "\x7e" for c in settings.token):
            raise ValueError(f"loopscope: token must be 1 to {TOKEN_MAX} visible ASCII characters (no spaces or "
                             "line breaks): it travels as 'Authorization: Bearer <token>'; use the value given "
                             "to loopscope-server --token")
    if not 1 <= settings.batches_per_post <= BATCHES_PER_POST_MAX:
        raise ValueError(f"loopscope: batches_per_post must be 1 to {BATCHES_PER_POST_MAX} (the server takes "
                         f"{BATCHES_PER_POST_MAX} batches in one body; 1 posts each batch alone)")
    check_fraction(settings.request_fraction, "request_fraction")
    if settings.max_tasks < 1:
        raise ValueError("loopscope: max_tasks must be at least 1")
    if settings.sample_rate_ms < 0.1:
        raise ValueError("loopscope: sample_rate_ms must be at least 0.1")
    if settings.buffer_bytes < 65536:
        raise ValueError("loopscope: buffer_bytes must be at least 65536")
    return settings


def check_fraction(value: Any, name: str = "fraction") -> float:
    """A share of requests to record: a number from 0 (none) to 1 (every request, the default)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"loopscope: {name} must be a number from 0 to 1, not {type(value).__name__}")
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise ValueError(f"loopscope: {name}={value!r} must be from 0 to 1 (the share of requests recorded; "
                         "1 records every request)")
    return float(value)
