#!/bin/bash
# fuzz_rate.sh — how fast two builds of one fuzz target run the same inputs, measured in
# alternation on the same machine (a baseline from the same run, as bench/ requires). The
# binaries are tests/fuzz targets linked with replay_main.c (its deterministic mutants: the same
# inputs for both builds, unlike libFuzzer, whose mutations follow each build's coverage), built
# as libfuzzer.sh builds them (ASan+UBSan, coverage instrumentation, -O2) against
# libclang_rt.fuzzer_no_main. Prints seconds and inputs/s per round and B/A.
#
#   bench/reliability/fuzz_rate.sh A_BINARY B_BINARY CORPUS_DIR [MUTANTS [ROUNDS]]
#
# Building such a binary from a build-libfuzzer-rel tree (what the commit message quotes):
#   clang-14 <libfuzzer.sh's C flags> -Iserver -Icommon -Itests/fuzz tests/fuzz/fuzz_gzip.c \
#     tests/fuzz/replay_main.c build-libfuzzer-rel/server/liblsserver.a ... \
#     /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a -lstdc++ ...
set -u
A=$1 B=$2 CORPUS=$3 N=${4:-20000} ROUNDS=${5:-3}
one() { # binary seed -> seconds
  local start end
  start=$(date +%s.%N)
  "$1" -n "$N" -s "$2" -t 3600 -o /tmp "$CORPUS" >/dev/null 2>&1 || { echo "$1 failed" >&2; return 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}
echo "round  A_s      B_s      A_inputs/s  B_inputs/s  B/A (speed-up)"
for r in $(seq 1 "$ROUNDS"); do
  ta=$(one "$A" "$r") || exit 1
  tb=$(one "$B" "$r") || exit 1
  printf "%5d  %7.2f  %7.2f  %10.0f  %10.0f  %5.2f\n" "$r" "$ta" "$tb" \
    "$(echo "$N / $ta" | bc -l)" "$(echo "$N / $tb" | bc -l)" "$(echo "$ta / $tb" | bc -l)"
done
