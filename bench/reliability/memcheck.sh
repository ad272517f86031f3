#!/bin/bash
# memcheck.sh — the storage code (writer.c, store*.c) under ASan+UBSan and under valgrind memcheck:
# tests/unit test_writer, test_store and test_store_queries, and tests/integration/test_storage.py + test_service.py
# against the real binary (conftest.py runs it under $LOOPSCOPE_SERVER_WRAPPER).
#
#   bench/reliability/memcheck.sh            # both; asan or valgrind as $1 for one
#   bench/reliability/memcheck.sh whole      # every C suite and all of tests/integration + tests/schema
#                                            # under valgrind (the issue's "whole suite" figure; ~1 h)
#
# Builds build-asan (ASan+UBSan, Debug) and build (release) when needed. Exit status 0 when every
# suite passed and no sanitizer or memcheck report was written. Under valgrind the integration
# tests take ~7 min on 2 cores (conftest.py multiplies its timeouts by 10 under a wrapper).
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${MEMCHECK_OUT:-$(mktemp -d /tmp/ls-memcheck-XXXX)}
mkdir -p "$OUT"
what=${1:-both}
fail=0
PY="$(head -n1 .venvs/list 2>/dev/null)/bin/python"
[ -x "$PY" ] || PY=python3
SUITES="../tests/integration/test_storage.py ../tests/integration/test_service.py"

if [ "$what" = asan ] || [ "$what" = both ]; then
  cmake -S . -B build-asan -DLOOPSCOPE_SANITIZE=ON -DLOOPSCOPE_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
    cmake --build build-asan -j2 >/dev/null || exit 2
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1:log_path=$OUT/asan-report
  for t in test_writer test_store test_store_queries; do
    (cd build-asan && CK_FORK=no ./tests/$t >"$OUT/asan-$t.log" 2>&1) || fail=1
    echo "asan $t: $(tail -1 "$OUT/asan-$t.log")"
  done
  (cd build-asan && LOOPSCOPE_SERVER=$ROOT/build-asan/server/loopscope-server \
     "$PY" -m pytest -q -p no:cacheprovider $SUITES >"$OUT/asan-integration.log" 2>&1) || fail=1
  echo "asan integration: $(tail -1 "$OUT/asan-integration.log")"
  if ls "$OUT"/asan-report* >/dev/null 2>&1; then echo "asan reports: $(ls "$OUT"/asan-report*)"; fail=1; else echo "asan reports: none"; fi
  unset UBSAN_OPTIONS ASAN_OPTIONS
fi

if [ "$what" = whole ]; then
  SUITES="../tests/integration ../tests/schema"
  cmake -S . -B build >/dev/null && cmake --build build -j2 >/dev/null || exit 2
fi

if [ "$what" = valgrind ] || [ "$what" = both ] || [ "$what" = whole ]; then
  cmake -S . -B build >/dev/null && cmake --build build -j2 >/dev/null || exit 2
  VG="valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --track-origins=yes"
  tests="test_writer test_store test_store_queries"
  [ "$what" = whole ] && tests=$(cd build/tests && ls test_* | grep -v '\.' | tr '\n' ' ')
  for t in $tests; do
    (cd build && CK_FORK=no LS_TEST_TIMEOUT_S=600 $VG --log-file="$OUT/vg-$t.log" ./tests/$t >"$OUT/vg-$t.out" 2>&1) || fail=1
    echo "valgrind $t: $(tail -1 "$OUT/vg-$t.out"); $(grep -h 'ERROR SUMMARY' "$OUT/vg-$t.log" | sed 's/==[0-9]*== //')"
  done
  (cd build && LOOPSCOPE_SERVER=$ROOT/build/server/loopscope-server \
     LOOPSCOPE_SERVER_WRAPPER="$VG --log-file=$OUT/vg-server-%p.log" \
     LOOPSCOPE_FAULT_SHIM=$ROOT/build/tests/libls_fault_shim.so \
     "$PY" -m pytest -q -p no:cacheprovider $SUITES >"$OUT/vg-integration.log" 2>&1) || fail=1
  echo "valgrind integration: $(tail -1 "$OUT/vg-integration.log")"
  echo "valgrind servers: $(ls "$OUT"/vg-server-*.log | wc -l) runs;" \
       "$(grep -h 'ERROR SUMMARY' "$OUT"/vg-server-*.log | sed 's/==[0-9]*== //' | sort | uniq -c)"
  grep -L 'ERROR SUMMARY: 0 errors' "$OUT"/vg-server-*.log | grep -q . && fail=1
fi
echo "logs in $OUT"
[ $fail = 0 ] && echo OK || echo FAILED
exit $fail
