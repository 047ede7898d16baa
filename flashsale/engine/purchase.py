"""The purchase path: one call of purchase.lua decides limit, stock and the order event.

A lost answer is the one hard case. The request's order id is chosen here, before Redis is
asked, and the script is idempotent by that id; so when the connection breaks after the
script was sent, the decision is run again with the same id (recheck) until Redis answers,
and the buyer is told what was really decided. Only when Redis cannot be reached at all does
the buyer get 503, and a recheck that refuses voids the id for good (see purchase.lua).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from flashsale.engine.errors import AMBIGUOUS, RedisError, Unavailable
from flashsale.engine.ids import is_drop_id, new_order_id
from flashsale.engine.models import Order, decode_order
from flashsale.engine.redis import RedisClient
from flashsale.engine.scripts import Scripts

RECHECK_DELAYS = (0.05, 0.2, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Decision:
    """`created` (a new order, or this very request's lost answer), `replay` (an earlier
    request's order under the same Idempotency-Key), or a refusal: not_found, not_live,
    sold_out, limit_reached, idempotency_conflict, unavailable (a voided request id)."""

    outcome: str
    order: Order | None = None


class Purchaser:
    def __init__(self, redis: RedisClient, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    async def purchase(
        self, drop_id: str, buyer: str, quantity: int, idempotency_key: str | None = None
    ) -> Decision:
        if not is_drop_id(drop_id):
            return Decision("not_found")
        order_id = new_order_id(drop_id)
        request = (order_id, buyer, quantity, idempotency_key or "")
        try:
            return (await self._decide(drop_id, 0, [request]))[0]
        except AMBIGUOUS:
            pass  # sent or not, nobody knows: ask again under the same id
        for delay in RECHECK_DELAYS:
            await asyncio.sleep(delay)
            try:
                return (await self._decide(drop_id, 1, [request]))[0]
            except RedisError:
                continue
        raise Unavailable("Redis did not answer")

    async def _decide(
        self, drop_id: str, recheck: int, requests: list[tuple[str, str, int, str]]
    ) -> list[Decision]:
        """Runs one batch of purchases of one drop in a single script call."""
        args: list[object] = [recheck, len(requests)]
        for request in requests:
            args.extend(request)
        flat = await Scripts.call(self._scripts.purchase, drop_id, *args)
        return [
            Decision(flat[i].decode(), decode_order(flat[i + 1]) if flat[i + 1] else None)
            for i in range(0, len(flat), 2)
        ]
