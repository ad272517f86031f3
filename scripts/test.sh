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
# schema_docs (schemathesis against the OpenAPI document: ~90 s of one core) runs once, in the
# sanitizer build below, where the same generated requests also meet ASan and UBSan; what it
# checks (the answers' shapes) does not depend on the build. Every suite after the ctest runs
# serves its tests from this release binary.
step "ctest (release)"               ctest_in build -E '^schema_docs$'

# One debug build carries both ASan+UBSan and gcov: the suite runs once under the sanitizers and
# that run's line counts are the coverage figure (a separate coverage build ran every test a
# third time: 5-7 minutes of a CI run on two cores).
step "build (ASan+UBSan, coverage)"  build build-asan -DLOOPSCOPE_SANITIZE=ON -DLOOPSCOPE_COVERAGE=ON -DLOOPSCOPE_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug
sanitized_coverage() {
  find build-asan -name '*.gcda' -delete
  ctest_in build-asan || return 1
  gcovr -r . --filter 'server/' --object-directory build-asan --print-summary \
        --txt artifacts/coverage-server.txt --fail-under-line 90 build-asan
  local rc=$?
  tail -n 4 artifacts/coverage-server.txt
  return $rc
}
step "ctest (ASan+UBSan) and server line coverage >= 90%"  sanitized_coverage

# The Python and browser suites in two chains side by side: the collector suite and then the
# compatibility gate (which runs the loopscope the collector suite installed into every venv), and
# beside them the framework suite and then the page in Chromium. The second chain mostly waits on
# its servers and browser (fc16: 59 s wall for 29 s of CPU, 144 s for 85 s), the first leaves a
# core's fraction free (331 s for 529 s; the gate 162 s for 143 s): together they took 696 s one
# after the other. The page's fastapi-debug-toolbar test runs the newest .venvs venv's loopscope,
# which the collector suite installs first thing: that chain waits for its marker (or the end of
# the collector suite, if the install failed). Its output is printed after the first chain's.
rm -f build-collector/*.installed
BG="$(mktemp -d)"
newest_installed="build-collector/$(basename "$(tail -n1 .venvs/list)").installed"
(
  passed=0; failed=0; failed_names=(); TIMES="$BG/times"
  [ -x scripts/test-frameworks.sh ] && step "frameworks + litestar-debug-toolbar" scripts/test-frameworks.sh
  if [ -x scripts/test-web.sh ]; then
    while [ ! -e "$newest_installed" ] && [ ! -e "$BG/collector.done" ]; do sleep 1; done
    step "page in headless Chromium"   scripts/test-web.sh
  fi
  { echo "$passed"; echo "$failed"; printf '%s\n' "${failed_names[@]}"; } > "$BG/result"
) > "$BG/out" 2>&1 &
second_chain=$!
if [ -x scripts/test-collector.sh ]; then
  step "collector (every CPython)"   scripts/test-collector.sh
fi
touch "$BG/collector.done"
if [ -x scripts/test-compat.sh ]; then
  step "asyncio compatibility gate (CPython's suites off/on)" scripts/test-compat.sh
fi
t0=$SECONDS
wait "$second_chain"
echo; echo "=== (the framework and page suites ran beside the two above; waited $((SECONDS-t0)) s more for them)"
cat "$BG/out"
if [ -s "$BG/result" ]; then
  { read -r p; read -r f; mapfile -t names; } < "$BG/result"
  passed=$((passed + p)); failed=$((failed + f))
  for n in "${names[@]}"; do [ -n "$n" ] && failed_names+=("$n"); done
else
  failed=$((failed + 1)); failed_names+=("framework and page suites (no result)")
fi
rm -rf "$BG"

echo
if ((failed)); then echo "failed suites: ${failed_names[*]}"; fi
echo "suites: $passed passed, $failed failed"
((failed == 0))
