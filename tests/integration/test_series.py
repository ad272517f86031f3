"""test_series.py — the summary's figures and the concurrency series pre-aggregated once a
session has ended (schema session_stats, conc_mip): the stored answers equal what the rows give,
a batch arriving after the end makes them stale and they follow it, and /concurrency?px= of a
large ended session, read from the mipmap, keeps the series' envelope."""
import random

from batches import batch

META = {"name": "series", "started_unix_ns": "1764089000123456789"}


def tasks_events(rng, first, n, span):
    evs = []
    for i in range(first, first + n):
        t = rng.randrange(0, span)
        evs.append({"k": "task", "id": i, "parent": 0, "t": t})
        evs.append({"k": "done", "id": i, "t": t + rng.randrange(1, span // 20), "state": "ok"})
    return evs


def sweep(evs, end):
    """(max alive, [(t, n)]) of the tasks in evs, ends before starts at equal t."""
    created = {e["id"]: e["t"] for e in evs if e["k"] == "task"}
    ended = {e["id"]: e["t"] for e in evs if e["k"] == "done"}
    points = sorted([(t, 1) for t in created.values()] + [(ended.get(i, end), -1) for i in created],
                    key=lambda p: (p[0], p[1]))
    n = best = 0
    for _, d in points:
        n += d
        best = max(best, n)
    return best


def test_summary_is_stored_and_follows_late_batches(server):
    rng = random.Random(3)
    evs = tasks_events(rng, 1, 300, 1_000_000)
    lag = [{"k": "lag", "t": 1000 * i, "d": 1000 * (i % 17)} for i in range(1, 200)]
    assert server.ingest(batch("s-ser", "b1", evs + lag + [{"k": "end", "t": 2_000_000}], META)).status == 202
    first = server.get_json("/api/v1/sessions/s-ser")
    assert first["tasks"] == 300 and first["max_concurrency"] == sweep(evs, 2_000_000)
    assert first["lag"]["samples"] == 199 and first["lag"]["max_ms"] == 0.016
    again = server.get_json("/api/v1/sessions/s-ser")
    assert again == first  # now read from session_stats
    listed = [s for s in server.get_json("/api/v1/sessions")["sessions"] if s["id"] == "s-ser"]
    assert listed == [first]
    # a batch after the end: more tasks, all alive at once, and a longer lag sample
    late = [{"k": "task", "id": 1000 + i, "parent": 0, "t": 10} for i in range(400)]
    assert server.ingest(batch("s-ser", "b2", late + [{"k": "lag", "t": 5, "d": 9_000_000}])).status == 202
    after = server.get_json("/api/v1/sessions/s-ser")
    assert after["tasks"] == 700 and after["max_concurrency"] == sweep(evs + late, 2_000_000)
    assert after["lag"]["samples"] == 200 and after["lag"]["max_ms"] == 9.0


def test_concurrency_from_the_mipmap(server):
    rng = random.Random(5)
    span = 50_000_000
    evs = tasks_events(rng, 1, 6000, span)  # 12,000 change points: the mipmap is stored
    assert server.ingest(batch("s-mip", "b1", evs + [{"k": "end", "t": span + span // 10}], META)).status == 202
    full = server.get_json("/api/v1/sessions/s-mip/concurrency")
    assert len(full["series"]) > 8192
    for px in (3000, 500, 50, 1):
        env = server.get_json(f"/api/v1/sessions/s-mip/concurrency?px={px}")
        pts = env["series"]
        assert env["max"] == full["max"]
        assert len(pts) <= 3 * max(16, 2 * px) + 2, (px, len(pts))
        assert max(p["n"] for p in pts) == full["max"]
        assert min(p["n"] for p in pts) == min(p["n"] for p in full["series"])
        assert [p["t"] for p in pts] == sorted({p["t"] for p in pts})
        assert pts[-1]["t"] == full["series"][-1]["t"] and pts[-1]["n"] == full["series"][-1]["n"]
    # a running session (no end yet) is reduced from its rows: the same envelope rules
    assert server.ingest(batch("s-run", "b1", evs, META)).status == 202
    run = server.get_json("/api/v1/sessions/s-run/concurrency?px=100")
    run_full = server.get_json("/api/v1/sessions/s-run/concurrency")
    assert len(run["series"]) <= 2 * 100 + 1 < len(run_full["series"])
    assert run["max"] == run_full["max"] == max(p["n"] for p in run["series"])


def stored_stats(server, sid_name):
    """The session_stats row of a session as another process sees the database (or None)."""
    import sqlite3
    db = sqlite3.connect(f"file:{server.db}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute("SELECT t.n_events, t.tasks, t.max_concurrency, t.conc_levels FROM session_stats t"
                          " JOIN sessions s ON s.sid = t.sid WHERE s.id = ?", (sid_name,)).fetchone()
    finally:
        db.close()


def test_large_session_figures_are_ready_when_its_end_is_answered(server):
    """Issue 14: the first summary of a large session right after its end must not compute its
    figures (0.8 s at 1M tasks): the end's 202 comes once they are stored (writer.c's figures
    thread, for sessions of 10,000 events or more). A small session's are left to its first read."""
    rng = random.Random(11)
    span = 200_000_000
    n = 26_000  # 52,000 task and done events
    evs = tasks_events(rng, 1, n, span)
    for k in range(0, len(evs), 13_000):
        assert server.ingest(batch("s-big", f"b{k}", evs[k:k + 13_000], META if k == 0 else None)).status == 202
    assert stored_stats(server, "s-big") is None  # still recording: nothing stored
    assert server.ingest(batch("s-big", "end", [{"k": "end", "t": span + span // 10}])).status == 202
    row = stored_stats(server, "s-big")
    assert row is not None, "the figures were not stored when the end was answered"
    assert row[:3] == (len(evs) + 1, n, sweep(evs, span + span // 10)) and row[3] > 0  # with its mipmap
    first = server.get_json("/api/v1/sessions/s-big")
    assert first["tasks"] == n and first["max_concurrency"] == row[2]
    assert "figures of ended session s-big ready" in server.read_log()
    # a large session in one batch, its end in it: the batch made the session, and its figures are
    # ready all the same (the writer skips the look at the stored session only for small ones)
    one = tasks_events(rng, 1, 5_001, span)  # 10,002 events and the end
    assert server.ingest(batch("s-one", "b1", one + [{"k": "end", "t": span}], META)).status == 202
    row = stored_stats(server, "s-one")
    assert row is not None and row[:2] == (len(one) + 1, 5_001)
    # a small session: answered at once, its figures computed and stored by its first read
    small = tasks_events(rng, 1, 50, span)
    assert server.ingest(batch("s-small", "b1", small + [{"k": "end", "t": span}], META)).status == 202
    assert stored_stats(server, "s-small") is None
    assert server.get_json("/api/v1/sessions/s-small")["tasks"] == 50
    assert stored_stats(server, "s-small") is not None
