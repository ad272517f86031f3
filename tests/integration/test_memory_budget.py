"""test_memory_budget.py — issue 11 defect 3: a small gzip body that decodes to `0,0,0,…` in an
ignored field used to become ~8M JSON nodes (655 MB for one request, 2.34 GB for 8 at once). The
parse is now capped per batch (--max-batch-memory, 413) and bodies, decoded bodies, parses and
queued batches share one budget (--max-memory, 503 + Retry-After). The server's peak RSS (VmHWM)
under 8 concurrent such requests stays under a stated ceiling, and a normal client is served."""
import gzip
import json
import threading
import time

from batches import batch

MIB = 1 << 20
# The defaults: --max-memory 512M; the ceiling allows the process's own baseline and malloc's
# slack on top (measured: see the printed figures). The code before the fix peaked at ~2.3 GB.
CEILING_MIB = 512 + 160

TOO_LARGE = ("body: the parsed batch needs more than 134217728 bytes (each JSON value takes at least "
             "64 bytes once parsed): send smaller batches")
NO_MEMORY_PARSE = ("the server's memory for batches being parsed and queued (--max-memory) is in use; "
                   "retry later")
NO_MEMORY_HTTP = ("the server's memory for ingest requests and queued batches (--max-memory) is in use; "
                  "retry later")


def bomb(batch_id, size=16 * MIB - 1024):
    """A valid batch padded to `size` bytes with an ignored field of zeros, gzip'd (~16 KB)."""
    head = json.dumps(batch("s-bomb", batch_id, []))[:-1].encode()
    n = (size - len(head) - 12) // 2
    body = head + b', "pad": [' + b"0," * n + b"0]}"
    assert len(body) <= 16 * MIB
    return gzip.compress(body, 9)


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def post_bomb(s, body, out):
    # a generous deadline: eight of these at once on a sanitizer or coverage build beside other
    # work take long; a failure is kept as a result (a thread's exception would be lost)
    try:
        r = s.request("POST", "/api/v1/ingest", body=body, timeout=300,
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        out.append((r.status, r.json().get("detail"), r.header("retry-after")))
    except Exception as e:  # noqa: BLE001 - reported by the assertion on results
        out.append(("exception", repr(e), None))


def asan_factor(pid):
    """2 for a server built with AddressSanitizer (its quarantine, 256 MiB by default, and the
    redzones add to RSS: one run peaked at 962 MiB), 3 for one run under valgrind's memcheck (its
    shadow memory and redzones: bench/reliability/memcheck.sh whole peaked at 956 and 1468 MiB in
    these two tests, every status right and no memcheck report), else 1."""
    with open(f"/proc/{pid}/maps") as f:
        maps = f.read()
    return 3 if "vgpreload_memcheck" in maps else 2 if "libasan" in maps else 1


def test_one_gzip_bomb_is_refused_413(make_server):
    s = make_server()
    body = bomb("one")
    assert len(body) < 64 * 1024
    r = s.ingest(None, raw=body, headers={"Content-Encoding": "gzip"})
    assert r.status == 413 and r.json() == {"error": "too_large", "detail": TOO_LARGE}
    m = s.metrics()
    assert m['loopscope_rejects_total{reason="too_large"}'] == 1
    assert m["loopscope_memory_bytes"] == 0  # every byte given back
    print(f"\none 16 MiB-of-zeros gzip body ({len(body)} bytes): 413; server VmHWM "
          f"{vm_hwm_mib(s.proc.pid):.0f} MiB")


def test_concurrent_gzip_bombs_stay_under_the_ceiling(make_server):
    # Default --request-timeout (30 s): bodies are decoded and parsed by the parse pool
    # (server/parse_pool.c), so no HTTP worker thread is busy with a bomb while the connections it
    # owns wait and their arrival deadlines run (this test once needed --request-timeout 600).
    s = make_server()
    body = bomb("many")
    base = vm_hwm_mib(s.proc.pid)
    # 8 clients at once, 3 bombs each; 1 each under ASan or valgrind, where each parse up to the
    # budget is ~10x slower (3 each: 116 s of the sanitizer build's ctest, its longest test; 1 each:
    # 42 s) and the eight still parse side by side (the release build's run keeps all 24)
    rounds = 3 if asan_factor(s.proc.pid) == 1 else 1
    results, threads = [], []
    for _ in range(8):
        t = threading.Thread(target=lambda: [post_bomb(s, body, results) for _ in range(rounds)])
        t.start()
        threads.append(t)
    # A normal client meanwhile: queries are answered, its small batches stored (a 503 while the
    # budget is spent is retried, as a collector does). Its batches wait in the parse pool's queue
    # behind bombs, so its deadline is as generous as theirs (this test asserts being served; the
    # next one how promptly).
    served, retried, i, worst = 0, 0, 0, 0.0
    while any(t.is_alive() for t in threads):
        assert s.get("/api/v1/sessions?limit=5", timeout=300).status == 200
        for _ in range(100):
            t0 = time.monotonic()
            r = s.ingest(batch("s-normal", f"n{i}", [{"k": "lag", "t": 1 + i, "d": 1}]), timeout=300)
            worst = max(worst, time.monotonic() - t0)
            if r.status != 503:
                break
            retried += 1
            time.sleep(0.05)
        assert r.status == 202, (r.status, r.body)
        served, i = served + 1, i + 1
    for t in threads:
        t.join()
    peak = vm_hwm_mib(s.proc.pid)
    statuses = sorted(set((st, ra) for st, _, ra in results))
    print(f"\n8 x {rounds} gzip bombs ({len(body)} bytes each, 16 MiB decoded): answers {statuses}; "
          f"server VmHWM {base:.0f} MiB at start, {peak:.0f} MiB after (ceiling {CEILING_MIB}); "
          f"normal client: {served} batches stored, {retried} retries after 503, slowest answer {worst:.2f} s")
    assert len(results) == 8 * rounds and not [x for x in results if x[0] == "exception"], results
    for status, detail, retry in results:
        assert (status, detail) in [(413, TOO_LARGE), (503, NO_MEMORY_PARSE), (503, NO_MEMORY_HTTP)], (status, detail)
        assert (retry == "1") == (status == 503)
    assert peak < CEILING_MIB * asan_factor(s.proc.pid), peak
    assert served >= 1
    assert s.get_json("/api/v1/sessions/s-normal")["lag"]["samples"] == served
    assert s.metrics()["loopscope_memory_bytes"] == 0


def test_stalled_writer_memory_stays_under_the_ceiling(make_server, tmp_path):
    """The writer stalled (another process holds the database's write lock) while 8 clients post
    large valid batches and gzip bombs: the batches wait in the queue holding their parsed rows,
    which the budget bounds (the code before the fix reached 3.46 GB this way). After the lock is
    gone ingest works again, and what was answered 202 is stored."""
    import sqlite3
    s = make_server()
    big = [{"k": "task", "id": 1, "name": "T", "coro": "c", "t": 0}] + \
        [{"k": "step", "id": 1, "t": i * 10, "d": 5} for i in range(99_999)]
    lock = sqlite3.connect(str(tmp_path / "loopscope.db"), timeout=30, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    results, threads = [], []

    def client(k):
        for j in range(3):
            if j == 1:
                post_bomb(s, bomb(f"stall{k}"), results)
                continue
            try:
                r = s.ingest(batch(f"s-stall-{k}-{j}", "b", big), timeout=300)
                results.append((r.status, r.json().get("detail") if r.status != 202 else None,
                                r.header("retry-after"), f"s-stall-{k}-{j}"))
            except Exception as e:  # noqa: BLE001 - reported by the assertion on results
                results.append(("exception", repr(e), None, None))
    for k in range(8):
        t = threading.Thread(target=client, args=(k,))
        t.start()
        threads.append(t)
    time.sleep(8)  # the stall: longer than the writer's 5 s busy timeout
    lock.execute("COMMIT")
    lock.close()
    for t in threads:
        t.join(600)
    peak = vm_hwm_mib(s.proc.pid)
    statuses = sorted(set(x[0] for x in results))
    acked = {x[3] for x in results if x[0] == 202 and len(x) == 4}
    print(f"\nwriter stalled 8 s under 8 clients x (2 batches of 100k events + 1 gzip bomb): answers {statuses}, "
          f"{len(acked)} big batches stored; server VmHWM {peak:.0f} MiB (ceiling {CEILING_MIB})")
    assert len(results) == 24 and not [x for x in results if x[0] == "exception"], results
    assert all(x[0] in (202, 413, 503) for x in results), results
    assert all((x[2] == "1") == (x[0] == 503) for x in results), results
    assert peak < CEILING_MIB * asan_factor(s.proc.pid), peak
    # after the stall: ingest works, and every big batch answered 202 is there, whole
    assert s.ingest(batch("s-after", "b", big[:10]), timeout=300).status == 202
    for sid in acked:
        assert s.get_json(f"/api/v1/sessions/{sid}")["tasks"] == 1
    assert s.metrics()["loopscope_memory_bytes"] == 0


def timed_get(s, path):
    t0 = time.monotonic()
    r = s.get(path, timeout=300)
    assert r.status == 200, (path, r.status)
    return time.monotonic() - t0


def test_normal_client_answered_promptly_while_bombs_are_parsed(make_server):
    """One HTTP worker thread (--threads 1) and three clients posting gzip bombs back to back: a
    normal client's queries are answered within a small part of the time one bomb takes to be
    refused (both measured in this run). Before bodies were parsed by the pool, the one worker
    parsed each bomb itself and every request it owned waited for that parse (median wait about
    half a bomb's time)."""
    s = make_server("--threads", "1")
    body = bomb("prompt")
    alone = sorted(timed_get(s, "/api/v1/sessions?limit=5") for _ in range(20))
    t0 = time.monotonic()
    post_bomb(s, body, [])
    one_bomb = time.monotonic() - t0
    results, stop, threads = [], threading.Event(), []

    def bomber():
        while not stop.is_set():
            post_bomb(s, body, results)
    for _ in range(3):
        t = threading.Thread(target=bomber)
        t.start()
        threads.append(t)
    # wait until the parse pool is busy with bombs, then ask for 4 s
    wait_for_parsing = time.monotonic() + 5
    while time.monotonic() < wait_for_parsing and s.metrics()["loopscope_memory_bytes"] < MIB:
        time.sleep(0.01)
    under, posts, depths, end = [], [], [], time.monotonic() + 4
    while time.monotonic() < end:
        under.append(timed_get(s, "/api/v1/sessions?limit=5"))
        depths.append(s.metrics()["loopscope_parse_queue_depth"])
        # and a small batch, as a collector sends below its gzip threshold: the pool's thread for
        # small plain bodies parses it while the bombs queued before it are parsed
        t0 = time.monotonic()
        r = s.ingest(batch("s-prompt", f"p{len(posts)}", [{"k": "lag", "t": 1 + len(posts), "d": 1}]), timeout=300)
        posts.append((time.monotonic() - t0, r.status))
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join()
    under.sort()
    p50, worst = under[len(under) // 2], under[-1]
    post_times = sorted(t for t, st in posts if st == 202)
    post_p50 = post_times[len(post_times) // 2] if post_times else float("inf")
    print(f"\none bomb alone answered in {one_bomb * 1000:.0f} ms; normal client alone: p50 "
          f"{alone[10] * 1000:.1f} ms, max {alone[-1] * 1000:.1f} ms; while 3 clients post bombs "
          f"({len(results)} answered): p50 {p50 * 1000:.1f} ms, max {worst * 1000:.1f} ms over {len(under)} requests; "
          f"its batches: {len(post_times)} of {len(posts)} stored (others 503, retried by collectors), p50 "
          f"{post_p50 * 1000:.1f} ms, max {post_times[-1] * 1000 if post_times else 0:.1f} ms")
    assert results and all(st in (413, 503) for st, _, _ in results), results
    assert p50 < one_bomb / 10, (p50, one_bomb)
    assert worst < one_bomb, (worst, one_bomb)
    assert len(under) >= 10
    assert all(st in (202, 503) for _, st in posts), posts
    assert len(post_times) >= len(posts) // 2, posts
    assert post_p50 < one_bomb / 5, (post_p50, one_bomb)
    assert s.get_json("/api/v1/sessions/s-prompt")["lag"]["samples"] == len(post_times)
    # the parse pool's gauge saw the bombs queued or parsing, and drops to 0 once every client is
    # answered (a pool thread counts its job done just after the answer is handed over: poll)
    assert max(depths) >= 1, depths
    settle = time.monotonic() + 30
    while s.metrics()["loopscope_parse_queue_depth"] and time.monotonic() < settle:
        time.sleep(0.02)
    assert s.metrics()["loopscope_parse_queue_depth"] == 0


def test_stop_answers_bodies_queued_for_the_parse_pool(make_server):
    """SIGTERM while bodies wait for the parse pool (one HTTP thread, six bombs and six valid
    batches at once): every request the server took is answered (the pool parses what is queued
    and the writer stores it before the daemon stops), the exit is clean, and each batch answered
    202 is in the database when the server starts again."""
    s = make_server("--threads", "1")
    body = bomb("stop")
    results, threads = [], []

    def valid(k):
        try:
            r = s.ingest(batch(f"s-stop-{k}", "b", [{"k": "lag", "t": 1, "d": 1}]), timeout=120)
            results.append((r.status, f"s-stop-{k}"))
        except OSError as e:  # refused or reset: sent after the server stopped listening
            results.append(("closed", repr(e)))
    for k in range(6):
        threads.append(threading.Thread(target=post_bomb, args=(s, body, results)))
        threads.append(threading.Thread(target=valid, args=(k,)))
    for t in threads:
        t.start()
    wait_for_parsing = time.monotonic() + 10
    while time.monotonic() < wait_for_parsing and s.metrics()["loopscope_memory_bytes"] < MIB:
        time.sleep(0.01)
    t0 = time.monotonic()
    assert s.stop(timeout=120) == 0
    stopped_in = time.monotonic() - t0
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    answered = [x for x in results if x[0] != "closed" and x[0] != "exception"]
    print(f"\nstop with bodies queued: {len(answered)} of {len(results)} requests answered "
          f"({sorted(set(x[0] for x in answered))}), stopped in {stopped_in:.2f} s")
    assert len(results) == 12
    assert all(x[0] in (202, 413, 503, "closed", "exception") for x in results), results
    assert answered, results
    s.start()
    for st, sid in [x for x in results if x[0] == 202]:
        assert s.get_json(f"/api/v1/sessions/{sid}")["lag"]["samples"] == 1
