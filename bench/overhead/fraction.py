"""bench/overhead/fraction.py PYTHON — what recording a share of requests costs the app, against
recording every request: LoopscopeMiddleware's `fraction` (the `request_fraction` setting). Each
round starts a fresh server and runs bench.py's request workloads in modes on (every request),
sampled (request_fraction F) and off2 (the A/A control), interleaved with off rep by rep. Prints,
per workload and mode, the paired on/off medians of every round (loop-thread CPU and wall) and
their median. A figure, not a test.

    python3 bench/overhead/fraction.py .venvs-fw/py3.13/bin/python [--fraction 0.1] [--rounds 4]
        [--reps 20] [--only litestar_requests,asgi_requests] [--pythonpath DIR]

PYTHON: a venv's python where bench.py's imports work (.venvs-fw/ has Litestar; one under
.venvs-sid runs inside the sid root, which sees this work tree and not /tmp). --pythonpath: a
collector built in place (scripts/copy-collector.sh DIR, then setup.py build_ext --inplace with
PYTHON), first on its path.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import lsbench  # noqa: E402  (a server on a fresh temporary database)

MODES = ("on", "sampled", "off2")


def one_round(py: str, server_bin: str, args: argparse.Namespace) -> dict:
    proc, log, url, d = lsbench.start(server_bin, "fraction-")
    try:
        cmd = [py, os.path.join(HERE, "bench.py"), "--server", url, "--server-pid", str(proc.pid), "--json",
               "--reps", str(args.reps), "--only", args.only, "--modes", ",".join(MODES),
               "--fraction", str(args.fraction)]
        if args.pythonpath:  # through env(1): the sid root's `run` starts its command with a clean environment
            cmd = ["env", "PYTHONPATH=" + os.path.abspath(args.pythonpath)] + cmd
        if "/.venvs-sid/" in py:
            cmd = [os.path.join(ROOT, "scripts", "sid-chroot.sh"), "run"] + cmd
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"fraction.py: bench.py failed ({out.returncode}):\n{out.stderr}")
        return json.loads(out.stdout)
    finally:
        lsbench.stop(proc, log)
        shutil.rmtree(d, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("python")
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--only", default="litestar_requests,asgi_requests")
    ap.add_argument("--pythonpath", help="a collector built in place, put first on PYTHONPATH")
    ap.add_argument("--server-bin", default=os.path.join(ROOT, "build", "server", "loopscope-server"))
    args = ap.parse_args()
    if not 0 <= args.fraction <= 1:
        ap.error("--fraction is a share of requests, from 0 to 1")
    if not os.access(args.server_bin, os.X_OK):
        ap.error(f"no server at {args.server_bin}: build it first (cmake --build build)")
    py = args.python if os.path.isabs(args.python) else os.path.abspath(args.python)
    rounds = []
    for r in range(args.rounds):
        print(f"fraction.py: round {r + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
        rounds.append(one_round(py, args.server_bin, args))
    version = rounds[0]["python"]
    for workload in args.only.split(","):
        rs = [r["results"][workload] for r in rounds if workload in r["results"]]
        if not rs:
            print(f"{version}  {workload}: not run (Litestar not importable?)")
            continue
        off = statistics.median(r["off"]["cpu_s"] for r in rs) * 1000
        print(f"{version}  {workload}  off {off:.1f} ms of loop-thread CPU (median of rounds)")
        for mode in MODES:
            label = f"sampled {args.fraction:g}" if mode == "sampled" else ("every request" if mode == "on" else "A/A")
            for key, what in (("paired_cpu", "CPU"), ("paired", "wall")):
                vs = [r[mode][key] for r in rs]
                print(f"{version}    {label:14s} {what:4s} {statistics.median(vs):.3f}x   rounds "
                      f"{', '.join(f'{v:.3f}' for v in vs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
