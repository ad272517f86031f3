# compat_driver.py — the compatibility gate's driver (scripts/test-compat.sh calls it): for each
# interpreter, every test.test_asyncio module of the gate run by asyncio_gate.py without ("off")
# and with ("on") loopscope, one subprocess per module and mode, `--jobs` at a time across all
# interpreters; the failing+erroring test ids must be the same off and on, and nothing may crash.
# "off" results depend only on the interpreter build: cached under $LOOPSCOPE_CACHE/compat/.
# Interpreters: a path, or sid:PATH for one inside the Debian sid chroot (scripts/sid-chroot.sh).
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GATE = os.path.join(HERE, "asyncio_gate.py")
SID_SCRIPT = os.path.join(ROOT, "scripts", "sid-chroot.sh")
# Rough cost order (slowest first) so the pool does not end on one long job.
ORDER = ("test_events", "test_tasks", "test_base_events", "test_locks", "test_futures", "test_queues",
         "test_taskgroups", "test_timeouts", "test_waitfor", "test_eager_task_factory")
SLOW_S = 120  # a module slower than this is named in the report


class Interp:
    """One interpreter under test: how to start it, and where its files are seen from inside."""

    def __init__(self, spec: str, pythonpath: str | None, workdir: str):
        self.spec = spec
        self.sid = spec.startswith("sid:")
        self.exe = spec[4:] if self.sid else spec
        self.pythonpath = pythonpath
        if self.sid:
            sid_root = subprocess.run([SID_SCRIPT, "path"], capture_output=True, text=True).stdout.strip()
            self.inner_dir = tempfile.mkdtemp(prefix="loopscope-gate-", dir=os.path.join(sid_root, "tmp"))
            self.host_dir = self.inner_dir
            self.inner_dir = "/tmp/" + os.path.basename(self.host_dir)
        else:
            self.host_dir = self.inner_dir = tempfile.mkdtemp(prefix="gate-", dir=workdir)
        self.info: dict = {}
        self.error: str | None = None

    def command(self, args: list[str], with_path: bool) -> tuple[list[str], dict]:
        env_vars = {"PYTHONFAULTHANDLER": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        if with_path and self.pythonpath:
            env_vars["PYTHONPATH"] = self.pythonpath
        if self.sid:
            return ([SID_SCRIPT, "run", "env"] + [f"{k}={v}" for k, v in env_vars.items()]
                    + [self.exe] + args, dict(os.environ))
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.update(env_vars)
        return [self.exe] + args, env

    def probe(self) -> None:
        cmd, env = self.command([GATE, "--key"], False)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            self.error = f"cannot run: {p.stderr.strip()[-500:]}"
            return
        self.info = json.loads(p.stdout.strip().splitlines()[-1])
        cmd, env = self.command(["-c", "import loopscope._core, loopscope; print(loopscope.__file__)"], True)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            self.error = f"loopscope is not importable: {p.stderr.strip()[-300:]}"
        else:
            self.info["loopscope"] = p.stdout.strip()

    @property
    def label(self) -> str:
        v = self.info.get("version_short", "?")
        return f"{v} (sid)" if self.sid else v


def run_one(interp: Interp, module: str, mode: str, server: str, timeout: float) -> dict:
    """Runs one module in one mode; the result JSON, or a crash record."""
    tag = f"{module}-{mode}-{int(time.time() * 1000) % 10**8}"
    host = {k: os.path.join(interp.host_dir, f"{tag}.{k}") for k in ("json", "progress", "log")}
    inner = {k: os.path.join(interp.inner_dir, f"{tag}.{k}") for k in ("json", "progress")}
    args = ["--mode", mode, "--module", module, "--json", inner["json"], "--progress", inner["progress"],
            "--server", server, "--timeout", str(timeout)]
    cmd, env = interp.command([GATE] + args, mode == "on")
    t0 = time.monotonic()
    with open(host["log"], "w") as log:
        try:
            p = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout + 60)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = round(time.monotonic() - t0, 1)
    res: dict
    if rc == 0 and os.path.exists(host["json"]):
        with open(host["json"]) as f:
            res = json.load(f)
    else:
        # sid-chroot.sh execs chroot execs env execs python: a signal shows as rc < 0 here too,
        # or as 128+N from a shell in between
        sig = -rc if isinstance(rc, int) and rc < 0 else rc - 128 if isinstance(rc, int) and rc > 128 else None
        last = ""
        if os.path.exists(host["progress"]):
            with open(host["progress"]) as f:
                lines = f.read().split()
            last = lines[-1] if lines else ""
        with open(host["log"], errors="replace") as f:
            tail = f.read()[-4000:]
        res = {"crash": True, "returncode": rc,
               "signal": signal.Signals(sig).name if sig and sig in signal.Signals._value2member_map_ else None,
               "last_test": last, "stderr_tail": tail, "log": host["log"]}
    res["wall"] = wall
    res["module"] = module
    res["mode"] = mode
    return res


def bad_set(res: dict) -> set[str]:
    return set(res.get("failing", [])) | set(res.get("erroring", []))


def cache_path(cache_dir: str, key: str) -> str:
    return os.path.join(cache_dir, "compat", key + ".json")


def load_cache(cache_dir: str, key: str) -> dict:
    try:
        with open(cache_path(cache_dir, key)) as f:
            return json.load(f).get("modules", {})
    except (OSError, ValueError):
        return {}


def save_cache(cache_dir: str, key: str, info: dict, modules: dict) -> None:
    path = cache_path(cache_dir, key)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + f".{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"build": info, "modules": modules}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as e:
        print(f"compat: cannot write the off cache {path}: {e}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("interpreters", nargs="+", help="python path, or sid:PATH (inside the sid chroot)")
    ap.add_argument("--module", action="append", default=[], help="only these modules (default: all)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--server", default="http://127.0.0.1:9")
    ap.add_argument("--timeout", type=float, default=900, help="per module run, seconds")
    ap.add_argument("--no-cache", action="store_true", help="run off too, even when cached")
    ap.add_argument("--report", help="write the full result as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the per-run logs")
    ap.add_argument("--skip-debug-builds", action="store_true",
                    help="leave out debug interpreters (python3.14-dbg): the suites are slow there")
    ap.add_argument("--off-only", action="store_true",
                    help="only the runs without loopscope (fills the cache, times the suites)")
    args = ap.parse_args()
    cache_dir = os.environ.get("LOOPSCOPE_CACHE", "/var/cache/loopscope")
    path_tmpl = os.environ.get("LOOPSCOPE_GATE_PYTHONPATH")
    workdir = tempfile.mkdtemp(prefix="loopscope-compat-")
    t_start = time.monotonic()

    interps: list[Interp] = []
    for spec in args.interpreters:
        pp = None
        if "@" in spec:  # EXE@PYTHONPATH
            spec, pp = spec.split("@", 1)
        interps.append(Interp(spec, pp, workdir))
    for it in interps:  # one at a time: the first sid call may still prepare the chroot's mounts
        it.probe()
        if it.pythonpath is None and path_tmpl and it.info:
            v = ".".join(it.info["version_short"].split(".")[:2])
            it.pythonpath = path_tmpl.replace("{ver}", v)
            it.error = None
            it.probe()
        if it.error and args.off_only and it.info:
            it.error = None  # loopscope is not needed without it
        if it.error:
            print(f"compat: {it.spec}: {it.error}", file=sys.stderr)

    if args.skip_debug_builds:
        for it in [it for it in interps if it.info.get("debug_build")]:
            print(f"compat: {it.spec}: a debug build, left out (--skip-debug-builds)", file=sys.stderr)
            interps.remove(it)
    jobs = []
    cached: dict[str, dict] = {}
    for it in interps:
        if it.error:
            continue
        mods = [m for m in it.info["modules"] if not args.module or m in args.module]
        it.info["run_modules"] = mods
        cached[it.spec] = {} if args.no_cache else load_cache(cache_dir, it.info["key"])
        for m in mods:
            if m not in cached[it.spec]:
                jobs.append((it, m, "off"))
            if not args.off_only:
                jobs.append((it, m, "on"))
    jobs.sort(key=lambda j: ORDER.index(j[1]) if j[1] in ORDER else len(ORDER))
    results: dict[tuple[str, str, str], dict] = {}
    lock = threading.Lock()

    def run(job):
        it, m, mode = job
        r = run_one(it, m, mode, args.server, args.timeout)
        with lock:
            state = "CRASH " + str(r.get("signal") or r.get("returncode")) if r.get("crash") else \
                f"{r['tests_run']} run, {len(bad_set(r))} failing"
            print(f"  {it.label:<12} {m:<24} {mode:<3} {r['wall']:>6.1f} s  {state}", file=sys.stderr, flush=True)
        return job, r

    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for (it, m, mode), r in pool.map(run, jobs):
            results[(it.spec, m, mode)] = r
    # off results from the cache, and the fresh ones into it
    for it in interps:
        if it.error:
            continue
        fresh = {m: r for (s, m, mode), r in results.items() if s == it.spec and mode == "off" and not r.get("crash")}
        for m, r in cached[it.spec].items():
            if m in it.info["run_modules"]:
                results.setdefault((it.spec, m, "off"), dict(r, cached=True))
        if fresh:
            merged = dict(load_cache(cache_dir, it.info["key"]))
            merged.update(fresh)
            save_cache(cache_dir, it.info["key"], it.info, merged)

    if args.off_only:
        for it in interps:
            if it.error:
                print(f"{it.spec}: {it.error}")
                continue
            offs = [results[(it.spec, m, "off")] for m in it.info["run_modules"]]
            fresh = sum(r["wall"] for r in offs if not r.get("cached"))
            print(f"{it.label}: off only, {sum(r.get('tests_run', 0) for r in offs)} tests, "
                  f"{sum(len(bad_set(r)) for r in offs)} failing, "
                  f"{sum(1 for r in offs if r.get('crash'))} crashed, {fresh:.0f} s run now (rest cached)")
            for r in offs:
                print(f"  {r['module']:<24} {r['wall']:>6.1f} s{' (cached)' if r.get('cached') else ''}"
                      f"{'  CRASH' if r.get('crash') else ''}  {' '.join(sorted(bad_set(r)))}")
        return 0 if all(not it.error for it in interps) else 1

    # differences, confirmed by a second run of both modes (timing-sensitive tests flake)
    recheck = []
    for it in interps:
        if it.error:
            continue
        for m in it.info["run_modules"]:
            off, on = results[(it.spec, m, "off")], results[(it.spec, m, "on")]
            if not off.get("crash") and not on.get("crash") and bad_set(off) != bad_set(on):
                recheck += [(it, m, "off"), (it, m, "on")]
    rerun: dict = {}
    if recheck:
        print(f"compat: {len(recheck) // 2} module(s) differ; running them again to confirm", file=sys.stderr)
        with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for (it, m, mode), r in pool.map(run, recheck):
                rerun[(it.spec, m, mode)] = r

    report = {"interpreters": [], "seconds": 0}
    ok = True
    rows = []
    for it in interps:
        entry: dict = {"spec": it.spec, "pythonpath": it.pythonpath, **it.info, "modules_result": {}}
        if it.error:
            entry["error"] = it.error
            rows.append((it.spec, "-", "-", "-", "-", "-", "-", "ERROR: " + it.error[:60]))
            report["interpreters"].append(entry)
            ok = False
            continue
        n_run = n_off = n_on = 0
        crashes = []
        wall = 0.0
        diffs_on, diffs_off, flaky = [], [], []
        slow = []
        for m in it.info["run_modules"]:
            off, on = results[(it.spec, m, "off")], results[(it.spec, m, "on")]
            wall += on["wall"] + (0 if off.get("cached") else off["wall"])
            if max(on["wall"], off["wall"] if not off.get("cached") else 0) > SLOW_S:
                slow.append(f"{m} {max(on['wall'], off['wall']):.0f} s")
            mres = {"off": {k: v for k, v in off.items() if k != "stderr_tail"}, "on": on}
            for mode, r in (("off", off), ("on", on)):
                if r.get("crash"):
                    crashes.append(f"{m} {mode}: {r.get('signal') or r.get('returncode')} in {r.get('last_test')}")
            if not off.get("crash"):
                n_off += len(bad_set(off))
            if not on.get("crash"):
                n_on += len(bad_set(on))
            # tests in the suite: from the off run (an on run that crashed did not run them all)
            n_run += max(r.get("tests_run", 0) for r in (off, on) if not r.get("crash")) \
                if not (off.get("crash") and on.get("crash")) else 0
            if not off.get("crash") and not on.get("crash"):
                d_on, d_off = bad_set(on) - bad_set(off), bad_set(off) - bad_set(on)
                if (it.spec, m, "on") in rerun:
                    off2, on2 = rerun[(it.spec, m, "off")], rerun[(it.spec, m, "on")]
                    if off2.get("crash") or on2.get("crash"):
                        crashes.append(f"{m} (second run) crashed")
                    else:
                        c_on = d_on & (bad_set(on2) - bad_set(off2))
                        c_off = d_off & (bad_set(off2) - bad_set(on2))
                        flaky += sorted((d_on - c_on) | (d_off - c_off))
                        d_on, d_off = c_on, c_off
                diffs_on += sorted(d_on)
                diffs_off += sorted(d_off)
                mres["only_on"], mres["only_off"] = sorted(d_on), sorted(d_off)
            entry["modules_result"][m] = mres
        verdict = "ok" if not crashes and not diffs_on and not diffs_off else "FAIL"
        ok = ok and verdict == "ok"
        entry.update(tests_run=n_run, failures_off=n_off, failures_on=n_on, crashes=crashes,
                     only_on=diffs_on, only_off=diffs_off, flaky=flaky, seconds=round(wall, 1), slow=slow)
        report["interpreters"].append(entry)
        rows.append((it.label, str(n_run), str(n_off), str(n_on), str(len(crashes)),
                     f"{wall:.0f} s", ", ".join(slow) or "-", verdict))

    total = time.monotonic() - t_start
    report["seconds"] = round(total, 1)
    hdr = ("version", "tests run", "failures off", "failures on", "crashes", "time", "slow modules", "verdict")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(hdr)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(hdr, widths)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"(wall time {total:.0f} s with {args.jobs} jobs; time = sum of this interpreter's runs, off from cache not counted)")
    for e in report["interpreters"]:
        label = e.get("version_short", e["spec"])
        for c in e.get("crashes", []):
            print(f"{label} CRASH {c}")
        for t in e.get("only_on", []):
            print(f"{label} fails only with loopscope: {t}")
        for t in e.get("only_off", []):
            print(f"{label} fails only without loopscope: {t}")
        for t in e.get("flaky", []):
            print(f"{label} flaky (differed once, not on the second run): {t}")
        for m, mr in e.get("modules_result", {}).items():
            for mode in ("off", "on"):
                r = mr[mode]
                if r.get("crash"):
                    print(f"--- {label} {m} {mode}: crashed ({r.get('signal') or r.get('returncode')}), "
                          f"last test started: {r.get('last_test')}; log {r.get('log')}; stderr tail:")
                    print("\n".join(r.get("stderr_tail", "").splitlines()[-25:]))
    if args.report:
        os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
        with open(args.report, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
    if not args.keep and ok:
        shutil.rmtree(workdir, ignore_errors=True)
        for it in interps:
            if it.sid:
                shutil.rmtree(it.host_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
