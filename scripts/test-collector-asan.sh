#!/usr/bin/env bash
# scripts/test-collector-asan.sh — the collector's test suite against an ASan+UBSan build of its C
# extension (collector/src, collector/ext), on one CPython (default: the newest of .venvs/list).
# The interpreter itself is not instrumented: libasan is preloaded, PYTHONMALLOC=malloc sends
# every Python object through it (pymalloc's arenas would hide a use-after-free of an object we
# hold), leaks are not reported (the interpreter keeps memory at exit by design). Any ASan or
# UBSan report aborts the process, which fails the test that ran it.
#   scripts/test-collector-asan.sh [VENV] [-- PYTEST ARGS]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLER="$PWD"
cd "$ROOT"
venv="$(tail -n1 .venvs/list)"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then venv="$1"; shift; fi
# a relative VENV is the caller's; the build below runs in its own directory
case "$venv" in /*) ;; *) venv="$CALLER/$venv" ;; esac
[ -x "$venv/bin/python" ] || { echo "test-collector-asan: no $venv/bin/python"; exit 1; }
[ "${1:-}" = "--" ] && shift
export LOOPSCOPE_SERVER_BIN="${LOOPSCOPE_SERVER_BIN:-$ROOT/build/server/loopscope-server}"
[ -x "$LOOPSCOPE_SERVER_BIN" ] || { echo "test-collector-asan: no server at $LOOPSCOPE_SERVER_BIN (build it first)"; exit 1; }
dir="$ROOT/build-collector/asan-$(basename "$venv")"
"$ROOT/scripts/copy-collector.sh" "$dir"
echo "--- building the extension with ASan+UBSan ($("$venv/bin/python" -V))"
(cd "$dir" && LOOPSCOPE_SANITIZE=1 LOOPSCOPE_WERROR=1 "$venv/bin/python" setup.py -q build_ext --inplace \
   >"$dir.build.log" 2>&1) || { cat "$dir.build.log"; exit 1; }
asan="$(${CC:-gcc} -print-file-name=libasan.so)"
ubsan="$(${CC:-gcc} -print-file-name=libubsan.so)"
[ -f "$asan" ] || { echo "test-collector-asan: no libasan.so ($asan)"; exit 1; }
# children (loopscope run, pytester's subprocesses, the frameworks' apps) inherit all of this
export LD_PRELOAD="$asan:$ubsan" PYTHONMALLOC=malloc PYTHONPATH="$dir"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:print_stacktrace=1:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
cd tests/collector
"$venv/bin/python" -c 'import loopscope._core as c, sys; assert c.__file__.startswith(sys.argv[1]), c.__file__' "$dir" \
  || { echo "test-collector-asan: the instrumented build is not the one imported"; exit 1; }
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" .
rc=$?
echo "test-collector-asan: $([ $rc -eq 0 ] && echo ok || echo FAILED) ($(basename "$venv"))"
exit $rc
