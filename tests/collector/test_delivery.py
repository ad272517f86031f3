# test_delivery.py — shipping events when the server is down, slow or failing: the app's own
# timings do not change, memory stays within the cap, drops are counted and reach the server
# once it is back, retries reuse the batch id (nothing stored twice); fork; the token.
# "Slow" and "answering 500/503" cannot be made to happen with the real server, so a small
# fault-injecting HTTP proxy in front of it plays those parts (FaultProxy below).
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

import loopscope

from conftest import Server, by_coro, free_port


class FaultProxy:
    """fault_proxy.py in its own process (see there), in front of the real server."""

    def __init__(self, target: str, fail_status: int = 0, fail_count: int = 0, delay: float = 0.0,
                 v1only: bool = False, strings_then_old: int = 0, records_then_old: int = 0,
                 records_split: str = ""):
        script = os.path.join(os.path.dirname(__file__), "fault_proxy.py")
        mode = (["v1only"] if v1only else [f"strings-then-old:{strings_then_old}"] if strings_then_old
                else [f"records-then-old:{records_then_old}"] if records_then_old
                else [f"records-split:{records_split}"] if records_split else [])
        self.proc = subprocess.Popen([sys.executable, script, target, str(fail_status), str(fail_count), str(delay)]
                                     + mode, stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


async def timed_app(n_tasks: int = 200) -> list[float]:
    """An app that measures its own sleeps: loopscope must not change them."""
    async def worker():
        for _ in range(3):
            await asyncio.sleep(0)

    took = []
    for _ in range(5):
        t0 = time.perf_counter()
        await asyncio.sleep(0.02)
        took.append(time.perf_counter() - t0)
        await asyncio.gather(*(worker() for _ in range(n_tasks // 5)))
    return took


def baseline(n_tasks: int) -> list[float]:
    """timed_app's sleeps without loopscope, in the same run: what this machine does right now."""
    assert not loopscope.installed()
    return asyncio.run(timed_app(n_tasks))


def assert_timings_unchanged(took: list[float], before: list[float], n_tasks: int) -> None:
    """Called once loopscope is uninstalled: measures the baseline a second time, so the app's
    sleeps under loopscope are compared with the machine as it was just before *and* just after
    them (the load of a shared 2-core machine moves within seconds: one CI run saw a median of
    48.6 ms under loopscope against 20.7 ms measured before it, with a CPU hog beside the suite)."""
    after = baseline(n_tasks)
    # No sleep ends early, and the median sleep is within 50 ms of the slower of the two medians
    # without loopscope (the median, so one scheduling hiccup does not decide). A sender that held
    # the GIL or the loop while it waited on a down, failing or slow (0.5 s) server would stretch
    # most sleeps by far more: by the proxy's 500 ms, or by a retry's backoff (100 ms and up).
    # 50, not 20: fc54 (the whole test command beside a CPU hog, load ~8) saw the sleeps under
    # loopscope at 20, 21, 52, 93 and 192 ms against a median of 29.4 ms just after, while the
    # sender waited out its backoff with the store's lock released (lssender.c, post). This file
    # alone beside the same hog: 20 of 20 runs passed (its timed tests 10 of 10 with b8d464d's
    # collector too): the load of the other suites, not loopscope, stretched those sleeps.
    took, before, after = sorted(took), sorted(before), sorted(after)
    base_median = max(before[len(before) // 2], after[len(after) // 2])
    if hasattr(sys, "gettotalrefcount"):
        # A debug interpreter (the 3.14d lane, there for its assertions and refcounts) runs the
        # gathers several times slower, so on a loaded machine the sender's own core time shows
        # in the sleeps (a fresh-clone CI run: medians 33.6 ms vs 20.4 ms). Only "no sleep ends
        # early" is asserted there; the release interpreters assert the median as well.
        assert took[0] >= 0.0195, (took, before, after)
        return
    assert took[0] >= 0.0195 and took[len(took) // 2] <= base_median + 0.050, (took, before, after)


def test_server_down_then_back(tmp_path):
    port = free_port()
    cap = 65536
    base = baseline(2000)
    loopscope.install(server=f"http://127.0.0.1:{port}", buffer_bytes=cap, max_tasks=100000)
    try:
        with loopscope.session("down") as s:
            took = asyncio.run(timed_app(2000))
        st = loopscope.stats()
        assert st["bytes_used"] <= cap, st
        assert st["dropped"] > 0, st
        assert loopscope.flush(0.3) is False          # nothing can be delivered yet
        srv = Server(tmp_path / "late.db", port=port).start()
        try:
            assert loopscope.flush(60), loopscope.stats()
            summary = srv.get(f"/api/v1/sessions/{s.id}")
            assert summary["dropped"] >= st["dropped"] > 0
            assert summary["name"] == "down"
        finally:
            loopscope.uninstall(timeout=2)
            srv.stop()
    finally:
        if loopscope.installed():
            loopscope.uninstall(timeout=0)
    assert_timings_unchanged(took, base, 2000)


@pytest.mark.parametrize("status", [500, 503])
def test_failing_server_retries_with_the_same_batch(server, status):
    base = baseline(50)
    proxy = FaultProxy(server.url, fail_status=status, fail_count=2)
    loopscope.install(server=proxy.url)
    try:
        with loopscope.session(f"fail-{status}") as s:
            took = asyncio.run(timed_app(50))
        assert loopscope.flush(60), loopscope.stats()
        assert loopscope.stats()["retries"] >= 2
    finally:
        loopscope.uninstall(timeout=2)
        proxy.close()
    assert_timings_unchanged(took, base, 50)
    tasks = server.get(f"/api/v1/sessions/{s.id}/tasks")["tasks"]
    assert len(tasks) == 51  # the root and 50 workers, each stored once


def test_refused_batch_is_counted_and_reported(server):
    """A batch the server refuses for good (400) is lost: every event in it counts as dropped,
    and the count reaches the server as a drop event with the session's next batch."""
    proxy = FaultProxy(server.url, fail_status=400, fail_count=1)
    loopscope.install(server=proxy.url)
    try:
        with loopscope.session("refused") as s:
            asyncio.run(timed_app(50))
        assert loopscope.flush(15) is False  # something was lost, and flush says so
        st = loopscope.stats()
        assert st["batches_failed"] == 1 and st["retries"] == 0, st
        assert 0 < st["dropped"] <= st["events"], st
        assert loopscope.flush(60) is True, loopscope.stats()  # the drop event itself arrived
    finally:
        loopscope.uninstall(timeout=2)
        proxy.close()
    assert server.get(f"/api/v1/sessions/{s.id}")["dropped"] == st["dropped"]


def test_slow_server_does_not_slow_the_app(server):
    base = baseline(50)
    proxy = FaultProxy(server.url, delay=0.5)
    loopscope.install(server=proxy.url, flush_interval_ms=10)
    try:
        with loopscope.session("slow") as s:
            took = asyncio.run(timed_app(50))
        assert loopscope.flush(60)
    finally:
        loopscope.uninstall(timeout=2)
        proxy.close()
    assert_timings_unchanged(took, base, 50)
    assert len(server.get(f"/api/v1/sessions/{s.id}/tasks")["tasks"]) == 51


FORKING_APP = """
import asyncio, os, sys
import loopscope

async def before_fork():
    await asyncio.sleep(0.005)

async def after_fork():
    await asyncio.gather(asyncio.sleep(0.005))

async def child_main():
    await asyncio.gather(*(asyncio.sleep(0.005) for _ in range(3)))

loopscope.install(server=sys.argv[1])
with loopscope.session("parent") as s:
    asyncio.run(before_fork())
    pid = os.fork()
    if pid == 0:  # the child records its own session and exits normally: atexit flushes it
        with loopscope.session("child") as cs:
            asyncio.run(child_main())
        print("child", cs.id, flush=True)
        sys.exit(0)
    asyncio.run(after_fork())
_, status = os.waitpid(pid, 0)
print("parent", s.id, os.waitstatus_to_exitcode(status), flush=True)
"""


def test_fork_child_gets_a_working_collector(server, tmp_path):
    script = tmp_path / "forking_app.py"
    script.write_text(FORKING_APP)
    out = subprocess.run([sys.executable, str(script), server.url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids = dict(line.split()[:2] for line in out.stdout.splitlines())
    assert out.stdout.splitlines()[-1].endswith(" 0")  # the child exited 0
    parent = server.session(ids["parent"])
    child = server.session(ids["child"])
    assert sorted(t["coro"].rsplit(".", 1)[-1] for t in parent["tasks"]) == ["after_fork", "before_fork", "sleep"]
    assert all(t["state"] == "ok" for t in parent["tasks"])
    coros = sorted(t["coro"].rsplit(".", 1)[-1] for t in child["tasks"])
    assert coros == ["child_main", "sleep", "sleep", "sleep"]
    assert child["summary"]["pid"] != parent["summary"]["pid"]
    assert child["summary"]["ended"] and parent["summary"]["ended"]


def test_token_is_sent(tmp_path):
    srv = Server(tmp_path / "tok.db", token="t0ken").start()
    try:
        loopscope.install(server=srv.url, token="t0ken")
        with loopscope.session("tok") as s:
            asyncio.run(asyncio.sleep(0.001))
        assert loopscope.flush(60)
        loopscope.uninstall()
        assert srv.get(f"/api/v1/sessions/{s.id}")["name"] == "tok"
        loopscope.install(server=srv.url, token="wrong")
        with loopscope.session("bad"):
            asyncio.run(asyncio.sleep(0.001))
        assert loopscope.flush(2) is False
        assert loopscope.stats()["last_status"] == 401
    finally:
        if loopscope.installed():
            loopscope.uninstall(timeout=0)
        srv.stop()
