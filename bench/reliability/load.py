#!/usr/bin/env python3
"""load.py — issue 11's load figure: N connections posting ingest batches for S seconds while
other connections query, against the real server with a fresh database.

Prints: statuses of every answer (the aim: no 5xx), ingest and query latency p50/p99/max, the
server's RSS and the database and WAL sizes every --sample seconds, and at the end — after a
clean SIGTERM — every batch id answered 202 on the client compared with the database
(acknowledged = stored) and PRAGMA integrity_check.

    python3 bench/reliability/load.py                       # 64 posters, 8 queriers, 60 s
    python3 bench/reliability/load.py --seconds 10 --posters 8   # a quick look

Exit status 0 when no 5xx, nothing acknowledged lost and integrity ok; 1 otherwise.
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
from common import DEFAULT_BINARY, Conn, Server, batch_body, check_db, file_size, pct  # noqa: E402


async def poster(port, idx, args, stop, acked, stats):
    conn = Conn(port)
    session = f"load-{idx}"
    seq = 0
    while not stop.is_set():
        bid = f"b{idx}-{seq}"
        body = batch_body(session, bid, seq, args.events)
        t0 = time.perf_counter()
        try:
            status, hdrs, _ = await conn.request("POST", "/api/v1/ingest", body,
                                                 ["Content-Type: application/json"])
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            conn.close()
            stats["ingest_conn_error"] += 1
            continue  # unknown outcome: not acknowledged; the same id is sent again
        stats["ingest_lat"].append(time.perf_counter() - t0)
        stats[f"ingest_{status}"] += 1
        if status in (200, 202):
            acked.add((session, bid))
            seq += 1
        elif status == 503:
            await asyncio.sleep(float(hdrs.get("retry-after", "1")))
        else:
            seq += 1  # a 4xx would be our bug; move on, it is counted
    conn.close()


async def querier(port, idx, args, stop, stats):
    conn = Conn(port)
    rnd = random.Random(idx)
    while not stop.is_set():
        s = f"load-{rnd.randrange(args.posters)}"
        path = rnd.choice([
            "/api/v1/sessions?limit=100",
            f"/api/v1/sessions/{s}",
            f"/api/v1/sessions/{s}/tasks",
            f"/api/v1/sessions/{s}/timeline?px=1000",
            f"/api/v1/sessions/{s}/awaits?min_ms=0.01&limit=100",
            f"/api/v1/sessions/{s}/concurrency",
        ])
        t0 = time.perf_counter()
        try:
            status, _, _ = await conn.request("GET", path)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            conn.close()
            stats["query_conn_error"] += 1
            continue
        stats["query_lat"].append(time.perf_counter() - t0)
        stats[f"query_{status}"] += 1
        if status == 404 and len(stats["not_found"]) < 5:
            stats["not_found"].append(path)
        if status == 404:
            stats["last_404_s"] = time.monotonic() - stats["t_start"]
    conn.close()


async def sampler(server, args, stop, acked, stats, t_start):
    print(f"{'t_s':>5} {'rss_MB':>8} {'db_MB':>8} {'wal_MB':>8} {'acked':>8} {'ingest/s':>9} {'queries/s':>9}")
    last_acked, last_q, last_t = 0, 0, t_start
    while True:
        try:
            await asyncio.wait_for(stop.wait(), args.sample)
        except asyncio.TimeoutError:
            pass
        now = time.monotonic()
        q = len(stats["query_lat"])
        print(f"{now - t_start:5.0f} {server.rss_bytes() / 1e6:8.1f} {file_size(server.db) / 1e6:8.1f} "
              f"{file_size(server.db + '-wal') / 1e6:8.1f} {len(acked):8d} "
              f"{(len(acked) - last_acked) / (now - last_t):9.0f} {(q - last_q) / (now - last_t):9.0f}",
              flush=True)
        last_acked, last_q, last_t = len(acked), q, now
        if stop.is_set():
            return


async def run(server, args):
    stop = asyncio.Event()
    acked = set()
    stats = collections.defaultdict(int)
    stats["ingest_lat"], stats["query_lat"], stats["not_found"] = [], [], []
    t_start = stats["t_start"] = time.monotonic()
    tasks = [asyncio.create_task(poster(server.port, i, args, stop, acked, stats)) for i in range(args.posters)]
    tasks += [asyncio.create_task(querier(server.port, i, args, stop, stats)) for i in range(args.queriers)]
    samp = asyncio.create_task(sampler(server, args, stop, acked, stats, t_start))
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.gather(*tasks)
    await samp
    # the server's own view before it stops
    c = Conn(server.port)
    _, _, metrics = await c.request("GET", "/metrics")
    c.close()
    return acked, stats, time.monotonic() - t_start, metrics.decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=DEFAULT_BINARY, help="loopscope-server binary (default build/server/...)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--posters", type=int, default=64, help="connections posting batches")
    ap.add_argument("--queriers", type=int, default=8, help="connections querying")
    ap.add_argument("--events", type=int, default=100, help="events per batch")
    ap.add_argument("--sample", type=float, default=5, help="seconds between RSS/db/WAL samples")
    ap.add_argument("--dir", help="where the database goes (default a temporary directory)")
    ap.add_argument("server_args", nargs="*", help="extra server options after --")
    args = ap.parse_args()

    tmp = args.dir or tempfile.mkdtemp(prefix="ls-load-")
    db = os.path.join(tmp, "load.db")
    server = Server(args.server, db, args.server_args).start()
    print(f"server pid {server.proc.pid} port {server.port} db {db}; {args.posters} posters, "
          f"{args.queriers} queriers, {args.events} events/batch, {args.seconds:g} s")
    acked, stats, elapsed, metrics = asyncio.run(run(server, args))
    rc = server.stop()
    res = check_db(db, acked)

    ingest = {k: v for k, v in stats.items() if k.startswith("ingest_") and k != "ingest_lat"}
    query = {k: v for k, v in stats.items() if k.startswith("query_") and k not in ("query_lat",)}
    if stats["not_found"]:  # a session whose first batch is not committed yet
        query["first 404 paths"] = stats["not_found"]
        query["last 404 at s"] = round(stats["last_404_s"], 2)
    fivexx = sum(v for k, v in list(ingest.items()) + list(query.items()) if k[-3:].startswith("5"))
    il, ql = stats["ingest_lat"], stats["query_lat"]
    print(f"ingest answers: {dict(sorted(ingest.items()))}  ({len(acked) / elapsed:.0f} batches/s, "
          f"{len(acked) * args.events / elapsed:.0f} events/s)")
    print(f"query answers:  {dict(sorted(query.items()))}  ({len(ql) / elapsed:.0f}/s)")
    print(f"ingest latency: p50 {pct(il, 50):.1f} ms, p99 {pct(il, 99):.1f} ms, max {pct(il, 100):.1f} ms over {len(il)}")
    print(f"query latency:  p50 {pct(ql, 50):.1f} ms, p99 {pct(ql, 99):.1f} ms, max {pct(ql, 100):.1f} ms over {len(ql)}")
    for line in metrics.splitlines():
        if line.startswith(("loopscope_write_faults_total", "loopscope_wal_bytes", "loopscope_db_bytes",
                            "loopscope_batches_total")):
            print("metrics:", line)
    print(f"server exit status {rc}")
    print(f"5xx answers: {fivexx}")
    print(f"acknowledged {res['acknowledged']}, stored {res['stored']}, acknowledged but missing "
          f"{res['lost_count']} {res['lost'] or ''}, stored but not acknowledged {res['stored_not_acknowledged']}")
    print(f"integrity_check: {res['integrity']}")
    ok = fivexx == 0 and res["lost_count"] == 0 and res["integrity"] == "ok" and rc == 0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
