"""bench/run/crawler.py — a crawler-like asyncio program for `loopscope run`: N short tasks
(default 200,000), each a "fetch" (a few awaits on a fake network: asyncio.sleep(0) and a tiny
parse), at most --concurrency at a time under a Semaphore, results through a Queue to one writer.

    python bench/run/crawler.py [--tasks 200000]              # plain
    loopscope run bench/run/crawler.py [--tasks 200000]       # recorded
bench/run/measure.py runs both and prints the overhead ratio and the events dropped.
Prints its own wall and CPU time (time.perf_counter / time.process_time around asyncio.run)."""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time


async def fetch(url: str, sem: asyncio.Semaphore, out: asyncio.Queue) -> None:
    async with sem:
        await asyncio.sleep(0)                      # connect
        await asyncio.sleep(0)                      # response headers
        body = (url * 4).encode()
        digest = hashlib.blake2b(body, digest_size=8).hexdigest()  # "parse"
        await out.put((url, digest))


async def writer(out: asyncio.Queue, n: int) -> int:
    seen = 0
    while seen < n:
        await out.get()
        seen += 1
    return seen


async def crawl(n: int, concurrency: int) -> int:
    sem = asyncio.Semaphore(concurrency)
    out: asyncio.Queue = asyncio.Queue(maxsize=1000)
    w = asyncio.create_task(writer(out, n))
    batch = 5000                                     # like a crawler feeding its frontier in pages
    for start in range(0, n, batch):
        await asyncio.gather(*(fetch(f"https://example.test/p/{i}", sem, out)
                               for i in range(start, min(n, start + batch))))
    return await w


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--concurrency", type=int, default=500)
    a = ap.parse_args()
    w0, c0 = time.perf_counter(), time.process_time()
    got = asyncio.run(crawl(a.tasks, a.concurrency))
    w1, c1 = time.perf_counter(), time.process_time()
    print(json.dumps({"crawler": {"tasks": a.tasks, "fetched": got, "wall_s": round(w1 - w0, 4),
                                  "cpu_s": round(c1 - c0, 4)}}))


if __name__ == "__main__":
    main()
