# fault_proxy.py — a misbehaving HTTP front for the real loopscope-server, for the delivery tests
# (the real server cannot be made slow or made to answer 500). Runs as its own process so its
# work never competes with the app under test for the GIL:
#   python fault_proxy.py TARGET_URL FAIL_STATUS FAIL_COUNT DELAY_S
#                         [v1only | strings-then-old:N | records-then-old:N | records-split:MARKER]
#   -> prints its port
# The first FAIL_COUNT posts get FAIL_STATUS (503 with Retry-After: 1); every answer waits DELAY_S;
# the rest are forwarded to TARGET_URL with the real server's answer passed back (its
# X-Loopscope-Ingest header dropped: by default the proxy plays a server from before the strings
# table, docs/api.md). With v1only it plays a server from before multi-batch bodies: a body with
# "batches" and no "batch" gets that server's answer, 400 "batch: missing" (it read the body as one
# batch), and is not forwarded. With strings-then-old:N the first N forwarded answers say
# X-Loopscope-Ingest: strings (a server from before the binary record form); after them the proxy
# plays an older server put in its place: no header, and a body with a batch's "strings" is refused
# as that server would refuse it (400, a string field holding a number) and not forwarded; so is a
# body in the binary record form (415, as for any Content-Type but JSON). records-then-old:N is the
# same, the first N answers keeping the real server's header (strings, records). With
# records-split:MARKER every answer keeps the real header, and a binary body is refused 413 when it
# holds more than one batch (a server whose --max-body takes any one batch but not two: the sender
# then posts each batch alone), else 400 when it holds the bytes MARKER (a batch that server
# refuses). Batches are counted by their ids ("b-PID-SEQ-SESSION", docs/api.md), not by bytes: a
# byte limit between one batch and two failed once on a loaded machine (CI fc139), where a session
# that had blocked the loop carried its stack and, alone, passed the limit.
from __future__ import annotations

import gzip
import http.server
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.request


def main() -> None:
    target, fail_status, fail_left, delay = sys.argv[1], int(sys.argv[2]), [int(sys.argv[3])], float(sys.argv[4])
    mode = sys.argv[5] if len(sys.argv) > 5 else ""
    v1only = mode == "v1only"
    takes_left = [int(mode.split(":")[1])] if mode.startswith(("strings-then-old:", "records-then-old:")) else [0]
    only_strings = mode.startswith("strings-then-old:")
    split = mode.split(":", 1)[1].encode() if mode.startswith("records-split:") else None
    batch_id = re.compile(rb"b-[0-9]+-[0-9]+-s-")
    if split:
        takes_left = [10**9]

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
            text = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
            if split and self.headers.get("Content-Type") != "application/json":
                if len(batch_id.findall(text)) > 1:
                    self.answer(413, b'{"error":"too_large","detail":"body larger than the limit (--max-body)"}')
                    return
                if split in text:
                    self.answer(400, b'{"error":"invalid","detail":"batches[0].meta: refused by the proxy"}')
                    return
            if self.headers.get("Content-Type") != "application/json":
                if takes_left[0] <= 0:
                    self.answer(415, b'{"error":"unsupported_media_type","detail":"Content-Type must be application/json"}')
                    return
                doc = {}
            else:
                doc = json.loads(text)
            if v1only and "batches" in doc and "batch" not in doc:
                self.answer(400, b'{"error":"invalid","detail":"batch: missing"}')
                return
            named = any("strings" in b for b in doc.get("batches", [doc]) if isinstance(b, dict))
            if named and takes_left[0] <= 0:
                self.answer(400, b'{"error":"invalid","detail":"batches[0].events[1].coro: expected a string"}')
                return
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("content-type", "content-encoding", "authorization")}
            req = urllib.request.Request(target + self.path, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status, answer, takes = r.status, r.read(), r.headers.get("X-Loopscope-Ingest")
            except urllib.error.HTTPError as e:
                status, answer, takes = e.code, e.read(), None
            extra = None
            if takes_left[0] > 0 and takes:
                takes_left[0] -= 1
                extra = {"X-Loopscope-Ingest": "strings" if only_strings else takes}
            self.answer(status, answer, extra)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
