# fault_proxy.py — a misbehaving HTTP front for the real loopscope-server, for the delivery tests
# (the real server cannot be made slow or made to answer 500). Runs as its own process so its
# work never competes with the app under test for the GIL:
#   python fault_proxy.py TARGET_URL FAIL_STATUS FAIL_COUNT DELAY_S [v1only]   -> prints its port
# The first FAIL_COUNT posts get FAIL_STATUS (503 with Retry-After: 1); every answer waits DELAY_S;
# the rest are forwarded to TARGET_URL with the real server's answer passed back. With v1only it
# plays a server from before multi-batch bodies: a body with "batches" and no "batch" gets that
# server's answer, 400 "batch: missing" (it read the body as one batch), and is not forwarded.
from __future__ import annotations

import gzip
import http.server
import json
import socket
import sys
import time
import urllib.error
import urllib.request


def main() -> None:
    target, fail_status, fail_left, delay = sys.argv[1], int(sys.argv[2]), [int(sys.argv[3])], float(sys.argv[4])
    v1only = sys.argv[5:] == ["v1only"]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def answer(self, status: int, body: bytes, extra: dict | None = None) -> None:
            head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Content-Type: application/json"]
            head += [f"{k}: {v}" for k, v in (extra or {}).items()]
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(delay)
            if fail_left[0] > 0:
                fail_left[0] -= 1
                self.answer(fail_status, b"{}", {"Retry-After": "1"} if fail_status == 503 else None)
                return
            if v1only:
                text = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                doc = json.loads(text)
                if "batches" in doc and "batch" not in doc:
                    self.answer(400, b'{"error":"invalid","detail":"batch: missing"}')
                    return
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("content-type", "content-encoding", "authorization")}
            req = urllib.request.Request(target + self.path, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status, answer = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, answer = e.code, e.read()
            self.answer(status, answer)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
