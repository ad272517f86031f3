"""test_service.py — the binary as a service: /healthz, /metrics, pages with CSP, command-line
options, SIGTERM finishing queued work with exit 0, restart with the data kept."""
import os
import sqlite3
import subprocess
import threading
import time

from batches import EXAMPLE, EXAMPLE_SUMMARY, batch
from conftest import BINARY, SLOW, Server

SCHEMA_V1 = os.path.join(os.path.dirname(__file__), "..", "..", "schema", "schema.sql")
# the newest schema version: the highest migration's number (schema/migrations/NNN-*.sql)
LATEST = max(int(f[:3]) for f in os.listdir(os.path.join(os.path.dirname(SCHEMA_V1), "migrations")) if f.endswith(".sql"))

CSP_START = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors ")


def test_healthz_and_metrics(server):
    assert server.get_json("/healthz") == {"ok": True, "version": "0.1.0", "schema": LATEST}
    assert server.ingest(EXAMPLE).status == 202
    assert server.ingest({"v": 9}).status == 400
    r = server.get("/metrics")
    assert r.header("content-type").startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    assert "# TYPE loopscope_batches_total counter" in text
    m = server.metrics()
    assert m["loopscope_batches_total"] == 1
    assert m["loopscope_events_total"] == 9
    assert m['loopscope_rejects_total{reason="invalid"}'] == 1
    assert m["loopscope_queue_depth"] == 0
    assert m["loopscope_db_bytes"] > 4096
    assert m["loopscope_http_requests_total"] >= 3


def test_pages_carry_csp(make_server):
    s = make_server()
    for path, marker in [("/", b"<!doctype html"), ("/sessions/s-9f1c2e", b"<!doctype html"),
                         ("/sessions/s-9f1c2e?embed=1", b"<!doctype html")]:
        r = s.get(path)
        assert r.status == 200, path
        assert r.body.lower().startswith(marker)
        assert r.header("content-type") == "text/html; charset=utf-8"
        assert r.header("content-security-policy") == CSP_START + "'self' http://127.0.0.1:* http://localhost:*"
        assert r.header("x-content-type-options") == "nosniff"
    assert s.get("/").body != s.get("/sessions/x").body
    r = s.get("/static/style.css")
    assert r.status == 200 and r.header("content-type") == "text/css; charset=utf-8"
    r = s.get("/static/api.js")
    assert r.status == 200 and r.header("content-type") == "text/javascript; charset=utf-8"
    assert r.header("x-content-type-options") == "nosniff"
    assert s.get("/static/../CMakeLists.txt").status == 404
    o = make_server("--embed-origin", "http://127.0.0.1:8000", "--embed-origin", "https://dev.example")
    assert o.get("/").header("content-security-policy") == CSP_START + "http://127.0.0.1:8000 https://dev.example"


def run_binary(*args, timeout=10):
    return subprocess.run([BINARY, *args], capture_output=True, timeout=timeout, text=True)


def test_command_line(tmp_path):
    r = run_binary("--help")
    assert r.returncode == 0 and "--listen HOST:PORT" in r.stdout and "--max-body" in r.stdout
    r = run_binary("--version")
    assert r.returncode == 0 and r.stdout.strip() == "loopscope-server 0.1.0"
    db = str(tmp_path / "x.db")
    for args, msg in [
        (["--bogus"], "unknown option"),
        (["--db"], "needs a value"),
        (["--log-level", "loud"], "--log-level"),
        (["--max-body", "12Q"], "--max-body"),
        (["--threads", "0"], "--threads"),
        (["--embed-origin", "a; script-src *"], "--embed-origin"),
        (["--listen", "nohostport", "--db", db], "--listen"),
        (["--listen", "127.0.0.1:99999", "--db", db], "--listen"),
        (["--listen", "0.0.0.0:0", "--db", db], "--token"),
    ]:
        r = run_binary(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert msg in r.stderr, (args, r.stderr)
    r = run_binary("--listen", "127.0.0.1:0", "--db", str(tmp_path / "no" / "such" / "dir.db"))
    assert r.returncode == 1 and "cannot open the database" in r.stderr
    assert f"({tmp_path / 'no' / 'such'}: No such file or directory); the directory must exist" in r.stderr, r.stderr


def test_port_in_use(make_server, tmp_path):
    a = make_server()
    r = run_binary("--listen", f"127.0.0.1:{a.port}", "--db", str(tmp_path / "other.db"))
    assert r.returncode == 1 and "cannot listen" in r.stderr


def test_version_1_database_is_migrated(tmp_path):
    """A database made by the previous server (schema version 1, no tasks.status) opens: its rows
    stay, status reads null, and new done events store their status."""
    db = str(tmp_path / "v1.db")
    con = sqlite3.connect(db)
    with open(SCHEMA_V1) as f:
        con.executescript(f.read())
    con.execute("PRAGMA user_version = 1")
    con.execute("INSERT INTO sessions(id, name, has_meta, ended, end_t, max_t) VALUES('s-old', 'GET /old', 1, 1, 9, 9)")
    con.execute("INSERT INTO tasks(sid, id, created, ended, state, has_task) VALUES(1, 1, 0, 9, 'ok', 1)")
    # awaits as schema 1 to 12 kept them, each with its own strings; 13 stores each site once
    old_awaits = [(1, 1, 1, 2, "sleep", "app/db.py", 23, "fetch_user"),
                  (1, 1, 4, 3, "sleep", "app/db.py", 23, "fetch_user"),
                  (1, 1, 8, 1, None, None, None, None),
                  (1, 1, 9, 5, "<emoji \U0001F600 & 'quotes'>", "app/x.py", 5, None)]
    con.executemany("INSERT INTO awaits(sid, task, t, d, what, file, line, func) VALUES(?, ?, ?, ?, ?, ?, ?, ?)", old_awaits)
    con.commit()
    con.close()
    s = Server(tmp_path, db=db).start()
    try:
        assert s.get_json("/healthz")["schema"] == LATEST
        (old,) = s.get_json("/api/v1/sessions/s-old/tasks")["tasks"]
        assert (old["id"], old["state"], old["ended"], old["status"]) == (1, "ok", 9, None)
        assert s.ingest(batch("s-old", "b-new", [{"k": "task", "id": 2, "parent": 1, "t": 1},
                                                 {"k": "done", "id": 2, "t": 8, "state": "ok", "status": 204}])).status == 202
        t = {x["id"]: x["status"] for x in s.get_json("/api/v1/sessions/s-old/tasks")["tasks"]}
        assert t == {1: None, 2: 204}
        got = s.get_json("/api/v1/sessions/s-old/awaits?min_ms=0")["awaits"]
        assert sorted((a["t"], a["d"], a["what"], a["file"], a["line"], a["func"]) for a in got) == \
            [x[2:] for x in old_awaits]
    finally:
        assert s.stop() == 0
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone() == (LATEST,)
    assert con.execute("SELECT count(*) FROM sites").fetchone() == (3,)
    con.close()


def test_restart_keeps_data(tmp_path):
    s = Server(tmp_path).start()
    assert s.ingest(EXAMPLE).status == 202
    assert s.stop() == 0
    log = s.read_log()
    assert "SIGTERM: stopping" in log and "stopped cleanly" in log
    s2 = Server(tmp_path, db=s.db, env=None).start()
    try:
        assert s2.get_json("/api/v1/sessions/s-9f1c2e") == EXAMPLE_SUMMARY
        assert s2.ingest(EXAMPLE).status == 200  # idempotency survives the restart
    finally:
        assert s2.stop() == 0


def test_sigterm_finishes_the_batch_in_flight(tmp_path):
    s = Server(tmp_path, "--log-level", "debug").start()
    assert s.ingest(batch("s0", "b0", [])).status == 202
    lock = sqlite3.connect(s.db, timeout=0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", s.ingest(batch("s1", "A", [{"k": "lag", "t": 1, "d": 7}]))))
    groups = s.read_log().count("writer: writing a group of")
    t.start()
    deadline = time.monotonic() + 20
    while s.read_log().count("writer: writing a group of") == groups and time.monotonic() < deadline:
        time.sleep(0.01)  # until A waits in the writer for the lock
    proc = s.proc
    proc.send_signal(15)
    time.sleep(0.3)
    assert proc.poll() is None  # still finishing A
    try:  # no longer accepting
        s.get("/healthz", timeout=2)
        accepted = True
    except OSError:
        accepted = False
    assert not accepted
    lock.execute("ROLLBACK")
    lock.close()
    t.join(20)
    assert proc.wait(20) == 0
    s.proc = None
    s.log.close()
    assert result["r"].status == 202
    db = sqlite3.connect(s.db)
    assert db.execute("select d from lag").fetchall() == [(7,)]
    # the final checkpoint moved everything into the database file
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    db.close()


def test_sigterm_while_clients_post_stops_cleanly_and_keeps_what_it_acknowledged(tmp_path):
    """SIGTERM while eight clients post batches on new connections, 20 times over (4 HTTP worker
    threads): every stop exits 0, and every batch answered 202 is in the database afterwards.
    With libmicrohttpd's epoll mode, stopping to accept (MHD_quiesce_daemon) raced a worker
    removing the listen socket from its own epoll set, and the loser aborted the process
    ("Failed to remove listen FD from epoll set", SIGABRT; seen once in a CI run)."""
    db = str(tmp_path / "stops.db")
    acknowledged: list[str] = []
    for round_ in range(20):
        s = Server(tmp_path, "--threads", "4", db=db).start()
        stop = threading.Event()

        def client(n: int) -> None:
            i = 0
            while not stop.is_set():
                bid = f"r{round_}-c{n}-{i}"
                i += 1
                try:
                    r = s.ingest(batch(f"s-stop-{round_}", bid, [{"k": "lag", "t": i, "d": 1}]), timeout=30)
                except OSError:
                    continue  # refused or cut while the server stops: not acknowledged
                if r.status == 202:
                    acknowledged.append(bid)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.1 + 0.01 * round_)
        s.proc.send_signal(15)
        rc = s.proc.wait(60 * SLOW)
        stop.set()
        for t in threads:
            t.join(60)
        s.proc = None
        s.log.close()
        assert rc == 0, (round_, s.read_log()[-2000:])
    assert acknowledged
    con = sqlite3.connect(db)
    stored = {row[0] for row in con.execute("select batch from batches")}
    con.close()
    missing = [b for b in acknowledged if b not in stored]
    assert not missing, missing[:10]


def test_sigint_also_stops_cleanly(tmp_path):
    s = Server(tmp_path).start()
    s.proc.send_signal(2)
    assert s.proc.wait(20) == 0
    assert "SIGINT: stopping" in s.read_log()
    s.proc = None
    s.log.close()


def test_wal_is_checkpointed_when_idle(server, tmp_path):
    import os
    import shutil
    wal = server.db + "-wal"
    events = [{"k": "step", "id": 1 + i % 50, "t": i, "d": 1} for i in range(5000)]
    for i in range(40):  # well past the 1000 WAL pages the idle checkpoint starts from
        assert server.ingest(batch("s-wal", f"b{i}", [dict(e, t=e["t"] + i * 5000) for e in events])).status == 202
    assert os.path.getsize(wal) > 1000 * 4096
    # A second of quiet: everything is copied back into the database file (a copy of that file
    # alone holds the whole session). The WAL file is kept, not truncated: its space is what a
    # delete on a full disk is written into; it never exceeds journal_size_limit (64 MiB).
    copy = str(tmp_path / "copy.db")
    deadline = time.monotonic() + 10 * SLOW
    n = 0
    while time.monotonic() < deadline:
        shutil.copyfile(server.db, copy)
        con = sqlite3.connect(copy)
        try:
            n = con.execute("SELECT count(*) FROM batches").fetchone()[0]
        except sqlite3.DatabaseError:
            n = -1  # copied while the checkpoint was writing the file (seen under valgrind): again
        con.close()
        os.unlink(copy)
        if n == 40:
            break
        time.sleep(0.2)
    assert n == 40
    assert os.path.getsize(wal) <= 64 << 20
    assert server.metrics()["loopscope_wal_bytes"] == os.path.getsize(wal)
    assert server.get_json("/api/v1/sessions/s-wal")["duration_ns"] == 40 * 5000
    assert "session s-wal: first batch stored" in server.read_log()


def test_ipv6_loopback(tmp_path):
    import http.client
    import re
    import socket
    import pytest
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    log = tmp_path / "v6.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([BINARY, "--listen", "[::1]:0", "--db", str(tmp_path / "v6.db")],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.monotonic() + 10
        while port is None and time.monotonic() < deadline:
            m = re.search(r"listening on http://\[::1\]:(\d+)/", log.read_text())
            port = int(m.group(1)) if m else None
            time.sleep(0.02)
        assert port
        conn = http.client.HTTPConnection("::1", port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.send_signal(15)
        assert proc.wait(20) == 0


def test_threads_named_by_role(server):
    """The server's threads carry their role's name (top -H, ps -L, /proc/PID/task/TID/comm): the
    writer, the parse pool, the figures thread... so its CPU can be told apart (bench/overhead/
    ingest_ab.py sums it by name)."""
    server.ingest(batch("s-named", "b1", EXAMPLE))
    task_dir = f"/proc/{server.proc.pid}/task"
    want = {"ls-writer", "ls-parse", "ls-figures", "ls-sweeper"}
    # Each thread names itself as it starts; on a loaded machine (ASan, a CPU hog beside CI) a
    # thread made at startup may not have run its first line yet when the first answer is back,
    # so look again until a generous deadline rather than once.
    deadline = time.monotonic() + 20
    while True:
        names = set()
        for tid in os.listdir(task_dir):
            try:
                with open(os.path.join(task_dir, tid, "comm")) as f:
                    names.add(f.read().strip())
            except OSError:  # a thread that ended meanwhile
                pass
        if want <= names or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert want <= names, names
