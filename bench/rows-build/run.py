"""bench/rows-build/run.py — the first /rows of a large session builds its stored task tree
(server/store_rows.c): how long the build takes and how long ingest waits meanwhile (issue 14).

Starts the server on a fresh temporary database, ingests a session of N tasks (task events only:
a wide tree, 50 tasks per root), then asks its first /rows while a thread posts one-task batches
into the same session back to back, and prints: the build's own figures from the server's log
(total, read-and-order, write transactions, the longest of them), the /rows answer time, and the
posts' count, refusals and longest wait. Figures, not assertions.

  python3 bench/rows-build/run.py [--server build/server/loopscope-server] [--tasks 100000,1000000]
"""
import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request


def post(url, body):
    req = urllib.request.Request(url + "/api/v1/ingest", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def one(server, n):
    d = tempfile.mkdtemp(prefix="rows-build-")
    log = open(os.path.join(d, "server.log"), "wb")
    proc = subprocess.Popen([server, "--listen", "127.0.0.1:0", "--db", os.path.join(d, "b.db")], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = None
        for _ in range(200):
            m = re.search(rb"listening on (http://127\.0\.0\.1:\d+)/", open(log.name, "rb").read())
            if m:
                url = m.group(1).decode()
                break
            time.sleep(0.05)
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
        done = threading.Event()
        posts = []

        def poster():
            for i in itertools.count():
                if done.is_set():
                    return
                body = {"v": 1, "batch": f"live{i}", "session": "big",
                        "events": [{"k": "task", "id": n + 1 + i, "parent": 0, "t": 1}]}
                a = time.monotonic()
                posts.append((a, post(url, body), time.monotonic()))

        th = threading.Thread(target=poster)
        th.start()
        time.sleep(0.2)
        r0 = time.monotonic()
        with urllib.request.urlopen(url + "/api/v1/sessions/big/rows?limit=80", timeout=600) as r:
            r.read()
        r1 = time.monotonic()
        done.set()
        th.join()
        during = [p for p in posts if p[2] > r0 and p[0] < r1]
        waits = sorted(p[2] - p[0] for p in during)
        refused = sum(1 for p in posts if p[1] != 202)
        lines = [l for l in open(log.name, encoding="utf-8", errors="replace").read().splitlines() if "task rows of session" in l]
        print(f"{n} tasks (ingested in {ingest_s:.1f} s)")
        print(f"  first /rows (builds the tree)                 {1e3 * (r1 - r0):9.1f} ms")
        print(f"  server: {lines[0].split('info store: ', 1)[1] if lines else '(no build line in the log)'}")
        print(f"  posts during the build                        {len(during):9d}   refused (not 202): {refused}")
        if waits:
            print(f"  post wait during the build: median {1e3 * waits[len(waits) // 2]:.1f} ms, longest {1e3 * waits[-1]:.1f} ms")
        sys.stdout.flush()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default=os.path.join(os.path.dirname(__file__), "../../build/server/loopscope-server"))
    ap.add_argument("--tasks", default="100000,1000000")
    a = ap.parse_args()
    for n in (int(x) for x in a.tasks.split(",")):
        one(a.server, n)


if __name__ == "__main__":
    main()
