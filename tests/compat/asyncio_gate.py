# asyncio_gate.py — one half of the compatibility gate, run BY the interpreter under test: CPython's
# own test.test_asyncio modules under unittest, without ("off") or with ("on") loopscope installed
# and a session open around the whole run; writes each test's outcome as JSON. Stdlib only.
# The driver (compat_driver.py, called by scripts/test-compat.sh) runs it once per module and
# mode and compares; `--key` prints what the "off" cache is keyed by and which modules exist.
from __future__ import annotations

import argparse
import faulthandler
import hashlib
import json
import os
import platform
import sys
import time
import unittest

MODULES = ("test_tasks", "test_taskgroups", "test_futures", "test_locks", "test_queues",
           "test_eager_task_factory", "test_base_events", "test_events", "test_timeouts",
           "test_waitfor")


def asyncio_test_dir() -> str | None:
    try:
        import test.test_asyncio as pkg
    except ImportError:
        return None
    return os.path.dirname(os.path.abspath(pkg.__file__))


def build_key() -> dict:
    """What "off" results depend on: the exact interpreter build and its test files."""
    d = asyncio_test_dir()
    files = []
    if d:
        for name in sorted(os.listdir(d)):
            st = os.stat(os.path.join(d, name))
            files.append([name, st.st_size, int(st.st_mtime)])
    h = hashlib.sha256(json.dumps([sys.version, os.path.realpath(sys.executable), files]).encode())
    present = [m for m in MODULES if d and os.path.exists(os.path.join(d, m + ".py"))]
    return {"key": h.hexdigest()[:20], "version": sys.version, "executable": sys.executable,
            "version_short": platform.python_version(), "modules": present, "test_dir": d,
            "debug_build": hasattr(sys, "gettotalrefcount")}


class Recorder(unittest.TextTestResult):
    """A text result that also keeps every test's outcome by id and names each test as it starts
    (in the progress file), so a crash can be pinned on the test that was running."""
    progress = None

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.outcomes: dict[str, str] = {}

    def startTest(self, test):
        if self.progress is not None:
            self.progress.write(test.id() + "\n")
            self.progress.flush()
        super().startTest(test)

    def _set(self, test, outcome):
        tid = test.id()
        # a test with failing subtests is a failure even when its own body passed
        if self.outcomes.get(tid) in ("fail", "error") and outcome == "pass":
            return
        self.outcomes[tid] = outcome

    def addSuccess(self, test):
        super().addSuccess(test)
        self._set(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set(test, "fail")

    def addError(self, test, err):
        super().addError(test, err)
        # errors in setUpModule/tearDownClass come as _ErrorHolder objects with an id too
        self._set(test, "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._set(test, "skip")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._set(test, "expected-failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set(test, "fail")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._set(test, "fail" if issubclass(err[0], test.failureException) else "error")


def load(modules: list[str], tests: list[str]) -> unittest.TestSuite:
    loader = unittest.defaultTestLoader
    if tests:
        return loader.loadTestsFromNames(tests)
    return loader.loadTestsFromNames(["test.test_asyncio." + m for m in modules])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mode", choices=("off", "on"), default="off")
    ap.add_argument("--module", action="append", default=[], help="test.test_asyncio module name")
    ap.add_argument("--test", action="append", default=[], help="a full test id (bisecting)")
    ap.add_argument("--tests-file", help="file of full test ids, one a line, run in that order")
    ap.add_argument("--json", help="where to write the outcomes")
    ap.add_argument("--progress", help="file: each test's id is appended as it starts")
    ap.add_argument("--server", default="http://127.0.0.1:9")
    ap.add_argument("--timeout", type=float, default=1200, help="dump stacks and exit after this")
    ap.add_argument("--key", action="store_true", help="print the build key as JSON and exit")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.key:
        print(json.dumps(build_key()))
        return 0
    faulthandler.enable(all_threads=True)
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    tests = list(args.test)
    if args.tests_file:
        with open(args.tests_file) as f:
            tests += [ln.strip() for ln in f if ln.strip()]
    suite = load(args.module, tests)
    if args.progress:
        Recorder.progress = open(args.progress, "w")
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2 if args.verbose else 1,
                                     resultclass=Recorder)
    t0 = time.monotonic()
    stats = {}
    if args.mode == "on":
        import loopscope
        loopscope.install(server=args.server)
        with loopscope.session("compat"):
            result = runner.run(suite)
        stats = loopscope.stats()
        loopscope.uninstall(timeout=0)
    else:
        result = runner.run(suite)
    elapsed = time.monotonic() - t0
    faulthandler.cancel_dump_traceback_later()
    outcomes = result.outcomes
    counts: dict[str, int] = {}
    for o in outcomes.values():
        counts[o] = counts.get(o, 0) + 1
    out = {
        "mode": args.mode,
        "modules": args.module,
        "build": {"version": sys.version, "executable": sys.executable,
                  "platform": platform.platform(), "key": build_key()["key"]},
        "loopscope": (sys.modules["loopscope"].__file__ if "loopscope" in sys.modules else None),
        "loopscope_stats": {k: v for k, v in stats.items() if isinstance(v, (int, float, str))},
        "tests_run": result.testsRun,
        "counts": counts,
        "failing": sorted(t for t, o in outcomes.items() if o == "fail"),
        "erroring": sorted(t for t, o in outcomes.items() if o == "error"),
        "seconds": round(elapsed, 2),
    }
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
