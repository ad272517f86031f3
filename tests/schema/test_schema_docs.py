"""tests/schema/test_schema_docs.py — the schema documents parse and say what the docs say:
schema/ingest-v1.schema.json is valid JSON Schema 2020-12 that accepts DESIGN.md's example batch
and rejects what the server rejects; schema/openapi.yaml is OpenAPI 3.1 covering docs/api.md."""
import copy
import json
import os
import pathlib
import re
import subprocess

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

ROOT = pathlib.Path(__file__).resolve().parents[2]
INGEST = ROOT / "schema" / "ingest-v1.schema.json"
INGEST_BATCHES = ROOT / "schema" / "ingest-v1-batches.schema.json"
OPENAPI = ROOT / "schema" / "openapi.yaml"
API_MD = ROOT / "docs" / "api.md"
DESIGN_MD = ROOT.parent / "shared" / "DESIGN.md"  # outside the repository; used when present

# The example batch of DESIGN.md ("Ingest contract, version 1"), shared with the integration tests.
EXAMPLE = json.loads((ROOT / "tests" / "data" / "design-example.json").read_text())


@pytest.fixture(scope="module")
def ingest_schema():
    return json.loads(INGEST.read_text())


@pytest.fixture(scope="module")
def ingest_validator(ingest_schema):
    jsonschema.Draft202012Validator.check_schema(ingest_schema)
    return jsonschema.Draft202012Validator(ingest_schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="module")
def openapi():
    return yaml.safe_load(OPENAPI.read_text())


@pytest.fixture(scope="module")
def registry(openapi, ingest_schema):
    ingest = Resource.from_contents(ingest_schema, default_specification=DRAFT202012)
    api = Resource.from_contents(openapi, default_specification=DRAFT202012)
    return Registry().with_resources([
        (OPENAPI.as_uri(), api),
        (INGEST.as_uri(), ingest),
        (ingest_schema["$id"], ingest),
    ])


def component_validator(registry, name):
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$ref": f"{OPENAPI.as_uri()}#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


@pytest.fixture(scope="module")
def batches_validator(ingest_schema):
    """The multi-batch body's schema, its $ref to the batch schema resolved to the file beside it."""
    doc = json.loads(INGEST_BATCHES.read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    ingest = Resource.from_contents(ingest_schema, default_specification=DRAFT202012)
    reg = Registry().with_resources([(ingest_schema["$id"], ingest), (INGEST.as_uri(), ingest)])
    return jsonschema.Draft202012Validator(doc, registry=reg)


def test_multi_batch_body_schema(batches_validator, ingest_validator):
    """ingest-v1-batches.schema.json says what the server does (test_ingest_batches.py): a list of
    whole v1 batches, 1 to 10000 of them, and a body with `batch` is a single batch instead."""
    other = copy.deepcopy(EXAMPLE)
    other.update(batch="b-2", session="s-2")
    batches_validator.validate({"v": 1, "batches": [EXAMPLE, other]})
    bad_inside = copy.deepcopy(EXAMPLE)
    bad_inside["events"][0]["t"] = -1
    for body in ({"v": 1, "batches": []}, {"v": 2, "batches": [EXAMPLE]}, {"batches": [EXAMPLE]},
                 {"v": 1, "batches": [EXAMPLE, bad_inside]}, {"v": 1, "batches": [[EXAMPLE]]},
                 {"v": 1, "batches": [EXAMPLE] * 10001}):
        assert not batches_validator.is_valid(body), body
    # both shapes at once: a single batch whose "batches" is an ignored field
    both = dict(EXAMPLE, batches=[other])
    assert ingest_validator.is_valid(both) and not batches_validator.is_valid(both)


def test_design_example_validates(ingest_validator):
    ingest_validator.validate(EXAMPLE)


def test_design_md_example_is_the_one_tested(ingest_validator):
    if not DESIGN_MD.exists():
        pytest.skip("../shared/DESIGN.md not present")
    blocks = re.findall(r"```json\n(.*?)```", DESIGN_MD.read_text(), re.S)
    batches = [json.loads(b) for b in blocks if '"batch"' in b]
    assert batches, "DESIGN.md has no example batch"
    assert batches[0] == EXAMPLE
    ingest_validator.validate(batches[0])


def mutated(path, value):
    """EXAMPLE with the field at `path` (a list of keys/indexes) set to value (or deleted)."""
    doc = copy.deepcopy(EXAMPLE)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


DELETE = object()
BAD = [
    ("t at 2^53", ["events", 2, "t"], 2**53),
    ("negative t", ["events", 2, "t"], -1),
    ("negative duration", ["events", 3, "d"], -5),
    ("fractional t", ["events", 2, "t"], 1.5),
    ("t as a string", ["events", 2, "t"], "130000"),
    ("task id 0", ["events", 0, "id"], 0),
    ("step id 0", ["events", 2, "id"], 0),
    ("done id missing", ["events", 6, "id"], DELETE),
    ("missing k", ["events", 5, "k"], DELETE),
    ("k not a string", ["events", 5, "k"], 3),
    ("bad state", ["events", 6, "state"], "finished"),
    ("missing state", ["events", 6, "state"], DELETE),
    ("await without d", ["events", 3, "d"], DELETE),
    ("version 2", ["v"], 2),
    ("missing batch", ["batch"], DELETE),
    ("batch with a space", ["batch"], "b 1"),
    ("empty session", ["session"], ""),
    ("session too long", ["session"], "s" * 129),
    ("events not an array", ["events"], {}),
    ("started_unix_ns as a number", ["meta", "started_unix_ns"], 1764089000123456789),
    ("started_unix_ns 20 digits", ["meta", "started_unix_ns"], "1" * 20),
    ("negative pid", ["meta", "pid"], -1),
    ("name too long", ["events", 0, "name"], "x" * 4097),
    ("stack not an array", ["events", 4, "stack"], "app/views.py:45"),
    ("frame not an object", ["events", 4, "stack", 0], "frame"),
    ("negative drop", ["events", 7, "n"], -12),
    ("event not an object", ["events", 1], 7),
    ("status below 100", ["events", 6, "status"], 99),
    ("status over 599", ["events", 6, "status"], 600),
    ("status as a string", ["events", 6, "status"], "200"),
    ("fractional status", ["events", 6, "status"], 200.5),
    ("strings not an array", ["strings"], {"0": "app/db.py"}),
    ("strings holding a number", ["strings"], ["app/db.py", 3]),
    ("negative string index", ["events", 3, "file"], -1),
    ("fractional string index", ["events", 3, "file"], 0.5),
    ("meta name as an index", ["meta", "name"], 0),
]


@pytest.mark.parametrize("what,path,value", BAD, ids=[b[0] for b in BAD])
def test_rejects(ingest_validator, what, path, value):
    assert not ingest_validator.is_valid(mutated(path, value)), what


GOOD = [
    ("unknown kind", ["events", 5], {"k": "gc_pause", "t": 5, "whatever": [1, 2]}),
    ("unknown field", ["events", 2, "extra"], {"nested": True}),
    ("parent null", ["events", 0, "parent"], None),
    ("parent absent", ["events", 1, "parent"], DELETE),
    ("block outside tasks", ["events", 4, "id"], 0),
    ("block without stack", ["events", 4, "stack"], DELETE),
    ("meta absent", ["meta"], DELETE),
    ("error with exc", ["events", 6], {"k": "done", "id": 2, "t": 9, "state": "error",
                                        "exc": "ValueError: bad id"}),
    ("largest t", ["events", 2, "t"], 2**53 - 1),
    ("integral float", ["events", 2, "t"], 130000.0),
    ("line null", ["events", 3, "line"], None),
    ("done with status", ["events", 6, "status"], 200),
    ("error with status", ["events", 6], {"k": "done", "id": 2, "t": 9, "state": "error",
                                           "exc": "KeyError: 'x'", "status": 500}),
    ("status null", ["events", 6, "status"], None),
    ("strings table", ["strings"], ["app/db.py", "fetch_user"]),
    ("strings null", ["strings"], None),
    ("file as an index", ["events", 3, "file"], 0),
    ("coro as an index", ["events", 1, "coro"], 1),
    ("frame func as an index", ["events", 4, "stack", 0, "func"], 1),
]


@pytest.mark.parametrize("what,path,value", GOOD, ids=[g[0] for g in GOOD])
def test_accepts(ingest_validator, what, path, value):
    ingest_validator.validate(mutated(path, value))


def test_api_md_strings_example(ingest_validator):
    """docs/api.md's example of a batch's strings table is a valid batch."""
    examples = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", API_MD.read_text(), re.S)
                if '"strings"' in b]
    assert examples, "docs/api.md shows no batch with a strings table"
    for doc in examples:
        ingest_validator.validate(doc)


def test_every_known_kind_has_rules(ingest_schema):
    kinds = {rule["if"]["properties"]["k"]["const"] for rule in ingest_schema["$defs"]["event"]["allOf"]}
    assert kinds == {"task", "step", "await", "block", "lag", "done", "drop", "end"}


def test_openapi_document(openapi):
    assert openapi["openapi"] == "3.1.0"
    for name, schema in openapi["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_openapi_refs_resolve(openapi):
    refs = re.findall(r"\$ref: *'?([^'}\s,]+)", OPENAPI.read_text())
    assert refs
    for ref in refs:
        target, _, pointer = ref.partition("#")
        if target:
            assert (OPENAPI.parent / target).exists(), ref
            continue
        node = openapi
        for part in pointer.strip("/").split("/"):
            assert part in node, ref
            node = node[part]


def api_md_paths():
    text = API_MD.read_text()
    found = set()
    for method, path in re.findall(r"`(GET|POST|DELETE) (/[^`? ]*)", text):
        found.add((method.lower(), re.sub(r"\{id\}", "{id}", path)))
    return found


def test_openapi_covers_api_md(openapi):
    paths = openapi["paths"]
    wanted = api_md_paths() | {("post", "/api/v1/ingest")}
    assert len(wanted) >= 12
    for method, path in sorted(wanted):
        assert path in paths, f"{path} missing from openapi.yaml"
        assert method in paths[path], f"{method.upper()} {path} missing from openapi.yaml"


def test_ingest_status_codes(openapi, registry):
    responses = openapi["paths"]["/api/v1/ingest"]["post"]["responses"]
    for code in ("200", "202", "400", "401", "413", "415", "503"):
        assert code in responses, code
    assert "Retry-After" in responses["503"]["headers"]
    accepted = component_validator(registry, "Accepted")
    accepted.validate({"accepted": 1000})
    accepted.validate({"accepted": 1000, "duplicate": True})
    accepted.validate({"accepted": 3, "batches": [{"accepted": 2}, {"accepted": 1, "duplicate": True}]})
    assert not accepted.is_valid({"accepted": 3, "batches": [{"duplicate": True}]})
    assert not accepted.is_valid({"accepted": -1})
    assert not accepted.is_valid({"duplicate": True})


def test_error_codes_match_api_md(openapi):
    text = API_MD.read_text()
    listed = re.search(r"code is\s+one of (.*?)\.", text, re.S).group(1)
    codes = set(re.findall(r"`([a-z_]+)`", listed))
    assert set(openapi["components"]["schemas"]["Error"]["properties"]["error"]["enum"]) == codes


def api_md_examples():
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", API_MD.read_text(), re.S)]


def test_api_md_summary_example(registry):
    examples = [e for e in api_md_examples() if "duration_ns" in e]
    assert examples
    component_validator(registry, "Summary").validate(examples[0])
    assert not component_validator(registry, "Summary").is_valid(dict(examples[0], ended="yes"))


def test_api_md_task_example(registry):
    examples = [e for e in api_md_examples() if "busy_ns" in e]
    assert examples
    component_validator(registry, "Task").validate(examples[0])
    bad = dict(examples[0], depth=-1)
    assert not component_validator(registry, "Task").is_valid(bad)
    task = component_validator(registry, "Task")
    assert task.is_valid(dict(examples[0], status=200))
    assert not task.is_valid(dict(examples[0], status=600))
    assert not task.is_valid({k: v for k, v in examples[0].items() if k != "status"})


def test_api_md_timeline_example(registry):
    examples = [e for e in api_md_examples() if "ns_per_px" in e]
    assert examples
    component_validator(registry, "Timeline").validate(examples[0])


def test_api_md_awaits_example(registry, openapi):
    examples = [e for e in api_md_examples() if "hotspots" in e]
    assert examples
    schema = openapi["paths"]["/api/v1/sessions/{id}/awaits"]["get"]["responses"]["200"]
    schema = schema["content"]["application/json"]["schema"]
    wrapped = dict(schema, **{"$schema": "https://json-schema.org/draft/2020-12/schema"})
    # resolve the in-document refs against the OpenAPI resource
    wrapped = json.loads(json.dumps(wrapped).replace('"#/components', f'"{OPENAPI.as_uri()}#/components'))
    jsonschema.Draft202012Validator(wrapped, registry=registry).validate(examples[0])


def test_api_md_endpoints_and_compare_examples(registry):
    examples = api_md_examples()
    endpoints = [e for e in examples if "endpoints" in e and "window" in e]
    compare = [e for e in examples if "differences" in e]
    assert endpoints and compare
    component_validator(registry, "Endpoints").validate(endpoints[0])
    component_validator(registry, "Compare").validate(compare[0])
    assert not component_validator(registry, "Compare").is_valid(dict(compare[0], differences=[{"kind": "x"}]))


def test_export_is_an_ingest_batch(openapi):
    schema = openapi["paths"]["/api/v1/sessions/{id}/export"]["get"]["responses"]["200"]
    assert {"$ref": "./ingest-v1.schema.json"} in schema["content"]["application/json"]["schema"]["oneOf"]
    assert "application/x-ndjson" in schema["content"]


# ---- the real server answers what openapi.yaml says (when LOOPSCOPE_SERVER names the binary) ----

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    import http.client
    import os
    import subprocess
    import time
    binary = os.environ.get("LOOPSCOPE_SERVER")
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip("LOOPSCOPE_SERVER not set to the built loopscope-server")
    port = _free_port()
    db = tmp_path_factory.mktemp("live") / "live.db"
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            assert proc.poll() is None, "server exited at start"
            time.sleep(0.05)

        def call(method, path, body=None):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request(method, path, body=None if body is None else json.dumps(body),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()

        status, _ = call("POST", "/api/v1/ingest", EXAMPLE)
        assert status == 202
        yield call
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def response_validator(openapi, registry, path, method="get", code="200"):
    schema = openapi["paths"][path][method]["responses"][code]
    if "$ref" in schema:
        schema = openapi["components"]["responses"][schema["$ref"].rsplit("/", 1)[1]]
    schema = schema["content"]["application/json"]["schema"]
    text = json.dumps(schema).replace('"#/components', f'"{OPENAPI.as_uri()}#/components')
    text = text.replace('"./ingest-v1.schema.json"', f'"{INGEST.as_uri()}"')
    return jsonschema.Draft202012Validator(json.loads(text), registry=registry)


S = "/api/v1/sessions/{id}"
LIVE = [  # (openapi path, query string, method, expected status)
    ("/api/v1/sessions", "", "get", 200),
    (S, "", "get", 200),
    (S + "/tasks", "", "get", 200),
    (S + "/awaits", "?min_ms=10", "get", 200),
    (S + "/blocks", "", "get", 200),
    (S + "/lag", "", "get", 200),
    (S + "/concurrency", "", "get", 200),
    (S + "/timeline", "?px=100", "get", 200),
    (S + "/timeline", "?px=0", "get", 400),
    (S + "/export", "?format=json", "get", 200),
    ("/healthz", "", "get", 200),
]


@pytest.mark.parametrize("path,query,method,code", LIVE, ids=[f"{m} {p}{q}" for p, q, m, _ in LIVE])
def test_live_answers_match_openapi(live_server, openapi, registry, path, query, method, code):
    status, body = live_server(method.upper(), path.replace("{id}", EXAMPLE["session"]) + query)
    assert status == code, body
    response_validator(openapi, registry, path, method, str(code)).validate(json.loads(body))


def test_live_repeat_and_unknown(live_server, openapi, registry):
    status, body = live_server("POST", "/api/v1/ingest", EXAMPLE)
    assert status == 200
    response_validator(openapi, registry, "/api/v1/ingest", "post", "200").validate(json.loads(body))
    status, body = live_server("GET", "/api/v1/sessions/s-unknown")
    assert status == 404
    response_validator(openapi, registry, S, "get", "404").validate(json.loads(body))


# ---- the server's --help and the documents name the same options ----

def server_help():
    binary = os.environ.get("LOOPSCOPE_SERVER")
    if not binary or not os.path.exists(binary):
        pytest.skip("LOOPSCOPE_SERVER not set to the built loopscope-server")
    r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    return r.stdout


def test_options_in_the_docs_exist_in_help():
    """Every --option docs/api.md names is one the binary's --help lists. (The README names the
    collector's and the scripts' options beside the server's; its server options are checked
    by name below and in the integration tests.)"""
    helped = set(re.findall(r"--[a-z][a-z-]+", server_help()))
    named = set(re.findall(r"--[a-z][a-z-]+", API_MD.read_text()))
    assert named <= helped, sorted(named - helped)


def test_retention_options_documented_as_help_says():
    """The retention options: in --help, in docs/api.md's and README's words, with the same unit
    suffixes and examples."""
    text, api, readme = server_help(), API_MD.read_text(), (ROOT / "README.md").read_text()
    for opt in ("--max-sessions N", "--max-age DURATION", "--max-db-size SIZE"):
        assert opt in text and opt in api and opt.split()[0] in readme, opt
    for example in ("3600", "90m", "12h", "7d", "512M", "2G"):
        assert example in text and example in api, example
    assert "(s, m, h, d suffixes" in text and "`s`, `m`, `h`, `d`" in api
    assert "(K, M, G suffixes" in text and "`K`, `M`, `G`" in api
    for metric in ("loopscope_retention_deleted_sessions_total", "loopscope_reclaimed_bytes_total",
                   "loopscope_wal_bytes", "loopscope_write_faults_total"):
        assert metric in api and metric in OPENAPI.read_text(), metric
