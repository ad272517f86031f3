"""batches.py — batches shared by the integration tests: the DESIGN.md example and builders."""
import copy

EXAMPLE = {
    "v": 1,
    "batch": "b-4711-000042",
    "session": "s-9f1c2e",
    "meta": {"name": "GET /users/42", "service": "shop", "pid": 4711, "host": "dev1",
             "python": "3.11.7", "started_unix_ns": "1764089000123456789"},
    "events": [
        {"k": "task", "id": 1, "parent": 0, "name": "Task-1", "coro": "app.views.user_page", "t": 0},
        {"k": "task", "id": 2, "parent": 1, "name": "Task-2", "coro": "app.db.fetch_user", "t": 120000},
        {"k": "step", "id": 2, "t": 130000, "d": 52000},
        {"k": "await", "id": 2, "t": 182000, "d": 45000000, "what": "AsyncSession.execute",
         "file": "app/db.py", "line": 23, "func": "fetch_user"},
        {"k": "block", "id": 1, "t": 50000000, "d": 150000000,
         "stack": [{"file": "app/views.py", "line": 45, "func": "user_page", "src": "time.sleep(0.15)"}]},
        {"k": "lag", "t": 60000000, "d": 2300000},
        {"k": "done", "id": 2, "t": 95000000, "state": "ok"},
        {"k": "drop", "n": 12},
        {"k": "end", "t": 250000000},
    ],
}

EXAMPLE_SUMMARY = {
    "id": "s-9f1c2e", "name": "GET /users/42", "service": "shop", "pid": 4711, "host": "dev1",
    "python": "3.11.7", "started_unix_ns": "1764089000123456789",
    "duration_ns": 250000000, "tasks": 2, "max_concurrency": 2,
    "lag": {"samples": 1, "avg_ms": 2.3, "p50_ms": 2.3, "p95_ms": 2.3, "p99_ms": 2.3, "max_ms": 2.3},
    "blocks": 1, "awaits": 1, "dropped": 12, "unknown_events": 0, "ended": True,
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
