"""bench/overhead/cgself.py OFF_DIR_OR_PROFILE [ON_PROFILE] — each function's own cost (not what it
calls) in a callgrind profile part, with the names the earlier parts of the same run defined.

callgrind.sh's LS_CG_TIMED=1 profiles dump the timed run as part 2 (on.cg.2), whose compressed
names ("fn=(123)") were defined in part 1 (on.cg.1): callgrind_annotate on part 2 alone shows ids,
not names. This reads the parts in order, keeps the names, and sums each function's self cost in
the last part. With one profile it prints the top functions by Ir; with a directory (off.cg.2 and
on.cg.2 in it, as callgrind.sh leaves them) or two profiles, what `on` adds over `off`, function by
function, sorted by the added I1 misses (--sort EVENT to choose): where the collector's cost lands.

    python3 bench/overhead/cgself.py /tmp/cg-litestar            # off.cg.2 against on.cg.2
    python3 bench/overhead/cgself.py on.cg.2 --top 30 --sort D1mr
Not a test: a reading aid for bench/overhead/README.md.
"""
import argparse
import os
import re
import sys
from collections import defaultdict

_DEF = re.compile(r"^(ob|fl|fi|fe|fn|cob|cfi|cfl|cfn)=\((\d+)\)(?: (.*))?$")


def _parts(path: str) -> list:
    """path and the parts dumped before it (x.cg.2 -> x.cg.1, x.cg.2; names carry across them).
    x.cg itself is the part written at exit, after them: it defines no name they use."""
    m = re.match(r"^(.*)\.(\d+)$", path)
    if not m:
        return [path]
    base, n = m.group(1), int(m.group(2))
    return [f"{base}.{i}" for i in range(1, n) if os.path.exists(f"{base}.{i}")] + [path]


def self_costs(path: str, full_object: bool = False) -> tuple:
    """(events, {function: [costs]}) of the last part; function is 'object:name', the object's
    file name, or its whole path with full_object (two modules may share a name: msgspec's
    _core and ours)."""
    names = {k: {} for k in ("ob", "fl", "fn")}
    alias = {"cob": "ob", "cfi": "fl", "cfl": "fl", "cfn": "fn", "fi": "fl", "fe": "fl"}
    files = _parts(path)
    costs: dict = {}
    events: list = []
    for i, f in enumerate(files):
        last = i == len(files) - 1
        cur_ob = cur_fn = ""
        skip_next = False
        acc = defaultdict(lambda: [0] * len(events))
        with open(f, errors="replace") as fh:
            for line in fh:
                line = line.rstrip("\n")
                if not line:
                    continue
                c = line[0]
                if c.isdigit() or c in "+-*":
                    if not last:
                        continue
                    if skip_next:  # the inclusive cost of a call: the caller's, not its own
                        skip_next = False
                        continue
                    vals = line.split()[1:]
                    row = acc[f"{cur_ob}:{cur_fn}"]
                    for j, v in enumerate(vals[:len(events)]):
                        row[j] += int(v)
                    continue
                if line.startswith("calls="):
                    skip_next = True
                    continue
                if line.startswith("events:"):
                    events = line.split()[1:]
                    acc = defaultdict(lambda: [0] * len(events))
                    continue
                m = _DEF.match(line)
                if not m:
                    continue
                kind, num, name = m.group(1), m.group(2), m.group(3)
                table = names[alias.get(kind, kind)]
                if name is not None:
                    table[num] = name
                name = table.get(num, f"({num})")
                if kind == "ob":
                    cur_ob = name if full_object else os.path.basename(name)
                elif kind == "fn":
                    cur_fn = name
        if last:
            costs = dict(acc)
    return events, costs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="a profile part (x.cg.2), or a directory holding off.cg.2 and on.cg.2")
    ap.add_argument("b", nargs="?", help="the 'on' profile part, when a is the 'off' one")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default=None, help="event to sort by (default: I1mr when comparing, else Ir)")
    args = ap.parse_args()
    off = on = None
    if os.path.isdir(args.a):
        off, on = os.path.join(args.a, "off.cg.2"), os.path.join(args.a, "on.cg.2")
    elif args.b:
        off, on = args.a, args.b
    else:
        on = args.a
    for p in (off, on):
        if p and not os.path.exists(p):
            print(f"cgself.py: no such profile: {p}", file=sys.stderr)
            return 2
    ev, con = self_costs(on)
    if off:
        ev_off, coff = self_costs(off)
        if ev_off != ev:
            print(f"cgself.py: the two profiles count different events: {ev_off} and {ev}", file=sys.stderr)
            return 2
        keys = set(con) | set(coff)
        rows = {k: [a - b for a, b in zip(con.get(k, [0] * len(ev)), coff.get(k, [0] * len(ev)))] for k in keys}
        sort = args.sort or ("I1mr" if "I1mr" in ev else "Ir")
        title = "on - off, self cost" if os.path.isdir(args.a) else f"{args.b} - {args.a}, self cost"
    else:
        rows = con
        sort = args.sort or "Ir"
        title = "self cost"
    if sort not in ev:
        print(f"cgself.py: no event {sort} in {ev}", file=sys.stderr)
        return 2
    si = ev.index(sort)
    total = [sum(r[j] for r in rows.values()) for j in range(len(ev))]
    shown = [e for e in ("Ir", "I1mr", "D1mr", "D1mw", "Dr", "Bcm", "Bim") if e in ev]
    if sort not in shown:
        shown.append(sort)
    idx = [ev.index(e) for e in shown]
    print(f"{title}, sorted by {sort}; total " + "  ".join(f"{e} {total[j]:,}" for e, j in zip(shown, idx)))
    print("".join(f"{e:>13}" for e in shown) + "  function")
    for k, r in sorted(rows.items(), key=lambda kv: -abs(kv[1][si]))[:args.top]:
        print("".join(f"{r[j]:>13,}" for j in idx) + "  " + k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
