"""otlp_receiver.py — an OTLP/HTTP traces receiver for the tests: a small http.server in a thread on
a loopback port that decodes every request body with the official opentelemetry-proto definitions
(google.protobuf.json_format.Parse into ExportTraceServiceRequest, strict about unknown fields),
answers as the test scripts it, and keeps what it accepted.

OTLP/JSON differs from the canonical protobuf JSON mapping in one place: trace and span ids are
hex strings, not base64 (OTLP spec, "JSON Protobuf Encoding"). The receiver turns them into base64
before parsing, so an id that is not 32/16 hex digits fails the parse.
"""
import base64
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ID_FIELDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


def hex_ids_to_base64(doc):
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key, size in ID_FIELDS.items():
                    if key in span:
                        raw = bytes.fromhex(span[key])
                        assert len(raw) == size, (key, span[key])
                        span[key] = base64.b64encode(raw).decode()
    return doc


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attrs_of(kvs):
    return {kv.key: value_of(kv.value) for kv in kvs}


def spans_of(req):
    """Every span of a decoded request as a plain dict (ids as hex, attributes as Python values)."""
    out = []
    for rs in req.resource_spans:
        resource = attrs_of(rs.resource.attributes)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append({
                    "trace": sp.trace_id.hex(), "id": sp.span_id.hex(), "parent": sp.parent_span_id.hex(),
                    "name": sp.name, "kind": sp.kind, "start": sp.start_time_unix_nano,
                    "end": sp.end_time_unix_nano, "attrs": attrs_of(sp.attributes),
                    "events": [(e.name, e.time_unix_nano, attrs_of(e.attributes)) for e in sp.events],
                    "dropped_events": sp.dropped_events_count,
                    "status": (sp.status.code, sp.status.message), "resource": resource,
                    "scope": ss.scope.name,
                })
    return out


class Receiver:
    def __init__(self, port=0):
        self.port = port
        self.lock = threading.Lock()
        self.requests = []      # every request: {"t", "path", "headers", "bytes", "status", "spans"}
        self.accepted = []      # the spans of each request answered 2xx, one list per request
        self.errors = []        # bodies that did not decode
        self.script = []        # answers for the next requests: (status, headers); then 200
        self.before_answer = None  # called with the request's index before it is answered
        self.httpd = None

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                raw_len = len(body)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                req = ExportTraceServiceRequest()
                try:
                    json_format.Parse(json.dumps(hex_ids_to_base64(json.loads(body))), req)
                    spans = spans_of(req)
                except Exception as e:  # recorded, and the test fails on it
                    receiver.errors.append(repr(e))
                    spans = None
                with receiver.lock:
                    index = len(receiver.requests)
                    status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                    if spans is None:
                        status, headers = 400, {}
                    receiver.requests.append({
                        "t": time.monotonic(), "path": self.path, "headers": dict(self.headers),
                        "bytes": len(body), "wire_bytes": raw_len, "status": status, "spans": spans})
                hook = receiver.before_answer
                if hook:
                    status = hook(index, status)
                with receiver.lock:
                    receiver.requests[index]["status"] = status
                    if 200 <= status < 300:
                        receiver.accepted.append(spans)
                answer = b"{}" if status < 300 else json.dumps({"code": 14, "message": "try later"}).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client went away (a killed server)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def spans(self):
        """Every accepted span, in arrival order."""
        with self.lock:
            return [s for req in self.accepted for s in req]

    def traces(self):
        """Accepted spans by trace id."""
        out = {}
        for s in self.spans():
            out.setdefault(s["trace"], []).append(s)
        return out

    def session_trace(self, session_id):
        for spans in self.traces().values():
            if spans[0]["resource"].get("loopscope.session.id") == session_id:
                return spans
        return []
