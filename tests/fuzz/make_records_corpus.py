#!/usr/bin/env python3
"""tests/fuzz/make_records_corpus.py — writes corpus/records/: seed bodies in the binary record form
(docs/api.md, "Binary record bodies") for fuzz_records, each reaching a different part of the
reader: every kind and flag, a strings table, several batches, meta, drops. Run it again after
changing the form; the files are committed so that the fuzz run needs no Python."""
from __future__ import annotations

import json
import os


def v(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(text: str) -> bytes:
    b = text.encode()
    return v(len(b)) + b


def inline(text: str) -> bytes:
    b = text.encode()
    return v(len(b) << 1) + b


def ref(i: int) -> bytes:
    return v((i << 1) | 1)


def zz(d: int) -> bytes:
    return v((d << 1) ^ (d >> 63) if d >= 0 else ((-d) << 1) - 1)


def batch(bid: str, sid: str, meta: dict | None, table: list[str], events: list[tuple[int, bytes]]) -> bytes:
    counts = [0] * 7
    for kind, _ in events:
        counts[6 if kind in (7, 8) else kind - 1] += 1
    out = s(bid) + s(sid) + s(json.dumps(meta) if meta is not None else "")
    out += v(len(table)) + b"".join(s(t) for t in table)
    out += b"".join(v(c) for c in counts)
    return out + b"".join(body for _, body in events)


def ev(kind: int, flags: int, fields: bytes) -> tuple[int, bytes]:
    return kind, bytes([kind | flags << 4]) + fields


TABLE = ["app.handler", "sleep", "app/views.py", "render"]
EVERY_KIND = [
    ev(1, 1, v(1) + v(0) + zz(0) + v(7) + ref(0)),                                    # task "Task-7"
    ev(1, 0, v(2) + v(1) + zz(10) + inline("worker") + ref(0)),                        # named task
    ev(2, 0, v(1) + zz(1) + v(30)),                                                    # step
    ev(3, 0, v(2) + zz(5) + v(45000000) + v(23) + ref(1) + ref(2) + ref(3)),           # await
    ev(4, 2, v(1) + zz(100) + v(50) + v(20) + v(2)                                    # block, stack_t, 2 frames
       + v(7) + ref(2) + ref(0) + inline("await render()")
       + v(9) + ref(2) + ref(3) + inline("time.sleep(0.15)")),
    ev(4, 1, v(0) + zz(10) + v(70) + v(3) + inline("s-ab-1") + v(0)),                 # block from elsewhere
    ev(5, 0, zz(-50) + v(123456)),                                                     # lag, t back
    ev(6, 0, v(2) + zz(900)),                                                          # done ok
    ev(6, 2 | 4 | 8, v(1) + zz(1) + v(500) + inline("ValueError: x")),                # done error
    ev(8, 0, v(5)),                                                                    # drop
    ev(7, 0, zz(10)),                                                                  # end
]
META = {"name": "GET /x", "pid": 12, "loop": 2, "started_unix_ns": "1700000000000000000", "route": "GET /x"}

SEEDS = {
    "every-kind.lsr": b"LSR1" + batch("b-1", "s-1", META, TABLE, EVERY_KIND),
    "two-batches.lsr": b"LSR1" + batch("b-1", "s-1", META, TABLE, EVERY_KIND[:4])
                       + batch("b-2", "s-2", None, TABLE[:2], EVERY_KIND[:3] + [ev(7, 0, zz(5))]),
    "no-table.lsr": b"LSR1" + batch("b-3", "s-3", {}, [], [ev(1, 0, v(1) + v(0) + zz(0) + inline("t") + inline("c")),
                                                           ev(2, 0, v(1) + zz(3) + v(4))]),
    "empty.lsr": b"LSR1" + batch("b-4", "s-4", None, [], []),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "records")
    os.makedirs(out, exist_ok=True)
    for name, body in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(body)
    print(f"{len(SEEDS)} seeds in {out}")
