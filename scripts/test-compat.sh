#!/usr/bin/env bash
# scripts/test-compat.sh — the compatibility gate: CPython's own asyncio test suites
# (test.test_asyncio: test_tasks, test_taskgroups, test_futures, ... those each version has) run
# per interpreter without and with loopscope installed and a session open around the whole run;
# the same tests must fail (usually none) and nothing may crash. Prints a table per interpreter,
# exits non-zero on any difference. The work is tests/compat/compat_driver.py's.
#
#   scripts/test-compat.sh [INTERPRETER...] [-- DRIVER OPTIONS]
# INTERPRETER: a python with loopscope importable, EXE@PYTHONPATH, or sid:EXE for one inside the
# Debian sid chroot (scripts/sid-chroot.sh). Default: each venv in .venvs/list, and each venv in
# .venvs-sid/list inside the chroot when that list exists, debug builds (3.14-dbg) left out.
# LOOPSCOPE_GATE_PYTHONPATH=/dir/{ver}: PYTHONPATH for the "on" runs ({ver} = 3.12 etc.).
# LOOPSCOPE_CACHE (default /var/cache/loopscope): "off" results are cached in compat/ there,
# keyed by the interpreter build. Runs twice `nproc` module runs at a time across interpreters:
# CPython's asyncio tests wait on their own timers about half the time (fc26, two at a time on
# two cores: 188 s wall for 193 s of CPU, one core idle through the last step of the CI), and a
# module whose result differs from the "off" one is run again, both ways, before it counts.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

interps=(); opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; opts+=("$@"); break ;;
    -*) opts+=("$1") ;;
    *) interps+=("$1") ;;
  esac
  shift
done
if [ ${#interps[@]} -eq 0 ]; then
  opts=(--skip-debug-builds "${opts[@]}")
  if [ -s .venvs/list ]; then
    while read -r venv; do [ -x "$venv/bin/python" ] && interps+=("$venv/bin/python"); done < .venvs/list
  fi
  if [ -s .venvs-sid/list ]; then
    while read -r venv; do [ -n "$venv" ] && interps+=("sid:$venv/bin/python"); done < .venvs-sid/list
  fi
fi
[ ${#interps[@]} -gt 0 ] || { echo "test-compat: no interpreters (run scripts/deps.sh)"; exit 1; }

# The driver itself is plain stdlib Python: any python3 here runs it.
DRIVER_PY="$(command -v python3 || true)"
[ -n "$DRIVER_PY" ] || DRIVER_PY="${interps[0]#sid:}"
mkdir -p artifacts
exec "$DRIVER_PY" tests/compat/compat_driver.py --jobs "$((2 * $(nproc 2>/dev/null || echo 1)))" \
  --report artifacts/compat-report.json "${opts[@]}" "${interps[@]}"
