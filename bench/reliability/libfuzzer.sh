#!/bin/bash
# libfuzzer.sh — the tests/fuzz targets under libFuzzer (clang, coverage-guided) with ASan+UBSan,
# each until --runs executions or --seconds, whichever first; prints executions, rate, coverage
# and artifacts per target. Needs clang-14 and libclang-rt-14-dev (tests/fuzz/README.md).
#
#   bench/reliability/libfuzzer.sh [RUNS [SECONDS [TARGETS]]]
#   # default 10000000 3600 "ingest query gzip routes"; targets run one after the other
#
# The build (build-libfuzzer-rel) is RelWithDebInfo (-O2: ~4x the executions of the Debug
# recipe in tests/fuzz/README.md) with UBSan's pointer-overflow check off: clang reports
# NULL + 0 in lod.c and query.c's timeline at once otherwise (tests/fuzz/crashes/README.md;
# docs/RELIABILITY.md has the second site). Corpora grow in $FUZZ_OUT/corpus-<target> (kept
# between runs: a second run continues); crash-*/leak-*/timeout-* files there are findings
# (slow-unit-* only say an input took > 10 s, e.g. when the machine was busy).
#
# FUZZ_FORK=N runs N libFuzzer workers (-fork=N: one run, RUNS counts the executions of all).
# FUZZ_GZIP_STEP=BYTES builds server/gzip_body.c with that inflate step instead of 64 KiB
# (GZIP_BODY_STEP, in its own build directory, with its own corpus directory): fuzz_gzip's sizes
# are in steps, so the same edges cost fewer bytes (docs/RELIABILITY.md says which runs used it).
set -u
cd "$(dirname "$0")/../.."
RUNS=${1:-10000000}
SECS=${2:-3600}
TARGETS=${3:-"ingest query gzip routes"}
OUT=${FUZZ_OUT:-/tmp/ls-libfuzzer}
B=build-libfuzzer-rel
STEP_FLAG=
SUFFIX=
if [ -n "${FUZZ_GZIP_STEP:-}" ]; then
  case $FUZZ_GZIP_STEP in *[!0-9]*) echo "FUZZ_GZIP_STEP: expected a number of bytes" >&2; exit 2 ;; esac
  B=$B-step$FUZZ_GZIP_STEP
  STEP_FLAG=" -DGZIP_BODY_STEP=$FUZZ_GZIP_STEP"
  SUFFIX=-step$FUZZ_GZIP_STEP
fi
FORK=${FUZZ_FORK:-}
mkdir -p "$OUT"
if [ ! -f $B/CMakeCache.txt ]; then
  CC=${CC:-clang-14} cmake -S . -B $B -DLOOPSCOPE_SANITIZE=OFF -DLOOPSCOPE_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOPSCOPE_LIBFUZZER=ON \
    "-DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=pointer-overflow -fno-sanitize-recover=all$STEP_FLAG" \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined >/dev/null || exit 2
fi
# Always brought up to date (a no-op when nothing changed): a stale binary would fuzz old code.
# One target per call: when a CMakeLists.txt changed, the first call reconfigures, and targets
# named in that same call were looked up in the old makefiles.
for t in $TARGETS; do
  cmake --build $B -j2 --target fuzz_$t >/dev/null || exit 2
done
status=0
for t in $TARGETS; do
  n=$t$SUFFIX
  mkdir -p "$OUT/corpus-$n" "$OUT/artifacts-$n"
  $B/tests/fuzz/fuzz_$t -runs="$RUNS" -max_total_time="$SECS" -print_final_stats=1 ${FORK:+-fork=$FORK} \
    -dict=tests/fuzz/$t.dict -artifact_prefix="$OUT/artifacts-$n/" \
    "$OUT/corpus-$n" tests/fuzz/corpus/$t >"$OUT/$n.log" 2>&1
  rc=$?
  # one process: "Done N runs in S second(s)"; -fork: "fuzzed for N iterations" and "exiting: 0 time: Ss"
  done_line=$(grep -a '^Done \|^INFO: fuzzed for \|^INFO: exiting: ' "$OUT/$n.log" | tail -2 | tr '\n' ' ')
  cov=$(grep -a -o 'cov: [0-9]* ft: [0-9]*' "$OUT/$n.log" | tail -1)
  found=$(ls "$OUT/artifacts-$n" | grep -v '^slow-unit-' | wc -l)
  echo "fuzz_$n: exit $rc; ${done_line:-no 'Done' line (stopped on a finding?)}; $cov; findings: $found (in $OUT/artifacts-$n)"
  [ "$rc" = 0 ] && [ "$found" = 0 ] || status=1
done
exit $status
