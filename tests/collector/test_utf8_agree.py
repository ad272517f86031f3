# test_utf8_agree.py — the collector and the server share one UTF-8 validator (common/utf8.c):
# the built extension's verdict over tests/data/utf8_cases.txt must be CPython's strict decoder's
# (the same table the C suites run through the server's parser), and a task name holding U+0000,
# which ingest v1 refuses in any text, must still reach the server (as U+FFFD) instead of costing
# the whole batch.
from __future__ import annotations

import asyncio
from pathlib import Path

from loopscope import _core

TABLE = Path(__file__).resolve().parents[1] / "data" / "utf8_cases.txt"


def cases() -> list[tuple[bool, bytes, str]]:
    out = []
    for line in TABLE.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        verdict, hexbytes, what = line.split(" ", 2)
        out.append((verdict == "1", bytes.fromhex(hexbytes), what))
    return out


def strict_ok(b: bytes) -> bool:
    try:
        b.decode("utf-8", "strict")
        return True
    except UnicodeDecodeError:
        return False


def test_extension_validator_matches_the_table_and_cpython():
    table = cases()
    assert len(table) > 40 and any(v for v, _, _ in table) and not all(v for v, _, _ in table)
    for valid, b, what in table:
        assert _core._utf8_valid(b) is valid, what
        assert strict_ok(b) is valid, what            # the table itself is right by CPython
        assert _core._utf8_valid(b"x" + b + b"y") is valid, what


def test_a_nul_in_a_task_name_does_not_cost_the_batch(record):
    async def main():
        await asyncio.create_task(asyncio.sleep(0.001), name="nul\x00name")

    data = record(main, "nul in a name")
    names = [t["name"] for t in data["tasks"]]
    assert "nul\ufffdname" in names, names
