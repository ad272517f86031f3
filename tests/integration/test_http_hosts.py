"""test_http_hosts.py — the DNS rebinding guard: a request whose Host header names something else
than localhost, an IP address, the --listen host or an --allowed-host is answered 403 with the
name it used, whatever it asks for (pages, API, ingest) and before the token is looked at."""
import http.client
import json
import re
import subprocess

from batches import EXAMPLE
from conftest import BINARY


def status_for(server, host, path="/healthz", method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_host_header_is_checked(make_server):
    s = make_server("--allowed-host", "dev.example", "--allowed-host", "Box.Lan.")
    p = s.port
    allowed = ["127.0.0.1", f"127.0.0.1:{p}", f"localhost:{p}", "LOCALHOST", "localhost.", "app.localhost",
               f"[::1]:{p}", "[::1]", "127.1.2.3", "10.0.0.5:80", "[fe80::1]", "dev.example", f"DEV.example.:{p}",
               "box.lan", None]  # None: no Host at all (HTTP/1.0 style), never sent by a browser
    for host in allowed:
        st, body = status_for(s, host)
        assert st == 200, (host, st, body)
    refused = ["evil.example", f"evil.example:{p}", "localhost.evil.example", "dev.example.evil", "127.0.0.1.nip.io",
               "", "a:b:c", "[::1", "::1", "localhost:x", "dev.exampl", "\u00e9vil".encode().decode("latin-1")]
    for host in refused:
        st, body = status_for(s, host)
        assert st == 403, (host, st, body)
    st, body = status_for(s, f"evil.example:{p}")
    assert json.loads(body) == {
        "error": "forbidden",
        "detail": f"Host 'evil.example:{p}' is not allowed (a DNS rebinding guard): this server answers to "
                  "localhost, IP addresses, its --listen host and each --allowed-host"}
    # every route: pages, the API, a DELETE, ingest (its body read and dropped, nothing stored)
    for path, method in [("/", "GET"), ("/sessions/s-9f1c2e", "GET"), ("/static/api.js", "GET"),
                         ("/api/v1/sessions", "GET"), ("/api/v1/sessions/s-9f1c2e", "DELETE"), ("/metrics", "GET")]:
        assert status_for(s, "evil.example", path, method)[0] == 403, path
    body = json.dumps(EXAMPLE).encode()
    ct = {"Content-Type": "application/json"}
    assert status_for(s, "evil.example", "/api/v1/ingest", "POST", body, ct)[0] == 403
    assert s.get_json("/api/v1/sessions") == {"sessions": []}
    assert status_for(s, "localhost", "/api/v1/ingest", "POST", body, ct)[0] == 202
    # the name in the detail is cut and made printable
    st, body = status_for(s, "x" * 300)
    assert st == 403 and json.loads(body)["detail"].startswith("Host '" + "x" * 100 + "...' is not allowed")


def test_host_checks_come_before_the_token(make_server):
    s = make_server("--token", "sekrit")
    assert status_for(s, "evil.example", "/api/v1/sessions", headers={"Authorization": "Bearer sekrit"})[0] == 403
    assert status_for(s, "localhost", "/api/v1/sessions", headers={"Authorization": "Bearer sekrit"})[0] == 200


def test_listen_host_and_star(make_server, tmp_path):
    s = make_server("--allowed-host", "*")
    assert status_for(s, "anything.example")[0] == 200
    # the --listen host as written is allowed: "localhost:0" resolves to loopback
    proc = subprocess.Popen([BINARY, "--listen", "localhost:0", "--db", str(tmp_path / "l.db")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        while "listening on" not in line:
            line = proc.stdout.readline()
            assert line, "server exited"
        port = int(re.search(r":(\d+)/", line).group(1))
        host = "127.0.0.1" if "127.0.0.1" in line else "::1"
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("GET", "/healthz", headers={"Host": f"localhost:{port}"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_allowed_host_option_is_checked():
    for bad in ["evil.example:80", "a b", "", "x" * 254, "[::1]"]:
        r = subprocess.run([BINARY, "--allowed-host", bad], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and "--allowed-host takes a host name" in r.stderr, (bad, r.stderr)
    r = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=10)
    assert "--allowed-host NAME" in r.stdout
