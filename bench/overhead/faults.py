"""bench/overhead/faults.py — minor page faults of the timed async_tree run, loopscope off and on,
by bench.py's own run_once (the same install, warm-up session, flush and timed session; off and on
interleaved in one process, both orders, as bench.py runs them). Page faults, unlike time, do not
depend on what else the machine is doing; they do depend on the process's history (which pymalloc
arenas are still mapped), so compare on with off of the same process, after the first few reps.
    python bench/overhead/faults.py SERVER_URL [REPS]
"""
import asyncio
import os
import resource
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

server, reps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 12
run = asyncio.run


def counted(coro, **kw):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    try:
        return run(coro, **kw)
    finally:
        counted.last = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


asyncio.run = counted  # run_once's last asyncio.run is the timed one
res = {"off": [], "on": []}
bench.run_once(bench.tree_gather, "off", server)
for rep in range(reps):
    for m in (("off", "on") if rep % 2 == 0 else ("on", "off")):
        bench.run_once(bench.tree_gather, m, server)
        res[m].append(counted.last)
for m, v in res.items():
    print(f"{m:4} minor faults per timed run {v}  median of reps 4+: {statistics.median(v[3:])}")
