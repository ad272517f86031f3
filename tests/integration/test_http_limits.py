"""test_http_limits.py — the HTTP layer's limits: --max-body above the 64 MiB an error body is
read for (202 up to the limit, 413 beyond it, never a reset)."""
import json
import socket

from batches import batch

MIB = 1 << 20


def padded(session, batch_id, size):
    """A valid batch of exactly `size` bytes: JSON whitespace before its closing brace."""
    head = json.dumps(batch(session, batch_id, [{"k": "lag", "t": 1, "d": 1}]))[:-1]
    return head.encode() + b" " * (size - len(head) - 1) + b"}"


def chunked_post(port, body, chunk=MIB, timeout=60):
    """POST body with Transfer-Encoding: chunked (no length announced); the answer's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(b"POST /api/v1/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for i in range(0, len(body), chunk):
            part = body[i:i + chunk]
            c.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        c.sendall(b"0\r\n\r\n")
        head = b""
        while b"\r\n" not in head:
            got = c.recv(4096)
            if not got:
                break
            head += got
        return int(head.split(b" ", 2)[1])


def test_max_body_above_64_mib(make_server):
    """--max-body 100M: 65 and 99 MiB bodies are stored (202), with or without a length; 101 MiB
    is refused 413 whether announced or not. Before the fix any body past 64 MiB got no answer."""
    s = make_server("--max-body", "100M")
    for i, size in enumerate([65 * MIB, 99 * MIB, 100 * MIB]):
        r = s.ingest(None, raw=padded("s-big", f"b{i}", size))
        assert r.status == 202, (size, r.status, r.body[:200])
    assert chunked_post(s.port, padded("s-big", "chunked", 99 * MIB)) == 202
    over = padded("s-big", "over", 101 * MIB)
    r = s.ingest(None, raw=over)
    assert r.status == 413 and r.json()["detail"] == "body larger than the limit (--max-body)"
    assert chunked_post(s.port, over) == 413
    assert s.get_json("/api/v1/sessions/s-big")["lag"]["samples"] == 4  # one per stored batch
    m = s.metrics()
    assert m["loopscope_batches_total"] == 4
    assert m['loopscope_rejects_total{reason="too_large"}'] == 2
