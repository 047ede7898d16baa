"""Builds the aiohttp application and runs it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from flashsale.engine.engine import Engine
from flashsale.engine.store import OrderStore
from flashsale.gateway import drops, health, orders, purchase
from flashsale.gateway.auth import Auth
from flashsale.gateway.errors import MAX_BODY, error_middleware
from flashsale.gateway.ratelimit import RateLimiter
from flashsale.gateway.state import GATEWAY, Gateway


def build_app(
    engine: Engine, store: OrderStore, auth: Auth, limiter: RateLimiter
) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    app[GATEWAY] = Gateway(engine=engine, store=store, auth=auth, limiter=limiter)
    # The purchase route first: aiohttp tries the routes sharing a prefix in this order.
    for module in (purchase, drops, orders, health):
        app.add_routes(module.routes)
    app.cleanup_ctx.append(_status_feed)
    return app


async def _status_feed(app: web.Application) -> AsyncIterator[None]:
    """Follows drop status changes for the sold-out fast path while the app runs."""
    engine = app[GATEWAY].engine
    stop = asyncio.Event()
    task = asyncio.create_task(engine.feed.run(stop, engine.url))
    yield
    stop.set()
    await task
