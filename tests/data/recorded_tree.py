# recorded_tree.py — the program recorded in recorded-tree.json for the Chrome trace tests
# (tests/integration/test_export_chrome.py): a task fans out into workers that fan out again,
# awaits sleeps and a queue, and blocks the loop once. Recorded on CPython 3.12 with
#   python -m loopscope run --server http://127.0.0.1:1 --await-threshold-ms 0 \
#       --save recorded-tree.json recorded_tree.py
import asyncio
import time


async def fetch(i):
    await asyncio.sleep(0.002 * (i % 3 + 1))
    return i


async def worker(n, q):
    parts = await asyncio.gather(*(fetch(n * 10 + k) for k in range(3)))
    await q.put(sum(parts))


async def handler():
    q = asyncio.Queue()
    workers = [asyncio.create_task(worker(n, q), name=f"worker-{n}") for n in range(4)]
    await asyncio.sleep(0.01)
    time.sleep(0.15)  # blocks the loop
    total = 0
    for _ in workers:
        total += await q.get()
    await asyncio.gather(*workers)
    await asyncio.sleep(0.03)
    return total


async def main():
    await asyncio.create_task(handler(), name="handler")


asyncio.run(main())
