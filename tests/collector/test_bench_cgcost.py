# test_bench_cgcost.py — bench/overhead/cgcost.py's model on two small hand-written callgrind
# profiles whose answer is worked out here, and bench/overhead/memlat.c compiling warning-free.
# The README's figures come from these two programs; a wrong group, a swapped miss count or a
# mis-fitted CPI would put numbers there that no run measured.
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CGCOST = ROOT / "bench" / "overhead" / "cgcost.py"
MEMLAT = ROOT / "bench" / "overhead" / "memlat.c"

EVENTS = "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n"
OURS = "/venv/lib/loopscope/_core.cpython-313-x86_64-linux-gnu.so"
MSGSPEC = "/venv/lib/msgspec/_core.cpython-313-x86_64-linux-gnu.so"  # same file name, not ours


def _profile(d: pathlib.Path, mode: str, functions: list) -> None:
    """mode.cg.1 names the functions (callgrind's compressed names), mode.cg.2 holds their costs
    by number, as a dump after a first part does: (object, function, Ir, I1mr, D1mr, ILmr, DLmr)."""
    part1, part2 = [EVENTS], [EVENTS]
    for i, (obj, fn, *_c) in enumerate(functions, 1):
        part1 += [f"ob=({i}) {obj}\n", f"fn=({i}) {fn}\n", "0 0 0 0 0 0 0 0 0 0\n"]
    for i, (_o, _f, ir, i1, d1, il, dl) in enumerate(functions, 1):
        # a call line's inclusive cost is not the caller's own: cgcost must skip it
        part2 += [f"ob=({i})\n", f"fn=({i})\n", f"3 {ir} 0 0 {i1} {d1} 0 {il} {dl} 0\n",
                  f"cfn=({i})\n", "calls=1 0\n", "3 999999 0 0 9999 9999 0 999 999 0\n"]
    (d / f"{mode}.cg.1").write_text("".join(part1))
    (d / f"{mode}.cg.2").write_text("".join(part2))


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CGCOST), *map(str, args)], capture_output=True, text=True, timeout=60)


@pytest.fixture()
def profiles(tmp_path: pathlib.Path) -> pathlib.Path:
    eval_ = ("/usr/lib/libpython3.13.so.1.0", "_PyEval_EvalFrameDefault", 1_000_000, 10_000, 5_000, 100, 200)
    _profile(tmp_path, "off", [eval_])
    _profile(tmp_path, "on", [
        eval_,
        (OURS, "mod_request_open", 3_000, 300, 100, 10, 5),      # the session's
        (OURS, "handle_run", 6_000, 600, 0, 0, 0),               # a step's
        (MSGSPEC, "msgspec_json_encode", 500, 0, 0, 0, 0),       # the app's, despite its file name
    ])
    return tmp_path


def test_the_model_prices_each_group_and_the_ratio(profiles):
    r = _run(profiles, "--requests", 10, "--cpi", 0.5, "--l1", 10, "--ll", 40, "--ghz", 1)
    assert r.returncode == 0, r.stderr
    lines = {ln.split("  ")[0].strip(): ln for ln in r.stdout.splitlines()}
    # off: 0.5 x 1e6 + 10 x 15,000 + 40 x 300 = 662,000 cycles; on adds 6,100 + 9,000 + 250
    assert lines["off"].split()[1:] == ["1,000,000", "15,000", "300", "0.7"], r.stdout
    assert lines["on"].split()[1:] == ["1,009,500", "16,000", "315", "0.7"], r.stdout
    assert "model's ratio on/off: 1.023x" in r.stdout, r.stdout
    # per request (/10): 300 instructions, 40 L1 misses, 1.5 L2 misses: 150 + 400 + 60 = 610 ns
    assert lines["session (per request)"].split()[-7:] == ["300", "40.0", "1.5", "150", "400", "60", "610"], r.stdout
    assert lines["step (per step and await)"].split()[-7:] == ["600", "60.0", "0.0", "300", "600", "0", "900"], r.stdout
    # msgspec's _core is the app's, not the collector's
    assert lines["interpreter and app (net)"].split()[-7:] == ["50", "0.0", "0.0", "25", "0", "0", "25"], r.stdout


def test_cpi_is_fitted_to_the_measured_off_time(profiles):
    # 0.662 ms at 1 GHz is 662,000 cycles, of which the misses are 162,000: 0.5 an instruction
    r = _run(profiles, "--requests", 10, "--off-ms", 0.662, "--l1", 10, "--ll", 40, "--ghz", 1)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("model: 0.500 cycles an instruction"), r.stdout
    assert "model's ratio on/off: 1.023x" in r.stdout, r.stdout


def test_an_off_time_shorter_than_the_misses_is_refused(profiles):
    r = _run(profiles, "--off-ms", 0.1, "--l1", 10, "--ll", 40, "--ghz", 1)
    assert r.returncode == 2
    assert "does not fit this run" in r.stderr and "CPI would be" in r.stderr, r.stderr


def test_a_missing_profile_is_named(tmp_path):
    r = _run(tmp_path, "--cpi", 0.5, "--l1", 10, "--ll", 40, "--ghz", 1)
    assert r.returncode == 2
    assert f"no such profile: {tmp_path / 'off.cg.2'}" in r.stderr, r.stderr


def test_memlat_compiles_warning_free(tmp_path):
    r = subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(tmp_path / "memlat"),
                        str(MEMLAT)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
