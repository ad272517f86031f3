#!/usr/bin/env bash
# scripts/test-frameworks.sh — tests/frameworks under each venv of .venvs-fw/list (the oldest and
# the newest host CPython, made by scripts/deps.sh from scripts/requirements-frameworks.txt):
# LoopscopeMiddleware on Litestar, Starlette and FastAPI served by uvicorn and hypercorn, and
# litestar-debug-toolbar, against the real server (LOOPSCOPE_SERVER_BIN, default
# build/server/loopscope-server). A family of venvs apart from .venvs/: litestar-debug-toolbar
# and fastapi-debug-toolbar both install the package `debug_toolbar`. Builds and installs loopscope
# into each of these venvs (only this script uses them) from a per-version copy of collector/.
# Exits non-zero if anything fails.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export LOOPSCOPE_SERVER_BIN="${LOOPSCOPE_SERVER_BIN:-$ROOT/build/server/loopscope-server}"
[ -x "$LOOPSCOPE_SERVER_BIN" ] || { echo "test-frameworks: no server at $LOOPSCOPE_SERVER_BIN (build it first)"; exit 1; }
[ -s .venvs-fw/list ] || { echo "test-frameworks: no venvs (run scripts/deps.sh)"; exit 1; }
WORK="$ROOT/build-collector/fw"
mkdir -p "$WORK"
export LOOPSCOPE_WERROR=1  # our own builds fail on any compiler warning, as in test-collector.sh
failed=()
newest="$(tail -n1 .venvs-fw/list)"

while read -r venv; do
  name="$(basename "$venv")"
  "$venv/bin/python" -c 1 2>/dev/null || { echo "--- $venv: cannot run it"; failed+=("$venv"); continue; }
  echo "--- $name ($("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
  dir="$WORK/$name"
  scripts/copy-collector.sh "$dir"
  if ! "$venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall --no-deps "$dir" >"$dir.build.log" 2>&1; then
    cat "$dir.build.log"; failed+=("build $name"); continue
  fi
  if [ "$venv" != "$newest" ]; then
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/frameworks || failed+=("tests $name")
    continue
  fi
  # the newest under coverage: the litestar-debug-toolbar panel's modules are measured here (the
  # collector suite's venvs have the other toolbar and cannot import them)
  cov="$WORK/.coverage"
  rm -f "$cov"
  # through sys.monitoring (3.12+): under a trace function the C Handle._run would give way to
  # asyncio's own (step.c), and the frameworks would not be tested with it
  COVERAGE_FILE="$cov" COVERAGE_CORE=sysmon "$venv/bin/python" -m coverage run --source=loopscope -m pytest -q -p no:cacheprovider \
    tests/frameworks || failed+=("tests $name")
  echo "Python line coverage of the litestar-debug-toolbar panel ($name):"
  COVERAGE_FILE="$cov" "$venv/bin/python" -m coverage report --fail-under=90 \
    --include='*/loopscope/litestar_toolbar.py,*/loopscope/_ldt_embed.py,*/loopscope/_which_toolbar.py' \
    | tee "$ROOT/artifacts/coverage-ldt-panel.txt" || failed+=("panel coverage < 90%")
done < .venvs-fw/list

if ((${#failed[@]})); then echo "test-frameworks: FAILED: ${failed[*]}"; exit 1; fi
echo "test-frameworks: ok"
