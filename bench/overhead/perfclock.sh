#!/usr/bin/env bash
# bench/overhead/perfclock.sh PYTHON WORKLOAD SERVER_URL [RUNS] — where the loop thread's real time
# goes with loopscope off and on, by sampling: perf record's cpu-clock event (a timer, so no
# hardware counters are needed; this VM has none) samples the program while RUNS runs of WORKLOAD
# (tree | taskgroup | asgi | asgi_heavy | asgi_trivial | litestar; default 20) execute after a
# warm-up (profile_run.py opens and closes the window through perf's --control fifo), and
# perfclock.py prints the loop thread's milliseconds per run off and on, by shared object and by
# function, largest differences first.
# Unlike callgrind.sh's counts this is time: the interpreter's own functions slowed by the cache
# lines the collector took show here as theirs. Runs off and on alternate, LS_PERF_ROUNDS (default
# 2) times each. A PYTHON under .venvs-sid runs inside the sid root (symbols read from it).
# LS_PERF_FREQ sets the sampling rate (default 4000 Hz). Not a test: no asserts.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
PY="$1"; WL="$2"; SERVER="$3"; RUNS="${4:-20}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
command -v perf >/dev/null || { echo "perfclock.sh: no perf (Debian: apt-get install linux-perf)" >&2; exit 2; }
case "$PY" in /*) ;; */*) PY="$PWD/$PY" ;; esac
run=(); symfs=()
case "$PY" in */.venvs-sid/*)
  run=("$ROOT/scripts/sid-chroot.sh" run)
  symfs=(--symfs "${LOOPSCOPE_CACHE:-/var/cache/loopscope}/sid") ;;
esac
# the fifo and the profiles in the work tree: it is bound at the same path inside the sid root
mkdir -p "$ROOT/build-collector"
OUT="$(mktemp -d "$ROOT/build-collector/perfclock.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT
FREQ="${LS_PERF_FREQ:-4000}"
for round in $(seq "${LS_PERF_ROUNDS:-2}"); do
  for mode in off on; do
    rm -f "$OUT/ctl"; mkfifo "$OUT/ctl"
    perf record -q -e cpu-clock -F "$FREQ" -D -1 --control "fifo:$OUT/ctl" -o "$OUT/$mode.$round.data" -- \
      "${run[@]}" env LS_PERF_CTL="$OUT/ctl" "$PY" "$HERE/profile_run.py" "$mode" "$RUNS" "$WL" "$SERVER" \
      | awk -v m="$mode" -v r="$round" '/^elapsed/ {printf "perfclock: %s, round %s: %.1f ms per run, loop thread CPU %.1f ms\n", m, r, 1000 * $2 / '"$RUNS"', 1000 * $4 / '"$RUNS"'}' >&2
    perf script -F pid,tid,ip,sym,dso "${symfs[@]}" -i "$OUT/$mode.$round.data" 2>/dev/null > "$OUT/$mode.$round.txt"
  done
done
python3 "$HERE/perfclock.py" --runs "$RUNS" --freq "$FREQ" --off "$OUT"/off.*.txt --on "$OUT"/on.*.txt
