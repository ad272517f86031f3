# bench/lag/accuracy.py — how well each way of measuring loop lag reports known stalls, a busy
# ready queue and an idle loop, against the ground truth the program measures itself. The
# candidates are modelled here in Python on asyncio's own loop (the collector does them in C):
#   heartbeat  a callback loop.call_at'ed every PERIOD, its lateness (loopscope before: visible)
#   timers     the lateness of the program's own timers: TimerHandle._when against the clock when
#              its _run starts (adds nothing to the loop)
#   virtual    a heartbeat nobody schedules: ticks due every PERIOD on the clock; due while a handle
#              runs, a callback due when it began waits until it and the handles queued now have
#              run; due between handles, it waits for the handles queued then (none: on time)
#   hybrid     timers + virtual (what the collector does now)
# Usage: python bench/lag/accuracy.py [--period-ms 10] [--reps 3]
from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import statistics
import time

mono = time.monotonic


class Probe:
    """Collects the samples (due, lateness seconds) of every candidate while installed."""

    def __init__(self, period: float):
        self.period = period
        self.samples: dict[str, list[float]] = {"heartbeat": [], "timers": [], "virtual": []}
        self.next_due = None
        self.orig_run = asyncio.events.Handle._run
        self.hb_handle = None

    # -- timers and virtual: a stand-in for the collector's Handle._run hook
    def install(self, loop: asyncio.AbstractEventLoop, heartbeat: bool) -> None:
        probe, orig = self, self.orig_run
        timer_type = asyncio.events.TimerHandle

        def run(handle):
            t0 = mono()
            if handle is probe.hb_handle:
                return orig(handle)
            if type(handle) is timer_type:
                probe.samples["timers"].append(max(0.0, t0 - handle._when))
            probe.tick_start(handle, t0)
            r = orig(handle)
            probe.tick_end(handle, t0, mono())
            return r

        asyncio.events.Handle._run = run
        if heartbeat:
            self._schedule(loop, mono() + self.period)

    # -- the virtual tick, as collector/ext/lag.c does it
    wait_for = None
    wait_due = 0.0

    def _wait(self, handle, due, late, t):
        ready = handle._loop._ready
        if ready:  # the tick waits for the handles queued now
            self.wait_for, self.wait_due, self.next_due = ready[-1], due, float("inf")
        else:
            self.samples["virtual"].append(late)
            self.next_due = t + self.period

    def tick_start(self, handle, t0):
        if self.wait_for is not None:
            if handle is not self.wait_for and self.wait_for._cancelled:
                self.samples["virtual"].append(t0 - self.wait_due)
                self.wait_for, self.next_due = None, t0 + self.period
            return
        if self.next_due is None:
            self.next_due = t0 + self.period
        elif t0 >= self.next_due:  # due between handles
            self._wait(handle, self.next_due, 0.0, t0)

    def tick_end(self, handle, t0, t1):
        if self.wait_for is not None:
            if handle is self.wait_for:
                self.samples["virtual"].append(t1 - self.wait_due)
                self.wait_for, self.next_due = None, t1 + self.period
            return
        if t0 < self.next_due <= t1:  # due while this handle ran: one due when it began waits
            self._wait(handle, t0, t1 - t0, t1)

    def _schedule(self, loop, due):
        def tick():
            now = mono()
            self.samples["heartbeat"].append(max(0.0, now - due))
            self._schedule(loop, now + self.period)
        self.hb_handle = loop.call_at(due, tick)

    def uninstall(self) -> None:
        asyncio.events.Handle._run = self.orig_run
        if self.hb_handle is not None:
            self.hb_handle.cancel()


# ---- scenarios: each returns the ground truth {"max": s, "each": [lateness, ...]} -------------

async def stalls(ms: float, with_timers: bool) -> dict:
    """A task stalls the loop (time.sleep) between awaits; with_timers: another task keeps a 2 ms
    timer pending and measures its own lateness, the ground truth of what a due callback saw."""
    truth: list[float] = []
    stop = False

    async def ticker():
        while not stop:
            due = mono() + 0.002
            await asyncio.sleep(0.002)
            truth.append(max(0.0, mono() - due))

    t = asyncio.create_task(ticker()) if with_timers else None
    for _ in range(4):
        await asyncio.sleep(0.03)
        time.sleep(ms / 1000)
    stop = True
    if t:
        await t
    # without timers, a callback due when a stall starts waits for the whole stall
    return {"max": max(truth) if truth else ms / 1000, "each": truth}


async def busy_ready(n: int = 1000, spin_ms: float = 0.1) -> dict:
    """n short callbacks queued at once (one loop iteration of n*spin_ms): a callback queued right
    after them (and a 1 ms timer) measures how long it waited."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    truth = []

    def spin():
        end = mono() + spin_ms / 1000
        while mono() < end:
            pass

    for _ in range(3):
        await asyncio.sleep(0.02)
        queued = mono()
        for _ in range(n):
            loop.call_soon(spin)
        seen = loop.create_future()
        loop.call_soon(lambda: seen.set_result(mono() - queued))
        due = mono() + 0.001
        timer = loop.create_future()
        loop.call_at(loop.time() + 0.001, lambda: timer.set_result(mono() - due))
        truth.append(await seen)
        truth.append(max(0.0, await timer))
    done.set_result(None)
    return {"max": max(truth), "each": truth}


async def idle(seconds: float = 1.0) -> dict:
    due = mono() + seconds
    await asyncio.sleep(seconds)
    late = max(0.0, mono() - due)
    return {"max": late, "each": [late]}


def run_one(name, make, period, heartbeat):
    loop = asyncio.new_event_loop()
    probe = Probe(period)
    try:
        probe.install(loop, heartbeat)
        truth = loop.run_until_complete(make())
    finally:
        probe.uninstall()
        loop.close()
    s = probe.samples
    s["hybrid"] = s["timers"] + s["virtual"]
    return truth, s


def fmt(xs):
    if not xs:
        return "   n=0                        "
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(0.99 * len(xs)))]
    return f"n={len(xs):4d} p50={statistics.median(xs)*1e3:6.2f} p99={p99*1e3:6.1f} max={xs[-1]*1e3:6.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--period-ms", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    period = args.period_ms / 1000
    scenarios = [
        ("stall 20ms", lambda: stalls(20, False)), ("stall 50ms", lambda: stalls(50, False)),
        ("stall 150ms", lambda: stalls(150, False)), ("stall 20ms+timers", lambda: stalls(20, True)),
        ("stall 50ms+timers", lambda: stalls(50, True)), ("stall 150ms+timers", lambda: stalls(150, True)),
        ("busy ready 1000x0.1ms", busy_ready), ("idle 1s", idle),
    ]
    print(f"lag per candidate, ms (period {args.period_ms:g} ms); truth = what the program measured itself")
    for rep in range(args.reps):
        for name, make in scenarios:
            # the heartbeat is a timer of its own: it runs in a separate pass, so that the
            # passive candidates see only the program's timers
            truth, s = run_one(name, make, period, heartbeat=False)
            _, h = run_one(name, make, period, heartbeat=True)
            print(f"{name:22s} truth max={truth['max']*1e3:6.1f}")
            for cand in ("heartbeat", "timers", "virtual", "hybrid"):
                xs = h["heartbeat"] if cand == "heartbeat" else s[cand]
                print(f"    {cand:9s} {fmt(xs)}")


if __name__ == "__main__":
    main()
