"""bench/overhead/abstat.py RUNS — the summary of ab.sh's per-run lines: for each build, the median
of the per-rep ratios on/off of loop-thread CPU (each rep's runs are neighbours in time) with a
bootstrap 95% interval, and the same for off2/off, the A/A control: what this run's noise alone
makes of two identical runs. Two builds differ measurably only where their intervals do not overlap
and the A/A intervals hold 1.0.

Beside it, the ratio of the fastest tenths ("p10": the 10th percentile of on's runs over off's,
off2's for the A/A), with a bootstrap interval over the reps. This VM's host slows runs in bursts
(one rep of 2026-12-04: `off` 54 ms, `off2`, the same code a moment later, 94 ms), which a pair
straddles at random; such noise only adds time, so each mode's fastest runs are the ones it left
alone. On ab.sh's six-build run of 2026-12-04 (80 reps each) the p10 intervals were about half as
wide as the paired medians' (full: 1.074-1.109 against 1.077-1.154), the A/A controls 0.998-1.007x;
but in run.sh's 30-rep run that afternoon its A/A controls read 0.78-1.21x, where the paired
median's read 0.97-1.05x: the third-fastest of 30 is one lucky run. Read it at 80 reps or more,
and only beside its own A/A.

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


def quantile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[int(p * (len(xs) - 1))]


def p10_interval(reps: list[dict[str, float]], a: str, b: str, n: int = 2000) -> tuple[float, float, float]:
    """q10(a)/q10(b) over reps, and its bootstrap 95% interval (reps resampled whole)."""
    def ratio(rs: list[dict[str, float]]) -> float:
        return quantile([r[a] for r in rs], 0.1) / quantile([r[b] for r in rs], 0.1)
    rng = random.Random(1)
    rs = sorted(ratio(rng.choices(reps, k=len(reps))) for _ in range(n))
    return ratio(reps), rs[int(n * 0.025)], rs[int(n * 0.975) - 1]


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
        q, qlo, qhi = p10_interval(reps, "on", "off")
        qa, qalo, qahi = p10_interval(reps, "off2", "off")
        print(f"{build}: {len(reps)} reps  on/off {statistics.median(on):.3f}x (95% {lo:.3f}-{hi:.3f})"
              f"  A/A {statistics.median(aa):.3f}x ({alo:.3f}-{ahi:.3f})  off {off_ms:.1f} ms\n"
              f"{'':{len(build) + 2}}p10 on/off {q:.3f}x (95% {qlo:.3f}-{qhi:.3f})"
              f"  A/A {qa:.3f}x ({qalo:.3f}-{qahi:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
