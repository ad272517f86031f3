"""bench/common/lsbench.py — what the Python server benchmarks (rows-build, summary-first,
rows-append) share: a server on a fresh temporary database, posting a batch, and a thread that
posts small batches back to back and keeps how long each waited (does a background job of the
server hold ingest up?)."""
import itertools
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request


def _stat_fields(path):
    """(name, the fields after it) of a /proc/PID/stat or /proc/PID/task/TID/stat file (the name
    may hold spaces and parentheses: it ends at the last ')')."""
    with open(path) as f:
        head, rest = f.read().rsplit(")", 1)
    return head.split("(", 1)[1], rest.split()


def read_stat(path):
    """(name, CPU seconds user + system) from a /proc/PID/stat or /proc/PID/task/TID/stat file."""
    name, fields = _stat_fields(path)
    return name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_faults(path):
    """(name, minor page faults so far) from the same kind of file: memory taken fresh from the
    system (a page touched for the first time) is paid for where it is faulted in."""
    name, fields = _stat_fields(path)
    return name, int(fields[7])


def proc_cpu(pid):
    """CPU seconds (user + system) process pid has used so far, all its threads."""
    return read_stat(f"/proc/{pid}/stat")[1]


def post(url, body):
    req = urllib.request.Request(url + "/api/v1/ingest", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def start(server, prefix, extra=()):
    """(process, log file, url, directory) of a server on a fresh database in a new temp dir;
    extra: more arguments for the server."""
    d = tempfile.mkdtemp(prefix=prefix)
    log = open(os.path.join(d, "server.log"), "wb")
    proc = subprocess.Popen([server, "--listen", "127.0.0.1:0", "--db", os.path.join(d, "b.db"), *extra],
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        m = re.search(rb"listening on (http://127\.0\.0\.1:\d+)/", open(log.name, "rb").read())
        if m:
            return proc, log, m.group(1).decode(), d
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not start: " + open(log.name, encoding="utf-8", errors="replace").read())


def stop(proc, log):
    proc.terminate()
    proc.wait(30)
    log.close()


def log_lines(log, needle):
    return [l for l in open(log.name, encoding="utf-8", errors="replace").read().splitlines() if needle in l]


class Poster:
    """Posts make(i) for i = 0, 1, ... back to back until stopped; posts = [(sent, status, answered)]."""

    def __init__(self, url, make):
        self.url, self.make, self.posts = url, make, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        for i in itertools.count():
            if self.done.is_set():
                return
            body = self.make(i)
            a = time.monotonic()
            self.posts.append((a, post(self.url, body), time.monotonic()))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    def during(self, t0, t1=float("inf")):
        """(posts answered after t0 and sent before t1, their waits sorted, refused in all)."""
        d = [p for p in self.posts if p[2] > t0 and p[0] < t1]
        return d, sorted(p[2] - p[0] for p in d), sum(1 for p in self.posts if p[1] != 202)


def add_server_arg(ap):
    ap.add_argument("--server", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/server/loopscope-server"),
                    help="comma-separated: several binaries, run alternately")


def get_ms(url):
    """(milliseconds, parsed JSON) of one GET."""
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = json.loads(r.read())
    return 1e3 * (time.monotonic() - t0), body
