#!/usr/bin/env bash
# scripts/bench.sh — builds build/ in Release and runs both server benchmarks, bench_ingest
# (end-to-end vs raw SQLite) and bench/query, printing their figures (see bench/README.md).
# Extra arguments go to bench_ingest; BUILD_DIR=dir picks another build directory.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="$(nproc 2>/dev/null || echo 2)"

B="${BUILD_DIR:-build}"
# build/ is also scripts/test.sh's: put its build type and -Werror setting back afterwards (an
# empty type means the top-level default, RelWithDebInfo), and build the benchmark without
# -Werror (-O3 finds warnings -O2 does not; they are not the benchmark's business)
cached() { grep -s "^$1:" "$B/CMakeCache.txt" | cut -d= -f2-; }
prev_type="$(cached CMAKE_BUILD_TYPE)"; prev_werror="$(cached LOOPSCOPE_WERROR)"
restore() {
  cmake -S . -B "$B" -DCMAKE_BUILD_TYPE="$prev_type" -DLOOPSCOPE_WERROR="${prev_werror:-ON}" >/dev/null
}
trap restore EXIT
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DLOOPSCOPE_WERROR=OFF -DLOOPSCOPE_BENCH=ON >/dev/null || exit 1
cmake --build "$B" -j"$JOBS" --target loopscope-server bench_ingest 2>&1 | grep -Ev '^\[ *[0-9]+%\]'
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "bench: build failed"; exit 1; }

PY=python3
if [ -f .venvs/list ] && [ -x "$(head -n1 .venvs/list)/bin/python" ]; then PY="$(head -n1 .venvs/list)/bin/python"; fi

echo "=== machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//');" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
echo
echo "=== bench/ingest"
"$B/bench/bench_ingest" --server "$B/server/loopscope-server" "$@"
ingest_rc=$?
echo
echo "=== bench/query"
"$PY" bench/query/bench_query.py --server "$B/server/loopscope-server"
query_rc=$?
echo
echo "bench: ingest exit $ingest_rc, query exit $query_rc (0: all targets met, 3: a target missed, other: a run failed)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
