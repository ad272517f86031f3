# test_source_lines.py — the source line a block names (`src` of its innermost frame), read by the
# sender thread from the file (collector/src/lssrc.c), on files shaped to reach its edges: the line
# after a read-block boundary, a line longer than the 511 bytes kept (cut before a UTF-8
# character, never inside one), CRLF line ends, a last line without a newline, leading tabs.
from __future__ import annotations

import asyncio
import importlib.util
import uuid
from pathlib import Path

import pytest

BLOCK_MS = 20


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"src_case_{uuid.uuid4().hex}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def blocking_module(tmp_path: Path, before: str, line: str, newline: str = "\n", last: bool = False) -> tuple[Path, int]:
    """A module whose `stall()` blocks on `line` (which calls time.sleep), after `before` (any
    text of whole lines); the file ends right after that line when `last`."""
    head = f"import time{newline}{before}async def stall():{newline}"
    body = f"    {line}"
    tail = "" if last else f"{newline}    return 1{newline}"
    path = tmp_path / f"case_{uuid.uuid4().hex}.py"
    path.write_bytes((head + body + tail).encode())
    return path, head.count(newline) + 1


def src_of_block(record, path: Path, lineno: int) -> str:
    """The src of the block's innermost frame. The watchdog thread takes the stack once the step
    has run BLOCK_MS / 2, and it is a sample of that moment. On a loaded machine two samples miss
    the sleep, and the program runs again (at most 5 times):
    - the watchdog does not get the CPU before the 10x longer block ends: the block is stored
      without a stack;
    - the loop thread itself was off the CPU for BLOCK_MS / 2 after the step began, and gave the
      watchdog the GIL at stall()'s first instruction, on its `async def` line (CI, fc96, 3.14d:
      line 2 for 3). Only that line is retried; any other wrong line fails at once."""
    mod = load(path)

    async def main():
        await asyncio.sleep(0)
        await mod.stall()
        await asyncio.sleep(0)

    for _ in range(5):
        data = record(main, "src", blocking_threshold_ms=BLOCK_MS)
        assert data["blocks"], "the stall was not seen as a block"
        frames = [b["stack"][-1] for b in data["blocks"] if b["stack"] and b["stack"][-1]["file"] == str(path)]
        if frames and frames[0]["line"] != lineno - 1:
            break
        if not frames:
            assert all(not b["stack"] for b in data["blocks"]), data["blocks"]  # only a missing stack is retried
    assert frames, data["blocks"]
    assert frames[0]["line"] == lineno
    return frames[0]["src"]


SLEEP = f"time.sleep({BLOCK_MS * 10 / 1000})"


@pytest.mark.parametrize("filler", [0, 16384 - 40, 16384, 40000])
def test_line_after_many_bytes(record, tmp_path, filler):
    """The line comes after `filler` bytes of comments: inside the first 16 kB read, at its end,
    right after it, and several reads in."""
    before = ("#" * 99 + "\n") * (filler // 100) + "#" * (filler % 100) + ("\n" if filler % 100 else "")
    path, lineno = blocking_module(tmp_path, before, SLEEP + "  # here")
    assert src_of_block(record, path, lineno) == SLEEP + "  # here"


def test_long_line_is_cut_before_a_utf8_character(record, tmp_path):
    # 511 bytes are kept: SLEEP, a comment of ASCII, then 3-byte characters straddling byte 511
    text = SLEEP + "  # " + "a" * (500 - len(SLEEP) - 4) + "\u20ac" * 10
    path, lineno = blocking_module(tmp_path, "", text)
    src = src_of_block(record, path, lineno)
    assert text.startswith(src) and len(src.encode()) <= 511 and src.endswith("\u20ac")
    assert len(src.encode()) > 505  # cut at the last whole character, not earlier


def test_crlf_last_line_and_leading_tabs(record, tmp_path):
    path, lineno = blocking_module(tmp_path, "x = 1\r\n", SLEEP + "  # crlf", newline="\r\n")
    assert src_of_block(record, path, lineno) == SLEEP + "  # crlf"
    path, lineno = blocking_module(tmp_path, "", SLEEP + "  # last, no newline", last=True)
    assert src_of_block(record, path, lineno) == SLEEP + "  # last, no newline"
    path, lineno = blocking_module(tmp_path, "", "\t" + SLEEP + "  # tab \t ", last=True)
    assert src_of_block(record, path, lineno) == SLEEP + "  # tab"
