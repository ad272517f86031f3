"""examples/demo_app.py — a small ASGI app recorded by loopscope, driven in-process.

Each request runs a realistic handler: three fake database queries gathered concurrently, a
TaskGroup of cache look-ups, and one blocking time.sleep(0.15) — the kind of mistake loopscope
points at. The app is wrapped in LoopscopeMiddleware, two requests are served (overlapping), and
the timeline URL of each is printed.

    python examples/demo_app.py --server http://127.0.0.1:7878
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import loopscope
from loopscope.asgi import LoopscopeMiddleware


class FakeDB:
    async def execute(self, query: str, delay: float) -> list[dict]:
        await asyncio.sleep(delay)  # the network round trip of a real driver
        return [{"query": query}]


db = FakeDB()


async def cache_get(key: str) -> str | None:
    await asyncio.sleep(0.005)
    return None


async def load_user(user_id: int) -> dict:
    user, orders, prefs = await asyncio.gather(
        db.execute(f"select * from users where id={user_id}", 0.02),
        db.execute(f"select * from orders where user_id={user_id}", 0.035),
        db.execute(f"select * from prefs where user_id={user_id}", 0.012),
    )
    return {"user": user, "orders": orders, "prefs": prefs}


async def warm_cache(user_id: int) -> None:
    keys = [f"user:{user_id}:{part}" for part in ("profile", "orders", "prefs")]
    if sys.version_info >= (3, 11):
        async with asyncio.TaskGroup() as tg:
            for key in keys:
                tg.create_task(cache_get(key))
    else:
        await asyncio.gather(*(cache_get(k) for k in keys))


def render(data: dict) -> bytes:
    time.sleep(0.15)  # a blocking call in async code: the loop stalls for every request
    return json.dumps(data).encode()


async def app(scope, receive, send) -> None:
    assert scope["type"] == "http"
    user_id = int(scope["path"].rsplit("/", 1)[-1])
    await warm_cache(user_id)
    data = await load_user(user_id)
    body = render(data)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def call(asgi, path: str) -> dict:
    """Serve one GET request in-process and return status and headers."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"host", b"demo")], "client": ("127.0.0.1", 5000), "server": ("demo", 80)}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.create_task(asgi(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return {"status": start["status"], "headers": dict(start["headers"])}


async def main() -> list[str]:
    asgi = LoopscopeMiddleware(app)
    responses = await asyncio.gather(call(asgi, "/users/42"), call(asgi, "/users/7"))
    return [r["headers"][b"x-loopscope-session"].decode() for r in responses]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:7878")
    args = parser.parse_args()
    loopscope.install(server=args.server)
    urls = asyncio.run(main())
    delivered = loopscope.uninstall()
    for url in urls:
        print(f"loopscope session: {url}")
    if not delivered:
        print(f"demo: the server at {args.server} did not take every event", file=sys.stderr)
        sys.exit(1)
