"""What every handler reaches through `request.app[GATEWAY]`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from flashsale.engine.engine import Engine
from flashsale.engine.store import OrderStore
from flashsale.gateway.auth import Auth
from flashsale.gateway.clients import ClientAddress
from flashsale.gateway.ratelimit import RateLimiter

MAX_IN_FLIGHT = 1024


@dataclass
class Gateway:
    engine: Engine
    store: OrderStore
    auth: Auth
    limiter: RateLimiter
    clients: ClientAddress
    max_in_flight: int = MAX_IN_FLIGHT  # API requests this process works on at once
    in_flight: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # set on shutdown


GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
