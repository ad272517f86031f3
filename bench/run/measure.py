"""bench/run/measure.py — what `loopscope run` costs the crawler-like program (bench/run/crawler.py,
200,000 short tasks): runs it plain and under `python -m loopscope run` (max_tasks 1M, one
session), alternately, --reps times each, and prints the medians of the program's own wall and
CPU time, their ratio, and the events recorded and dropped (from the run's summary).
    python bench/run/measure.py [--reps 3] [--tasks 200000] [--server URL | --offline] [--save]"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def once(args: list[str]) -> tuple[dict, str]:
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=1800)
    if p.returncode:
        raise SystemExit(f"failed: {args}\n{p.stderr[-3000:]}")
    line = next(x for x in p.stdout.splitlines() if x.startswith('{"crawler"'))
    return json.loads(line)["crawler"], p.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--server")
    ap.add_argument("--offline", action="store_true")
    ap.add_argument("--save", action="store_true")
    a = ap.parse_args()
    prog = [os.path.join(HERE, "crawler.py"), "--tasks", str(a.tasks)]
    run = ["-m", "loopscope", "run"]
    if a.server:
        run += ["--server", a.server]
    if a.offline:
        run += ["--offline"]
    tmp = tempfile.mkdtemp()
    if a.save:
        run += ["--save", os.path.join(tmp, "run.json")]
    off, on, last_err = [], [], ""
    for i in range(a.reps):
        order = [False, True] if i % 2 == 0 else [True, False]
        for recorded in order:
            if recorded:
                r, last_err = once(run + prog)
                on.append(r)
            else:
                off.append(once(prog)[0])
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    ev = re.search(r"events: ([0-9,]+) recorded, ([0-9,]+) dropped", last_err)
    tasks = re.search(r"tasks: ([0-9,]+)", last_err)
    print(f"python {sys.version.split()[0]}, {a.tasks:,} tasks, {a.reps} runs each, mode: "
          f"{'server ' + a.server if a.server else 'offline' if a.offline else 'default server'}"
          f"{' + --save' if a.save else ''}")
    print(f"  plain     wall {med(off, 'wall_s'):.3f} s  cpu {med(off, 'cpu_s'):.3f} s")
    print(f"  recorded  wall {med(on, 'wall_s'):.3f} s  cpu {med(on, 'cpu_s'):.3f} s  (cpu: all threads of the process)")
    print(f"  ratio     wall {med(on, 'wall_s') / med(off, 'wall_s'):.2f}x  cpu {med(on, 'cpu_s') / med(off, 'cpu_s'):.2f}x")
    if ev:
        print(f"  last recorded run: tasks {tasks.group(1) if tasks else '?'}, events {ev.group(1)} recorded, "
              f"{ev.group(2)} dropped")


if __name__ == "__main__":
    main()
