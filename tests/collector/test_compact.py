# test_compact.py — the store's compact records (collector/src/lsencode.c, lsintern.c): while the
# server is away, a task-heavy program's events fit in a buffer the old fixed 48-byte headers and
# copied strings overflowed five times over, and what arrives once the server is back is exactly
# what was recorded: strings from the table and inline ones (too long for it), default task names
# stored as their number and names that only look like one, times stored as differences.
from __future__ import annotations

import asyncio

import loopscope

from conftest import Server, by_coro, free_port

TASKS = 10_000


async def one(i: int) -> int:
    await asyncio.sleep(0)
    return i


async def many(n: int) -> int:
    total = 0
    for start in range(0, n, 500):
        total += sum(await asyncio.gather(*(one(i) for i in range(start, min(n, start + 500)))))
    return total


LONG_FILE = "/srv/" + "very_long_directory_name/" * 24 + "mod.py"  # > 512 bytes: never in the table
SRC = '''
import asyncio
async def café_wait():
    await asyncio.sleep(0.001)
'''


def test_task_heavy_program_fits_while_the_server_is_away(tmp_path, collector):
    port = free_port()
    cap = 1 << 20
    ns: dict = {}
    exec(compile(SRC, LONG_FILE, "exec"), ns)

    async def main() -> int:
        await asyncio.gather(asyncio.create_task(ns["café_wait"](), name="Task-007"),
                             asyncio.create_task(ns["café_wait"](), name="worker \u00e9"))
        return await many(TASKS)

    collector(server=f"http://127.0.0.1:{port}", buffer_bytes=cap, max_tasks=100_000)  # nobody there yet
    with loopscope.session("away") as s:
        assert asyncio.run(main()) == TASKS * (TASKS - 1) // 2
    st = loopscope.stats()
    # each task: its announcement, two steps, an await, its end: ~5 x 10 bytes, where the old
    # records took ~330 bytes a task (3.3 MB here, three times the cap)
    assert st["events"] >= 5 * TASKS, st
    assert st["dropped"] == 0, st
    assert st["bytes_used"] <= 24 * st["events"], st
    assert loopscope.flush(0.3) is False  # nothing could be delivered yet: it was all kept
    srv = Server(tmp_path / "late.db", port=port).start()
    try:
        assert loopscope.flush(60), loopscope.stats()
        data = srv.session(s.id)
        steps = srv.steps(s.id)  # a session this size exports as several JSON lines
    finally:
        srv.stop()

    assert data["summary"]["dropped"] == 0
    assert data["summary"]["tasks"] == TASKS + 3, data["summary"]  # + main and the two below
    ones = by_coro(data["tasks"], "one")
    assert len(ones) == TASKS
    names = sorted(int(t["name"].removeprefix("Task-")) for t in ones)
    assert names == list(range(names[0], names[0] + TASKS))  # default names, every one of them
    waits = by_coro(data["tasks"], "café_wait")
    assert sorted(t["name"] for t in waits) == ["Task-007", "worker \u00e9"]
    by_task = {}
    for a in data["awaits"]:
        by_task.setdefault(a["task"], []).append(a)
    for t in waits:
        (a,) = by_task[t["id"]]
        assert (a["file"], a["func"], a["line"]) == (LONG_FILE, "café_wait", 4), a
        # the 1 ms sleep, times come back from their differences: the await starts where the
        # step that armed the timer ends, and that step's start to the await's end covers the
        # timer (the await alone may be shorter: a step stalled after arming it ends late)
        armed = min(steps[t["id"]], key=lambda x: x["t"])
        assert armed["t"] + armed["d"] == a["t"] and a["d"] > 0, (armed, a)
        assert a["t"] + a["d"] - armed["t"] >= 1_000_000, (armed, a)
    for t in ones[:50] + ones[-50:]:
        (a,) = by_task[t["id"]]
        assert a["func"] == "one" and a["file"] == __file__, a
        assert t["created"] <= a["t"] <= t["ended"], (t, a)
