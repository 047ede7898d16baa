"""Builds the aiohttp application and runs it."""

from __future__ import annotations

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
    for module in (drops, purchase, orders, health):
        app.add_routes(module.routes)
    return app
