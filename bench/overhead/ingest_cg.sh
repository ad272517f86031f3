#!/usr/bin/env bash
# bench/overhead/ingest_cg.sh SERVER OUT_DIR [REQUESTS] — the instructions a server build spends on
# a burst of small sessions (one per web request), counted by callgrind: unlike its CPU time (what
# ingest_ab.py reads) the count does not depend on what else the machine is doing, so two builds
# compare on a noisy machine to about a percent: the figures and rollups the server computes in
# the background after answering may land in the counted window or not (seen: 1.3% more in one
# run of a build for that alone), so a difference that small wants a second run, and a look at
# where it comes from (cgself.py A B --sort Ir).
#
# The server runs under callgrind on a fresh database; sessions_burst.py (PYTHON, default the
# project's 3.13 venv; PYTHONPATH is passed on, so a collector copy can be chosen) sends its warm-up
# sessions, and once the server has acknowledged them the counters are zeroed
# (callgrind_control -z), the timed burst of REQUESTS sessions (default 1000) goes, and once the
# server is quiet again they are dumped (callgrind_control -d): OUT_DIR/server.cg.1 is the burst
# alone, OUT_DIR/server.cg the rest. Prints the burst's line and instructions per session. Compare
# two builds function by function with
#     python3 bench/overhead/cgself.py A_DIR/server.cg.1 B_DIR/server.cg.1 --sort Ir
# The sender's timeout is raised (LOOPSCOPE_TIMEOUT_MS) so that it waits for the slowed server
# instead of sending again. A figure, not a test.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SRV="${1:?usage: ingest_cg.sh SERVER OUT_DIR [REQUESTS]}"
OUT="${2:?usage: ingest_cg.sh SERVER OUT_DIR [REQUESTS]}"
N="${3:-1000}"
PY="${PYTHON:-$ROOT/.venvs/py3.13/bin/python}"
[ -x "$SRV" ] || { echo "ingest_cg: not an executable server: $SRV" >&2; exit 2; }
mkdir -p "$OUT"
rm -f "$OUT"/server.cg* "$OUT"/db* "$OUT"/ready "$OUT"/ready.go
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --callgrind-out-file="$OUT/server.cg" \
  "$SRV" --listen "127.0.0.1:$PORT" --db "$OUT/db" --log-level error > "$OUT/valgrind.log" 2>&1 &
VG=$!
trap 'kill $VG 2>/dev/null || true' EXIT
for _ in $(seq 240); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.5; done
LOOPSCOPE_TIMEOUT_MS=600000 "$PY" "$ROOT/bench/overhead/sessions_burst.py" --server "http://127.0.0.1:$PORT" \
  --requests "$N" --ready-file "$OUT/ready" > "$OUT/burst.log" 2>&1 &
BURST=$!
while [ ! -e "$OUT/ready" ]; do
  kill -0 $BURST 2>/dev/null || { cat "$OUT/burst.log"; exit 1; }
  sleep 0.2
done
sleep 3 # the figures the server computes after answering the warm-up
callgrind_control -z $VG > /dev/null
touch "$OUT/ready.go"
wait $BURST || { cat "$OUT/burst.log"; exit 1; }
sleep 5 # the same after the burst
callgrind_control -d $VG > /dev/null
sleep 1
kill $VG
wait $VG 2>/dev/null || true
trap - EXIT
tail -1 "$OUT/burst.log"
IR=$(callgrind_annotate "$OUT/server.cg.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "server instructions: $IR for $N sessions, $((IR / N)) a session ($SRV)"
