"""examples/toolbar_app.py — a FastAPI app with fastapi-debug-toolbar and loopscope's "Async" panel.

GET / runs a realistic handler: three fake queries gathered concurrently, a background-style task
awaited later, and one blocking time.sleep(0.15) — the stall a profiler-based panel misses. Open
the page, click "Async" in the toolbar: the panel embeds this request's loopscope timeline.

    loopscope-server &                                   # http://127.0.0.1:7878
    python examples/toolbar_app.py --server http://127.0.0.1:7878 --port 8000
    # then open http://127.0.0.1:8000/
"""
from __future__ import annotations

import argparse
import asyncio
import time

from debug_toolbar.middleware import DebugToolbarMiddleware
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

import loopscope


async def query(sql: str, delay: float) -> dict:
    await asyncio.sleep(delay)  # the network round trip of a real driver
    return {"sql": sql, "rows": 1}


async def audit(user_id: int) -> None:
    await asyncio.sleep(0.02)


def render(user: dict) -> str:
    time.sleep(0.15)  # a blocking call in async code: the whole loop stalls here
    return f"<p>user {user['rows']}</p>"


def create_app() -> FastAPI:
    app = FastAPI(debug=True)  # the toolbar shows only for debug apps

    @app.get("/", response_class=HTMLResponse)
    async def user_page() -> str:
        side = asyncio.create_task(audit(42), name="audit-42")
        user, orders, prefs = await asyncio.gather(
            query("select * from users where id=42", 0.02),
            query("select * from orders where user_id=42", 0.035),
            query("select * from prefs where user_id=42", 0.012),
        )
        body = render(user)
        await side
        return f"<!doctype html><html><head><title>user 42</title></head><body>{body}</body></html>"

    app.add_middleware(DebugToolbarMiddleware, panels=["loopscope.toolbar.AsyncPanel"])
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="http://127.0.0.1:7878", help="loopscope-server URL")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()
    import uvicorn
    loopscope.install(server=args.server)
    uvicorn.run(create_app(), host=args.host, port=args.port, loop="asyncio", log_level="warning")


if __name__ == "__main__":
    main()
