# conftest.py — fixtures for the collector tests: the real loopscope-server on a free loopback
# port with a temporary database (LOOPSCOPE_SERVER_BIN), a REST client for it (both shared with
# tests/frameworks: tests/support/lstest.py), and a helper that runs a real asyncio program under
# the collector in one session and flushes it to the server.
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import loopscope

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
# the shared fixtures (server, collector) count as this conftest's once imported here
from lstest import AppServer, Server, by_coro, collector, free_port, line_of, server  # noqa: E402,F401


@pytest.fixture
def record(server, collector) -> Callable[..., dict]:
    """record(main, name, **settings): run asyncio.run(main()) inside one session, flush, and
    return what the server stored: summary, tasks, awaits, blocks, lag, and 'steps' (each task
    id's step events, from the session's export), plus 'result' and 'id'."""
    def run(main: Callable[[], Any], name: str = "test", **settings: Any) -> dict:
        if not loopscope.installed():
            collector(**settings)
        with loopscope.session(name) as s:
            result = asyncio.run(main())
        assert loopscope.flush(60), f"events not delivered: {loopscope.stats()}"
        data = server.session(s.id)
        data["steps"] = server.steps(s.id)
        data["result"] = result
        data["id"] = s.id
        return data

    return run
