"""bench/rows-build/run.py — the first /rows of a large session builds its stored task tree
(server/store_rows.c): how long the build takes and how long ingest waits meanwhile (issue 14).

Starts the server on a fresh temporary database, ingests a session of N tasks (task events only:
a wide tree, 50 tasks per root), then asks its first /rows while a thread posts one-task batches
into the same session back to back, and prints: the build's own figures from the server's log
(total, read-and-order, write transactions, the longest of them), the /rows answer time, and the
posts' count, refusals and longest wait. With --append K it then appends K tasks under existing
parents to the (current) tree and times the next /rows. Figures, not assertions.

  python3 bench/rows-build/run.py [--server build/server/loopscope-server] [--tasks 100000,1000000]
                                  [--append 1000]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from lsbench import Poster, add_server_arg, get_ms, log_lines, post, start, stop  # noqa: E402


def rows_ms(url, q="limit=80"):
    return get_ms(url + "/api/v1/sessions/big/rows?" + q)


def one(server, n, append):
    proc, log, url, _ = start(server, "rows-build-")
    try:
        meta = {"name": "rows-build", "started_unix_ns": "1764089000123456789"}
        t0 = time.monotonic()
        for k in range(0, n, 20000):
            evs = [{"k": "task", "id": i, "parent": 0 if i % 50 == 1 else i - i % 50 + 1, "t": (i % 997) * 10}
                   for i in range(k + 1, min(n, k + 20000) + 1)]
            b = {"v": 1, "batch": f"b{k}", "session": "big", "events": evs}
            if k == 0:
                b["meta"] = meta
            assert post(url, b) == 202
        ingest_s = time.monotonic() - t0
        with Poster(url, lambda i: {"v": 1, "batch": f"live{i}", "session": "big",
                                    "events": [{"k": "task", "id": n + 1 + i, "parent": 0, "t": 1}]}) as p:
            time.sleep(0.2)
            r0 = time.monotonic()
            ms, _ = rows_ms(url)
            r1 = time.monotonic()
        during, waits, refused = p.during(r0, r1)
        lines = log_lines(log, "task rows of session")
        print(f"{n} tasks (ingested in {ingest_s:.1f} s)")
        print(f"  first /rows (builds the tree)                 {ms:9.1f} ms")
        print(f"  server: {lines[0].split('info store: ', 1)[1] if lines else '(no build line in the log)'}")
        print(f"  posts during the build                        {len(during):9d}   refused (not 202): {refused}")
        if waits:
            print(f"  post wait during the build: median {1e3 * waits[len(waits) // 2]:.1f} ms, longest {1e3 * waits[-1]:.1f} ms")
        if append:
            # a live session goes on: the tree current, then `append` tasks arrive under existing
            # parents (children of roots spread over the whole tree, created after their siblings)
            ms, body = rows_ms(url)  # builds again for the posts of the build above
            ms, body = rows_ms(url)
            assert body["tasks"] >= n
            top = body["tasks"]
            evs = [{"k": "task", "id": 10 * n + i, "parent": 1 + 50 * ((i * 7919) % (n // 50)), "t": 10_000 + i}
                   for i in range(append)]
            assert post(url, {"v": 1, "batch": "append", "session": "big", "events": evs}) == 202
            ms, body = rows_ms(url, f"offset={n // 2}&limit=80")
            assert body["tasks"] == top + append, (body["tasks"], top, append)
            again, _ = rows_ms(url, f"offset={n // 2}&limit=80")
            print(f"  /rows after appending {append} tasks under existing parents {ms:9.1f} ms (then {again:.1f} ms)")
            lines = log_lines(log, "task rows of session")
            print(f"  server: {lines[-1].split('info store: ', 1)[1] if lines else '(no build line in the log)'}")
        sys.stdout.flush()
    finally:
        stop(proc, log)


def main():
    ap = argparse.ArgumentParser()
    add_server_arg(ap)
    ap.add_argument("--tasks", default="100000,1000000")
    ap.add_argument("--append", type=int, default=0, help="then append this many tasks and time the next /rows")
    a = ap.parse_args()
    for n in (int(x) for x in a.tasks.split(",")):
        for s in a.server.split(","):
            one(s, n, a.append)


if __name__ == "__main__":
    main()
