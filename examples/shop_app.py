"""examples/shop_app.py — a small Litestar shop with litestar-debug-toolbar and loopscope's "Async" panel.

GET /product/{id} does what a real product page does: three fake database queries gathered
concurrently, reviews and recommendations fetched in an asyncio.TaskGroup (gather on 3.10), a
shipping quote given 50 ms before it is cancelled, and one blocking time.sleep(0.15) hidden in a
price-formatting helper: the bug loopscope shows.

Needs litestar, litestar-debug-toolbar and uvicorn beside loopscope (scripts/deps.sh puts them in
.venvs-fw/pyX.Y; scripts/run.sh starts this app for you):

    build/server/loopscope-server &                    # http://127.0.0.1:7878
    python examples/shop_app.py --server http://127.0.0.1:7878 --port 8000

Then open http://127.0.0.1:8000/product/42 and click "Async" in the toolbar on the right (the
▼ button moves the toolbar to the bottom, where the timeline has room): the panel shows this
request's tasks, its blocking call with file:line, and the request's timeline from the server.
The request's page in the toolbar's history (/_debug_toolbar/, then the request) shows it too.
"""
from __future__ import annotations

import argparse
import asyncio
import html
import sys
import time

from debug_toolbar.litestar import DebugToolbarPlugin, LitestarDebugToolbarConfig
from litestar import Litestar, MediaType, get

import loopscope
from loopscope.litestar_toolbar import LoopscopePanel


class FakeDB:
    async def fetch(self, sql: str, delay: float) -> dict:
        await asyncio.sleep(delay)  # the network round trip of a real driver
        return {"sql": sql, "rows": 1}


db = FakeDB()


async def load_product(product_id: int) -> tuple[dict, dict, dict]:
    product, price, stock = await asyncio.gather(
        db.fetch(f"select * from products where id={product_id}", 0.02),
        db.fetch(f"select * from prices where product_id={product_id}", 0.03),
        db.fetch(f"select * from stock where product_id={product_id}", 0.012),
    )
    return product, price, stock


async def reviews(product_id: int) -> list[str]:
    await asyncio.sleep(0.025)
    return ["Does what it says.", "Arrived a day early."]


async def recommendations(product_id: int) -> list[int]:
    await asyncio.sleep(0.018)
    return [product_id + 1, product_id + 7]


async def extras(product_id: int) -> tuple[list[str], list[int]]:
    if sys.version_info >= (3, 11):
        async with asyncio.TaskGroup() as tg:
            r = tg.create_task(reviews(product_id), name="reviews")
            s = tg.create_task(recommendations(product_id), name="recommendations")
        return r.result(), s.result()
    return tuple(await asyncio.gather(reviews(product_id), recommendations(product_id)))


async def shipping_quote(product_id: int) -> str:
    await asyncio.sleep(2)  # the carrier's API is having a bad day
    return "tomorrow"


async def shipping(product_id: int) -> str:
    quote = asyncio.create_task(shipping_quote(product_id), name="shipping-quote")
    try:
        return await asyncio.wait_for(quote, 0.05)  # too slow: wait_for cancels the task
    except asyncio.TimeoutError:
        return "unknown (the carrier did not answer in time)"


def render_price(price: dict) -> str:
    time.sleep(0.15)  # the bug loopscope shows: a blocking call in async code stalls the whole loop
    return "$19.99"


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;margin:2em'>{body}</body></html>")


@get("/", media_type=MediaType.HTML)
async def index() -> str:
    links = "".join(f"<li><a href='/product/{i}'>product {i}</a></li>" for i in (7, 42, 99))
    return page("shop", f"<h1>shop</h1><ul>{links}</ul>")


@get("/product/{product_id:int}", media_type=MediaType.HTML)
async def product(product_id: int) -> str:
    (item, price, stock), (said, also) = await asyncio.gather(load_product(product_id), extras(product_id))
    ships = await shipping(product_id)
    shown = render_price(price)
    body = (f"<h1>product {product_id}</h1><p>price {shown} · in stock {stock['rows']} · ships {html.escape(ships)}</p>"
            "<h2>reviews</h2><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in said) + "</ul>"
            "<p>see also " + ", ".join(f"<a href='/product/{i}'>product {i}</a>" for i in also) + "</p>")
    return page(f"product {product_id}", body)


def create_app() -> Litestar:
    # The toolbar's own AsyncProfilerPanel hooks the loop too (loopscope warns when both are on).
    # VersionsPanel lists every installed distribution on each request: ~50 ms of blocking work of
    # its own, right after the handler, that would add to the block this app is here to show.
    toolbar = LitestarDebugToolbarConfig(extra_panels=[LoopscopePanel],
                                         exclude_panels=["AsyncProfilerPanel", "VersionsPanel"])
    # debug=True: a development server (tracebacks in the browser); never ship the toolbar
    return Litestar(route_handlers=[index, product], plugins=[DebugToolbarPlugin(toolbar)], debug=True)


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
