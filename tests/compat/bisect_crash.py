# bisect_crash.py — the smallest sequence of test ids that still crashes the interpreter under
# asyncio_gate.py --mode on (delta debugging over the tests before the one that crashed; the
# crashing test is kept last). Used to pin the gate's crash; stdlib only, run by any Python.
# python bisect_crash.py --python EXE [--pythonpath DIR] --tests-file progress.txt [--runs 2]
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

GATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "asyncio_gate.py")


def crashes(args, tests: list[str]) -> bool:
    """True when every one of args.runs runs of `tests` (in order) ends by a signal."""
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(tests) + "\n")
    try:
        for _ in range(args.runs):
            p = subprocess.run([args.python, GATE, "--mode", "on", "--tests-file", f.name],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=600)
            if p.returncode >= 0:
                return False
        return True
    finally:
        os.unlink(f.name)


def ddmin(args, before: list[str], last: str) -> list[str]:
    n = 2
    while len(before) >= 1:
        chunk = max(1, len(before) // n)
        parts = [before[i:i + chunk] for i in range(0, len(before), chunk)]
        reduced = False
        for i in range(len(parts)):
            complement = [t for j, p in enumerate(parts) if j != i for t in p]
            if crashes(args, complement + [last]):
                before, n, reduced = complement, max(n - 1, 2), True
                print(f"  {len(before) + 1} tests still crash", file=sys.stderr, flush=True)
                break
        if not reduced:
            if n >= len(before):
                break
            n = min(len(before), n * 2)
    return before + [last]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", required=True)
    ap.add_argument("--pythonpath")
    ap.add_argument("--tests-file", required=True, help="ids in run order; the last one crashed")
    ap.add_argument("--runs", type=int, default=2, help="a sequence crashes when all runs crash")
    args = ap.parse_args()
    with open(args.tests_file) as f:
        tests = [ln.strip() for ln in f if ln.strip()]
    if not crashes(args, tests):
        print("the full sequence does not crash", file=sys.stderr)
        return 1
    if crashes(args, tests[-1:]):
        print("\n".join(tests[-1:]))
        return 0
    print("\n".join(ddmin(args, tests[:-1], tests[-1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
