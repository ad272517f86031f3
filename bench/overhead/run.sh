#!/usr/bin/env bash
# bench/overhead/run.sh — loopscope's overhead on every CPython in .venvs/list and .venvs-sid/list
# (3.14/3.15, run inside the Debian sid root; debug builds left out): starts a real
# loopscope-server (temporary database, free loopback port), installs the collector and, where
# pip can, yappi and VizTracer into each venv, runs bench.py there and prints one table of
# median ratios against loopscope off, and per Python the collector's fixed cost per request and
# cost per recorded step (ns of loop-thread CPU). The framework venvs (.venvs-fw/list) run only
# the Litestar request loop, and the 200k-task script (tasks200k.py: dropped events, sender
# events/s and CPU) runs on every Python. Options: --reps N (default 7); --only W1,W2 (bench.py's
# workloads: only those, no yappi/VizTracer, no 200k-task script; the framework venvs only when
# litestar_requests is named) for a shorter run; --aa (with --only: 'off' runs a second time as
# an A/A control, whose ratios to 'off' are this run's noise, printed beside 'on'); --pin (the
# loop thread on CPU 0 during timed runs, the server on CPU 1). Not a test: no asserts.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
REPS=7
ONLY=""
MODES=on
PIN=()
SERVER_PIN=()
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --aa) MODES=on,off2; shift ;;
    --pin) PIN=(--pin 0); SERVER_PIN=(taskset -c 1); shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/overhead/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
SERVER_BIN="${LOOPSCOPE_SERVER_BIN:-$ROOT/build/server/loopscope-server}"
if [ ! -x "$SERVER_BIN" ]; then
  cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" --target loopscope-server >/dev/null || exit 1
fi
TMP="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"${SERVER_PIN[@]}" "$SERVER_BIN" --listen "127.0.0.1:$PORT" --db "$TMP/bench.db" 2>"$TMP/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

: > "$TMP/results.jsonl"
# .venvs-sid/list: CPython 3.14/3.15 inside the Debian sid root (scripts/sid-chroot.sh), which shares
# the loopback network (the server above) and sees the work tree at the same path.
{ sed 's/^/host /' .venvs/list; [ -s .venvs-sid/list ] && sed 's/^/sid /' .venvs-sid/list
  [ -s .venvs-fw/list ] && sed 's/^/fw /' .venvs-fw/list; } > "$TMP/venvs"
: > "$TMP/tasks200k.txt"
while read -r where venv; do
  run=(); [ "$where" = sid ] && run=("$ROOT/scripts/sid-chroot.sh" run)
  "${run[@]}" "$venv/bin/python" -c 'import sys; sys.exit(hasattr(sys, "gettotalrefcount"))' 2>/dev/null || continue # not debug builds
  ver="$("${run[@]}" "$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  src="$ROOT/build-collector/bench-py$ver"
  scripts/copy-collector.sh "$src"
  "${run[@]}" "$venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall --no-deps "$src" >/dev/null 2>&1 \
    || { echo "bench: cannot install loopscope into $venv"; continue; }
  echo "bench: Python $ver ($where) ..." >&2
  if [ -n "$ONLY" ]; then # a shorter run: the named workloads, loopscope on vs off only
    case "$where,$ONLY" in fw,*litestar_requests*|host,*|sid,*) ;; *) continue ;; esac
    [ "$where" = fw ] && only=litestar_requests || only="$(echo "$ONLY" | sed 's/,*litestar_requests//; s/^,//')"
    [ -n "$only" ] || continue
    "${run[@]}" "$venv/bin/python" bench/overhead/bench.py --server "http://127.0.0.1:$PORT" --server-pid "$SERVER" --reps "$REPS" --json \
      --only "$only" --modes "$MODES" "${PIN[@]}" >> "$TMP/results.jsonl" || echo "bench: Python $ver ($where) failed"
    continue
  fi
  if [ "$where" = fw ]; then # the framework venv: only the app that needs it (Litestar)
    "${run[@]}" "$venv/bin/python" bench/overhead/bench.py --server "http://127.0.0.1:$PORT" --server-pid "$SERVER" --reps "$REPS" --json \
      --only litestar_requests --modes on,disabled "${PIN[@]}" >> "$TMP/results.jsonl" || echo "bench: Python $ver (fw) failed"
    continue
  fi
  "${run[@]}" "$venv/bin/python" -m pip install -q yappi viztracer >/dev/null 2>&1 || echo "bench: yappi/viztracer not installable for $ver"
  "${run[@]}" "$venv/bin/python" bench/overhead/bench.py --server "http://127.0.0.1:$PORT" --server-pid "$SERVER" --reps "$REPS" --json "${PIN[@]}" >> "$TMP/results.jsonl" \
    || echo "bench: Python $ver failed"
  "${run[@]}" "$venv/bin/python" bench/overhead/tasks200k.py --server "http://127.0.0.1:$PORT" >> "$TMP/tasks200k.txt" \
    || echo "bench: tasks200k on Python $ver failed"
done < "$TMP/venvs"

python3 - "$TMP/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
modes = ["on", "disabled", "yappi", "viztracer"]
targets = {"async_tree": 1.05, "async_tree_taskgroup": 1.05, "async_tree_eager": 1.05, "asgi_requests": 1.05,
           "asgi_requests_heavy": 1.05, "asgi_requests_long": 1.05,
           "litestar_requests": 1.03}  # issue 15 (loop-thread CPU; asgi_requests_long: also <= 1.08x wall)
print("median ratio to loopscope off, per Python: wall clock / CPU time of the loop thread")
print("(sender = CPU ms the sender thread spent per run, on its own core, in the 'on' mode)")
print("(on: paired = median of the per-rep ratios of loop-thread CPU, the runs of a rep neighbours in time;")
print(" min = fastest 'on' run over fastest 'off' run: noise only adds time, so on a noisy machine the")
print(" minimum is the run least disturbed; p10 = the same for the fastest tenth of each mode's runs,")
print(" which needs many reps: at 30 its A/A read 0.78-1.21x on 2026-12-04, at 80 within 1%: abstat.py)")
aa = any("off2" in res for r in rows for w, res in r["results"].items() if w != "cost")
if aa:
    print("(A/A: 'off' run again in the same reps, its paired, min and p10 CPU ratios to 'off': what this run's")
    print(" noise alone gives, to read 'on' against)")
print(f"{'py':5s} {'workload':21s} {'off ms':>7s} " + " ".join(f"{m:>15s}" for m in modes) + f" {'sender':>7s} {'paired':>7s} {'min':>6s} {'p10':>6s}"
      + (f" {'A/A paired':>10s} {'min':>6s} {'p10':>6s}" if aa else "") + "  target on")
for r in rows:
    for w, res in r["results"].items():
        if w == "cost":
            continue
        cells = " ".join(f"{res[m]['ratio']:6.2f}x /{res[m]['cpu_ratio']:5.2f}x" if m in res else f"{'-':>15s}" for m in modes)
        a = res.get("off2")
        aacells = (f" {a['paired_cpu']:9.3f}x {a['min_cpu_ratio']:5.3f}x {a.get('p10_cpu_ratio', 0):5.3f}x" if a
                   else f" {'-':>10s} {'-':>6s} {'-':>6s}") if aa else ""
        print(f"{r['python']:5s} {w:21s} {res['off']['median_s']*1000:7.1f} {cells} {res['on'].get('sender_cpu_s', 0)*1000:6.1f}ms "
              f"{res['on']['paired_cpu']:6.3f}x {res['on'].get('min_cpu_ratio', 0):5.3f}x {res['on'].get('p10_cpu_ratio', 0):5.3f}x{aacells}  " + (f"<= {targets[w]:.2f}x" if w in targets else "-"))
for r in rows:
    c = r["results"].get("cost")
    if c:
        print(f"{r['python']:5s} cost of a request (loop-thread CPU, on - off): fixed {c['fixed_ns']:.0f} ns, "
              f"{c['per_step_ns']:.0f} ns per recorded step+await")
for r in rows:
    s = r.get("steady")
    if s:
        print(f"{r['python']:5s} light loop, steady state (long run - short run): on/off {s['ratio']:.3f}x over "
              f"{s['requests']} requests; fixed part of a run off {s['fixed_off_ms']:.1f} ms, on {s['fixed_on_ms']:.1f} ms")
PY
if [ -s "$TMP/tasks200k.txt" ]; then # not run with --only
  echo "200k tasks under full capture (tasks200k.py):"
  cat "$TMP/tasks200k.txt"
fi
