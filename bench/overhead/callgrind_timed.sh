#!/usr/bin/env bash
# bench/overhead/callgrind_timed.sh PYTHON SERVER_URL [OUTDIR] — the loop thread's instructions and
# simulated cache misses (callgrind --cache-sim=yes) of one timed async_tree run, off and on, by
# bench.py's protocol for 'on' (install, a warm-up session, flush, then the timed run in a session
# of its own). os.getpgrp() before and after the timed run makes callgrind dump there
# (--dump-before=os_getpgrp): part 2 of each profile (OUTDIR/MODE.cg.2) is the timed run alone, so
# one run per process does, where callgrind.sh needs (3 runs - 1 run) / 2. The lag sample period is
# 600 ms (~60x the native 10 ms for valgrind's slowdown; LS_CG_SAMPLE_MS to change it).
set -euo pipefail
export PYTHONHASHSEED=0
PY="$1"; SERVER="$2"; OUT="${3:-$(mktemp -d)}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$OUT"
cat > "$OUT/run.py" <<PYEOF
import asyncio, gc, os, sys, warnings
sys.path.insert(0, "$HERE")
import bench, loopscope
warnings.simplefilter("ignore")
mode = sys.argv[1]
if mode == "on":
    loopscope.install(server="$SERVER", max_tasks=10**6, buffer_bytes=256 << 20,
                      sample_rate_ms=float(os.environ.get("LS_CG_SAMPLE_MS", "600")))
    with loopscope.session("warm"):
        asyncio.run(bench.tree_gather())
    loopscope.flush(600)
else:
    asyncio.run(bench.tree_gather())
gc.collect()
os.getpgrp()  # dump: start-up, install, warm-up run
if mode == "on":
    with loopscope.session("bench"):
        asyncio.run(bench.tree_gather())
else:
    asyncio.run(bench.tree_gather())
os.getpgrp()  # dump: the timed run
if mode == "on":
    loopscope.flush(600)
    loopscope.uninstall(timeout=60)
PYEOF
for mode in off on; do
  valgrind --tool=callgrind --cache-sim=yes --toggle-collect=_PyEval_EvalFrameDefault --dump-before=os_getpgrp \
    --callgrind-out-file="$OUT/$mode.cg" "$PY" "$OUT/run.py" "$mode" >"$OUT/$mode.log" 2>&1
  echo "$mode $(grep -h '^events:' "$OUT/$mode.cg.2")"
  echo "$mode $(grep -h '^summary:' "$OUT/$mode.cg.2")"
done
echo "profiles in $OUT (part 2 names functions by ids that part 1 defines: read both)"
