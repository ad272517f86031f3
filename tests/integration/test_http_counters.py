"""test_http_counters.py — the connections the HTTP layer closes without an answer are counted in
/metrics, by reason: refused at accept (--max-per-ip), the oldest request still arriving dropped to
make room (--max-connections), and the whole-request deadline (--request-timeout)."""
import http.client
import time

from test_http_limits import is_closed, open_drips

DROPPED = "loopscope_connections_dropped_total{reason=\"%s\"}"


def dropped(s):
    # This probe is a connection too: with --max-connections 4 it can itself be the request
    # "still arriving" that is closed to make room (seen on the ASan build): ask again.
    for attempt in range(20):
        try:
            m = s.metrics()
            break
        except (ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected):
            if attempt == 19:
                raise
            time.sleep(0.1)
    return {r: m[DROPPED % r] for r in ("refused", "table_full", "request_timeout")}


def wait_for(s, reason, at_least, limit=30.0):
    """The counters once `reason` has reached at_least (polled: the sweeper runs every 250 ms)."""
    t0 = time.monotonic()
    while True:
        d = dropped(s)
        if d[reason] >= at_least or time.monotonic() - t0 > limit:
            return d
        time.sleep(0.05)


def test_dropped_connections_are_counted(make_server):
    s = make_server("--max-per-ip", "2", "--max-connections", "4", "--request-timeout", "5")
    assert dropped(s) == {"refused": 0, "table_full": 0, "request_timeout": 0}
    socks = []
    try:
        # A third connection from one address is refused at accept. (Not "exactly one": this
        # test's own probes, one connection each from 127.0.0.1, fall under --max-per-ip 2 too
        # while a slow server (ASan) has not yet seen the previous ones close: seen at 2.)
        socks += open_drips(s.port, 3, ["127.0.0.2"])
        d = wait_for(s, "refused", 1)
        assert d["refused"] >= 1, d
        # Two more from other addresses make five (with the two from 127.0.0.2) against
        # --max-connections 4: the oldest request still arriving is closed to make room.
        first = [c for c in socks if not is_closed(c)]
        socks += open_drips(s.port, 2, ["127.0.0.3", "127.0.0.4"])
        d = wait_for(s, "table_full", 1)
        assert d["table_full"] >= 1 and d["refused"] >= 1, d
        assert is_closed(first[0])
        # The ones left pass --request-timeout 5 and are closed by the deadline.
        d = wait_for(s, "request_timeout", 1, limit=60)
        assert d["request_timeout"] >= 1, d
        # each connection's deadline runs from its own start: the later ones close a little later
        deadline = time.monotonic() + 60
        while not all(is_closed(c) for c in socks) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(is_closed(c) for c in socks)
    finally:
        for c in socks:
            c.close()
