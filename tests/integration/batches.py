"""batches.py — batches shared by the integration tests: the DESIGN.md example and builders."""
import copy
import json
import pathlib

# The example batch of DESIGN.md ("Ingest contract, version 1"), one copy for every Python suite.
EXAMPLE = json.loads((pathlib.Path(__file__).resolve().parents[1] / "data" / "design-example.json").read_text())

EXAMPLE_SUMMARY = {
    "id": "s-9f1c2e", "name": "GET /users/42", "service": "shop", "route": None, "pid": 4711, "host": "dev1",
    "python": "3.11.7", "started_unix_ns": "1764089000123456789",
    "duration_ns": 250000000, "tasks": 2, "max_concurrency": 2,
    "lag": {"samples": 1, "avg_ms": 2.3, "p50_ms": 2.3, "p95_ms": 2.3, "p99_ms": 2.3, "max_ms": 2.3},
    "loop": None, "blocks": 1, "blocks_own": 1, "blocks_elsewhere": 0, "blocked_ms_own": 150,
    "blocked_ms_elsewhere": 0, "awaits": 1, "dropped": 12, "unknown_events": 0, "ended": True,
    "fraction": None,
}


def example(**changes):
    b = copy.deepcopy(EXAMPLE)
    b.update(changes)
    return b


def batch(session, batch_id, events, meta=None):
    b = {"v": 1, "batch": batch_id, "session": session, "events": events}
    if meta is not None:
        b["meta"] = meta
    return b
