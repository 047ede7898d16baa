"""Orders: reading one (from Redis, or the store once settled and compacted), paying a
reserved one."""

from __future__ import annotations

import asyncio
from typing import cast

from flashsale.engine.ids import drop_of_order
from flashsale.engine.keys import DropKeys
from flashsale.engine.models import Order, PayOutcome, decode_order
from flashsale.engine.redis import RedisClient
from flashsale.engine.scripts import Scripts
from flashsale.engine.status_feed import StatusFeed
from flashsale.engine.store import OrderStore


class Orders:
    def __init__(
        self, redis: RedisClient, scripts: Scripts, feed: StatusFeed | None = None
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._feed = feed

    async def get(self, order_id: str) -> Order | None:
        drop_id = drop_of_order(order_id)
        if drop_id is None:
            return None
        packed = await self._redis.hget(DropKeys.of(drop_id).orders, order_id)
        return decode_order(cast(bytes, packed)) if packed else None

    async def find(self, order_id: str, store: OrderStore) -> tuple[Order | None, bool]:
        """An order as the API shows it, and whether the store has it yet: Redis's copy
        while it has one (the newest state: a payment not settled yet), else the store's
        (a compacted drop's)."""
        stored, live = await asyncio.gather(store.get(order_id), self.get(order_id))
        return live or stored, stored is not None

    async def pay(self, order_id: str, buyer: str) -> tuple[PayOutcome, Order | None]:
        """Returns (outcome, order): paid, not_found, not_payable or expired.

        Paying twice is harmless, so a lost answer is simply asked again by the buyer.
        """
        drop_id = drop_of_order(order_id)
        if drop_id is None:
            return "not_found", None
        outcome, packed = await Scripts.call(self._scripts.pay, drop_id, order_id, buyer)
        if outcome == b"expired" and self._feed is not None:
            # A late payment may have put units back on sale: this process must not refuse
            # the drop as sold out while the published change is still on its way to it.
            self._feed.forget(drop_id)
        return cast(PayOutcome, outcome.decode()), decode_order(packed) if packed else None
