#!/usr/bin/env bash
# bench/overhead/ab.sh — builds of the collector timed against each other on one CPython (two or
# more, named A, B, C, ... in order): each revision's collector/ is built in place (under
# build-collector/ab-*), then bench.py runs WORKLOAD in modes off, on and off2 (the A/A control)
# with that build first on PYTHONPATH, the builds taking turns round after round so the machine's
# drift falls on all alike. abstat.py then prints, per build, the paired median of on/off over
# every rep of every round with a bootstrap 95% interval, beside the A/A control's. No asserts.
#   bench/overhead/ab.sh [--reps N] [--rounds R] [--only WORKLOAD] [--pin CPU] PYTHON REV_A REV_B [REV ...]
# REV: a git revision, `worktree` (the files as they are), `ablate:VARIANT`, the work tree with
# one part of the collector taken out (ablate.py; what each part costs, not a build to use), or
# `dir:PATH`, a copy of collector/ built in place already (other flags, LOOPSCOPE_PGO=0).
# PYTHON: a venv's python where bench.py's imports work (.venvs/py3.X/bin/python; one under
# .venvs-sid runs inside the sid root). Defaults: 20 reps, 4 rounds, async_tree. --pin: bench.py's,
# the loop thread on CPU during each timed run (the server and the collector's threads stay free).
# Per-run lines stay in build-collector/ab-runs.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CALLER="$PWD"
cd "$ROOT"
REPS=20 ROUNDS=4 ONLY=async_tree PIN=()
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --pin) PIN=(--pin "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "ab.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 3 ] || { usage >&2; exit 2; }
PY="$1"; shift
# a relative path is the caller's: the builds run in their own directories
case "$PY" in /*) ;; */*) PY="$CALLER/$PY" ;; esac
run=(); case "$PY" in */.venvs-sid/*) run=("$ROOT/scripts/sid-chroot.sh" run) ;; esac
"${run[@]}" "$PY" -c 1 2>/dev/null || { echo "ab.sh: $PY does not run" >&2; exit 2; }
SERVER_BIN="${LOOPSCOPE_SERVER_BIN:-$ROOT/build/server/loopscope-server}"
[ -x "$SERVER_BIN" ] || { echo "ab.sh: no $SERVER_BIN: build the server first (cmake --build build)" >&2; exit 2; }

# build REV NAME: the collector of REV in build-collector/ab-NAME, built in place
build() {
  local rev="$1" dir="$ROOT/build-collector/ab-$2" src
  rm -rf "$dir"
  if [ "${rev#dir:}" != "$rev" ]; then  # built already (other flags, a PGO build): used as it is
    src="${rev#dir:}"; case "$src" in /*) ;; *) src="$CALLER/$src" ;; esac
    ls "$src"/loopscope/_core*.so >/dev/null 2>&1 || { echo "ab.sh: no loopscope/_core*.so in $src" >&2; exit 2; }
    ln -s "$src" "$dir"
    echo "ab.sh: $2 = $src (built already)" >&2
    return
  fi
  mkdir -p "$dir"
  if [ "$rev" = worktree ] || [ "${rev#ablate:}" != "$rev" ]; then
    scripts/copy-collector.sh "$dir"
    if [ "${rev#ablate:}" != "$rev" ]; then
      python3 bench/overhead/ablate.py "${rev#ablate:}" "$dir" || exit 2
    fi
  else
    git rev-parse --verify -q "$rev^{commit}" >/dev/null || { echo "ab.sh: $rev is not a revision" >&2; exit 2; }
    src="$(mktemp -d)"
    git archive "$rev" collector common | tar -x -C "$src"
    cp -rL "$src/collector/." "$dir"/
    rm -rf "$src"
  fi
  (cd "$dir" && "${run[@]}" "$PY" setup.py -q build_ext --inplace >"$dir.build.log" 2>&1) \
    || { echo "ab.sh: building $rev failed:"; tail -20 "$dir.build.log"; exit 1; } >&2
  echo "ab.sh: $2 = $rev built in $dir" >&2
}
NAMES=() REVS=("$@")
for i in "${!REVS[@]}"; do
  NAMES+=("$(printf "\\$(printf '%03o' $((65 + i)))")")   # A, B, C, ...
  build "${REVS[$i]}" "${NAMES[$i]}"
done

TMP="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$SERVER_BIN" --listen "127.0.0.1:$PORT" --db "$TMP/ab.db" 2>"$TMP/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

RUNS="$ROOT/build-collector/ab-runs.txt"
: > "$RUNS"
for r in $(seq "$ROUNDS"); do
  for v in "${NAMES[@]}"; do
    echo "ab.sh: round $r of $ROUNDS, build $v ..." >&2
    # bench.py --verbose prints every timed run to stderr: "WORKLOAD rep N MODE wall X ms loop-thread cpu Y ms"
    "${run[@]}" env PYTHONPATH="$ROOT/build-collector/ab-$v" "$PY" bench/overhead/bench.py \
      --server "http://127.0.0.1:$PORT" --server-pid "$SERVER" --reps "$REPS" --only "$ONLY" \
      --modes on,off2 ${PIN[@]+"${PIN[@]}"} --verbose 2>&1 >/dev/null | grep ' rep ' | sed "s/^/$v $r /" >> "$RUNS" \
      || { echo "ab.sh: bench.py failed for build $v" >&2; exit 1; }
  done
done
for i in "${!REVS[@]}"; do printf "%s = %s; " "${NAMES[$i]}" "${REVS[$i]}"; done
echo "$ONLY, $ROUNDS rounds of $REPS reps, loop-thread CPU"
"${run[@]}" "$PY" bench/overhead/abstat.py "$RUNS"
