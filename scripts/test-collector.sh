#!/usr/bin/env bash
# scripts/test-collector.sh — the collector's tests under every CPython in .venvs/list and, inside
# the Debian sid root, .venvs-sid/list (3.14, 3.15, 3.14's debug build): builds and
# installs loopscope from a per-version copy of collector/ (no build artifacts shared between
# versions), runs tests/collector with pytest against the real server (LOOPSCOPE_SERVER_BIN,
# default build/server/loopscope-server); the newest host Python's run is the coverage run (a
# --coverage build of the extension, under coverage.py): prints line coverage of the collector's
# C (gcovr) and Python code and fails under 90%. Exits non-zero if anything fails.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export LOOPSCOPE_SERVER_BIN="${LOOPSCOPE_SERVER_BIN:-$ROOT/build/server/loopscope-server}"
[ -x "$LOOPSCOPE_SERVER_BIN" ] || { echo "test-collector: no server at $LOOPSCOPE_SERVER_BIN (build it first)"; exit 1; }
[ -s .venvs/list ] || { echo "test-collector: no venvs (run scripts/deps.sh)"; exit 1; }
WORK="$ROOT/build-collector"
mkdir -p "$WORK" artifacts
failed=()

# Our own builds fail on any compiler warning (setup.py adds -Werror only when asked: never in a
# user's pip install, where a newer compiler's new warning must not break the install).
export LOOPSCOPE_WERROR=1

# Coverage: the newest host Python's run is also the coverage run (a separate, eighth run of the
# suite was ~145 s of the CI's longest lane): after its venv's pip install (which is what the
# marker for scripts/test.sh and the compatibility gate use), the suite runs once with the
# extension built in place with gcov and the package from there, under coverage.py, and prints line
# coverage of the collector's C and Python code, failing under 90%. Its failures go to FAILED.
coverage_suite() { # coverage_suite VENV FAILED
  local venv="$1" out="$2" cov="$WORK/coverage" c_rc bad=()
  "$ROOT/scripts/copy-collector.sh" "$cov"
  echo "(this run is the coverage run: the extension built in place with --coverage, under coverage.py)"
  if ! (cd "$cov" && LOOPSCOPE_COVERAGE=1 "$venv/bin/python" setup.py -q build_ext --inplace >"$cov.build.log" 2>&1); then
    cat "$cov.build.log"; echo "coverage build" >> "$out"; return
  fi
  find "$cov" -name '*.gcda' -delete
  rm -f "$cov"/.coverage*
  # `loopscope run` and the pytest plugin are tested in child processes (the CLI as users start
  # it, pytester's runpytest_subprocess): coverage follows them (patch = subprocess, coverage
  # >= 7.10) and the children's data files are combined before the report.
  cat > "$cov/coveragerc" <<RC
[run]
source = $cov/loopscope
patch = subprocess
parallel = true
data_file = $cov/.coverage
RC
  # sys.monitoring, not a trace function: while a thread has a trace function the C Handle._run
  # gives way to asyncio's own (step.c), and this run would not measure or test it
  if ! (cd tests/collector && PYTHONPATH="$cov" COVERAGE_RCFILE="$cov/coveragerc" COVERAGE_CORE=sysmon \
        "$venv/bin/python" -m coverage run -m pytest -q -p no:cacheprovider .); then
    bad+=("tests under coverage")
  fi
  COVERAGE_RCFILE="$cov/coveragerc" "$venv/bin/python" -m coverage combine -q "$cov" || bad+=("coverage combine")
  echo "C line coverage (collector/src, collector/ext):"
  gcovr -r "$cov" --filter "$cov/src/" --filter "$cov/ext/" --object-directory "$cov" --print-summary \
        --txt "$ROOT/artifacts/coverage-collector-c.txt" --fail-under-line 90 "$cov" >/dev/null
  c_rc=$?
  sed -n '1,200p' "$ROOT/artifacts/coverage-collector-c.txt" | grep -E '^(src|ext)/|^TOTAL|^lines' || true
  ((c_rc == 0)) || bad+=("C coverage < 90%")
  # the litestar-debug-toolbar panel cannot be imported beside fastapi-debug-toolbar: its lines
  # are measured by scripts/test-frameworks.sh, in the venvs that have that toolbar
  echo "Python line coverage (collector/loopscope, but litestar_toolbar.py and _ldt_embed.py):"
  if ! COVERAGE_RCFILE="$cov/coveragerc" "$venv/bin/python" -m coverage report --fail-under=90 \
       --omit='*/loopscope/litestar_toolbar.py,*/loopscope/_ldt_embed.py' | tee "$ROOT/artifacts/coverage-collector-py.txt"; then
    bad+=("Python coverage < 90%")
  fi
  ((${#bad[@]} == 0)) || printf '%s\n' "${bad[@]}" >> "$out"
}

# venvs of .venvs/list run here; those of .venvs-sid/list (CPython 3.14, 3.15 and 3.14's debug
# build, from Debian sid) run inside the sid root, which sees the work tree at the same path.
# Four lanes run side by side, because the suite is mostly waiting on its own server and programs,
# and the tests hold on a loaded machine: the debug build alone (the slowest: 925 s beside a CPU
# hog, 3.5x a release interpreter), the other sid interpreters, and the host list split in two
# (every other line, oldest first: 3.10 + 3.12, 3.11 + 3.13). The newest host Python's run is
# the coverage run, the slowest of the host runs, and it comes last in its lane: started first,
# beside all the others, it took 355 s (fc26) against 145 s at the end of the suite. Each venv's
# output is kept in its own log and printed in order once every lane is done.
run_venv() { # run_venv WHERE VENV: build, install and test in one venv; output to $WORK/NAME.log
  local where="$1" venv="$2" run=() name ver dir
  name="$(basename "$venv")"
  [ "$where" = sid ] && run=("$ROOT/scripts/sid-chroot.sh" run)
  {
    if ! "${run[@]}" "$venv/bin/python" -c 1 2>/dev/null; then
      echo "--- $venv: cannot run it"; echo "$venv" > "$WORK/$name.failed"; return
    fi
    ver="$("${run[@]}" "$venv/bin/python" -c 'import sys; print("%d.%d%s" % (sys.version_info[:2] + ("d" if hasattr(sys, "gettotalrefcount") else "",)))')"
    echo "--- Python $ver ($where)"
    dir="$WORK/$name"
    "$ROOT/scripts/copy-collector.sh" "$dir"
    if ! "${run[@]}" "$venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall --no-deps "$dir" >"$dir.build.log" 2>&1; then
      cat "$dir.build.log"; echo "build $ver" > "$WORK/$name.failed"; return
    fi
    touch "$WORK/$name.installed" # for scripts/test.sh: this venv's loopscope is in place for good
    # setup.py falls back to a plain build rather than fail a user's install; ours must be the
    # profile-guided one users get (pip -q hides its warning: the module says how it was built)
    if ! (cd / && "${run[@]}" "$venv/bin/python" -c 'import loopscope._core as c, sys; sys.exit(c.BUILD != "pgo")'); then
      echo "--- Python $ver: loopscope._core is not the profile-guided build (pip install -v $dir says why)"
      echo "pgo $ver" > "$WORK/$name.failed"; return
    fi
    if [ "$where:$venv" = "host:$COV_VENV" ]; then
      coverage_suite "$venv" "$WORK/$name.failed"
    elif ! (cd tests/collector && "${run[@]}" "$venv/bin/python" -m pytest -q -p no:cacheprovider .); then
      echo "tests $ver" > "$WORK/$name.failed"
    fi
  } > "$WORK/$name.log" 2>&1
}
lane() { # lane WHERE LIST [NTH] [debug|release]: every venv of LIST (with NTH = 0 or 1, every other one
  # of the list, oldest first; with debug/release, only the venvs named *d / not), in turn
  local venv i=0
  while read -r venv; do
    [ -n "$venv" ] || continue
    case "${4:-}:$venv" in debug:*d|release:*[!d]|:*) ;; *) continue ;; esac
    if [ -z "${3:-}" ] || [ $((i % 2)) -eq "$3" ]; then run_venv "$1" "$venv"; fi
    i=$((i + 1))
  done < "$2"
}
COV_VENV="$(tail -n1 .venvs/list)"
order=()
while read -r venv; do [ -n "$venv" ] && order+=("$venv"); done < <(cat .venvs/list; [ -s .venvs-sid/list ] && cat .venvs-sid/list)
for venv in "${order[@]}"; do rm -f "$WORK/$(basename "$venv")".{failed,log,installed}; done
lane host .venvs/list 0 &
host_lane0=$!
lane host .venvs/list 1 &
host_lane1=$!
sid_debug=""
if [ -s .venvs-sid/list ]; then
  lane sid .venvs-sid/list "" debug &
  sid_debug=$!
  lane sid .venvs-sid/list "" release
fi

wait "$host_lane0" "$host_lane1" $sid_debug
for venv in "${order[@]}"; do
  name="$(basename "$venv")"
  cat "$WORK/$name.log" 2>/dev/null || echo "--- $venv: no log"
  if [ -f "$WORK/$name.failed" ]; then mapfile -t why < "$WORK/$name.failed"; failed+=("${why[@]}"); fi
done

if ((${#failed[@]})); then echo "test-collector: FAILED: ${failed[*]}"; exit 1; fi
echo "test-collector: ok"
