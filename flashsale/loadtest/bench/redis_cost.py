"""What Redis spends per purchase, read from its own command statistics."""

from __future__ import annotations

from redis import Redis

from flashsale.engine import DropKeys, Engine, new_order_ids, wait_settled
from flashsale.redis_server import RedisServer


async def wait_redis_settled(redis: RedisServer) -> None:
    engine = Engine.from_url(redis.url)
    try:
        await wait_settled(engine.redis, engine.drops, 60)
    finally:
        await engine.close()


def script_time(redis: RedisServer) -> tuple[int, int]:
    """Script calls Redis ran, and the microseconds it spent in them."""
    client = Redis.from_url(redis.url)
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        return int(stats.get("calls", 0)), int(stats.get("usec", 0))
    finally:
        client.close()


def script_stats(redis: RedisServer, drop: str) -> tuple[int, int, int]:
    """`script_time`, and the drop's units sold."""
    client = Redis.from_url(redis.url)
    try:
        sold = int(client.hget(DropKeys.of(drop).drop, "sold") or 0)
    finally:
        client.close()
    return (*script_time(redis), sold)


def redis_cost_line(before: tuple[int, int, int], after: tuple[int, int, int]) -> str | None:
    """What (b) cost Redis itself: a drop lives in one slot, on one Redis core, so this is
    how many purchases a second one hot drop can take however many gateways there are."""
    calls, usec, sold = (a - b for a, b in zip(after, before, strict=True))
    if not calls or not sold:
        return None
    per_purchase = usec / sold
    return (
        f"(b) Redis: {calls:,} script calls, {sold / calls:.1f} purchases each, "
        f"{usec / calls:.1f} us each, {per_purchase:.2f} us per purchase: one Redis core "
        f"decides up to {1e6 / per_purchase:,.0f} purchases/s of one drop"
    )


async def unbatched_cost(redis: RedisServer, drop: str, n: int = 2000) -> str:
    """The same script with one purchase per call, as a gateway without batching sends it:
    Redis's own time per call, from its command statistics."""
    engine = Engine.from_url(redis.url)
    try:
        stats = await engine.redis.info("commandstats")
        calls0, usec0 = (int(stats["cmdstat_evalsha"][k]) for k in ("calls", "usec"))
        ids = new_order_ids(drop, n)
        for i, order_id in enumerate(ids):
            await engine.purchaser.decide_once(drop, 0, [(order_id, f"u{i}", 1, "", "", "")])
        stats = await engine.redis.info("commandstats")
        calls = int(stats["cmdstat_evalsha"]["calls"]) - calls0
        usec = int(stats["cmdstat_evalsha"]["usec"]) - usec0
    finally:
        await engine.close()
    return (
        f"    unbatched, one purchase per call: {usec / calls:.1f} us each, so "
        f"{1e6 * calls / usec:,.0f} script calls/s on one core"
    )
