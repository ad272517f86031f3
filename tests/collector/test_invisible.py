# test_invisible.py — loopscope must not change or crash the program it watches. Here: a recorded
# task that is destroyed while still pending (its loop closed under it, as CPython's asyncio test
# suite does after a failed test) must not leave the collector holding its address. The task
# table keys entries by a borrowed task pointer and keeps a borrowed coroutine pointer; a stale
# entry was found again by the next task allocated at that address (one made without loopscope's
# factory), whose step then read the dead coroutine: SIGSEGV in BaseEventLoop._run_once, the
# crash of the compatibility gate (scripts/test-compat.sh) in test_tasks on 3.10-3.13.
# Each case runs in a child interpreter so a crash fails the test instead of ending pytest.
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PRELUDE = textwrap.dedent("""
    import asyncio, gc, sys
    import loopscope
    loopscope.install(server="http://127.0.0.1:9")  # nothing listens: events are dropped

    async def forever():
        await asyncio.sleep(3600)

    def recorded_task_destroyed_pending():
        # a loop with loopscope's task factory, a recorded task that never runs, the loop
        # closed (its ready queue dropped): the task and its coroutine are freed, pending
        loop = asyncio.new_event_loop()
        task = loop.create_task(forever())
        addr = id(task)
        loop.close()
        del task, loop
        gc.collect()
        return addr
""")


def run_child(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", PRELUDE + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_task_destroyed_pending_leaves_no_entry():
    p = run_child("""
        with loopscope.session("gone"):
            recorded_task_destroyed_pending()
            print(loopscope.stats()["tracked_tasks"])
        loopscope.uninstall(timeout=0)
    """)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.split() == ["0"], "the collector still tracks a task that no longer exists"


def test_task_at_the_address_of_a_destroyed_one_runs():
    # The next task made at the freed address without loopscope's factory (asyncio.Task on a
    # loop loopscope did not make, as test_tasks' CTaskSubclass tests do) is stepped through the
    # hooked Handle._run; with the stale entry found, its step end read the freed coroutine.
    p = run_child("""
        async def other(n):
            a = b = c = d = e = f = g = h = n  # another frame size: not where forever()'s was
            await asyncio.sleep(0)
            return a + b + c + d + e + f + g + h

        reused = 0
        with loopscope.session("reuse"):
            for i in range(50):
                addr = recorded_task_destroyed_pending()
                loop = asyncio.SelectorEventLoop()
                made = []
                for _ in range(50):
                    made.append(asyncio.Task(other(i), loop=loop))
                    if id(made[-1]) == addr:
                        reused += 1
                        break
                assert loop.run_until_complete(asyncio.gather(*made)) == [8 * i] * len(made)
                loop.close()
        loopscope.uninstall(timeout=0)
        print(reused)
    """)
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stderr[-3000:]}"
    assert int(p.stdout.split()[-1]) > 0, "no task was made at a freed task's address: the case was not exercised"
