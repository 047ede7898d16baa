"""Limits that protect a gateway: rate limits shared by every gateway through Redis, a bound
on requests in progress, and a fast 503 when Redis cannot be reached."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio

from flashsale.gateway.ratelimit import WINDOW_S
from tests.invariants import Answer, assert_invariants
from tests.proxy import Proxy
from tests.stack import MakeStack, Reply, Stack


async def counted(redis_url: str, client: str) -> int:
    """What every gateway has reported of `client` in the current windows (all shards)."""
    r = redis.asyncio.Redis.from_url(redis_url)
    try:
        total = 0
        async for key in r.scan_iter("fs:rl:*"):
            total += int(await r.hget(key, client) or 0)
        return total
    finally:
        await r.aclose()


async def until_counted(redis_url: str, client: str, n: int) -> None:
    deadline = time.monotonic() + 5
    while await counted(redis_url, client) < n:
        assert time.monotonic() < deadline, f"{client} never reached {n} in Redis"
        await asyncio.sleep(0.02)


def assert_limited(reply: Reply, most_s: float) -> None:
    assert (reply.status, reply.code) == (429, "rate_limited"), reply.body
    assert 1 <= int(reply.headers["Retry-After"]) <= most_s


async def test_a_buyer_spread_over_two_gateways_is_limited_by_both(
    make_stack: MakeStack, redis_url: str
) -> None:
    # Each gateway alone would let a burst of 3 through; the window allows 3 in all. The
    # windows are WINDOW_S long, aligned to the clock: start where this one has time left,
    # or A's counts and B's would fall into two windows.
    left = WINDOW_S - time.time() % WINDOW_S
    if left < 4:
        await asyncio.sleep(left + 0.05)
    a = await make_stack(buyer_rate=0.001, buyer_burst=3)
    b = await make_stack(buyer_rate=0.001, buyer_burst=3, worker=False)
    drop = await a.new_drop(stock=100, per_buyer_limit=100)
    for _ in range(3):
        assert (await a.buy(drop["id"], "bot")).status == 201
    await until_counted(redis_url, "b:bot", 3)
    admitted_by_b = 0
    deadline = time.monotonic() + 5
    while True:
        reply = await b.buy(drop["id"], "bot")
        if reply.status == 429:
            break
        assert reply.status == 201, reply.body
        admitted_by_b += 1
        assert time.monotonic() < deadline, "the second gateway never heard of the first"
        # Longer than a sync (0.1 s): B reports what it admitted, and hears A's counts back,
        # before it could spend its own burst (a busy machine delayed that at 0.05 s).
        await asyncio.sleep(0.25)
    assert_limited(reply, 10)  # refused until the shared window ends
    # B's own bucket held 3: it refused sooner because Redis had A's counts.
    assert admitted_by_b < 3
    assert (await b.buy(drop["id"], "someone-else")).status == 201
    sold = (await a.call("GET", f"/v1/drops/{drop['id']}")).body["sold"]
    assert sold == 3 + admitted_by_b + 1  # every 429 took nothing


async def test_an_address_is_limited_behind_a_trusted_proxy(make_stack: MakeStack) -> None:
    stack = await make_stack(ip_rate=0.001, ip_burst=3, trusted_proxies=["127.0.0.1/32"])

    async def get(forwarded: str | None) -> Reply:
        headers = {"X-Forwarded-For": forwarded} if forwarded else None
        return await stack.call("GET", "/v1/drops", headers=headers)

    for _ in range(3):
        assert (await get("203.0.113.9")).status == 200
    assert_limited(await get("203.0.113.9"), 1000)  # a token comes back in 1,000 s
    # Prepending an address does not help: only what the trusted proxy added counts.
    assert_limited(await get("198.51.100.1, 203.0.113.9"), 1000)
    assert (await get("203.0.113.10")).status == 200  # another address is not held back
    for _ in range(10):  # the machine itself (ops, a local load test) is never limited
        assert (await get(None)).status == 200
    assert (await stack.call("GET", "/healthz")).status == 200


async def test_a_saturated_gateway_answers_503_at_once_and_keeps_its_promises(
    make_stack: MakeStack, redis_url: str
) -> None:
    stack = await make_stack(max_in_flight=4)
    drop = await stack.new_drop(stock=100)
    slow = redis.asyncio.Redis.from_url(redis_url)
    busy = """local function now() local t = redis.call('TIME') return t[1] * 1e6 + t[2] end
              local s = now() while now() - s < 1.5e6 do end"""
    sleeper = asyncio.create_task(slow.eval(busy, 0))
    await asyncio.sleep(0.1)  # Redis is now busy for 1.5 s

    async def timed(buyer: str) -> tuple[Reply, float]:
        start = time.monotonic()
        reply = await stack.buy(drop["id"], buyer, key="k")
        return reply, time.monotonic() - start

    waiting = [asyncio.create_task(timed(f"early{i}")) for i in range(4)]
    await asyncio.sleep(0.1)  # those four are in progress, waiting on Redis
    rest = await asyncio.gather(*(timed(f"late{i}") for i in range(20)))
    for reply, took in rest:
        assert (reply.status, reply.code, reply.headers.get("Retry-After")) == (
            503, "unavailable", "1"
        )  # fmt: skip
        assert took < 0.5, f"a turned-away request waited {took:.2f} s"
    health = await stack.call("GET", "/healthz")
    assert health.status == 200  # busy is not dead
    early = await asyncio.gather(*waiting)
    await sleeper
    await slow.aclose()
    assert all(reply.status == 201 for reply, _ in early), [r.body for r, _ in early]
    answers = [Answer(f"early{i}", 1, "k", r) for i, (r, _) in enumerate(early)]
    answers += [Answer(f"late{i}", 1, "k", r) for i, (r, _) in enumerate(rest)]
    stored = await assert_invariants(stack, drop["id"], answers)
    assert len(stored) == 4  # the 503s made nothing
    # The turned-away buyers retry with the same key and get their order now.
    assert (await stack.buy(drop["id"], "late0", key="k")).status == 201


async def test_redis_unreachable_is_503_at_once_and_recovers_without_a_restart(
    make_stack: MakeStack, proxy: Proxy
) -> None:
    stack: Stack = await make_stack(redis_url=proxy.url, worker=False)
    drop = await stack.new_drop(stock=100)
    assert (await stack.buy(drop["id"], "before")).status == 201
    await proxy.close()
    await proxy.cut()
    # The pooled connection died unseen: the first batch written to it may have reached
    # Redis, so it waits to find out (its answer is checked below, once Redis is back).
    in_flight = asyncio.create_task(stack.buy(drop["id"], "in-flight"))
    await asyncio.sleep(0.2)
    down, slowest = [], 0.0
    for i in range(30):  # nothing can have been sent now: each is answered at once
        start = time.monotonic()
        down.append(await stack.buy(drop["id"], f"down{i}"))
        slowest = max(slowest, time.monotonic() - start)
    assert {(r.status, r.code, r.headers.get("Retry-After")) for r in down} == {
        (503, "unavailable", "1")
    }
    assert slowest < 0.5, f"a purchase with Redis unreachable took {slowest:.2f} s"
    print(
        f"\nRedis unreachable: the slowest of 30 purchases answered 503 in {slowest * 1e3:.0f} ms"
    )
    await proxy.start(port=proxy.port)
    deadline = time.monotonic() + 5
    while (reply := await stack.buy(drop["id"], "after")).status == 503:
        assert time.monotonic() < deadline, "the gateway did not come back by itself"
        await asyncio.sleep(0.05)
    assert reply.status == 201, reply.body
    # Decided once Redis was back: made by its recheck (201), or refused and voided (503).
    late = (await in_flight).status
    assert late in (201, 503)
    after = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    made = 2 + (late == 201)
    assert (after["sold"], after["remaining"]) == (made, 100 - made)  # no 503 made an order
