"""A drop's counters as they change, for the /live viewers of one gateway process.

Every script that changes a drop's remaining, sold or status publishes the new counters
once (lib.lua `publish_live`: one message per batch of purchases, never one per tap) on
LIVE_CHANNEL + drop id. While a process has viewers it follows those messages, keeps the
latest counters of each watched drop, and each viewer sends them at most `MAX_RATE` times a
second: whatever arrived in between is coalesced into the newest. Every gateway process
reads the same messages from Redis, so viewers on different gateways see the same counters.
On a lost subscription every watched drop is read again from Redis, so nothing missed stays
wrong. A drop with variants also has each variant's counters; a batch's message carries
only the variants it sold, and the watch merges them into what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec

from flashsale.engine.errors import REDIS_ERRORS
from flashsale.engine.keys import LIVE_CHANNEL, DropKeys
from flashsale.engine.models import variant_codes, variant_field
from flashsale.engine.redis import RedisClient, subscriber, text
from flashsale.engine.stopping import pause

log = logging.getLogger(__name__)

MAX_RATE = 10  # events a second per viewer at most


class Counters(msgspec.Struct):
    """What a /live `stock` event says; `variants`: code -> {"remaining", "sold"}; `queue`
    (a queue drop's): {"waiting", "admitted"}."""

    remaining: int
    sold: int
    status: str
    variants: dict[str, dict[str, int]] | None = None
    queue: dict[str, int] | None = None


def parse_counts(
    message: str,
) -> tuple[int, int, str, dict[str, dict[str, int]], dict[str, int] | None]:
    """A LIVE_CHANNEL message (lib.lua `publish_counts`): the drop's counters, those of the
    variants it names, and a queue drop's waiting room ("q=<waiting>/<admitted>")."""
    remaining, sold, status, *pairs = message.split(" ")
    variants, queue = {}, None
    for pair in pairs:
        code, _, counts = pair.partition("=")
        left, _, gone = counts.partition("/")
        if code == "q":  # a variant's code has no '=', so "q=" is never one
            queue = {"waiting": int(left), "admitted": int(gone)}
        else:
            variants[code] = {"remaining": int(left), "sold": int(gone)}
    return int(remaining), int(sold), status, variants, queue


class Watch:
    """The latest counters of one drop, as JSON bytes, and a way to wait for newer ones."""

    def __init__(self) -> None:
        self.counters = b""
        self.current: Counters | None = None
        self.missed = 0  # messages that came before the first read
        self.version = 0
        self.viewers = 0
        self._changed = asyncio.Event()

    def merge(self, message: str) -> None:
        """A published change: the drop's counters, and those of the variants it names."""
        if self.current is None:  # nothing to merge into yet: the first read is on its way
            self.missed += 1
            return
        remaining, sold, status, named, queue = parse_counts(message)
        held = self.current.variants
        variants = None if held is None and not named else {**(held or {}), **named}
        self.update(Counters(remaining, sold, status, variants, queue or self.current.queue))

    def update(self, current: Counters) -> None:
        self.current = current
        counters = msgspec.json.encode(current)
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
            for attempt in range(3):  # read again if a change came meanwhile (twice at most)
                if watch.current is not None:
                    break
                missed = watch.missed
                counters = await self.read(drop_id)
                if watch.current is None and (watch.missed == missed or attempt == 2):
                    watch.update(counters)
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

    async def read(self, drop_id: str) -> Counters:
        key = DropKeys.of(drop_id).drop
        remaining, sold, status, listed, admission, admitted = await self._redis.hmget(
            key, "remaining", "sold", "status", "variants", "admission", "q_admitted"
        )
        queue = None
        if admission == b"queue":
            waiting = await self._redis.zcard(DropKeys.of(drop_id).queue)
            queue = {"waiting": int(waiting), "admitted": int(admitted or 0)}
        variants = None
        codes = variant_codes(text(listed) if listed else None)
        if codes:
            names = [variant_field(c, n) for c in codes for n in ("remaining", "sold")]
            got = await self._redis.hmget(key, names)
            variants = {
                c: {"remaining": int(got[2 * i] or 0), "sold": int(got[2 * i + 1] or 0)}
                for i, c in enumerate(codes)
            }
        return Counters(int(remaining or 0), int(sold or 0), text(status or b""), variants, queue)

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
                            watched.merge(text(message["data"]))
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
