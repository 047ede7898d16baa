"""Builds the aiohttp application and runs its background loops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from flashsale.gateway import (
    console,
    drops,
    entries,
    health,
    live,
    metrics,
    orders,
    purchase,
    queue,
    webhooks,
)
from flashsale.gateway.errors import MAX_BODY
from flashsale.gateway.middleware import gate
from flashsale.gateway.state import GATEWAY, Gateway


def build_app(gw: Gateway) -> web.Application:
    app = web.Application(middlewares=[gate], client_max_size=MAX_BODY)
    app[GATEWAY] = gw
    # The purchase route first: aiohttp tries the routes sharing a prefix in this order.
    # The console's pages last: they share no prefix with the API.
    api = (purchase, drops, queue, entries, live, orders, webhooks, health, metrics)
    for module in (*api, console):
        app.add_routes(module.routes)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_end_streams)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    """While the app runs: the drop status feed (sold-out fast path), the drops with work
    (for /metrics), and the sharing of rate-limit counts with the other gateways."""
    gw = app[GATEWAY]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(gw.engine.feed.run(stop, gw.engine.url)),
        asyncio.create_task(gw.engine.active.run(stop, gw.engine.url)),
        asyncio.create_task(gw.limiter.run(gw.engine.scripts.rate, stop)),
    ]
    yield
    stop.set()
    await asyncio.gather(*tasks)


async def _end_streams(app: web.Application) -> None:
    """Open /live streams end now: otherwise shutdown would wait on them for its timeout."""
    app[GATEWAY].stopping.set()
