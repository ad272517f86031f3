"""test_faults.py — storage faults while the real server runs (issue 11, "Faults"): the database
locked by another process, writes failing with EIO (a failing disk), EROFS (a file system the
kernel remounted read-only) and ENOSPC, switched on and off under a steady stream of batches.
During a fault ingest answers 503 + Retry-After and nothing else; once the fault is gone ingest
comes back by itself; after a clean stop the database holds exactly the batches answered 202.

The write faults come from tests/support/fault_shim.c (LD_PRELOAD, LOOPSCOPE_FAULT_SHIM): while
a trigger file exists, writes, syncs and truncates of files under the database's directory fail.
Each test prints what it measured (the figures in docs/RELIABILITY.md)."""
import os
import sqlite3
import threading
import time

import pytest

from batches import batch
from conftest import SLOW, WRAPPER, Server

SHIM = os.environ.get("LOOPSCOPE_FAULT_SHIM", "")


def steps(n):
    return [{"k": "task", "id": 1, "name": "T", "coro": "c", "t": 0}] + \
        [{"k": "step", "id": 1, "t": i * 10, "d": 5} for i in range(n)]


class Poster:
    """Posts one small batch after another (a new session each), keeps every answer."""

    def __init__(self, s, prefix):
        self.s, self.prefix = s, prefix
        self.answers = []  # (session id, status, retry-after, monotonic time)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        while not self.stop.is_set():
            sid = f"{self.prefix}{i:05d}"
            r = self.s.ingest(batch(sid, "b", steps(20)), timeout=120)
            self.answers.append((sid, r.status, r.header("retry-after"), time.monotonic()))
            i += 1
            if r.status != 202:
                time.sleep(0.05)  # as a collector backs off

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(180)

    def wait(self, pred, what, timeout=60.0):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if pred(self.answers):
                return
            time.sleep(0.02)
        raise AssertionError(f"{what}: not within {timeout * SLOW:.0f} s; answers {self.summary()}")

    def summary(self):
        out = {}
        for _, st, _, _ in self.answers:
            out[st] = out.get(st, 0) + 1
        return out


def stored_sessions(db):
    con = sqlite3.connect(db)
    try:
        return {row[0] for row in con.execute("SELECT id FROM sessions")}
    finally:
        con.close()


def check_answers(p, db):
    """Every answer is 202 or 503 + Retry-After; stored == answered 202."""
    for sid, st, ra, _ in p.answers:
        assert st in (202, 503), (sid, st)
        assert (ra == "1") == (st == 503), (sid, st, ra)
    acked = {sid for sid, st, _, _ in p.answers if st == 202}
    refused = {sid for sid, st, _, _ in p.answers if st == 503}
    have = stored_sessions(db)
    assert acked <= have, f"acknowledged but not stored: {sorted(acked - have)[:10]}"
    assert not (have & refused), f"answered 503 but stored: {sorted(have & refused)[:10]}"
    return acked, refused


def run_fault(tmp_path, name, switch_on, switch_off, env=None, hold=2.0):
    """Batches before, during (hold seconds after the first 503) and after a fault; returns the
    figures. The server stops cleanly afterwards and the database is checked."""
    db = str(tmp_path / "loopscope.db")
    s = Server(tmp_path, db=db, env=env).start()
    try:
        with Poster(s, name[:3]) as p:
            p.wait(lambda a: sum(st == 202 for _, st, _, _ in a) >= 20, "20 batches stored before the fault")
            n_before = len(p.answers)
            t_on = time.monotonic()
            switch_on()
            p.wait(lambda a: any(st == 503 for _, st, _, _ in a[n_before:]), "a 503 once the fault is on")
            first_503 = next(t for _, st, _, t in p.answers[n_before:] if st == 503)
            time.sleep(hold)
            n_during = len(p.answers)
            faults = s.metrics()["loopscope_write_faults_total"]
            t_off = time.monotonic()
            switch_off()
            p.wait(lambda a: any(st == 202 for _, st, _, t in a[n_during:] if t > t_off), "ingest back after the fault")
            back = next(t for _, st, _, t in p.answers[n_during:] if st == 202 and t > t_off)
            p.wait(lambda a: sum(st == 202 for _, st, _, t in a if t > back) >= 20, "20 batches stored after")
            health = s.get("/healthz").status
    finally:
        rc = s.stop()
    assert rc == 0, s.read_log()[-3000:]
    acked, refused = check_answers(p, db)
    during = [st for _, st, _, t in p.answers if first_503 <= t <= t_off]
    assert faults >= 1
    assert health == 200
    fig = {"fault": name, "answers": p.summary(), "stored": len(acked), "refused": len(refused),
           "503 after on": round(first_503 - t_on, 3), "202 during": during.count(202),
           "ingest back after off": round(back - t_off, 3)}
    print(f"\n{name}: {fig}")
    return fig


def test_locked_by_another_process(tmp_path):
    """Another process holds the database's write lock (BEGIN EXCLUSIVE) for longer than the
    writer's busy timeout (5 s): ingest answers 503 after it, and recovers when the lock goes."""
    holder = {}

    def on():
        con = sqlite3.connect(str(tmp_path / "loopscope.db"), timeout=30, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        holder["con"] = con

    def off():
        holder["con"].execute("COMMIT")
        holder["con"].close()

    fig = run_fault(tmp_path, "locked", on, off, hold=6.0)
    assert fig["202 during"] == 0


def shim_env(tmp_path, err):
    """(trigger file, environment) for a server whose writes under tmp_path fail with err while the
    trigger exists; skips or fails the test when the shim cannot be used."""
    if not SHIM or not os.path.exists(SHIM):
        pytest.fail("LOOPSCOPE_FAULT_SHIM does not name the built fault shim (tests/CMakeLists.txt sets it)")
    if WRAPPER:
        pytest.skip("the fault shim is preloaded into the server itself, not into a wrapper (valgrind)")
    trigger = tmp_path / "fault-on"
    env = dict(os.environ, LD_PRELOAD=SHIM, LS_FAULT_TRIGGER=str(trigger), LS_FAULT_PREFIX=str(tmp_path) + "/",
               LS_FAULT_ERRNO=err,
               # an ASan server must find its runtime first; the shim does not need it
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    return trigger, env


@pytest.mark.parametrize("err", ["EIO", "EROFS", "ENOSPC"])
def test_write_faults(tmp_path, err):
    trigger, env = shim_env(tmp_path, err)
    fig = run_fault(tmp_path, err, trigger.touch, trigger.unlink, env=env)
    assert fig["202 during"] == 0


def test_read_only_volume_at_start(tmp_path):
    """A database on a read-only volume (a container's read-only mount): the server does not
    start, and says why and what to do (SQLite alone says "unable to open database file", and
    its last errno is the ENOENT of the -shm it could not create)."""
    import subprocess
    mnt = tmp_path / "ro"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("cannot mount a tmpfs (the suite runs as root): " + r.stderr.strip())
    try:
        db = str(mnt / "loopscope.db")
        s = Server(tmp_path, db=db).start()
        assert s.ingest(batch("kept", "b", steps(3))).status == 202
        assert s.stop() == 0
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        s = Server(tmp_path, db=db)
        with pytest.raises(AssertionError, match="server exited early"):
            s.start()
        assert s.proc.wait(30) == 1
        log = s.read_log()
        assert f"cannot open the database {db}: unable to open database file ({mnt} is on a read-only " \
               "file system); the server writes its database and the -wal and -shm files beside it: " \
               "give --db a path on a writable one" in log, log
        # the volume writable again: the server starts and has what it stored
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        s = Server(tmp_path, db=db).start()
        assert s.get_json("/api/v1/sessions/kept")["id"] == "kept"
        assert s.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
