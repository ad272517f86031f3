"""bench/overhead/abstat.py RUNS — the summary of ab.sh's per-run lines: for each build, the median
of the per-rep ratios on/off of loop-thread CPU (each rep's runs are neighbours in time) with a
bootstrap 95% interval, and the same for off2/off, the A/A control: what this run's noise alone
makes of two identical runs. Two builds differ measurably only where their intervals do not overlap
and the A/A intervals hold 1.0.

A line is: BUILD ROUND WORKLOAD rep N MODE wall X ms loop-thread cpu Y ms
"""
from __future__ import annotations

import collections
import random
import statistics
import sys


def interval(xs: list[float], n: int = 2000) -> tuple[float, float]:
    rng = random.Random(1)  # the same interval for the same runs
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(n))
    return meds[int(n * 0.025)], meds[int(n * 0.975) - 1]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs: dict[str, dict[tuple[str, str, str], dict[str, float]]] = collections.defaultdict(dict)
    with open(sys.argv[1]) as f:
        for n, line in enumerate(f, 1):
            p = line.split()
            try:
                build, rnd, workload, rep, mode = p[0], p[1], p[2], p[4], p[5]
                cpu = float(p[p.index("cpu") + 1])
            except (IndexError, ValueError):
                print(f"abstat: line {n} is not a run: {line.strip()!r}", file=sys.stderr)
                return 1
            runs[build].setdefault((rnd, workload, rep), {})[mode] = cpu
    if not runs:
        print("abstat: no runs", file=sys.stderr)
        return 1
    for build in sorted(runs):
        reps = [r for r in runs[build].values() if {"off", "on", "off2"} <= r.keys()]
        if not reps:
            print(f"{build}: no complete rep")
            continue
        on = [r["on"] / r["off"] for r in reps]
        aa = [r["off2"] / r["off"] for r in reps]
        lo, hi = interval(on)
        alo, ahi = interval(aa)
        off_ms = statistics.median(r["off"] for r in reps)
        print(f"{build}: {len(reps)} reps  on/off {statistics.median(on):.3f}x (95% {lo:.3f}-{hi:.3f})"
              f"  A/A {statistics.median(aa):.3f}x ({alo:.3f}-{ahi:.3f})  off {off_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
