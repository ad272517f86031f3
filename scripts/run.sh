#!/usr/bin/env bash
# scripts/run.sh — build everything, start loopscope-server on its defaults (127.0.0.1:7878,
# ./loopscope.db), run the demo app under the collector and print the timeline URL to open.
# The server keeps running in the foreground until Ctrl-C. Options go to the server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOOPSCOPE_NO_SID=1 scripts/deps.sh  # the demo needs one Python, not the 3.14/3.15 root
PY="$(head -n1 .venvs/list)/bin/python"
cmake -S . -B build -DLOOPSCOPE_PYTHON="$PY" >/dev/null
cmake --build build -j"$(nproc)" 2>&1 | grep -Ev '^\[ *[0-9]+%\]' || true
[ -x build/server/loopscope-server ] || { echo "run: build failed"; exit 1; }

build/server/loopscope-server "$@" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM
for _ in $(seq 50); do curl -fsS http://127.0.0.1:7878/healthz >/dev/null 2>&1 && break; sleep 0.1; done

if [ -f collector/pyproject.toml ] && [ -f examples/demo_app.py ]; then
  while read -r venv; do
    "$venv/bin/python" -m pip install -q ./collector >/dev/null
  done < .venvs/list
  "$PY" examples/demo_app.py --server http://127.0.0.1:7878 || echo "run: demo app failed"
fi
echo
echo "loopscope is running: open http://127.0.0.1:7878/  (Ctrl-C stops it)"
wait $SERVER
