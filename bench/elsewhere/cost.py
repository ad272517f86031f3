# bench/elsewhere/cost.py — what a stall costs per extra open session: K sessions open on one loop
# (K-1 idle), one blocks M times (a 1.5 ms busy loop over a 1 ms threshold, offline collector);
# the loop's own time around the blocks (the busy time itself subtracted), per block and extra
# session. Run: PYTHONPATH=<collector build> python bench/elsewhere/cost.py
import asyncio
import statistics
import time

import loopscope

M = 400

def busy(ms):
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass

async def idle(stop):
    async with loopscope.session("idle"):
        await stop.wait()

async def culprit():
    async with loopscope.session("culprit"):
        t0 = time.perf_counter()
        spent = 0.0
        for _ in range(M):
            b0 = time.perf_counter()
            busy(1.5)
            spent += time.perf_counter() - b0
            await asyncio.sleep(0)
        return time.perf_counter() - t0 - spent  # the loop's own time around the blocks

async def main(k):
    stop = asyncio.Event()
    idles = [asyncio.create_task(idle(stop)) for _ in range(k - 1)]
    await asyncio.sleep(0.01)
    took = await culprit()
    stop.set()
    await asyncio.gather(*idles)
    return took

loopscope.install(offline=True, blocking_threshold_ms=1)
res = {}

runs = {1: [], 11: [], 51: []}
for _ in range(7):
    for k in runs:
        runs[k].append(asyncio.run(main(k)))
for k in runs:
    res[k] = statistics.median(runs[k])
    print(f"K={k:3d} open sessions: {res[k] * 1e3:.2f} ms of loop time around {M} blocks (median of 7)")
base = res[1]
for k in (11, 51):
    print(f"  extra per block per extra session (K={k}): {(res[k] - base) / M / (k - 1) * 1e6:.2f} us")
print(loopscope.stats())
