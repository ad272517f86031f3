#!/usr/bin/env bash
# bench/overhead/callgrind.sh PYTHON WORKLOAD SERVER_URL — loopscope's cost in instructions, which
# unlike time does not depend on what else the machine is doing: callgrind counts the loop
# thread's instructions for 1 and for 3 runs of WORKLOAD (tree | taskgroup | asgi | asgi_heavy |
# asgi_trivial | litestar, the last in a venv with Litestar: .venvs-fw), with loopscope off and on;
# one run's cost is (3 runs - 1 run) / 2, so start-up and install() cancel out. asgi, asgi_heavy
# and asgi_trivial are bench.py's three request loops (12 and 48 sequential awaits, and none):
# their differences are a request's fixed cost and the cost of one recorded step and await.
#
# The lag heartbeat is the one part driven by the clock, not by the work: valgrind runs the program
# ~50x slower, so at its 10 ms period it would fire ~50x more often per request than it does
# natively. The script measures that slowdown on the 'off' run (wall time under valgrind / native)
# and stretches the period by it for the 'on' runs, so the heartbeat fires as often per unit of
# work as at 10 ms natively. Both figures are printed; LS_CG_RAW_LAG=1 keeps the 10 ms period.
# Runs inside the Debian sid root too (scripts/sid-chroot.sh run env PYTHONPATH=... callgrind.sh ...):
# the arithmetic uses PYTHON itself (-I), as the root has no python3.
# LS_CG_LOOP=uvloop runs the workload on uvloop (its event loop policy) instead of asyncio's loop.
#
# LS_CG_TIMED=1: instead, one timed run of WORKLOAD by bench.py's protocol for 'on' (install, a
# warm-up session, flush, then the timed run in a session of its own), off and on, with simulated
# caches (--cache-sim=yes). os.getpgrp() before and after the timed run makes callgrind dump there
# (--dump-before=getpgrp, the C library's function os.getpgrp calls: the os module's own wrapper
# is named os_getpgrp.lto_priv.0 in sid's 3.14 and inlined away in its 3.15):
# part 2 of each profile is the timed run alone, so one run per process does. Prints its events
# and summary lines; the lag period is 600 ms (~60x the native 10 ms, for valgrind's slowdown;
# LS_CG_SAMPLE_MS to change it); the profiles stay in LS_CG_OUT (default: a new directory under
# /tmp) as off.cg.2 and on.cg.2 (part 2 names functions by ids part 1 defines).
# LS_CG_SENDER_IDLE=1 (profile_run.py) keeps the sender asleep through the runs: valgrind runs all
# threads through one simulated cache, so the sender's encoding evicts the loop thread's lines
# there as it never does on a second core. With it the 'on' cache counts repeat from run to run
# (3.13's light loop: D1 misses within 300 of 15.0M, where the sender made them differ by
# 75-170k); without it they carry the sender's share. LS_CG_VALGRIND_OPTS='--LL=524288,8,64'
# makes the last level this CPU's 512 KiB L2, to count what comes from L3. Its 8 ways, simulated
# on virtual addresses, add the conflict misses of one address layout (the real L2 is indexed
# physically). '--LL=524288,64,64' (64 ways: mostly what does not fit) and LS_CG_NO_ASLR=1
# (setarch -R: the same addresses every run) count Litestar's L2 instruction misses to ~5%: three
# runs of one source, two builds, read 273k, 297k and 281k (stop 38).
set -euo pipefail
SETARCH=()
if [ "${LS_CG_NO_ASLR:-0}" = 1 ]; then SETARCH=(setarch "$(uname -m)" -R); fi
export PYTHONHASHSEED=0   # the same dict and set layouts in every run: counts repeat to ~0.1 %
PY="$1"; WL="$2"; SERVER="$3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
# The program's environment is kept the same size whichever build and output directory are
# named: its size moves the stack (under LS_CG_NO_ASLR=1 two builds in directories whose names
# differed by a character read 'off' D1 misses 0.17M apart; bench/overhead/README.md, stop 50;
# one build from two such directories now reads the same to the last miss). A PYTHONPATH of
# one directory is reached through a link of fixed length in TMP (mktemp's names have one length),
# and LS_CG_OUT stays the script's own (not exported to the program). Give every build the same
# SERVER_URL too: it is on the program's command line.
if [ -n "${PYTHONPATH:-}" ] && [[ "$PYTHONPATH" != *:* ]] && [ -d "$PYTHONPATH" ]; then
  ln -s "$(cd "$PYTHONPATH" && pwd)" "$TMP/pp" && export PYTHONPATH="$TMP/pp"
fi
export -n LS_CG_OUT 2>/dev/null || true
# count MODE N -> "instructions elapsed_seconds"; LS_CG_OUT=DIR keeps each profile there as MODE-N.cg
# (for callgrind_annotate: compare the 'on' profiles of two versions function by function)
# LS_CG_VALGRIND_OPTS adds valgrind options (e.g. --cache-sim=yes: simulated D1/LL misses in the profiles).
count() { "${SETARCH[@]}" valgrind --tool=callgrind ${LS_CG_VALGRIND_OPTS:-} --callgrind-out-file="$TMP/cg" --toggle-collect='_PyEval_EvalFrameDefault' \
          "$PY" "$HERE/profile_run.py" "$1" "$2" "$WL" "$SERVER" 2>&1 | awk '/Collected/ {gsub(",", "", $4); n=$4} /^elapsed/ {e=$2} END {print n, e}'
          if [ -n "${LS_CG_OUT:-}" ]; then mkdir -p "$LS_CG_OUT" && cp "$TMP/cg" "$LS_CG_OUT/$1-$2.cg"; fi; }
if [ "${LS_CG_TIMED:-0}" = 1 ]; then
  OUT="${LS_CG_OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
  for mode in off on; do
    LS_CG_SAMPLE_MS="${LS_CG_SAMPLE_MS:-600}" "${SETARCH[@]}" valgrind --tool=callgrind --cache-sim=yes ${LS_CG_VALGRIND_OPTS:-} \
      --toggle-collect=_PyEval_EvalFrameDefault --dump-before=getpgrp \
      --callgrind-out-file="$OUT/$mode.cg" "$PY" "$HERE/profile_run.py" "$mode" 1 "$WL" "$SERVER" >"$OUT/$mode.log" 2>&1
    echo "$mode $(grep -h '^events:' "$OUT/$mode.cg.2")"
    echo "$mode $(grep -h '^summary:' "$OUT/$mode.cg.2")"
  done
  echo "profiles in $OUT (part 2 names functions by ids that part 1 defines: read both)"
  exit 0
fi
native=$("$PY" "$HERE/profile_run.py" off 1 "$WL" "$SERVER" | awk '/^elapsed/ {print $2}')
read -r off1 off1_s <<<"$(count off 1)"
read -r off3 _ <<<"$(count off 3)"
slow=$("$PY" -I -c "print('%.1f' % ($off1_s / $native))")
period=$("$PY" -I -c "print('%.1f' % (10 * $off1_s / $native))")
note="lag period ${period} ms under valgrind = 10 ms native"
[ "${LS_CG_RAW_LAG:-0}" = 1 ] && period=10 && note="lag period 10 ms under valgrind, not stretched: ~${slow}x the native ticks per run"
read -r on1 _ <<<"$(LS_CG_SAMPLE_MS=$period count on 1)"
read -r on3 _ <<<"$(LS_CG_SAMPLE_MS=$period count on 3)"
"$PY" -I -c "off=($off3-$off1)/2; on=($on3-$on1)/2; print('$WL${LS_CG_LOOP:+ on $LS_CG_LOOP}: per run %.0fM instructions off, %.0fM on: %.3fx   (valgrind slowdown ${slow}x; ${note})' % (off/1e6, on/1e6, on/off))"
