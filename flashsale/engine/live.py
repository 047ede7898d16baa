"""A drop's counters as they change, for the /live viewers of one gateway process.

Every script that changes a drop's remaining, sold or status publishes the new counters
once (lib.lua `publish_live`: one message per batch of purchases, never one per tap) on
LIVE_CHANNEL + drop id. While a process has viewers it follows those messages, keeps the
latest counters of each watched drop, and each viewer sends them at most `MAX_RATE` times a
second: whatever arrived in between is coalesced into the newest. Every gateway process
reads the same messages from Redis, so viewers on different gateways see the same counters.
On a lost subscription every watched drop is read again from Redis, so nothing missed stays
wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec

from flashsale.engine.errors import REDIS_ERRORS
from flashsale.engine.keys import LIVE_CHANNEL, DropKeys
from flashsale.engine.redis import RedisClient, subscriber, text
from flashsale.engine.stopping import pause

log = logging.getLogger(__name__)

MAX_RATE = 10  # events a second per viewer at most


class Watch:
    """The latest counters of one drop, as JSON bytes, and a way to wait for newer ones."""

    def __init__(self) -> None:
        self.counters = b""
        self.version = 0
        self.viewers = 0
        self._changed = asyncio.Event()

    def update(self, counters: bytes) -> None:
        if counters == self.counters:
            return
        self.counters = counters
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def newer_than(self, version: int) -> None:
        while self.version == version:
            await self._changed.wait()


class LiveFeed:
    def __init__(self, redis: RedisClient, url: str) -> None:
        self._redis = redis
        self._url = url
        self._watches: dict[str, Watch] = {}
        self._follower: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def watch(self, drop_id: str) -> AsyncIterator[Watch]:
        """The drop's counters, kept current while the caller holds them."""
        watch = self._watches.get(drop_id)
        if watch is None:
            watch = self._watches[drop_id] = Watch()
        watch.viewers += 1
        if self._follower is None or self._follower.done():
            self._stop = asyncio.Event()
            self._follower = asyncio.create_task(self._follow(self._stop))
        try:
            if not watch.counters:
                watch.update(await self.read(drop_id))
            yield watch
        finally:
            watch.viewers -= 1
            if not watch.viewers:
                del self._watches[drop_id]
            if not self._watches:
                self._stop.set()  # nobody watches: this process stops following

    def watching(self) -> dict[str, int]:
        """Drop id -> viewers in this process."""
        return {drop_id: w.viewers for drop_id, w in self._watches.items()}

    async def read(self, drop_id: str) -> bytes:
        remaining, sold, status = await self._redis.hmget(
            DropKeys.of(drop_id).drop, "remaining", "sold", "status"
        )
        return counters_json(int(remaining or 0), int(sold or 0), text(status or b""))

    async def _follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            client = subscriber(self._url)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.psubscribe(LIVE_CHANNEL + "*")
                    # Whatever changed before (or while) subscribing is read once now.
                    for drop_id, watch in list(self._watches.items()):
                        watch.update(await self.read(drop_id))
                    while not stop.is_set():
                        message = await pubsub.get_message(timeout=0.2)
                        if message is None:
                            continue
                        drop_id = text(message["channel"])[len(LIVE_CHANNEL) :]
                        watched = self._watches.get(drop_id)
                        if watched is not None:
                            remaining, sold, status = text(message["data"]).split(" ")
                            watched.update(counters_json(int(remaining), int(sold), status))
            except (*REDIS_ERRORS, OSError) as e:
                log.warning("live feed lost, following again: %s", e)
            finally:
                with contextlib.suppress(*REDIS_ERRORS, OSError):
                    await client.aclose()
            await pause(stop, 0.5)

    async def close(self) -> None:
        self._stop.set()
        if self._follower is not None:
            await self._follower


def counters_json(remaining: int, sold: int, status: str) -> bytes:
    return msgspec.json.encode({"remaining": remaining, "sold": sold, "status": status})
