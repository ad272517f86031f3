# test_batching.py — the sender coalesces small sessions into multi-batch POSTs (docs/api.md
# "Several batches in one body"): a burst of sessions reaches the real server in far fewer POSTs
# than sessions with every event stored; batches_per_post=1 posts each batch alone; a server
# from before that shape (played by fault_proxy.py's v1only mode in front of the real server)
# refuses it once, and the sender then posts every batch alone, losing nothing; each form beyond
# plain JSON (a strings table, binary record bodies) is used only once the server says it takes it,
# stores the same sessions, and falls back when an older server answers in its place.
from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest

import loopscope
from loopscope import settings

from lstest import Server
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
                                             "split_posts", "strings_posts", "strings_refused", "records_posts",
                                             "records_refused")}


def stored_text(server, sid: str) -> tuple:
    """What a session's tasks and awaits say in words, in order: (coro, name) of each task and
    (what, file, line, func) of each await."""
    tasks = server.get(f"/api/v1/sessions/{sid}/tasks")["tasks"]
    awaits = server.get(f"/api/v1/sessions/{sid}/awaits?min_ms=0&sort=t&limit=1000")["awaits"]
    return (sorted((t["coro"], t["name"].startswith("Task-")) for t in tasks),
            sorted((a["what"], a["file"], a["line"], a["func"]) for a in awaits))


def test_each_form_the_server_takes_stores_the_same_sessions(server):
    """What the server's answers say it takes (X-Loopscope-Ingest) decides the form of every later
    POST: to the real server (strings, records) the binary record form; through a proxy that says
    only "strings" (a server from before the binary form), JSON naming table strings by index;
    through one that says nothing, plain JSON. What is stored reads exactly the same each way."""
    n = 40
    runs = {}
    for form, proxy_kw in (("records", None), ("strings", {"strings_then_old": 10**6}), ("plain", {})):
        proxy = FaultProxy(server.url, **proxy_kw) if proxy_kw is not None else None
        try:
            runs[form] = burst_twice(server, proxy.url if proxy else server.url, n)
        finally:
            if proxy:
                proxy.close()
        ids, st = runs[form]
        assert st["batches_failed"] == 0 and st["dropped"] == 0, (form, st)
        assert st["strings_refused"] == 0 and st["records_refused"] == 0, (form, st)
        assert_all_stored(server, ids)
    assert runs["records"][1]["records_posts"] >= 1, runs["records"][1]
    assert runs["strings"][1]["strings_posts"] >= 1 and runs["strings"][1]["records_posts"] == 0, runs["strings"][1]
    assert runs["plain"][1]["strings_posts"] == 0 and runs["plain"][1]["records_posts"] == 0, runs["plain"][1]
    for a, b, c in zip(runs["records"][0], runs["strings"][0], runs["plain"][0]):
        ta, tb, tc = stored_text(server, a), stored_text(server, b), stored_text(server, c)
        assert ta == tb == tc, (a, b, c)
        assert any(f.endswith("test_batching.py") and fn == "burst" for _, f, _, fn in ta[1]), ta


@pytest.mark.parametrize("said", ["strings", "records"])
def test_an_older_server_put_in_its_place_gets_plainer_bodies(server, said):
    """The server said it takes the table (or the binary record form too), then an older one
    answers in its place (the proxy, after its first answer). The first body in the binary form is
    refused (415) and the first written with tables (400): each time its batches go back and are
    sent again in the plainer form, JSON, then plain JSON. Nothing lost or dropped."""
    proxy = FaultProxy(server.url, **{f"{said}_then_old": 1})
    try:
        n = 30
        before = server_counters(server)
        ids, st = burst_twice(server, proxy.url, n)
        after = server_counters(server)
    finally:
        proxy.close()
    assert st["strings_refused"] == 1 and st["strings_posts"] == 0, st
    assert st["records_refused"] == (said == "records") and st["records_posts"] == 0, st
    assert st["batches_failed"] == 0 and st["dropped"] == 0, st
    assert after["loopscope_ingest_bodies_total"] - before["loopscope_ingest_bodies_total"] == st["posts_sent"], st
    assert after["loopscope_events_total"] - before["loopscope_events_total"] == st["events"], st
    assert_all_stored(server, ids)


def stored(server, sid: str) -> bool:
    """Whether the server holds session sid, ended (404 or not yet ended: False)."""
    try:
        return bool(server.get(f"/api/v1/sessions/{sid}")["ended"])
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise


async def poison_in_traffic(server, poison: str) -> tuple[str, bool, list[str]]:
    """A session named poison closes together with five others, then sessions keep closing three
    at a time (a web app's traffic) until the server holds the poisoned one, for 5 s at most: its
    id, whether it arrived while the traffic went on, and every session's id."""
    ids: list[str] = []

    async def one(name: str) -> str:
        async with loopscope.session(name) as s:
            await asyncio.sleep(0.005)
        ids.append(s.id)
        return s.id

    first = await asyncio.gather(*(one(poison if i == 0 else f"GET /together/{i}") for i in range(6)))
    loop = asyncio.get_running_loop()
    deadline, k = loop.time() + 5, 0
    while loop.time() < deadline:
        await asyncio.gather(*(one(f"GET /more/{k}/{j}") for j in range(3)))
        k += 1
        if k % 5 == 0 and await asyncio.to_thread(stored, server, first[0]):
            return first[0], True, ids
    return first[0], False, ids


def test_a_batch_refused_alone_in_the_binary_form_goes_next_as_json(server):
    """A server that takes the binary form refuses a multi-batch binary body as too large (413), so
    the sender posts each batch alone, and refuses one of them (400, as if bad). The batches of that
    group not yet posted wait, and the next POST carries them all as JSON, which gets through: the
    refused one arrives while the app's traffic goes on. (Before, the others went on in binary,
    their 2xx turned the binary form back on, and the refused batch went out in binary again with
    the next sessions, refused again, for as long as sessions kept closing.)"""
    proxy = FaultProxy(server.url, records_split="POISON-7f3a")
    try:
        loopscope.install(server=proxy.url)
        try:
            asyncio.run(burst(2))  # the first answer says strings, records
            assert loopscope.flush(30), loopscope.stats()
            poisoned, in_traffic, ids = asyncio.run(poison_in_traffic(server, "POISON-7f3a"))
            delivered = loopscope.flush(30)
            st = loopscope.stats()
        finally:
            loopscope.uninstall(timeout=10)
    finally:
        proxy.close()
    assert delivered and in_traffic, (poisoned, st)
    # split_posts: the poisoned batch went in a body with others first, as the test means it to
    assert st["records_refused"] >= 1 and st["split_posts"] >= 1, st
    assert st["batches_failed"] == 0 and st["dropped"] == 0, st
    for sid in ids:
        assert stored(server, sid), sid


def test_a_batch_too_large_alone_goes_again_in_smaller_batches(tmp_path):
    """A server started with a --max-body below one session's batch refuses that batch alone (413).
    The sender does not drop it: it keeps its POSTs to half the refused batch from then on and
    sends the same events again in smaller batches, until they fit. Every task arrives, nothing is
    counted dropped, and the stats say what happened (shrunk_posts, post_cap)."""
    srv = Server(tmp_path / "small-body.db", args=["--max-body", "16K"]).start()
    try:
        async def wide() -> str:
            async with loopscope.session("GET /wide") as s:
                await asyncio.gather(*(asyncio.sleep(0) for _ in range(900)))
            return s.id

        loopscope.install(server=srv.url)
        try:
            sid = asyncio.run(wide())
            assert loopscope.flush(60), loopscope.stats()
            st = loopscope.stats()
        finally:
            loopscope.uninstall(timeout=10)
        # 900 tasks (below max_tasks) take ~40 KiB even in the binary form: the first POSTs were refused
        assert st["shrunk_posts"] >= 1 and 0 < st["post_cap"] <= 16 * 1024, st
        assert st["dropped"] == 0 and st["batches_failed"] == 0, st
        summary = srv.get(f"/api/v1/sessions/{sid}")
        assert summary["ended"] and summary["dropped"] == 0, summary
        assert summary["tasks"] == 901, summary  # the session's root and the 900 gathered
        assert len(srv.get(f"/api/v1/sessions/{sid}/tasks?limit=5000")["tasks"]) == 901
    finally:
        srv.stop()


def test_a_batch_that_cannot_get_small_enough_is_lost_alone_and_the_sender_goes_on(tmp_path):
    """With a --max-body of 2 KiB, one event (a task's 50,000-character exception text, cut by the
    collector to more than that) cannot fit any POST. Halving ends: the batch holding it is lost,
    counted in dropped and batches_failed, and every other task of the session arrives."""
    srv = Server(tmp_path / "tiny-body.db", args=["--max-body", "2K"]).start()
    try:
        async def with_a_huge_error() -> str:
            async def boom():
                raise ValueError("y" * 50000)

            async with loopscope.session("GET /huge-error") as s:
                await asyncio.gather(boom(), *(asyncio.sleep(0) for _ in range(200)), return_exceptions=True)
            return s.id

        loopscope.install(server=srv.url)
        try:
            sid = asyncio.run(with_a_huge_error())
            assert not loopscope.flush(60)  # ends, and says a batch was lost
            st = loopscope.stats()
        finally:
            loopscope.uninstall(timeout=10)
        assert st["shrunk_posts"] >= 1 and st["batches_failed"] >= 1, st
        assert 1 <= st["dropped"] <= 20, st
        summary = srv.get(f"/api/v1/sessions/{sid}")
        assert summary["ended"] and summary["dropped"] == st["dropped"], summary
        assert summary["tasks"] >= 190, summary
    finally:
        srv.stop()
