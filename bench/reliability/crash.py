#!/usr/bin/env python3
"""crash.py — issue 11's crash figure: SIGKILL the server N times under load, same database.

Each round starts the real server on the database the previous round left (SQLite recovers its
WAL), lets --posters connections post batches (and --queriers query) for a random 2-5 s, then
SIGKILLs the server while requests are in flight. Only batches whose 202 reached the client
count as acknowledged; a request cut by the kill is unknown and sent again (same id) in the next
round. At the end the server is started once more and stopped cleanly, and the database must
hold every acknowledged batch and pass PRAGMA integrity_check.

    python3 bench/reliability/crash.py                 # 10 kills, 64 posters, 4 queriers

Exit status 0 when nothing acknowledged is lost and integrity is ok; 1 otherwise.
"""
import argparse
import asyncio
import collections
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_BINARY, Conn, Server, batch_body, check_db, file_size  # noqa: E402

ERRORS = (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError)


async def poster(port, idx, args, stop, state, acked, stats):
    conn = Conn(port)
    session = f"crash-{idx}"
    while not stop.is_set():
        seq = state[idx]
        bid = f"b{idx}-{seq}"
        try:
            status, hdrs, _ = await conn.request("POST", "/api/v1/ingest",
                                                 batch_body(session, bid, seq, args.events),
                                                 ["Content-Type: application/json"])
        except ERRORS:
            conn.close()
            stats["cut"] += 1
            await asyncio.sleep(0.05)
            continue
        stats[status] += 1
        if status in (200, 202):
            acked.add((session, bid))
            state[idx] = seq + 1
        elif status == 503:
            await asyncio.sleep(float(hdrs.get("retry-after", "1")))
    conn.close()


async def querier(port, idx, args, stop):
    conn = Conn(port)
    rnd = random.Random(idx)
    while not stop.is_set():
        try:
            await conn.request("GET", rnd.choice(["/api/v1/sessions?limit=100",
                                                  f"/api/v1/sessions/crash-{rnd.randrange(args.posters)}/timeline"]))
        except ERRORS:
            conn.close()
            await asyncio.sleep(0.05)
    conn.close()


async def round_(server, args, rnd, state, acked, stats):
    stop = asyncio.Event()
    tasks = [asyncio.create_task(poster(server.port, i, args, stop, state, acked, stats)) for i in range(args.posters)]
    tasks += [asyncio.create_task(querier(server.port, i, args, stop)) for i in range(args.queriers)]
    await asyncio.sleep(rnd.uniform(2, 5))
    server.kill()  # while requests are in flight
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=DEFAULT_BINARY)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--posters", type=int, default=64)
    ap.add_argument("--queriers", type=int, default=4)
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--dir")
    args = ap.parse_args()

    tmp = args.dir or tempfile.mkdtemp(prefix="ls-crash-")
    db = os.path.join(tmp, "crash.db")
    rnd = random.Random(args.seed)
    state = [0] * args.posters
    acked = set()
    print(f"db {db}; {args.kills} SIGKILLs, {args.posters} posters, {args.queriers} queriers, "
          f"{args.events} events/batch")
    for k in range(1, args.kills + 1):
        stats = collections.Counter()
        t0 = time.monotonic()
        server = Server(args.server, db).start()
        started = time.monotonic() - t0
        before = len(acked)
        asyncio.run(round_(server, args, rnd, state, acked, stats))
        print(f"kill {k:2d}: start {started * 1000:5.0f} ms, answers {dict(sorted(stats.items(), key=str))}, "
              f"acknowledged {len(acked) - before} (total {len(acked)}), db {file_size(db) / 1e6:.1f} MB, "
              f"wal {file_size(db + '-wal') / 1e6:.1f} MB", flush=True)
    server = Server(args.server, db).start()
    rc = server.stop()
    res = check_db(db, acked)
    print(f"final clean start/stop: exit status {rc}")
    print(f"acknowledged {res['acknowledged']}, stored {res['stored']}, acknowledged but missing "
          f"{res['lost_count']} {res['lost'] or ''}, stored but not acknowledged "
          f"{res['stored_not_acknowledged']} (cut by a kill before the 202 arrived)")
    print(f"integrity_check: {res['integrity']}")
    ok = res["lost_count"] == 0 and res["integrity"] == "ok" and rc == 0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
