"""test_jaeger.py — the OTLP push into a real Jaeger (v2), read back through Jaeger's query API.

Runs only when JAEGER_BIN names a Jaeger v2 binary (docs/otlp.md says how to build one from the Go
module proxy); skipped otherwise. Jaeger runs with a configuration written here: every listener on
127.0.0.1 on free ports, in-memory storage, no internal telemetry server. A session is recorded
with the real collector (`python -m loopscope run`: tasks, awaits, a blocking call), pushed by
loopscope-server --otlp-endpoint, and checked in Jaeger: every span, every parent, await and block
spans with their code.* attributes, the session attributes; found by a search on its service in
the current hour, as is a session without started_unix_ns.
"""
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from batches import batch
from conftest import wait_for

JAEGER = os.environ.get("JAEGER_BIN", "")
pytestmark = pytest.mark.skipif(
    not (JAEGER and os.access(JAEGER, os.X_OK)),
    reason="JAEGER_BIN is not set to a Jaeger v2 binary (docs/otlp.md: 'Against a real Jaeger' builds one)")

CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_http}
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""

SCRIPT = """\
import asyncio
import time


async def fetch(i):
    await asyncio.sleep(0.03)
    return i


async def main():
    tasks = [asyncio.create_task(fetch(i), name=f"fetch-{i}") for i in range(5)]
    time.sleep(0.2)
    await asyncio.gather(*tasks)


asyncio.run(main())
"""


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def http_json(url, body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")


def hex_id(v):
    """Jaeger's JSON may give ids as hex or (protobuf JSON) base64."""
    if v and len(v) in (16, 32) and all(c in "0123456789abcdef" for c in v):
        return v
    return base64.b64decode(v).hex() if v else ""


def attrs(kvs):
    out = {}
    for kv in kvs or []:
        val = kv.get("value", {})
        out[kv["key"]] = next(iter(val.values())) if val else None
    return out


def jaeger_spans(doc):
    out = []
    for rs in (doc or {}).get("result", {}).get("resourceSpans", []):
        res = attrs(rs.get("resource", {}).get("attributes"))
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                out.append({"id": hex_id(s["spanId"]), "parent": hex_id(s.get("parentSpanId", "")),
                            "name": s["name"], "attrs": attrs(s.get("attributes")), "resource": res,
                            "start": int(s["startTimeUnixNano"])})
    return out


def answered(pred):
    """pred, with a refused or failing request counting as not yet."""
    def f():
        try:
            return pred()
        except (urllib.error.URLError, ConnectionError, OSError):
            return None
    return f


@pytest.fixture
def jaeger(tmp_path):
    otlp_http, otlp_grpc, query_http, query_grpc = free_ports(4)
    cfg = tmp_path / "jaeger.yaml"
    cfg.write_text(CONFIG.format(otlp_http=otlp_http, otlp_grpc=otlp_grpc, query_http=query_http,
                                 query_grpc=query_grpc))
    log = open(tmp_path / "jaeger.log", "wb")
    t0 = time.monotonic()
    # no traces of Jaeger's own (its SDK would dial 127.0.0.1:4317 for them)
    env = dict(os.environ, OTEL_SDK_DISABLED="true", OTEL_TRACES_EXPORTER="none")
    proc = subprocess.Popen([JAEGER, "--config", f"file:{cfg}"], stdout=log, stderr=subprocess.STDOUT, env=env)
    query = f"http://127.0.0.1:{query_http}"
    try:
        wait_for(answered(lambda: proc.poll() is None and http_json(query + "/api/v3/services")[0] == 200), 60,
                 "Jaeger's query API", 0.2)
        yield {"otlp": f"http://127.0.0.1:{otlp_http}/v1/traces", "query": query, "started_s": time.monotonic() - t0,
               "log": tmp_path / "jaeger.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_push_into_jaeger(make_server, jaeger, tmp_path):
    # the sessions end with `end`: a long quiet period so that a pause between two batches of
    # the recording never makes it look abandoned
    s = make_server("--otlp-endpoint", jaeger["otlp"], "--otlp-quiet", "60s",
                    "--public-url", "http://loopscope.test:7878")
    script = tmp_path / "jaeger_app.py"
    script.write_text(SCRIPT)
    t_rec = time.monotonic()
    env = dict(os.environ)
    env.pop("LOOPSCOPE_SERVER", None)
    p = subprocess.run([sys.executable, "-m", "loopscope", "run", "--server", f"http://127.0.0.1:{s.port}",
                        "--service", "loopscope-jaeger-test", "--name", "jaeger e2e", str(script)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (sess,) = s.get_json("/api/v1/sessions")["sessions"]
    sid = sess["id"]
    export = s.get_json(f"/api/v1/sessions/{sid}/export?format=otlp")
    want = {x["spanId"]: x for x in export["resourceSpans"][0]["scopeSpans"][0]["spans"]}
    trace_id = next(iter(want.values()))["traceId"]
    summary = s.get_json(f"/api/v1/sessions/{sid}")
    assert summary["blocks"] >= 1 and summary["awaits"] >= 1 and summary["tasks"] >= 6
    assert len(want) == 1 + summary["tasks"] + summary["awaits"] + summary["blocks"]

    url = f"{jaeger['query']}/api/v3/traces/{trace_id}"
    got = wait_for(answered(lambda: (lambda sp: sp if len(sp) >= len(want) else None)(jaeger_spans(http_json(url)[1]))),
                   60, f"{len(want)} spans in Jaeger", 0.2)
    took = time.monotonic() - t_rec
    by_id = {x["id"]: x for x in got}
    assert sorted(by_id) == sorted(want), "Jaeger holds other spans than the export"
    assert len(got) == len(want), "a span twice"
    for span_id, w in want.items():
        assert by_id[span_id]["parent"] == w.get("parentSpanId", ""), w["name"]
        assert by_id[span_id]["name"] == w["name"]
    res = got[0]["resource"]
    assert res["service.name"] == "loopscope-jaeger-test"
    assert res["loopscope.session.id"] == sid and res["loopscope.session.name"] == "jaeger e2e"
    assert res["loopscope.session.url"] == f"http://loopscope.test:7878/sessions/{sid}"
    root = [x for x in got if not x["parent"]]
    assert [x["name"] for x in root] == ["jaeger e2e"]
    tasks = {x["attrs"]["loopscope.task.id"]: x for x in got if "loopscope.task.name" in x["attrs"]}
    fetches = [x for x in tasks.values() if x["attrs"]["loopscope.task.name"].startswith("fetch-")]
    assert len(fetches) == 5
    main_task = next(x for x in tasks.values() if x["name"].endswith("main"))
    assert all(f["parent"] == main_task["id"] for f in fetches)
    awaits = [x for x in got if "code.lineno" in x["attrs"] and x["name"] != "event loop blocked"]
    sleeps = [a for a in awaits if a["parent"] in {f["id"] for f in fetches}]
    assert len(sleeps) == 5 and all(a["attrs"]["code.filepath"].endswith("jaeger_app.py") for a in sleeps)
    assert all(int(a["attrs"]["code.lineno"]) == 6 and a["attrs"]["code.function"] == "fetch" for a in sleeps)
    blocks = [x for x in got if x["name"] == "event loop blocked"]
    assert blocks and all(b["parent"] == main_task["id"] for b in blocks)
    culprit = [b for b in blocks if b["attrs"].get("loopscope.block.source") == "time.sleep(0.2)"]
    if culprit:  # the watchdog took the stack (a loaded machine may let the block end first)
        assert int(culprit[0]["attrs"]["code.lineno"]) == 12 and "in main" in culprit[0]["attrs"]["code.stacktrace"]

    # found by a search on its service in the current hour (recorded now, not in 1970)
    now = time.time()
    q = (f"{jaeger['query']}/api/v3/traces?query.service_name=loopscope-jaeger-test"
         f"&query.start_time_min={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now - 3600))}"
         f"&query.start_time_max={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now + 60))}&query.num_traces=20")
    found = wait_for(answered(lambda: jaeger_spans(http_json(q)[1])), 30, "the search by service", 0.2)
    assert {x["id"] for x in found} >= set(want)

    # a session without started_unix_ns: on the server's clock, found the same way
    t_ns = time.time_ns()
    assert s.ingest(batch("s-no-start", "b", [{"k": "task", "id": 1, "t": 0, "coro": "job"},
                                            {"k": "await", "id": 1, "t": 10, "d": 1000, "what": "q.get",
                                             "file": "job.py", "line": 3, "func": "job"},
                                            {"k": "end", "t": 2000}],
                                    meta={"name": "no start", "service": "loopscope-jaeger-nostart"})).status == 202
    q2 = q.replace("loopscope-jaeger-test", "loopscope-jaeger-nostart")
    ns = wait_for(answered(lambda: (lambda sp: sp if len(sp) == 3 else None)(jaeger_spans(http_json(q2)[1]))), 60,
                  "the session without started_unix_ns", 0.2)
    start = min(x["start"] for x in ns)
    assert t_ns - 60 * 10**9 < start <= time.time_ns()

    # the same request again (what a crash between the 2xx and its commit would send), then a
    # marker trace through the same pipeline: once the marker is stored, so is the repeat
    body = json.dumps(export).encode()
    assert http_json(jaeger["otlp"], body, {"Content-Type": "application/json"})[0] == 200
    marker = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [{
        "traceId": "0123456789abcdef0123456789abcdef", "spanId": "0123456789abcdef", "name": "marker",
        "kind": 1, "startTimeUnixNano": str(time.time_ns()), "endTimeUnixNano": str(time.time_ns())}]}]}]}
    assert http_json(jaeger["otlp"], json.dumps(marker).encode(), {"Content-Type": "application/json"})[0] == 200
    wait_for(answered(lambda: jaeger_spans(http_json(f"{jaeger['query']}/api/v3/traces/{'0123456789abcdef' * 2}")[1])),
             30, "the marker", 0.2)
    again = jaeger_spans(http_json(url)[1])
    assert sorted(x["id"] for x in again) == sorted(want), "Jaeger keeps a repeated span twice"
    m = s.metrics()
    sent_requests = int(m['loopscope_otlp_requests_total{result="sent"}'])
    sent_spans = int(m['loopscope_otlp_spans_total{result="sent"}'])
    print(f"\njaeger: started in {jaeger['started_s']:.1f} s; session {sid}: {summary['tasks']} tasks, "
          f"{summary['awaits']} awaits, {summary['blocks']} blocks -> {len(got)} spans in Jaeger, "
          f"{took:.1f} s from the start of the recording; parents, names and ids as exported; "
          f"found by service search; no-start session at server clock ({(start - t_ns) / 1e9:+.3f} s from ingest); "
          f"pushed {sent_requests} requests / {sent_spans} spans; "
          f"the same request posted again: Jaeger still answers {len(again)} spans for the trace")
    assert not [x for x in got if x["id"] not in want]


def test_large_session_split_for_jaeger(make_server, jaeger):
    """A 12,000-task session's trace is larger than Jaeger's 20 MiB request limit: sent whole (its
    export posted as one request) Jaeger refuses it; the push splits it under 4 MiB requests and
    every span arrives."""
    s = make_server("--otlp-endpoint", jaeger["otlp"], "--otlp-quiet", "60s", "--max-body", "64M",
                    "--max-memory", "1G", "--max-batch-memory", "512M")
    n = 12000
    events = [{"k": "task", "id": 1, "parent": 0, "coro": "app.main", "t": 0}]
    for i in range(2, n + 1):
        events.append({"k": "task", "id": i, "parent": 1, "name": f"Task-{i}", "coro": "app.handlers.fetch_page", "t": i})
        for k in range(3):
            events.append({"k": "await", "id": i, "t": i + 1000 * (k + 1), "d": 900, "what": "ClientSession.get",
                           "file": "app/handlers/crawler.py", "line": 40 + k, "func": "fetch_page"})
        events.append({"k": "done", "id": i, "t": i + 5000, "state": "ok"})
    t0 = time.monotonic()
    r = s.ingest(batch("s-huge", "b", events, meta={"name": "crawl", "service": "loopscope-jaeger-huge",
                                                   "started_unix_ns": str(time.time_ns())}))
    assert r.status == 202, r.body[:300]
    export = s.get(f"/api/v1/sessions/s-huge/export?format=otlp")
    whole = json.loads(export.body)
    spans = whole["resourceSpans"][0]["scopeSpans"][0]["spans"]
    trace_id = spans[0]["traceId"]
    assert len(spans) == 1 + n + (n - 1) * 3
    refused = None
    if len(export.body) > 20 << 20:
        try:
            http_json(jaeger["otlp"], export.body, {"Content-Type": "application/json"}, timeout=60)
        except urllib.error.HTTPError as e:
            refused = (e.code, e.read()[:200].decode("utf-8", "replace"))
        assert refused and refused[0] == 400, refused
    # now the session ends: the push takes it and splits it
    assert s.ingest(batch("s-huge", "b-end", [{"k": "end", "t": n + 10000}])).status == 202
    url = f"{jaeger['query']}/api/v3/traces/{trace_id}"
    got = wait_for(answered(lambda: (lambda sp: sp if len(sp) >= len(spans) else None)(jaeger_spans(http_json(url, timeout=60)[1]))),
                   120, f"{len(spans)} spans in Jaeger", 1.0)
    took = time.monotonic() - t0
    assert sorted(x["id"] for x in got) == sorted(x["spanId"] for x in spans)
    m = s.metrics()
    requests = int(m['loopscope_otlp_requests_total{result="sent"}'])
    assert requests >= len(export.body) // (4 << 20) and int(m['loopscope_otlp_requests_total{result="failed"}']) == 0
    print(f"\njaeger, large session: {n} tasks, {len(spans)} spans, export {len(export.body) / 2**20:.1f} MiB "
          f"(Jaeger answered the whole: {refused}); pushed in {requests} requests, all {len(got)} spans in Jaeger "
          f"{took:.1f} s after ingest")
