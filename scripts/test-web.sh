#!/usr/bin/env bash
# scripts/test-web.sh — the page's tests in a real browser: starts the real loopscope-server on a
# free loopback port with a temporary database, seeds it (tests/browser/seed.mjs), runs
# `node --test tests/browser/` driving Debian's /usr/bin/chromium through playwright-core,
# keeps screenshots in artifacts/screenshots/, stops the server. Non-zero exit on any failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${LOOPSCOPE_SERVER_BIN:-build/server/loopscope-server}"
[ -x "$BIN" ] || { echo "test-web: server binary $BIN missing (build it first)"; exit 1; }
[ -x /usr/bin/chromium ] || { echo "test-web: /usr/bin/chromium missing (scripts/deps.sh installs it)"; exit 1; }
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm install --no-audit --no-fund --silent) || { echo "test-web: npm install failed"; exit 1; }
fi

TMP="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

PORT="$(node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
URL="http://127.0.0.1:$PORT"
"$BIN" --listen "127.0.0.1:$PORT" --db "$TMP/web.db" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  curl -sf "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "test-web: server exited"; cat "$TMP/server.log"; exit 1; }
  sleep 0.1
done
curl -sf "$URL/healthz" >/dev/null || { echo "test-web: server not healthy on $URL"; cat "$TMP/server.log"; exit 1; }

node tests/browser/seed.mjs "$URL" listed small hostile running large=2000 || { echo "test-web: seeding failed"; cat "$TMP/server.log"; exit 1; }

mkdir -p artifacts/screenshots
# login.test.mjs starts its own server (with --token) from LOOPSCOPE_SERVER_BIN
LOOPSCOPE_URL="$URL" LOOPSCOPE_SCREENSHOTS="$ROOT/artifacts/screenshots" LOOPSCOPE_SERVER_BIN="$BIN" \
  node --test --test-concurrency=1 tests/browser/ | tee "$TMP/tap.txt"
rc=${PIPESTATUS[0]}
if [ $rc -ne 0 ]; then
  echo "test-web: server log (tail):"; tail -n 40 "$TMP/server.log"
  # The failures' own words last, where a reader of only the output's tail (a CI summary) sees
  # them: each `not ok` with its YAML block (the assertion's message, expected and actual), the
  # stack cut to 4 lines. fc96 failed two tests here and its summary showed only the server log.
  echo "test-web: failed tests:"
  awk '/^[[:space:]]*not ok /      { on = 1; st = 0 }
       on && /^[[:space:]]*stack: / { st = 1 }
       on                          { if (!st || st++ <= 5) print }
       on && /^[[:space:]]*\.\.\.$/ { on = 0 }' "$TMP/tap.txt" | grep -v '^[[:space:]]*# Subtest' | head -n 150
fi
exit $rc
