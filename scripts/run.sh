#!/usr/bin/env bash
# scripts/run.sh — build everything, start loopscope-server on its defaults (127.0.0.1:7878,
# ./loopscope.db), run the demo app under the collector and print the timeline URL to open, then
# start the Litestar shop (examples/shop_app.py, litestar-debug-toolbar with loopscope's Async
# panel) from the newest venv of .venvs-fw/list on 127.0.0.1:8000 (another free port when that is
# taken). Both keep running until Ctrl-C, which stops them. Options go to the server.
set -euo pipefail
unset PYTHONDONTWRITEBYTECODE  # .pyc files are written on first import (scripts/test.sh says why)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOOPSCOPE_NO_SID=1 scripts/deps.sh  # the demo needs one Python, not the 3.14/3.15 root
PY="$(head -n1 .venvs/list)/bin/python"
cmake -S . -B build -DLOOPSCOPE_PYTHON="$PY" >/dev/null
cmake --build build -j"$(nproc)" 2>&1 | grep -Ev '^\[ *[0-9]+%\]' || true
[ -x build/server/loopscope-server ] || { echo "run: build failed"; exit 1; }

SERVER=""
SHOP=""
stop() { # the shop first, so its last events reach the server; each gets 10 s before SIGKILL
  local pid
  for pid in $SHOP $SERVER; do
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  SHOP=""; SERVER=""
}
trap stop EXIT
trap 'exit 130' INT TERM
build/server/loopscope-server "$@" &
SERVER=$!
for _ in $(seq 50); do curl -fsS http://127.0.0.1:7878/healthz >/dev/null 2>&1 && break; sleep 0.1; done

if [ -f collector/pyproject.toml ] && [ -f examples/demo_app.py ]; then
  while read -r venv; do
    "$venv/bin/python" -m pip install -q ./collector >/dev/null
  done < .venvs/list
  "$PY" examples/demo_app.py --server http://127.0.0.1:7878 || echo "run: demo app failed"
fi

# The shop: Litestar and litestar-debug-toolbar live in .venvs-fw/ (they cannot share a venv with
# fastapi-debug-toolbar, which .venvs/ has), so loopscope is installed there too.
SHOP_URL=""
FWVENV="$(tail -n1 .venvs-fw/list 2>/dev/null || true)"
if [ -f examples/shop_app.py ] && [ -n "$FWVENV" ] && [ -x "$FWVENV/bin/python" ]; then
  FWPY="$FWVENV/bin/python"
  if "$FWPY" -m pip install -q ./collector >/dev/null; then
    SHOP_PORT="$("$FWPY" -c 'import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
try:
    s.bind(("127.0.0.1", 8000))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')"
    SHOP_LOG="$(mktemp -t loopscope-shop.XXXXXX.log)"
    "$FWPY" examples/shop_app.py --server http://127.0.0.1:7878 --port "$SHOP_PORT" >"$SHOP_LOG" 2>&1 &
    SHOP=$!
    # ready once the toolbar serves its stylesheet (a path the toolbar, so loopscope, never
    # records); up to a minute on a busy machine
    for _ in $(seq 600); do
      curl -fsS "http://127.0.0.1:$SHOP_PORT/_debug_toolbar/static/toolbar.css" >/dev/null 2>&1 && { SHOP_URL="http://127.0.0.1:$SHOP_PORT/product/42"; break; }
      kill -0 "$SHOP" 2>/dev/null || break
      sleep 0.1
    done
    if [ -z "$SHOP_URL" ]; then echo "run: the shop app did not start (log: $SHOP_LOG)"; tail -n 20 "$SHOP_LOG"; fi
  else
    echo "run: cannot install ./collector into $FWVENV: no shop app"
  fi
else
  echo "run: no venv in .venvs-fw/list (scripts/deps.sh makes them): no shop app"
fi
echo
echo "loopscope is running: open http://127.0.0.1:7878/  (Ctrl-C stops it)"
[ -n "$SHOP_URL" ] && echo "the shop with litestar-debug-toolbar: open $SHOP_URL and click Async in the toolbar"
wait "$SERVER"
