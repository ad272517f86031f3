# test_batching.py — the sender coalesces small sessions into multi-batch POSTs (docs/api.md
# "Several batches in one body"): a burst of sessions reaches the real server in far fewer POSTs
# than sessions with every event stored; batches_per_post=1 posts each batch alone; a server
# from before that shape (played by fault_proxy.py's v1only mode in front of the real server)
# refuses it once, and the sender then posts every batch alone, losing nothing.
from __future__ import annotations

import asyncio
import urllib.request

import pytest

import loopscope
from loopscope import settings

from test_delivery import FaultProxy


def server_counters(server) -> dict[str, float]:
    """The server's ingest counters from /metrics."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(("loopscope_batches_total", "loopscope_ingest_bodies_total", "loopscope_events_total")):
            name, value = line.split()
            out[name] = float(value)
    return out


async def burst(n: int) -> list[str]:
    """n small sessions one after another, as a web app's requests: a root task and three more."""
    async def leaf():
        await asyncio.sleep(0)

    ids = []
    for i in range(n):
        async with loopscope.session(f"GET /burst/{i}") as s:
            await asyncio.gather(leaf(), leaf(), leaf())
        ids.append(s.id)
    return ids


def run_burst(server, n: int, url: str | None = None, **settings_kw):
    """Installs the collector (posting to url, default the server's; settings_kw), runs a burst of
    n sessions, flushes; returns the session ids, the collector's stats delta and the server's
    counters delta."""
    before = server_counters(server)
    loopscope.install(server=url or server.url, **settings_kw)
    try:
        st0 = loopscope.stats()
        ids = asyncio.run(burst(n))
        assert loopscope.flush(60), loopscope.stats()
        st = loopscope.stats()
    finally:
        loopscope.uninstall(timeout=10)
    after = server_counters(server)
    delta = {k: st[k] - st0[k] for k in ("posts_sent", "batches_sent", "batches_failed", "dropped", "events",
                                         "split_posts")}
    delta["multi_refused"] = st["multi_refused"]
    return ids, delta, {k: after[k] - before.get(k, 0) for k in after}


def assert_all_stored(server, ids: list[str]) -> None:
    for sid in ids:
        summary = server.get(f"/api/v1/sessions/{sid}")
        assert summary["ended"] and summary["tasks"] == 4 and summary["dropped"] == 0, summary


def test_a_burst_of_sessions_takes_far_fewer_posts(server):
    n = 300
    ids, st, srv = run_burst(server, n)
    assert st["batches_sent"] >= n and st["batches_failed"] == 0 and st["dropped"] == 0, st
    # every POST carried many sessions: the sender wakes every 200 ms, and the burst is shorter
    # than a few of those even on a loaded machine
    assert 1 <= st["posts_sent"] <= n // 10, st
    assert st["split_posts"] == 0 and st["multi_refused"] == 0, st
    # the server stored what the sender says it sent: as many bodies as POSTs, every batch, every event
    assert srv["loopscope_ingest_bodies_total"] == st["posts_sent"], (srv, st)
    assert srv["loopscope_batches_total"] == st["batches_sent"], (srv, st)
    assert srv["loopscope_events_total"] == st["events"], (srv, st)
    assert_all_stored(server, ids)


def test_batches_per_post_1_posts_each_batch_alone(server):
    n = 40
    ids, st, srv = run_burst(server, n, batches_per_post=1)
    assert st["posts_sent"] == st["batches_sent"] >= n, st
    assert srv["loopscope_ingest_bodies_total"] == srv["loopscope_batches_total"] == st["batches_sent"], srv
    assert_all_stored(server, ids)


def test_an_older_server_gets_one_batch_per_post(server):
    """A server from before multi-batch bodies answers one 400 ("batch: missing"); the sender sends
    that body's batches one by one and every later batch alone: nothing is lost or dropped."""
    proxy = FaultProxy(server.url, v1only=True)
    try:
        n = 60
        ids, st, srv = run_burst(server, n, url=proxy.url)
    finally:
        proxy.close()
    assert st["multi_refused"] == 1 and st["split_posts"] == 1, st
    assert st["batches_failed"] == 0 and st["dropped"] == 0, st
    assert st["posts_sent"] == st["batches_sent"] >= n, st
    assert srv["loopscope_ingest_bodies_total"] == srv["loopscope_batches_total"] == st["batches_sent"], srv
    assert srv["loopscope_events_total"] == st["events"], (srv, st)
    assert_all_stored(server, ids)


@pytest.mark.parametrize("value", [0, 10001, "x"])
def test_batches_per_post_is_checked(value):
    with pytest.raises(ValueError, match="batches_per_post"):
        settings.load({"batches_per_post": value})
    assert settings.load({}, environ={"LOOPSCOPE_BATCHES_PER_POST": "7"}).batches_per_post == 7


def burst_twice(server, url: str, n: int) -> tuple[list[str], dict]:
    """Two bursts of n sessions, each flushed: the first POST goes before any answer has said what
    the server takes; the stats delta of both."""
    loopscope.install(server=url)
    try:
        st0 = loopscope.stats()
        ids = asyncio.run(burst(n))
        assert loopscope.flush(60), loopscope.stats()
        ids += asyncio.run(burst(n))
        assert loopscope.flush(60), loopscope.stats()
        st = loopscope.stats()
    finally:
        loopscope.uninstall(timeout=10)
    return ids, {k: st[k] - st0[k] for k in ("posts_sent", "batches_sent", "batches_failed", "dropped", "events",
                                             "split_posts", "strings_posts", "strings_refused")}


def stored_text(server, sid: str) -> tuple:
    """What a session's tasks and awaits say in words, in order: (coro, name) of each task and
    (what, file, line, func) of each await."""
    tasks = server.get(f"/api/v1/sessions/{sid}/tasks")["tasks"]
    awaits = server.get(f"/api/v1/sessions/{sid}/awaits?min_ms=0&sort=t&limit=1000")["awaits"]
    return (sorted((t["coro"], t["name"].startswith("Task-")) for t in tasks),
            sorted((a["what"], a["file"], a["line"], a["func"]) for a in awaits))


def test_a_server_that_takes_strings_gets_each_batchs_strings_once(server):
    """The server's answers say it takes a batch's strings table (X-Loopscope-Ingest: strings): after
    the first answer the sender names table strings by index, and what is stored reads exactly as
    the same program's sessions sent plain (through a proxy that hides the header)."""
    n = 40
    ids, st = burst_twice(server, server.url, n)
    assert st["strings_posts"] >= 1 and st["strings_refused"] == 0, st
    assert st["batches_failed"] == 0 and st["dropped"] == 0, st
    assert_all_stored(server, ids)
    proxy = FaultProxy(server.url)
    try:
        plain_ids, plain = burst_twice(server, proxy.url, n)
    finally:
        proxy.close()
    assert plain["strings_posts"] == 0 and plain["strings_refused"] == 0, plain
    assert_all_stored(server, plain_ids)
    for a, b in zip(ids, plain_ids):
        ta, tb = stored_text(server, a), stored_text(server, b)
        assert ta == tb, (a, b)
        assert any(f.endswith("test_batching.py") and fn == "burst" for _, f, _, fn in ta[1]), ta


def test_an_older_server_put_in_its_place_gets_plain_batches(server):
    """The server said it takes the table, then an older one answers in its place (the proxy, after
    its first answer): the first body written with tables is refused once (400), its batches go
    back and are sent again plain, and every later batch goes plain: nothing lost or dropped."""
    proxy = FaultProxy(server.url, strings_then_old=1)
    try:
        n = 30
        before = server_counters(server)
        ids, st = burst_twice(server, proxy.url, n)
        after = server_counters(server)
    finally:
        proxy.close()
    assert st["strings_refused"] == 1 and st["strings_posts"] == 0, st
    assert st["batches_failed"] == 0 and st["dropped"] == 0, st
    assert after["loopscope_ingest_bodies_total"] - before["loopscope_ingest_bodies_total"] == st["posts_sent"], st
    assert after["loopscope_events_total"] - before["loopscope_events_total"] == st["events"], st
    assert_all_stored(server, ids)
