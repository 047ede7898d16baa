"""The drops with something to do, so that work running all the time costs nothing per past
drop: settlement reads, the sweeper, stream trimming and `/metrics` visit only these.

A drop has something to do while it is pending or live, or holds unsettled events or unpaid
holds; its settled entries are trimmed as it leaves (`on_leave`). Every
script that gives a drop work publishes about it (lib.lua: a status change on
STATUS_CHANNEL, new counts on LIVE_CHANNEL + id, a new drop as `pending`), so a process
that follows both channels adds a drop within milliseconds of its work, and no global key
is ever touched inside a script (which would cross slots on a cluster).

Pub/sub delivers to a connected subscriber in order or drops the connection, so what can be
missed is only what happened while not subscribed: on every (re)subscription a full pass
reads every drop, and a slow one runs anyway every `reconcile_s`. Drops leave the set in a
small pass over the members alone (`prune_s`), and only if nothing was heard of them while
they were being checked. Not following the channels (never started, or cut off), `ids()`
falls back to a full pass each call: slow, but never wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from flashsale.engine.backlog import settle_group
from flashsale.engine.drops import Drops
from flashsale.engine.errors import REDIS_ERRORS
from flashsale.engine.keys import LIVE_CHANNEL, STATUS_CHANNEL, DropKeys
from flashsale.engine.redis import RedisClient, subscriber, text
from flashsale.engine.stopping import pause

log = logging.getLogger(__name__)

RECONCILE_S = 300.0
PRUNE_S = 5.0
CHUNK = 500  # drops checked at once in a pass
BUSY = ("pending", "live")


async def with_work(redis: RedisClient, ids: list[str]) -> set[str]:
    """Those of `ids` that are pending or live, or hold unpaid holds or unsettled events:
    four reads a drop, pipelined a chunk at a time (one round trip per node)."""
    busy: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        pipe = redis.pipeline(transaction=False)
        for drop_id in chunk:
            keys = DropKeys.of(drop_id)
            pipe.hmget(keys.drop, "status", "compacted")
            pipe.zcard(keys.holds)
            pipe.xlen(keys.events)
            pipe.xinfo_groups(keys.events)
        replies = await pipe.execute(raise_on_error=False)
        for n, drop_id in enumerate(chunk):
            fields, holds, entries, groups = replies[4 * n : 4 * n + 4]
            if isinstance(fields, Exception):
                raise fields
            status, compacted = fields
            if status is None or compacted:
                continue
            if text(status) in BUSY or holds or (entries and _unsettled(groups)):
                busy.add(drop_id)
    return busy


def _unsettled(groups: Any) -> bool:
    if isinstance(groups, Exception):  # no stream: nothing to settle
        return False
    g = settle_group(groups)
    if g is None:
        return False
    lag = g.get("lag")  # None (Redis 6.2, or trimmed past the group): taken as some
    return int(g.get("pending") or 0) > 0 or lag is None or int(lag) > 0


class ActiveDrops:
    def __init__(
        self,
        redis: RedisClient,
        drops: Drops,
        *,
        reconcile_s: float = RECONCILE_S,
        prune_s: float = PRUNE_S,
    ) -> None:
        self._redis = redis
        self._drops = drops
        self.reconcile_s = reconcile_s
        self.prune_s = prune_s
        self._members: dict[str, None] = {}  # insertion-ordered set
        self._heard: dict[str, int] = {}  # drop -> messages heard of it (see prune)
        self.following = asyncio.Event()  # subscribed, and a full pass done since
        self.passes = 0  # full passes run (for the tests and the bench)
        self._running = False
        # run on drops about to leave: the settlement worker trims their settled entries
        self.on_leave: Callable[[list[str]], Awaitable[object]] | None = None

    def heard(self, drop_id: str) -> None:
        """A drop has work now (a message about it, or this process's own change)."""
        self._members[drop_id] = None
        self._heard[drop_id] = self._heard.get(drop_id, 0) + 1

    async def ids(self) -> list[str]:
        """The drops with something to do, oldest first."""
        if not self.following.is_set():
            await self.reconcile()
        return list(self._members)

    async def reconcile(self) -> None:
        """The full pass: every drop read, the set made exactly the drops with work (plus any
        heard of meanwhile)."""
        before = dict(self._heard)
        every = await self._drops.ids()
        busy = await with_work(self._redis, every)
        heard_since = {d for d, n in self._heard.items() if before.get(d) != n}
        self._members = dict.fromkeys(d for d in every if d in busy)
        self._members.update(dict.fromkeys(heard_since))
        self._heard = {d: n for d, n in self._heard.items() if d in self._members}
        self.passes += 1

    async def prune(self) -> None:
        """Drops the members with nothing left to do, unless heard of during the check; the
        `on_leave` hook (the worker's final trim of their streams) runs on them first."""
        members = list(self._members)
        before = {d: self._heard.get(d, 0) for d in members}
        busy = await with_work(self._redis, members)
        leaving = [d for d in members if d not in busy]
        if leaving and self.on_leave is not None:
            await self.on_leave(leaving)
        for d in leaving:
            if self._heard.get(d, 0) == before[d]:
                self._members.pop(d, None)
                self._heard.pop(d, None)

    async def run(self, stop: asyncio.Event, redis_url: str) -> None:
        """Follows both channels until `stop`; any break means a full pass once back. One
        follower per process is enough (`up` runs a gateway and a worker in one): a second
        call returns at once."""
        if self._running:
            return
        self._running = True
        try:
            await self._follow(stop, redis_url)
        finally:
            self._running = False

    async def _follow(self, stop: asyncio.Event, redis_url: str) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            client = subscriber(redis_url)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(STATUS_CHANNEL)
                    await pubsub.psubscribe(f"{LIVE_CHANNEL}*")
                    await self.reconcile()  # after subscribing: nothing falls in between
                    self.following.set()
                    next_reconcile = loop.time() + self.reconcile_s
                    next_prune = loop.time() + self.prune_s
                    while not stop.is_set():
                        message = await pubsub.get_message(timeout=0.2)
                        while message is not None:
                            self._hear(message)
                            message = await pubsub.get_message(timeout=0)
                        now = loop.time()
                        if now >= next_reconcile:
                            await self.reconcile()
                            next_reconcile = now + self.reconcile_s
                        elif now >= next_prune:
                            await self.prune()
                            next_prune = now + self.prune_s
            except (*REDIS_ERRORS, OSError) as e:
                if self.following.is_set():
                    log.warning("active drops: feed lost, a full pass once back: %s", e)
            finally:
                self.following.clear()
                with contextlib.suppress(*REDIS_ERRORS, OSError):
                    await client.aclose()
            await pause(stop, 0.5)

    def _hear(self, message: dict[str, Any]) -> None:
        channel = text(message["channel"])
        if channel == STATUS_CHANNEL:
            self.heard(text(message["data"]).partition(" ")[0])
        elif channel.startswith(LIVE_CHANNEL):
            self.heard(channel[len(LIVE_CHANNEL) :])


__all__ = ["ActiveDrops", "with_work"]
