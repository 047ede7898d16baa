"""What every handler reaches through `request.app[GATEWAY]`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from flashsale.engine.engine import Engine
from flashsale.engine.store import OrderStore
from flashsale.gateway.auth import Auth
from flashsale.gateway.ratelimit import RateLimiter


@dataclass
class Gateway:
    engine: Engine
    store: OrderStore
    auth: Auth
    limiter: RateLimiter


GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
