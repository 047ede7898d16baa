"""What every handler reaches through `request.app[GATEWAY]`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from flashsale.engine import Engine, OrderStore
from flashsale.gateway.auth import Auth
from flashsale.gateway.clients import ClientAddress
from flashsale.gateway.ratelimit import RateLimiter
from flashsale.metrics import metrics


@dataclass
class Gateway:
    """One gateway process's parts, built by run/gateway.py from the Settings: the engine,
    the store, who may call, the rate limits, and the bound on requests in flight."""

    engine: Engine
    store: OrderStore
    auth: Auth
    limiter: RateLimiter
    clients: ClientAddress
    max_in_flight: int  # API requests this process works on at once (Settings)
    webhook_allow_private: bool = False  # Settings: webhooks to private addresses allowed
    in_flight: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # set on shutdown

    def admit(self) -> bool:
        """Takes a place for one API request, or says no (and counts it) at the bound; the
        caller gives the place back (`in_flight -= 1`) once answered."""
        if self.in_flight >= self.max_in_flight:
            metrics().turned_away.inc()
            return False
        self.in_flight += 1
        return True


GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
