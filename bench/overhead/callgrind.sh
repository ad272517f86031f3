#!/usr/bin/env bash
# bench/overhead/callgrind.sh PYTHON WORKLOAD SERVER_URL — loopscope's cost in instructions, which
# unlike time does not depend on what else the machine is doing: callgrind counts the loop
# thread's instructions for 1 and for 3 runs of WORKLOAD (tree | taskgroup | asgi), with loopscope
# off and on; one run's cost is (3 runs - 1 run) / 2, so start-up and install() cancel out.
set -euo pipefail
PY="$1"; WL="$2"; SERVER="$3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/run.py" <<PYEOF
import asyncio, sys, warnings
sys.path.insert(0, "$HERE")
import bench, loopscope
warnings.simplefilter("ignore")
mode, n, wl = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fn = {"tree": bench.tree_gather, "taskgroup": bench.tree_group, "asgi": bench.request_loop}[wl]
if mode == "on":
    loopscope.install(server="$SERVER", max_tasks=10**6, buffer_bytes=256 << 20)
for _ in range(n):
    if mode == "on" and wl != "asgi":
        with loopscope.session("callgrind"):
            asyncio.run(fn())
    else:
        asyncio.run(fn())
PYEOF
count() { valgrind --tool=callgrind --callgrind-out-file="$TMP/cg" --toggle-collect='_PyEval_EvalFrameDefault' \
          "$PY" "$TMP/run.py" "$1" "$2" "$WL" 2>&1 | awk '/Collected/ {gsub(",", "", $4); print $4}'; }
off1=$(count off 1); off3=$(count off 3); on1=$(count on 1); on3=$(count on 3)
python3 -c "off=($off3-$off1)/2; on=($on3-$on1)/2; print('$WL: per run %.0fM instructions off, %.0fM on: %.3fx' % (off/1e6, on/1e6, on/off))"
