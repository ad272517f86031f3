#!/usr/bin/env bash
# bench/overhead/nice_ab.sh — does it help the app when the co-located server runs at a lower CPU
# priority? On a 2-core machine the loop thread, the collector's sender and a busy server compete
# for the cores over a long run (asgi_requests_long: the server needs about as much CPU as the
# app). Each round starts a fresh server twice, plainly and under `nice -n N`, the two in turns (the order alternates), and runs bench.py's WORKLOAD in modes off, on
# and off2 against it. Prints, per setting, the paired on/off medians of every round (wall and
# loop-thread CPU) and their median, beside the A/A control. A figure, not a test.
# --offline: the second setting is bench.py --offline instead (the sender encodes every batch and
# posts none, so the server idles): what the server working beside the app costs it (stop 50).
#   bench/overhead/nice_ab.sh [--rounds R] [--reps N] [--only WORKLOAD] [--nice N | --offline] PYTHON
# PYTHON: a venv's python with loopscope installed (one under .venvs-sid runs inside the sid root).
# Defaults: 3 rounds, 10 reps, asgi_requests_long, nice 10.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROUNDS=3 REPS=10 ONLY=asgi_requests_long NICE=10
OTHER=nice
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --nice) NICE="$2"; shift 2 ;;
    --offline) OTHER=offline; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "nice_ab.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { usage >&2; exit 2; }
PY="$1"
case "$PY" in /*) ;; *) PY="$PWD/$PY" ;; esac
cd "$ROOT"
run=(); case "$PY" in */.venvs-sid/*) run=("$ROOT/scripts/sid-chroot.sh" run) ;; esac
"${run[@]}" "$PY" -c 'import loopscope' 2>/dev/null || { echo "nice_ab.sh: $PY cannot import loopscope" >&2; exit 2; }
SERVER_BIN="${LOOPSCOPE_SERVER_BIN:-$ROOT/build/server/loopscope-server}"
[ -x "$SERVER_BIN" ] || { echo "nice_ab.sh: no $SERVER_BIN: build the server first" >&2; exit 2; }
TMP="$(mktemp -d)"
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT

one() { # one SETTING ROUND: a fresh server, bench.py against it, one JSON line into results
  local setting="$1" pre=() post=()
  [ "$setting" = nice ] && pre=(nice -n "$NICE")
  [ "$setting" = offline ] && post=(--offline)
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  rm -f "$TMP"/db*
  "${pre[@]}" "$SERVER_BIN" --listen "127.0.0.1:$port" --db "$TMP/db" 2>"$TMP/server.log" &
  SERVER=$!
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "nice_ab.sh: round $2, $setting ..." >&2
  "${run[@]}" "$PY" bench/overhead/bench.py --server "http://127.0.0.1:$port" --server-pid "$SERVER" --reps "$REPS" \
    --json --only "$ONLY" --modes on,off2 "${post[@]}" | sed "s/^/$setting /" >> "$TMP/results"
  kill $SERVER; wait $SERVER 2>/dev/null || true
  SERVER=
}
: > "$TMP/results"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then one plain "$r"; one "$OTHER" "$r"; else one "$OTHER" "$r"; one plain "$r"; fi
done
python3 - "$TMP/results" "$ONLY" "$NICE" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    setting, js = line.split(" ", 1)
    rows.setdefault(setting, []).append(json.loads(js)["results"][sys.argv[2]])
for setting in ("plain", "nice", "offline"):
    rs = rows.get(setting, [])
    if not rs:
        continue
    label = f"nice {sys.argv[3]}" if setting == "nice" else setting
    for key, what in (("paired_cpu", "loop-thread CPU"), ("paired", "wall")):
        on = [r["on"][key] for r in rs]
        aa = [r["off2"][key] for r in rs]
        print(f"{label:9s} {what:15s} on/off median {statistics.median(on):.3f}x  "
              f"({', '.join(f'{v:.3f}' for v in on)})   A/A {statistics.median(aa):.3f}x")
PY
