#!/usr/bin/env bash
# scripts/test.sh — build everything and run every test: C unit suites and server integration
# tests (ctest) in a normal, a sanitizer (ASan+UBSan) and a coverage build; the collector's
# tests under every CPython >= 3.10 (3.14, 3.15 and 3.14-dbg in the Debian sid root); the middleware
# on Litestar, Starlette and FastAPI and litestar-debug-toolbar's panel (oldest and newest host
# CPython, .venvs-fw/); CPython's own asyncio suites without and with loopscope (the compatibility
# gate); the page in headless Chromium.
# Installs what is missing first (scripts/deps.sh). Exits non-zero if any suite fails.
set -uo pipefail
# Python may write .pyc files: with PYTHONDONTWRITEBYTECODE set (as in some CI images) every one
# of the suite's ~200 Python processes compiled every module it imported, pytest's plugins included
# (pytest on one empty test: 5.7 s of CPU without .pyc files, 2.0 s with them, 3.12).
unset PYTHONDONTWRITEBYTECODE
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="$(nproc 2>/dev/null || echo 2)"
mkdir -p artifacts

scripts/deps.sh || { echo "test: dependency install failed"; exit 1; }
PY="$(head -n1 .venvs/list)/bin/python"

passed=0; failed=0; failed_names=()
TIMES="$(mktemp)"; trap 'rm -f "$TIMES"' EXIT
cpu_now() { # CPU=seconds (user + system) of every finished child of this shell so far: `times`
  # runs in this shell, not in a pipe's or $(...)'s subshell, whose children are none of these
  times > "$TIMES"
  CPU="$(awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%d", n }' "$TIMES")"
}
step() { # step NAME COMMAND...: run one suite, record its result, its wall time and CPU time
  local name="$1"; shift
  echo; echo "=== $name"
  local t0=$SECONDS c0 took
  cpu_now; c0=$CPU
  if "$@"; then passed=$((passed+1)); took="ok";
  else failed=$((failed+1)); failed_names+=("$name"); took="FAILED"; fi
  cpu_now
  echo "=== $name: $took ($((SECONDS-t0)) s, CPU $((CPU-c0)) s)"
}
build() { # build DIR CMAKE_ARGS...
  local dir="$1"; shift
  cmake -S . -B "$dir" -DLOOPSCOPE_PYTHON="$PY" "$@" >/dev/null && cmake --build "$dir" -j"$JOBS" 2>&1 | grep -Ev '^\[ *[0-9]+%\]' 
  return "${PIPESTATUS[0]}"
}
# ctest runs twice as many tests as cores at once: the integration files (one ctest test each)
# mostly wait on a server or a timeout; those that load the machine on purpose hold a lock.
ctest_in() { (cd "$1" && ctest --output-on-failure -j"$((JOBS * 2))" --timeout 600 "${@:2}"); }

step "build (release, -Werror)"      build build -DLOOPSCOPE_WERROR=ON

# Everything after the release build runs in three chains side by side. Each suite spends much
# of its time waiting on its servers, timers, child programs and browser: one after the other
# they kept the two cores ~55% busy (fc34: release ctest 144 s wall for 157 s of CPU, the
# sanitizer ctest 467 s for 531 s, whose four machine-loading tests hold one lock and run one
# after the other, the collector suite 566 s for 416 s beside the framework and page suites).
#   chain 1: ctest on the release build, then the ASan+UBSan/coverage build and its ctest;
#   chain 2 (in front): the collector under every CPython, then the compatibility gate (which runs
#            the loopscope the collector suite installed into every venv);
#   chain 3: the framework suite, then the page in Chromium (its fastapi-debug-toolbar test runs
#            the newest .venvs venv's loopscope, which the collector suite installs first thing:
#            it waits for that marker, or the end of the collector suite if the install failed).
# Chains 1 and 3 print their output after chain 2's, in that order. The suites after the ctest runs
# serve their tests from the release binary, which no chain rebuilds.

# schema_docs (schemathesis against the OpenAPI document: ~90 s of one core) runs once, in the
# sanitizer build, where the same generated requests also meet ASan and UBSan; what it checks
# (the answers' shapes) does not depend on the build.
release_ctest() { ctest_in build -E '^schema_docs$'; }
# One debug build carries both ASan+UBSan and gcov: the suite runs once under the sanitizers and
# that run's line counts are the coverage figure (a separate coverage build ran every test a
# third time: 5-7 minutes of a CI run on two cores).
# The Check suites' waits (a flush, an answer: check_wait_ms) and their per-test timeouts are
# bounds, not measurements: under the sanitizers beside a CPU hog (fc41) the flush of 3.6 MB
# through the in-process server outlasted its 30 s, so here they are 120 s and 3x.
sanitized_coverage() {
  find build-asan -name '*.gcda' -delete
  LS_TEST_TIMEOUT_S=120 CK_TIMEOUT_MULTIPLIER=3 ctest_in build-asan || return 1
  gcovr -r . --filter 'server/' --object-directory build-asan --print-summary \
        --txt artifacts/coverage-server.txt --fail-under-line 90 build-asan
  local rc=$?
  tail -n 4 artifacts/coverage-server.txt
  return $rc
}

BG="$(mktemp -d)"
rm -f build-collector/*.installed
newest_installed="build-collector/$(basename "$(tail -n1 .venvs/list)").installed"
in_background() { # in_background ID FUNCTION: FUNCTION's steps in a subshell, their output and
  # result (passed, failed, failed names) in $BG/ID.out and $BG/ID.result
  local id="$1" fn="$2"
  (
    passed=0; failed=0; failed_names=(); TIMES="$BG/$id.times"
    "$fn"
    { echo "$passed"; echo "$failed"; printf '%s\n' "${failed_names[@]}"; } > "$BG/$id.result"
  ) > "$BG/$id.out" 2>&1 &
}
collect() { # collect ID WHAT: print a background chain's output and add its result to ours
  local id="$1" what="$2" p f names n
  cat "$BG/$id.out"
  if [ -s "$BG/$id.result" ]; then
    { read -r p; read -r f; mapfile -t names; } < "$BG/$id.result"
    passed=$((passed + p)); failed=$((failed + f))
    for n in "${names[@]}"; do [ -n "$n" ] && failed_names+=("$n"); done
  else
    failed=$((failed + 1)); failed_names+=("$what (no result)")
  fi
}

chain_c_suites() {
  step "ctest (release)"               release_ctest
  step "build (ASan+UBSan, coverage)"  build build-asan -DLOOPSCOPE_SANITIZE=ON -DLOOPSCOPE_COVERAGE=ON -DLOOPSCOPE_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug
  step "ctest (ASan+UBSan) and server line coverage >= 90%"  sanitized_coverage
}
chain_browser() {
  [ -x scripts/test-frameworks.sh ] && step "frameworks + litestar-debug-toolbar" scripts/test-frameworks.sh
  if [ -x scripts/test-web.sh ]; then
    while [ ! -e "$newest_installed" ] && [ ! -e "$BG/collector.done" ]; do sleep 1; done
    step "page in headless Chromium"   scripts/test-web.sh
  fi
  # the collector's suite once more against an ASan+UBSan build of its C extension, on the newest
  # host CPython: after the page's wait, so that venv's own install is done before it starts
  while [ ! -e "$newest_installed" ] && [ ! -e "$BG/collector.done" ]; do sleep 1; done
  step "collector under ASan+UBSan (newest host CPython)" scripts/test-collector-asan.sh
}
in_background c_suites chain_c_suites
in_background browser chain_browser

if [ -x scripts/test-collector.sh ]; then
  step "collector (every CPython)"   scripts/test-collector.sh
fi
touch "$BG/collector.done"
if [ -x scripts/test-compat.sh ]; then
  step "asyncio compatibility gate (CPython's suites off/on)" scripts/test-compat.sh
fi
t0=$SECONDS
wait
echo; echo "=== (the C suites and the framework and page suites ran beside the two above; waited $((SECONDS-t0)) s more for them)"
collect c_suites "C suites"
collect browser "framework and page suites"
rm -rf "$BG"

echo
if ((failed)); then echo "failed suites: ${failed_names[*]}"; fi
echo "suites: $passed passed, $failed failed"
((failed == 0))
