# summary.py — the terminal summary of a recorded session, from what the C module kept in-process
# (Session.summary(), _core.summary_total()): tasks, concurrency, lag, the longest blocks named by
# their culprit file:line and source (read here with linecache, off the loop), await hot spots.
# No server is asked. Used by `loopscope run` and the pytest plugin.
from __future__ import annotations

import linecache
import os
from typing import Any, Iterable, Sequence


def _is_lib(path: str, prefixes: Sequence[str]) -> bool:
    return path.startswith("<") or any(path.startswith(p) for p in prefixes)


def lib_prefixes() -> tuple[str, ...]:
    from . import _state
    extra = _state.settings.library_paths if _state.settings is not None else ()
    return _state.lib_prefixes(extra)


def culprit(stack: Iterable[Sequence[Any]] | None, prefixes: Sequence[str] | None = None) -> dict | None:
    """The frame a block is blamed on: the innermost frame of the stack (outermost first, as the
    watchdog took it) outside the stdlib, site-packages and loopscope, else the innermost one.
    {file, line, func, src} with the source line read by linecache, or None for no stack."""
    frames = [tuple(f) for f in (stack or ()) if f and len(f) >= 3]
    if not frames:
        return None
    prefixes = lib_prefixes() if prefixes is None else prefixes
    pick = next((f for f in reversed(frames) if not _is_lib(str(f[0]), prefixes)), frames[-1])
    file, line, func = str(pick[0]), int(pick[1]), str(pick[2])
    src = linecache.getline(file, line).strip() if line > 0 else ""
    return {"file": file, "line": line, "func": func, "src": src}


def where(file: str, line: int) -> str:
    """file:line with the file relative to the working directory when it is under it."""
    try:
        rel = os.path.relpath(file)
        if not rel.startswith(".."):
            file = rel
    except ValueError:
        pass
    return f"{file}:{line}"


def ms(ns: float) -> str:
    v = ns / 1e6
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.1f} ms" if v >= 1 else f"{v:.2f} ms"


def hot_spots(summary: dict, top: int) -> list[dict]:
    """The await points that kept their tasks waiting longest in all, longest first."""
    return sorted(summary.get("hot_spots") or (), key=lambda s: (-s["total_ns"], s["file"], s["line"]))[:top]


def render(summary: dict, *, title: str, top: int = 5, url: str | None = None,
           stats: dict | None = None) -> str:
    """The terminal summary as text (no trailing newline)."""
    s = summary
    out = []
    head = f"loopscope: {title} - {ms(s.get('duration_ns', 0))}" if s.get("duration_ns") else f"loopscope: {title}"
    if s.get("sessions"):
        head += f", {s['sessions']:,} sessions"
    out.append(head)
    line = f"  tasks: {s['tasks']:,}, at most {s['max_concurrency']:,} at once"
    if s.get("sessions"):
        line += " (in one session)"
    if s.get("dropped_tasks"):
        line += f"; {s['dropped_tasks']:,} more not recorded (max_tasks)"
    out.append(line)
    lag = s["lag"]
    if lag["n"]:
        out.append(f"  loop lag: avg {ms(lag['avg_ns'])}, p95 {ms(lag['p95_ns'])}, max {ms(lag['max_ns'])} "
                   f"({lag['n']:,} samples)")
    else:
        out.append("  loop lag: no samples")
    if s["blocks"]:
        out.append(f"  blocked the loop {s['blocks']:,} time{'s' if s['blocks'] != 1 else ''}, "
                   f"{ms(s['blocked_ns'])} in all; longest:")
        for b in s["top_blocks"][:top]:
            c = culprit(b["stack"])
            if c is None:
                out.append(f"    {ms(b['d_ns']):>10}  (the watchdog could not take the stack)")
                continue
            out.append(f"    {ms(b['d_ns']):>10}  {where(c['file'], c['line'])} in {c['func']}")
            if c["src"]:
                out.append(f"                {c['src']}")
    else:
        out.append("  no blocking of the loop past the threshold")
    spots = hot_spots(s, top)
    if spots:
        out.append(f"  await hot spots ({s['awaits']:,} awaits; total time waiting, by line):")
        for sp in spots:
            out.append(f"    {ms(sp['total_ns']):>10}  {sp['count']:>9,}x  max {ms(sp['max_ns']):>9}  "
                       f"{where(sp['file'], sp['line'])} in {sp['func']}: {sp['what']}")
    if stats is not None:
        dropped = stats.get("dropped", 0)
        out.append(f"  events: {stats.get('events', 0):,} recorded, {dropped:,} dropped")
    if url:
        out.append(f"  timeline: {url}")
    return "\n".join(out)
