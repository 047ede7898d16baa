"""The hot path: purchases of one tick share one script call, a lost batch is found out
request by request, and a sold-out or closed drop is refused without asking Redis."""

from __future__ import annotations

import asyncio
import random
import time

from flashsale.engine import DOWN_S, Shut
from tests.invariants import Answer, assert_invariants
from tests.proxy import Proxy
from tests.stack import MakeStack, Stack


async def script_calls(stack: Stack) -> int:
    """How many scripts Redis has run: every purchase batch is one EVALSHA."""
    stats = await stack.engine.redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


async def until(condition: object, within: float = 5.0) -> float:
    """Waits for `condition()` to hold; returns how long it took."""
    start = time.perf_counter()
    while not condition():  # type: ignore[operator]
        assert time.perf_counter() - start < within, "condition not met in time"
        await asyncio.sleep(0.001)
    return time.perf_counter() - start


async def test_a_batched_burst_over_several_drops_keeps_every_invariant(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    drops = [await stack.new_drop(stock=300, per_buyer_limit=2) for _ in range(3)]
    rng = random.Random(11)
    buyers = [f"b{i}" for i in range(800)]
    headers = {b: stack.as_buyer(b) for b in buyers}
    plans = [
        (rng.choice(drops)["id"], rng.choice(buyers), rng.choice((1, 1, 2)), f"k{i}")
        for i in range(3000)
    ]
    plans += rng.sample(plans, 600)  # retries with the same key, racing their first try
    rng.shuffle(plans)

    async def attempt(drop_id: str, buyer: str, quantity: int, key: str) -> tuple[str, Answer]:
        reply = await stack.call(
            "POST",
            f"/v1/drops/{drop_id}/purchase",
            {"quantity": quantity},
            headers[buyer] | {"Idempotency-Key": key},
        )
        return drop_id, Answer(buyer, quantity, key, reply)

    before = await script_calls(stack)
    answers = await asyncio.gather(*(attempt(*p) for p in plans))
    calls = await script_calls(stack) - before
    print(f"\n{len(plans)} purchase requests took {calls} script calls")
    assert calls < len(plans) / 3, "concurrent purchases did not share script calls"
    for drop in drops:
        mine = [a for d, a in answers if d == drop["id"]]
        stored = await assert_invariants(stack, drop["id"], mine)
        assert sum(o.quantity for o in stored) == 300


async def test_redis_gone_for_a_batch_answers_each_503_and_makes_nothing(
    make_stack: MakeStack, proxy: Proxy
) -> None:
    stack = await make_stack(redis_url=proxy.url, worker=False)
    drop = await stack.new_drop(stock=100)
    await stack.buy(drop["id"], "warm-up")
    await proxy.close()  # nothing answers on the port any more
    await proxy.cut()
    # The first batch may go to a connection that died unseen, so it may have reached
    # Redis: it waits for Redis to come back and is decided then (its recheck runs it); or
    # its connection is known to be gone, and it is never sent. Every batch after it cannot
    # connect, so was never sent: 503 at once.
    probe = asyncio.create_task(stack.buy(drop["id"], "probe"))
    await asyncio.sleep(0.3)
    replies = await asyncio.wait_for(
        asyncio.gather(*(stack.buy(drop["id"], f"b{i}") for i in range(20))), 2
    )
    assert {(r.status, r.code, r.headers.get("Retry-After")) for r in replies} == {
        (503, "unavailable", "1")
    }
    await proxy.start(port=proxy.port)
    late = (await probe).status
    assert late in (201, 503)
    made = 1 + (late == 201)
    after = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    assert (after["sold"], after["remaining"]) == (made, 100 - made)  # the 503s made nothing
    await asyncio.sleep(DOWN_S)  # a node that refused to connect is not tried for DOWN_S
    assert (await stack.buy(drop["id"], "later")).status == 201


async def test_sold_out_is_answered_without_redis_but_replays_still_get_their_order(
    make_stack: MakeStack,
) -> None:
    # No sweeper and no rate-limit counts to share: every script call is a purchase's.
    stack = await make_stack(worker=False, buyer_rate=0)
    drop = await stack.new_drop(stock=2, per_buyer_limit=2)
    first = await stack.buy(drop["id"], "alice", 2, key="tap-1")
    assert first.status == 201
    await until(lambda: drop["id"] in stack.engine.feed.shut)

    before = await script_calls(stack)
    refused = await asyncio.gather(*(stack.buy(drop["id"], f"b{i}", key="x") for i in range(50)))
    refused += [await stack.buy(drop["id"], "carol")]  # no key
    assert {(r.status, r.code) for r in refused} == {(409, "sold_out")}
    assert await script_calls(stack) == before, "a sold-out refusal asked Redis"

    # Her retry under the same key is a replay, not a refusal; another body is a conflict.
    replay = await stack.buy(drop["id"], "alice", 2, key="tap-1")
    assert (replay.status, replay.body) == (200, first.body)
    assert (await stack.buy(drop["id"], "alice", 1, key="tap-1")).status == 422

    # A restock reopens the sale at once: no stale refusal.
    path = f"/v1/drops/{drop['id']}"
    await stack.call("POST", f"{path}/restock", {"quantity": 1}, stack.as_host)
    assert (await stack.buy(drop["id"], "dave")).status == 201


async def test_closed_is_answered_without_redis_and_reopen_clears_it(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(worker=False, buyer_rate=0)  # as above: scripts are purchases
    drop = await stack.new_drop(stock=5)
    path = f"/v1/drops/{drop['id']}"
    await stack.call("POST", f"{path}/close", None, stack.as_host)
    await until(lambda: drop["id"] in stack.engine.feed.shut)
    before = await script_calls(stack)
    assert (await stack.buy(drop["id"], "a")).code == "not_live"
    assert await script_calls(stack) == before
    await stack.call("POST", f"{path}/open", None, stack.as_host)
    assert (await stack.buy(drop["id"], "a")).status == 201


async def test_every_gateway_hears_of_a_sell_out_and_a_restock(make_stack: MakeStack) -> None:
    a, b = await make_stack(), await make_stack(worker=False)
    drop = await a.new_drop(stock=1)
    assert (await a.buy(drop["id"], "first")).status == 201
    heard = await until(lambda: drop["id"] in b.engine.feed.shut)
    print(f"\nanother gateway knew of the sell-out {heard * 1000:.1f} ms later")
    assert (await b.buy(drop["id"], "second")).code == "sold_out"

    await a.call("POST", f"/v1/drops/{drop['id']}/restock", {"quantity": 1}, a.as_host)
    cleared = await until(lambda: drop["id"] not in b.engine.feed.shut)
    print(f"and of the restock {cleared * 1000:.1f} ms later")
    assert (await b.buy(drop["id"], "second")).status == 201


async def test_a_missed_message_is_corrected_by_the_periodic_check(stack: Stack) -> None:
    drop = await stack.new_drop(stock=3)
    feed = stack.engine.feed
    feed.verify_every = 0.1
    await until(feed.subscribed.is_set)
    # As if the drop had sold out and the restock's message had been lost on the way.
    feed.shut[drop["id"]] = Shut("sold_out", frozenset())
    await until(lambda: drop["id"] not in feed.shut, within=2.0)
    assert (await stack.buy(drop["id"], "a")).status == 201


async def test_a_closed_drop_nobody_taps_is_forgotten_and_learnt_again(
    make_stack: MakeStack,
) -> None:
    """A season of closed drops must not keep every one's keys in every gateway: untapped
    for `idle_s`, a drop is forgotten; the next tap asks Redis, which teaches it again."""
    stack = await make_stack(worker=False, buyer_rate=0)
    feed = stack.engine.feed
    feed.verify_every, feed.idle_s = 0.1, 0.5
    drop = await stack.new_drop(stock=5)
    assert (await stack.buy(drop["id"], "a", key="k")).status == 201
    await stack.call("POST", f"/v1/drops/{drop['id']}/close", None, stack.as_host)
    await until(lambda: drop["id"] in feed.shut)
    for _ in range(5):  # tapped: kept
        assert (await stack.buy(drop["id"], "b")).code == "not_live"
        await asyncio.sleep(0.2)
    assert drop["id"] in feed.shut
    await until(lambda: drop["id"] not in feed.shut, within=3.0)  # untapped: forgotten
    assert (await stack.buy(drop["id"], "b")).code == "not_live"  # Redis says so, and...
    await until(lambda: drop["id"] in feed.shut)  # ...it is learnt again
    assert (await stack.buy(drop["id"], "a", key="k")).status == 200  # replays still find


async def test_a_remembered_token_still_expires(stack: Stack) -> None:
    drop = await stack.new_drop(stock=5, per_buyer_limit=5)
    headers = {"Authorization": f"Bearer {stack.token('brief', ttl=1)}"}
    path = f"/v1/drops/{drop['id']}/purchase"
    assert (await stack.call("POST", path, {"quantity": 1}, headers)).status == 201
    await asyncio.sleep(1.1)
    expired = await stack.call("POST", path, {"quantity": 1}, headers)
    assert (expired.status, expired.code) == (401, "unauthorized")


async def test_a_gateway_started_after_the_sell_out_learns_it_from_redis(
    make_stack: MakeStack,
) -> None:
    a = await make_stack(worker=False)  # no sweeper: every script call is a purchase's
    drop = await a.new_drop(stock=1)
    assert (await a.buy(drop["id"], "first")).status == 201
    late = await make_stack(worker=False)  # subscribed after the message went out
    await until(late.engine.feed.subscribed.is_set)
    assert drop["id"] not in late.engine.feed.shut
    assert (await late.buy(drop["id"], "second")).code == "sold_out"  # Redis said so
    await until(lambda: drop["id"] in late.engine.feed.shut)
    before = await script_calls(late)
    assert (await late.buy(drop["id"], "third")).code == "sold_out"
    assert await script_calls(late) == before
