"""test_table_pages.py — the tables page and sort on the server: /tasks, /awaits and /blocks take
sort, order, offset and limit, answer the total, validate each parameter with a 400 naming it,
and their pages put together are the whole table in the asked order."""
import pytest

from batches import batch

META = {"name": "GET /tables", "service": "shop", "pid": 1, "host": "dev", "python": "3.12",
        "started_unix_ns": "1764089000000000000"}
N = 57  # tasks: not a multiple of any page size used below


def events():
    ev = []
    for i in range(1, N + 1):
        created = (i * 7919) % 1000 * 1000  # an order unlike the ids'
        ev.append({"k": "task", "id": i, "parent": 0 if i == 1 else 1, "name": f"T{i}", "coro": "m.f", "t": created})
        ev.append({"k": "step", "id": i, "t": created + 10, "d": (i * 31) % 17 * 100 + 1})
        ev.append({"k": "await", "id": i, "t": created + 20, "d": 10_000_000 + (i % 5) * 1_000_000,
                   "what": "sleep", "file": "m.py", "line": i % 3 + 1, "func": "f"})
        if i % 4 == 0:
            ev.append({"k": "block", "id": i, "t": created + 30, "d": 100_000_000 + i,
                       "stack": [{"file": "m.py", "line": 9, "func": "f", "src": "time.sleep(1)"}]})
        if i % 2 == 0:
            ev.append({"k": "done", "id": i, "t": created + 5000 + i, "state": "ok"})
    ev.append({"k": "end", "t": 2_000_000})
    return ev


@pytest.fixture
def seeded(server):
    assert server.ingest(batch("s-tab", "b1", events(), META)).status == 202
    return server


def pages(server, view, key, size, **params):
    """Every page of `view` (sort params in `params`) in turn; the rows and the totals seen."""
    rows, totals, offset = [], set(), 0
    while True:
        q = "&".join(f"{k}={v}" for k, v in dict(params, offset=offset, limit=size).items())
        r = server.get_json(f"/api/v1/sessions/s-tab/{view}?{q}")
        totals.add(r["total"])
        rows += r[key]
        assert len(r[key]) <= size
        if len(r[key]) < size:
            return rows, totals
        offset += size


def check_order(rows, key, desc, tie):
    for a, b in zip(rows, rows[1:]):
        ka, kb = key(a), key(b)
        if ka == kb:
            assert tie(a) <= tie(b)
        else:
            assert (ka > kb) if desc else (ka < kb), (a, b)


@pytest.mark.parametrize("sort,desc", [("created", False), ("busy_ns", True), ("wait_ns", False),
                                       ("duration", True), ("id", True)])
def test_tasks_pages_cover_the_table_in_order(seeded, sort, desc):
    full = seeded.get_json("/api/v1/sessions/s-tab/tasks")["tasks"]
    assert "total" not in seeded.get_json("/api/v1/sessions/s-tab/tasks")  # unchanged without paging
    rows, totals = pages(seeded, "tasks", "tasks", 10, sort=sort, order="desc" if desc else "asc")
    assert totals == {N}
    assert sorted(t["id"] for t in rows) == sorted(t["id"] for t in full)  # no row twice, none lost
    end = 2_000_000
    key = {"duration": lambda t: (t["ended"] if t["ended"] is not None else end) - t["created"]}.get(
        sort, lambda t: t[sort])
    check_order(rows, key, desc, lambda t: t["id"])
    # the page's rows are the full rows (same shape as the tree answer)
    by_id = {t["id"]: t for t in full}
    assert all(by_id[t["id"]] == t for t in rows)


def test_tasks_default_page_and_window(seeded):
    r = seeded.get_json("/api/v1/sessions/s-tab/tasks?limit=5")
    assert r["total"] == N and len(r["tasks"]) == 5
    created = [t["created"] for t in r["tasks"]]
    assert created == sorted(created)  # default: created, ascending
    r = seeded.get_json(f"/api/v1/sessions/s-tab/tasks?offset={N - 2}&limit=5")
    assert len(r["tasks"]) == 2
    r = seeded.get_json("/api/v1/sessions/s-tab/tasks?offset=100000")
    assert r["tasks"] == [] and r["total"] == N


def test_tasks_page_at_a_task(seeded):
    rows, _ = pages(seeded, "tasks", "tasks", 10, sort="busy_ns", order="desc")
    for pos in (0, 9, 10, 33, N - 1):
        r = seeded.get_json(f"/api/v1/sessions/s-tab/tasks?sort=busy_ns&order=desc&limit=10&at={rows[pos]['id']}")
        assert r["offset"] == pos // 10 * 10
        assert [t["id"] for t in r["tasks"]] == [t["id"] for t in rows[r["offset"]:r["offset"] + 10]]
    r = seeded.get_json("/api/v1/sessions/s-tab/tasks?limit=10&offset=20&at=99999")  # not a task: offset's
    assert r["offset"] == 20
    assert seeded.get("/api/v1/sessions/s-tab/tasks?at=0").status == 400


def test_awaits_sorted_and_paged(seeded):
    default = seeded.get_json("/api/v1/sessions/s-tab/awaits?limit=7")
    assert default["total"] == N and len(default["awaits"]) == 7
    check_order(default["awaits"], lambda a: a["d"], True, lambda a: a["t"])  # longest first, as before
    rows, totals = pages(seeded, "awaits", "awaits", 8, sort="t", order="asc")
    assert totals == {N} and len(rows) == N
    check_order(rows, lambda a: a["t"], False, lambda a: a["task"])
    rows, _ = pages(seeded, "awaits", "awaits", 20, sort="task", order="desc")
    assert [a["task"] for a in rows] == list(range(N, 0, -1))


def test_blocks_sorted_and_paged(seeded):
    full = seeded.get_json("/api/v1/sessions/s-tab/blocks")
    assert "total" not in full
    nb = len(full["blocks"])
    assert nb == N // 4
    rows, totals = pages(seeded, "blocks", "blocks", 4, sort="d", order="desc")
    assert totals == {nb} and len(rows) == nb
    check_order(rows, lambda b: b["d"], True, lambda b: b["t"])
    assert rows[0]["stack"][0]["src"] == "time.sleep(1)"
    r = seeded.get_json("/api/v1/sessions/s-tab/blocks?sort=task&limit=3")
    assert [b["task"] for b in r["blocks"]] == [4, 8, 12]


@pytest.mark.parametrize("view,query,detail", [
    ("tasks", "sort=name", "sort: expected one of created, id, busy_ns, wait_ns, duration"),
    ("tasks", "order=up", "order: expected asc or desc"),
    ("tasks", "offset=-1", "offset: expected an integer in [0, 2147483647]"),
    ("tasks", "offset=x", "offset: expected an integer in [0, 2147483647]"),
    ("tasks", "limit=0", "limit: expected an integer in [1, 10000]"),
    ("tasks", "limit=10001", "limit: expected an integer in [1, 10000]"),
    ("awaits", "sort=file", "sort: expected one of d, t, task"),
    ("awaits", "limit=100001", "limit: expected an integer in [1, 100000]"),
    ("blocks", "sort=stack", "sort: expected one of t, d, task"),
    ("blocks", "order=", "order: expected asc or desc"),
])
def test_bad_parameters_are_named(seeded, view, query, detail):
    r = seeded.get(f"/api/v1/sessions/s-tab/{view}?{query}")
    assert r.status == 400
    assert r.json() == {"error": "invalid", "detail": detail}
