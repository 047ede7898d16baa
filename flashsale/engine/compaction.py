"""A long season in constant Redis memory: a drop closed for FLASHSALE_RETENTION_S with every
event settled is compacted (compact.lua): its orders, buyer counts, idempotency keys and
stream leave Redis and only its record stays. From then on the order store answers for it:
order reads and listings already fall back to it, and a same-key replay is looked up there
(purchase.lua answers `compacted`, and the purchaser asks the store's `by_key`). Reopening first
restores what the invariants need (restore.lua): the orders (for replays), the buyers' unit
counts (the limit) and the idempotency keys.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import msgspec

from flashsale.engine.drops import Drops
from flashsale.engine.errors import REDIS_ERRORS
from flashsale.engine.keys import GROUP, DropKeys
from flashsale.engine.models import Drop
from flashsale.engine.redis import RedisClient, text
from flashsale.engine.scripts import Scripts
from flashsale.engine.stopping import pause
from flashsale.engine.store import OrderStore
from flashsale.engine.store.base import iter_orders

log = logging.getLogger(__name__)

CHUNK = 500  # drops read at once by a pass; orders per restore call
_pack = msgspec.msgpack.Encoder().encode


def pass_every(retention_s: float) -> float:
    """How often a compaction pass runs: a few times per retention, between 1 s and 5 min,
    so a pass over a season's drops stays a small cost."""
    return max(1.0, min(300.0, retention_s / 4))


class Compactor:
    def __init__(
        self, redis: RedisClient, scripts: Scripts, drops: Drops, retention_s: float
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._drops = drops
        self.retention_s = retention_s
        self._done: set[str] = set()  # known compacted: never read again
        self.compacted = 0

    async def compact_once(self) -> int:
        """One pass over the drops not known compacted; returns how many it compacted."""
        ids = [d for d in await self._drops.ids() if d not in self._done]
        n = 0
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            fields = await asyncio.gather(
                *(self._redis.hmget(DropKeys.of(d).drop, "status", "compacted") for d in chunk)
            )
            for drop_id, (status, compacted) in zip(chunk, fields, strict=True):
                if compacted:
                    self._done.add(drop_id)
                elif status is not None and text(status) == "closed":
                    retention_ms = int(self.retention_s * 1000)
                    if await Scripts.call(self._scripts.compact, drop_id, retention_ms, GROUP):
                        self._done.add(drop_id)
                        n += 1
        self.compacted += n
        return n

    async def run(self, stop: asyncio.Event) -> None:
        every = pass_every(self.retention_s)
        while not stop.is_set():
            try:
                if n := await self.compact_once():
                    log.info("compacted %d drop(s) closed over %g s ago", n, self.retention_s)
            except (*REDIS_ERRORS, OSError) as exc:
                log.warning("compaction pass failed, retrying: %s", exc)
            await pause(stop, every)


async def restore(scripts: Scripts, store: OrderStore, drop_id: str) -> None:
    """Puts a compacted drop's orders, buyer counts and keys back into Redis from the store,
    then unmarks it; harmless to run twice or at once."""
    held: Counter[str] = Counter()
    chunk: list[str | bytes] = []  # order id, packed order, its "buyer\nkey" ('' if none)

    async def flush() -> None:
        if chunk:
            await Scripts.call(scripts.restore, drop_id, "orders", *chunk)
            chunk.clear()

    async for order in iter_orders(store, drop_id):
        key = f"{order.buyer}\n{order.idempotency_key}" if order.idempotency_key else ""
        chunk += (order.id, _pack(order), key)
        if order.live:
            held[order.buyer] += order.quantity
        if len(chunk) >= 3 * CHUNK:
            await flush()
    await flush()
    buyers = [x for pair in held.items() for x in pair]
    for i in range(0, len(buyers), 2 * CHUNK):
        await Scripts.call(scripts.restore, drop_id, "buyers", *buyers[i : i + 2 * CHUNK])
    await Scripts.call(scripts.restore, drop_id, "done", GROUP)


async def reopen(drops: Drops, scripts: Scripts, store: OrderStore, drop_id: str) -> Drop | None:
    """`open`, restoring a compacted drop from the store first (drop.lua refuses to open
    one; whether that is why is asked of the drop, not read from the error's text)."""
    try:
        return await drops.open(drop_id)
    except REDIS_ERRORS:
        if not await drops.is_compacted(drop_id):
            raise
    log.info("restoring compacted drop %s from the order store before it opens", drop_id)
    await restore(scripts, store, drop_id)
    return await drops.open(drop_id)


__all__ = ["Compactor", "reopen", "restore"]
