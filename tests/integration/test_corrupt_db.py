"""test_corrupt_db.py — a database file SQLite finds corrupt (SQLITE_CORRUPT) or not a database at
all (SQLITE_NOTADB), at start and while running (docs/RELIABILITY.md, "A corrupt database file").

At start the server does not start: exit status 1, a message naming the file, what SQLite said and
what to do, and the file left byte for byte as it was. While running, a request that meets a
corrupt page is answered 500 with a detail that says so — not 503 with Retry-After, which would
have collectors retry something no retry can fix — and /healthz turns 503 {"ok": false}.
"""
import hashlib
import os
import random

import pytest

from batches import batch
from conftest import Server, wait_for

ADVICE = "the server never overwrites it: move it aside"


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def refused_at_start(tmp_path, db):
    before = digest(db)
    s = Server(tmp_path, db=db)
    with pytest.raises(AssertionError, match="server exited early"):
        s.start()
    assert s.proc.wait(30) == 1
    log = s.read_log()
    assert f"cannot open the database {db}: " in log, log
    assert ADVICE in log and ".recover" in log, log
    assert digest(db) == before, "the server changed the file it refused"
    for suffix in ("-wal", "-shm"):
        p = db + suffix
        assert not os.path.exists(p) or os.path.getsize(p) == 0, f"{p} was written"
    return log


def test_random_bytes_are_not_a_database(tmp_path):
    db = str(tmp_path / "random.db")
    with open(db, "wb") as f:
        f.write(random.Random(7).randbytes(64 * 1024))
    assert "file is not a database" in refused_at_start(tmp_path, db)


def test_a_damaged_schema_page_is_refused_at_start(tmp_path):
    db = str(tmp_path / "loopscope.db")
    s = Server(tmp_path, db=db).start()
    assert s.ingest(batch("s-a", "b-a", [{"k": "lag", "t": 1, "d": 2}])).status == 202
    assert s.stop() == 0
    with open(db, "r+b") as f:  # page 1 past the 100-byte file header: sqlite_schema's b-tree
        f.seek(100)
        f.write(b"\xff" * 400)
    log = refused_at_start(tmp_path, db)
    assert "malformed" in log or "not a database" in log, log


def big_session(sid, tasks):
    return batch(sid, "b-" + sid, [{"k": "task", "id": i, "t": i, "name": f"task-{i}-" + "x" * 200,
                                    "coro": "app.work"} for i in range(1, tasks + 1)],
                 meta={"name": sid})


def test_corrupt_pages_while_running_answer_500_not_503(tmp_path):
    db = str(tmp_path / "loopscope.db")
    s = Server(tmp_path, db=db).start()
    assert s.ingest(batch("s-small", "b-small", [{"k": "lag", "t": 1, "d": 2}], meta={"name": "small"})).status == 202
    assert s.ingest(big_session("s-big", 3000)).status == 202
    assert s.stop() == 0  # the final checkpoint: every page is in the file itself
    size = os.path.getsize(db)
    assert size > 150 * 4096, size
    # The newest rows (s-big's tasks) live in the last pages: garble the last 40% of them,
    # leaving page 1 and the schema's early pages alone so that the server starts.
    rnd = random.Random(11)
    with open(db, "r+b") as f:
        start = (size * 6 // 10) // 4096 * 4096
        f.seek(start)
        f.write(rnd.randbytes(size - start))
    s = Server(tmp_path, db=db).start()
    assert s.get_json("/healthz")["ok"] is True  # nothing corrupt met yet

    r = s.get("/api/v1/sessions/s-big/tasks")
    assert r.status == 500, (r.status, r.body[:300])
    assert r.header("retry-after") is None
    body = r.json()
    assert body["error"] == "internal"
    assert body["detail"].startswith("the database file is corrupt"), body
    assert "retrying will not help" in body["detail"]

    h = s.get("/healthz")
    assert h.status == 503
    assert h.json()["ok"] is False and "corrupt" in h.json()["error"]
    r = s.get("/api/v1/sessions/s-big/export?format=chrome")
    assert r.status == 500 and "corrupt" in r.json()["detail"], (r.status, r.body[:200])

    # a write may or may not touch a damaged page; if it fails it says why, and never "retry"
    r = s.ingest(big_session("s-big", 50) | {"batch": "b-more"})
    assert r.status in (202, 500), (r.status, r.body[:300])
    if r.status == 500:
        assert "corrupt" in r.json()["detail"]
    log = wait_for(lambda: "the database file is corrupt" in s.read_log() and s.read_log(), what="the log line")
    assert ".recover" in log
    assert s.stop() == 0
