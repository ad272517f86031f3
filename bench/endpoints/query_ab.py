#!/usr/bin/env python3
"""bench/endpoints/query_ab.py DB A_BIN B_BIN — one endpoints query timed on two server builds over
the same stored sessions: each round copies DB (a database bench_endpoints.py --keep left, or any
other) for each build in turn, starts it there, waits until its endpoint rollups are all rebuilt
(no dirty block), and times --queries GETs of --path on one keep-alive connection (the first
--warm not counted); the median of each round, then the ratio of the medians B/A. Builds of the
same CMake build type only: RelWithDebInfo (-O2) against Release (-O3) alone moves this query by
~10%. A database of an older schema is migrated by the newer build when it opens its copy; an
older build refuses a newer database, so make DB with the older one. Standard library only;
measures and prints, asserts nothing."""
import argparse
import http.client
import os
import pathlib
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "query"))
from bench_query import free_port, wait_healthy  # noqa: E402


def one_round(binary: str, db: str, args) -> float:
    work = tempfile.mkdtemp(prefix="ls-query-ab-")
    try:
        copy = os.path.join(work, "x.db")
        shutil.copy(db, copy)
        port = free_port()
        log = os.path.join(work, "server.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--db", copy],
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_healthy("127.0.0.1", port, proc, log, timeout=60)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                con = sqlite3.connect(f"file:{copy}?mode=ro", uri=True, timeout=5)
                try:
                    dirty = con.execute("SELECT count(*) FROM ep_dirty").fetchone()[0]
                finally:
                    con.close()
                if dirty == 0:
                    break
                time.sleep(0.1)
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            took = []
            for _ in range(args.warm + args.queries):
                t = time.perf_counter()
                c.request("GET", args.path)
                r = c.getresponse()
                r.read()
                took.append(time.perf_counter() - t)
                if r.status != 200:
                    raise SystemExit(f"query_ab: {args.path} answered {r.status}")
            result = statistics.median(took[args.warm:]) * 1e3
        finally:
            proc.terminate()
            proc.wait(10)
    except BaseException:
        print(f"query_ab: kept {work} (its server.log)", flush=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db")
    ap.add_argument("a_bin")
    ap.add_argument("b_bin")
    ap.add_argument("--path", default="/api/v1/endpoints?limit=100000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--warm", type=int, default=5)
    args = ap.parse_args()
    ms = {"A": [], "B": []}
    for r in range(args.rounds):
        for name, binary in (("A", args.a_bin), ("B", args.b_bin)):
            ms[name].append(one_round(binary, args.db, args))
            print(f"round {r + 1}: {name} {ms[name][-1]:.1f} ms", flush=True)
    a, b = statistics.median(ms["A"]), statistics.median(ms["B"])
    print(f"{args.path}: A {a:.1f} ms ({', '.join(f'{x:.1f}' for x in ms['A'])}), "
          f"B {b:.1f} ms ({', '.join(f'{x:.1f}' for x in ms['B'])}): B/A {b / a:.3f}x")


if __name__ == "__main__":
    main()
