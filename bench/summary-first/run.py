"""bench/summary-first/run.py — the first GET /api/v1/sessions/{id} after a large session ends
(issue 14: summary < 100 ms at 1M tasks): its figures (task count, maximum concurrency, lag
percentiles, the concurrency mipmap) are computed once per ended session; this times the first
summary read right after the end's batch was answered, and one a little later.

Starts the server on a fresh temporary database, ingests a session of N tasks (task and done
events, a lag sample per 10 tasks; 50 tasks per root), posts the `end` batch, then at once asks the
summary (and then twice more, after --later seconds), while a thread posts one-event batches of
another session back to back (their longest wait says whether ingest was held up by the figures).
Prints figures, asserts nothing. With --server of two binaries, run them alternately.

  python3 bench/summary-first/run.py [--server build/server/loopscope-server] [--tasks 1000000]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from lsbench import Poster, add_server_arg, get_ms, log_lines, post, start, stop  # noqa: E402


def one(server, n, later):
    proc, log, url, _ = start(server, "summary-first-")
    try:
        meta = {"name": "summary-first", "started_unix_ns": "1764089000123456789"}
        t0 = time.monotonic()
        step = 10000
        for k in range(0, n, step):
            evs = []
            for i in range(k + 1, min(n, k + step) + 1):
                t = i * 1000
                evs.append({"k": "task", "id": i, "parent": 0 if i % 50 == 1 else i - i % 50 + 1, "t": t})
                evs.append({"k": "done", "id": i, "t": t + 5007 + (i * 7919) % 290000, "state": "ok"})  # off the 1 us grid: every end changes the count
                if i % 10 == 0:
                    evs.append({"k": "lag", "t": t, "d": 100000 + (i % 13) * 50000})
            b = {"v": 1, "batch": f"b{k}", "session": "big", "events": evs}
            if k == 0:
                b["meta"] = meta
            assert post(url, b) == 202
        ingest_s = time.monotonic() - t0
        with Poster(url, lambda i: {"v": 1, "batch": f"o{i}", "session": "other", "meta": {"name": "other"},
                                    "events": [{"k": "lag", "t": i * 1000, "d": 1000}]}) as p:
            time.sleep(0.3)
            e0 = time.monotonic()
            end = {"v": 1, "batch": "end", "session": "big", "events": [{"k": "end", "t": n * 1000 + 400000}]}
            assert post(url, end) == 202
            e1 = time.monotonic()
            first, body = get_ms(url + "/api/v1/sessions/big")
            time.sleep(later)
            second, _ = get_ms(url + "/api/v1/sessions/big")
            third, _ = get_ms(url + "/api/v1/sessions/big")
        during, waits, refused = p.during(e0)
        lines = log_lines(log, "figures of session")
        print(f"{server}: {n} tasks (ingested in {ingest_s:.1f} s), tasks={body['tasks']} "
              f"max_concurrency={body['max_concurrency']} lag p99={body['lag']['p99_ms']} ms")
        print(f"  end batch answered in                          {1e3 * (e1 - e0):9.1f} ms")
        print(f"  first summary right after the end             {first:9.1f} ms")
        print(f"  summary {later:.1f} s later, then again         {second:9.1f} ms {third:9.1f} ms")
        for l in lines:
            print(f"  server: {l.split('] ', 1)[-1]}")
        if waits:
            print(f"  other session's posts from the end on: {len(during)}, refused {refused}, "
                  f"median wait {1e3 * waits[len(waits) // 2]:.1f} ms, longest {1e3 * waits[-1]:.1f} ms")
        sys.stdout.flush()
    finally:
        stop(proc, log)


def main():
    ap = argparse.ArgumentParser()
    add_server_arg(ap)
    ap.add_argument("--tasks", default="1000000")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--later", type=float, default=3.0)
    a = ap.parse_args()
    for _ in range(a.rounds):
        for n in (int(x) for x in a.tasks.split(",")):
            for s in a.server.split(","):
                one(s, n, a.later)


if __name__ == "__main__":
    main()
