"""bench/overhead/cgcost.py DIR — callgrind's counts for loopscope on against off turned into time
with this machine's measured cache latencies (memlat.c), and split by what the collector does:
its work per request (the session), per task, per step, and everything else (the interpreter and
the app: what the C Handle._run replaces, and the app's lines our own push out of the caches).

The model: cycles = CPI x instructions + L1 x (L1 read misses) + LL x (LL read misses), where an
L1 miss is served by the L2 and an LL miss (callgrind's last level, simulated here as this CPU's
L2: `--LL=524288,64,64`) by the L3. L1 and LL are the extra cycles of a load served one level
further out (memlat.c: L2 latency minus L1's, L3's minus L2's); CPI, the cycles of an instruction
whose loads hit L1, is what makes the model's 'off' time match the measured one (--off-ms), or
given (--cpi). Write misses are left out (the store buffer hides them) and so is the overlap of
misses (out-of-order execution hides some): a model to rank where the time goes, checked against
the timed ratio, not a measurement of its own.

    # DIR from callgrind.sh with LS_CG_TIMED=1 (off.cg.2 and on.cg.2), the L2 simulated 64-way:
    python3 bench/overhead/cgcost.py DIR --requests 1500 --off-ms 190 --l1 8.5 --ll 40 --ghz 3.07
Not a test: a reading aid for bench/overhead/README.md.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cgself import self_costs  # noqa: E402

# What each of the collector's functions runs for (its own cost only: callees are theirs).
GROUPS = [
    ("session (per request)", re.compile(
        r"^(mod_request_open|request_\w+|route_join|scope_\w+|response_status|name_put|session_\w+|new_session_id"
        r"|adopt_task|ls_session_\w+|session_new|set_label|replace_sent_field|emit_new_chunk\w*|chunk_take|lag_reset"
        r"|utf8_of|ls_store_\w+)$")),
    ("task (per task)", re.compile(
        r"^(factory_\w+|register_task|entry_\w+|done_and_free|task_\w+|ls_emit_task|ls_emit_done|ls_record_write_task"
        r"|ls_record_write_done|table_\w+|tab_\w+|ctask_\w+|announce_emit|code_sids|exc_\w+)$")),
    ("step (per step and await)", re.compile(
        r"^(handle_run|call_orig_run|run_handle|await_\w+|info_of|gen_code|codes_find|coro_\w+|yielded_from"
        r"|suspended_line|put_\w+(\.isra\.\d+)?|ls_emit(_step|_await)?|ls_record_\w+|step_\w+|untimed_\w+|lag_\w+"
        r"|what_of|set_what_\w+|lit_sids_fill|now_ns|cur_\w+|emit_block\w*)$")),
]
READ = ("Ir", "I1mr", "D1mr", "ILmr", "DLmr")


def ours(obj: str) -> bool:
    """The collector's own module (msgspec also ships a _core.cpython-*.so)."""
    return os.path.basename(obj).startswith("_core.") and "loopscope" in obj


def group_of(fn: str) -> str:
    name = fn.split("'")[0]
    for g, rx in GROUPS:
        if rx.match(name):
            return g
    return "collector, other"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="holding off.cg.2 and on.cg.2 (callgrind.sh with LS_CG_TIMED=1)")
    ap.add_argument("--requests", type=int, default=1500, help="requests (or units) in the timed run")
    ap.add_argument("--l1", type=float, required=True, help="cycles an L1 miss adds (memlat: L2 - L1 latency)")
    ap.add_argument("--ll", type=float, required=True, help="cycles an LL miss adds (memlat: L3 - L2 latency)")
    ap.add_argument("--ghz", type=float, required=True, help="clock rate (memlat)")
    ap.add_argument("--off-ms", type=float, help="the measured 'off' time of one run: fits CPI")
    ap.add_argument("--cpi", type=float, help="cycles per instruction without misses (default: fitted)")
    args = ap.parse_args()
    paths = {m: os.path.join(args.dir, f"{m}.cg.2") for m in ("off", "on")}
    for p in paths.values():
        if not os.path.exists(p):
            print(f"cgcost.py: no such profile: {p}", file=sys.stderr)
            return 2
    ev_off, off = self_costs(paths["off"], full_object=True)
    ev_on, on = self_costs(paths["on"], full_object=True)
    if ev_off != ev_on or any(e not in ev_on for e in READ):
        print(f"cgcost.py: the profiles must both count {', '.join(READ)} (--cache-sim=yes)", file=sys.stderr)
        return 2
    idx = [ev_on.index(e) for e in READ]

    def total(costs: dict) -> list:
        return [sum(r[j] for r in costs.values()) for j in idx]

    t_off, t_on = total(off), total(on)
    if args.cpi is None and args.off_ms is None:
        print("cgcost.py: give --off-ms (to fit CPI) or --cpi", file=sys.stderr)
        return 2
    miss = lambda v: args.l1 * (v[1] + v[2]) + args.ll * (v[3] + v[4])  # noqa: E731
    cpi = args.cpi
    if cpi is None:
        cpi = (args.off_ms * 1e6 * args.ghz - miss(t_off)) / t_off[0]
        if cpi <= 0:
            print(f"cgcost.py: the misses alone take longer than {args.off_ms} ms at these latencies: the model "
                  f"does not fit this run (CPI would be {cpi:.2f})", file=sys.stderr)
            return 2
    cyc = lambda v: cpi * v[0] + miss(v)  # noqa: E731
    n = args.requests
    print(f"model: {cpi:.3f} cycles an instruction, +{args.l1:g} an L1 read miss, +{args.ll:g} an LL read miss, "
          f"{args.ghz:g} GHz{' (CPI fitted to off = %g ms)' % args.off_ms if args.cpi is None else ''}")
    print(f"{'':28}{'Ir':>14}{'L1 misses':>12}{'LL misses':>11}{'model ms':>10}")
    for name, v in (("off", t_off), ("on", t_on)):
        print(f"{name:28}{v[0]:>14,}{v[1] + v[2]:>12,}{v[3] + v[4]:>11,}{cyc(v) / args.ghz / 1e6:>10.1f}")
    print(f"model's ratio on/off: {cyc(t_on) / cyc(t_off):.3f}x")
    # per request: what on adds, by group, and the part of each cost
    rows: dict = {}
    for key in set(on) | set(off):
        obj, _, fn = key.rpartition(":")
        g = group_of(fn) if ours(obj) else "interpreter and app (net)"
        a, b = on.get(key), off.get(key)
        d = [(a[j] if a else 0) - (b[j] if b else 0) for j in idx]
        acc = rows.setdefault(g, [0] * len(READ))
        for j in range(len(READ)):
            acc[j] += d[j]
    order = [g for g, _ in GROUPS] + ["collector, other", "interpreter and app (net)"]
    print(f"\nwhat 'on' adds a request (/{n}):")
    print(f"{'':28}{'instr':>8}{'L1 miss':>9}{'LL miss':>9}{'ns instr':>10}{'ns L1':>8}{'ns LL':>8}{'ns':>8}")
    tot = [0.0] * 4
    for g in order:
        if g not in rows:
            continue
        v = rows[g]
        ns = [cpi * v[0] / n / args.ghz, args.l1 * (v[1] + v[2]) / n / args.ghz, args.ll * (v[3] + v[4]) / n / args.ghz]
        tot = [a + b for a, b in zip(tot, ns + [sum(ns)])]
        print(f"{g:28}{v[0] / n:>8.0f}{(v[1] + v[2]) / n:>9.1f}{(v[3] + v[4]) / n:>9.1f}"
              f"{ns[0]:>10.0f}{ns[1]:>8.0f}{ns[2]:>8.0f}{sum(ns):>8.0f}")
    print(f"{'all':28}{'':>8}{'':>9}{'':>9}{tot[0]:>10.0f}{tot[1]:>8.0f}{tot[2]:>8.0f}{tot[3]:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
