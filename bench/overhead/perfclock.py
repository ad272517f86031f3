"""bench/overhead/perfclock.py — perfclock.sh's summary: `perf script -F pid,tid,ip,sym,dso` output of
loopscope off and on, the loop thread's samples (tid == pid) as milliseconds per run, by shared
object and by function, with the differences on - off, largest first.
    perfclock.py --runs N --freq HZ --off OFF.txt... --on ON.txt...
"""
import argparse
import collections
import os
import re
import sys

LINE = re.compile(r"^\s*(\d+)/(\d+)\s+[0-9a-f]+\s+(.*?)\s*\((.*)\)\s*$")


def load(path):
    """(samples by (function, shared object), by shared object, total) of the loop thread in one file."""
    by_sym, by_dso, total = collections.Counter(), collections.Counter(), 0
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m or m.group(1) != m.group(2):
                continue  # not the loop (main) thread
            sym, dso = m.group(3) or "[unknown]", os.path.basename(m.group(4))
            if dso.startswith("_core") and dso.endswith(".so"):
                dso = "loopscope _core"
            by_sym[(sym, dso)] += 1
            by_dso[dso] += 1
            total += 1
    return by_sym, by_dso, total


def load_all(paths):
    """load() of each file, summed, and each file's own total."""
    by_sym, by_dso, totals = collections.Counter(), collections.Counter(), []
    for p in paths:
        s, d, t = load(p)
        by_sym.update(s)
        by_dso.update(d)
        totals.append(t)
    return by_sym, by_dso, totals

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--freq", type=float, required=True)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--off", nargs="+", required=True, help="perf script output, loopscope off")
    ap.add_argument("--on", nargs="+", required=True, help="perf script output, loopscope on")
    a = ap.parse_args()
    off_files, on_files = a.off, a.on
    rounds_off, rounds_on = len(off_files), len(on_files)
    s_off, d_off, r_off = load_all(off_files)
    s_on, d_on, r_on = load_all(on_files)
    t_off, t_on = sum(r_off), sum(r_on)
    if not t_off or not t_on:
        sys.exit("perfclock.py: no samples of the loop thread (perf record failed?)")
    # samples -> ms per run: each sample is 1/freq s of the thread's CPU
    k_off = 1000.0 / a.freq / (a.runs * rounds_off)
    k_on = 1000.0 / a.freq / (a.runs * rounds_on)
    print(f"loop thread, ms of CPU per run ({a.runs} runs x {rounds_off} off, x {rounds_on} on; "
          f"cpu-clock at {a.freq:.0f} Hz)")
    print(f"  total      off {t_off * k_off:8.2f}   on {t_on * k_on:8.2f}   "
          f"on - off {t_on * k_on - t_off * k_off:+7.2f}   on/off {t_on * k_on / (t_off * k_off):.3f}x")
    # each round's own total: how far apart runs of one mode are is the resolution of the totals
    for name, totals in (("off", r_off), ("on", r_on)):
        print(f"  {name:3s} by round " + "  ".join(f"{t * 1000.0 / a.freq / a.runs:.1f}" for t in totals))
    print("by shared object:")
    rows = [(d_on[d] * k_on - d_off[d] * k_off, d) for d in set(d_off) | set(d_on)]
    for diff, d in sorted(rows, key=lambda r: -abs(r[0]))[:10]:
        print(f"  {d:40.40s} off {d_off[d] * k_off:8.2f}   on {d_on[d] * k_on:8.2f}   {diff:+7.2f}")
    print(f"by function (the {a.top} largest differences):")
    rows = [(s_on[s] * k_on - s_off[s] * k_off, s) for s in set(s_off) | set(s_on)]
    for diff, (sym, dso) in sorted(rows, key=lambda r: -abs(r[0]))[:a.top]:
        print(f"  {sym[:48]:48.48s} {dso[:18]:18.18s} off {s_off[(sym, dso)] * k_off:7.2f}  "
              f"on {s_on[(sym, dso)] * k_on:7.2f}  {diff:+6.2f}")


if __name__ == "__main__":
    main()
