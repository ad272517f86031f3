# pytest_plugin.py — loopscope in pytest (entry point pytest11, off until --loopscope): each async
# test (a coroutine function run by pytest-asyncio, anyio's plugin or any runner) is recorded as
# its own session named by its node id; --loopscope-fail-on-block=MS fails a test whose loop was
# blocked longer, naming the culprit file:line, its source and the duration; --loopscope-report
# prints the slowest blocks and awaits of the run at the end, like --durations. Detection is
# in-process (the session's summary); sessions are shipped only when a server answers. Under
# pytest-xdist each worker installs its own collector and records its own tests' sessions; what
# the report needs travels to the controller in each report's user_properties.
from __future__ import annotations

import functools
import inspect
import os
from typing import Any

import pytest

_KEY = "loopscope"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("loopscope", "loopscope: record async tests, fail on a blocked event loop")
    g.addoption("--loopscope", action="store_true", default=False,
                help="record each async test as a loopscope session (named by its node id)")
    g.addoption("--loopscope-fail-on-block", type=float, default=None, metavar="MS",
                help="fail a test whose event loop was blocked longer than MS milliseconds (implies --loopscope)")
    g.addoption("--loopscope-report", action="store_true", default=False,
                help="at the end, show the longest blocks and await hot spots of the run, like --durations "
                     "(implies --loopscope)")
    g.addoption("--loopscope-report-count", type=int, default=10, metavar="N",
                help="how many of each --loopscope-report shows (default 10)")
    g.addoption("--loopscope-server", default=None, metavar="URL",
                help="loopscope-server to ship sessions to when it answers [LOOPSCOPE_SERVER]")


class _Plugin:
    def __init__(self, config: pytest.Config):
        self.config = config
        self.fail_ms = config.getoption("--loopscope-fail-on-block")
        self.report_n = config.getoption("--loopscope-report-count") if config.getoption("--loopscope-report") else None
        self.url: str | None = None
        self.installed_here = False
        self.blocks: list[dict] = []   # report: from every test's user_properties (xdist: all workers)
        self.spots: dict[tuple, dict] = {}

    # ---- install once per process (each xdist worker is its own process) --------------------
    def start(self) -> None:
        import loopscope
        from . import _state
        from .cli import server_answers
        from .settings import load as load_settings
        if loopscope.installed():
            return
        settings: dict[str, Any] = {}
        server = self.config.getoption("--loopscope-server")
        if server:
            settings["server"] = server
        if self.fail_ms is not None:
            # the watchdog must see a block of fail_ms: the threshold is at most that
            cur = float(os.environ.get("LOOPSCOPE_BLOCKING_THRESHOLD_MS", "100"))
            settings["blocking_threshold_ms"] = max(1.0, min(cur, self.fail_ms))
        cfg = load_settings(settings)
        offline = server_answers(cfg.server, timeout=0.5) is not None
        loopscope.install(offline=offline, **settings)
        _state.installed_by_run = True
        self.installed_here = True
        self.url = None if offline else cfg.server

    def stop(self) -> None:
        if self.installed_here:
            import loopscope
            from . import _state
            _state.installed_by_run = False
            loopscope.uninstall()
            self.installed_here = False

    # ---- each async test ----------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        fn = getattr(item, "obj", None)
        if not self.installed_here or fn is None or not inspect.iscoroutinefunction(fn):
            return (yield)
        import loopscope
        box: dict[str, Any] = {}

        @functools.wraps(fn)
        async def recorded(*args: Any, **kwargs: Any) -> Any:
            async with loopscope.session(item.nodeid, summary=True) as s:
                box["session"] = s
                return await fn(*args, **kwargs)

        item.obj = recorded
        try:
            return (yield)
        finally:
            item.obj = fn
            s = box.get("session")
            if s is not None:
                item.stash[_SUMMARY] = (s.id, s.summary())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        got = item.stash.get(_SUMMARY, None) if call.when == "call" else None
        if got is None:
            return report
        sid, summary = got
        if summary is None:
            return report
        from . import summary as summ
        blocks = []
        for b in summary["top_blocks"]:
            c = summ.culprit(b["stack"])
            blocks.append({"d_ns": b["d_ns"], **(c or {"file": "", "line": 0, "func": "", "src": ""})})
        spots = [{k: sp[k] for k in ("file", "line", "func", "what", "count", "total_ns", "max_ns")}
                 for sp in summ.hot_spots(summary, self.report_n or 10)]
        prop = (_KEY, {"session": sid, "pid": os.getpid(), "blocks": blocks, "spots": spots,
                       "url": f"{self.url.rstrip('/')}/sessions/{sid}" if self.url else None})
        report.user_properties.append(prop)  # the call's report (the controller's report under xdist)
        item.user_properties.append(prop)    # and the teardown's (junitxml writes those)
        if self.fail_ms is not None and report.passed and blocks and blocks[0]["d_ns"] > self.fail_ms * 1e6:
            b = blocks[0]
            where = summ.where(b["file"], b["line"]) if b["file"] else "(no stack: the block ended before loopscope's watchdog thread got to run; a busy machine)"
            lines = [f"loopscope: the event loop was blocked for {summ.ms(b['d_ns'])} "
                     f"(--loopscope-fail-on-block={self.fail_ms:g} ms)",
                     f"  {where} in {b['func']}" if b["file"] else f"  {where}"]
            if b.get("src"):
                lines.append(f"    {b['src']}")
            more = [x for x in blocks[1:] if x["d_ns"] > self.fail_ms * 1e6]
            if more:
                lines.append(f"  and {len(more)} more block{'s' if len(more) > 1 else ''} over the limit")
            report.outcome = "failed"
            report.longrepr = "\n".join(lines)
        return report

    # ---- the report (the controller under xdist) ---------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key != _KEY:
                continue
            for b in value["blocks"]:
                self.blocks.append({**b, "test": report.nodeid})
            for sp in value["spots"]:
                k = (sp["file"], sp["line"])
                cur = self.spots.get(k)
                if cur is None:
                    self.spots[k] = dict(sp)
                else:
                    cur["count"] += sp["count"]
                    cur["total_ns"] += sp["total_ns"]
                    cur["max_ns"] = max(cur["max_ns"], sp["max_ns"])

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report_n is None:
            return
        from . import summary as summ
        tr = terminalreporter
        n = self.report_n
        tr.write_sep("=", f"loopscope: longest {n} blocks of the event loop")
        blocks = sorted(self.blocks, key=lambda b: -b["d_ns"])[:n]
        for b in blocks:
            where = f"{summ.where(b['file'], b['line'])} in {b['func']}" if b["file"] else "(no stack)"
            tr.write_line(f"{summ.ms(b['d_ns']):>10}  {where}  [{b['test']}]")
            if b.get("src"):
                tr.write_line(f"{'':12}{b['src']}")
        if not blocks:
            tr.write_line("(none past the blocking threshold)")
        tr.write_sep("=", f"loopscope: slowest {n} await points (total time waiting)")
        spots = sorted(self.spots.values(), key=lambda s: -s["total_ns"])[:n]
        for sp in spots:
            tr.write_line(f"{summ.ms(sp['total_ns']):>10}  {sp['count']:>7,}x  max {summ.ms(sp['max_ns']):>9}  "
                          f"{summ.where(sp['file'], sp['line'])} in {sp['func']}: {sp['what']}")
        if not spots:
            tr.write_line("(no awaits recorded)")


_SUMMARY = pytest.StashKey[Any]()


def pytest_configure(config: pytest.Config) -> None:
    on = (config.getoption("--loopscope") or config.getoption("--loopscope-fail-on-block") is not None
          or config.getoption("--loopscope-report"))
    if not on:
        return
    plugin = _Plugin(config)
    config.pluginmanager.register(plugin, "loopscope-session-plugin")
    # a controller of xdist runs no tests: only the workers (and a plain run) install
    if not _xdist_controller(config):
        plugin.start()


def _xdist_controller(config: pytest.Config) -> bool:
    try:
        return bool(config.getoption("numprocesses", None)) and not hasattr(config, "workerinput")
    except ValueError:
        return False


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin("loopscope-session-plugin")
    if plugin is not None:
        plugin.stop()
