#!/usr/bin/env bash
# bench/overhead/offline_ab.sh PYTHON [WORKLOAD] [ROUNDS] [REPS] — what the co-located server costs
# the app: bench.py's WORKLOAD (default litestar_requests; PYTHON must import what it needs, e.g.
# .venvs-fw/py3.13/bin/python for Litestar) with every request recorded, run with a fresh server
# on this machine that stores what the sender posts, and run --offline (the sender encodes every
# batch and posts none: the server idles), in turns, the order alternating round by round. Each
# line is one bench.py run: on/off wall/CPU, paired, and its own A/A ('off2'). Read the two modes'
# medians of the paired CPU and wall ratios; the difference is the server's share. Not a test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${1:?usage: offline_ab.sh PYTHON [WORKLOAD] [ROUNDS] [REPS]}"; WL="${2:-litestar_requests}"
ROUNDS="${3:-4}"; REPS="${4:-20}"
SRV="${LOOPSCOPE_SERVER_BIN:-$ROOT/build/server/loopscope-server}"
[ -x "$SRV" ] || { echo "offline_ab: no server at $SRV (cmake --build build)" >&2; exit 2; }
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="server offline"; else order="offline server"; fi
  for mode in $order; do
    D="$(mktemp -d)"
    PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    "$SRV" --listen "127.0.0.1:$PORT" --db "$D/bench.db" 2>"$D/server.log" & SP=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
    extra=(); [ "$mode" = offline ] && extra=(--offline)
    printf 'round %s %-8s ' "$r" "$mode"
    "$PY" "$ROOT/bench/overhead/bench.py" --server "http://127.0.0.1:$PORT" --server-pid "$SP" --reps "$REPS" \
      --only "$WL" --modes on,off2 "${extra[@]}" 2>&1 | grep -E "^[0-9.]+ +$WL " || echo "(bench.py failed: see $D)"
    kill "$SP"; wait "$SP" 2>/dev/null || true
    rm -rf "$D"
  done
done
