"""A Redis Cluster primary SIGKILLed mid-burst: its replica takes over, purchases go on, and
with FLASHSALE_ACKS=replica no order answered 201 is lost. With the default (leader), the
orders lost are counted: those a primary confirmed and died with before its replica had
them."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from flashsale.engine.keys import DropKeys
from tests.cluster import Cluster, start_cluster
from tests.conftest import MakeStack
from tests.invariants import Answer, assert_invariants
from tests.stack import Stack

DROPS, STOCK, LIMIT, ATTEMPTS, BUYERS = 9, 120, 2, 2400, 700


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = start_cluster(tmp_path_factory, masters=3, replicas_each=1, aof=True)
    yield started
    started.stop()


async def _burst(stack: Stack, cluster: Cluster, drops: list[dict[str, Any]]) -> dict[str, Any]:
    """Fires ATTEMPTS purchases (each with its own key, resent with it after a 503 or a 504,
    as a phone does) and SIGKILLs the primary of the first drop when a third are answered."""
    rng = random.Random(7)
    plans = [
        (rng.choice(drops)["id"], f"b{rng.randrange(BUYERS)}", rng.choice((1, 1, 2)), f"k{i}")
        for i in range(ATTEMPTS)
    ]
    victim = cluster.node_of(DropKeys.of(drops[0]["id"]).drop)
    answered: list[tuple[str, Answer, float]] = []
    gate = asyncio.Semaphore(100)
    resent = 0

    async def attempt(drop_id: str, buyer: str, quantity: int, key: str) -> None:
        nonlocal resent
        deadline = time.monotonic() + 60
        async with gate:
            while True:
                reply = await stack.buy(drop_id, buyer, quantity, key=key)
                if reply.status not in (503, 504):  # 504 undecided: resent with its key
                    break
                assert time.monotonic() < deadline, "503s did not end after the failover"
                resent += 1
                await asyncio.sleep(0.2)
        answered.append((drop_id, Answer(buyer, quantity, key, reply), time.monotonic()))

    firing = asyncio.gather(*(attempt(*p) for p in plans))
    while len(answered) < ATTEMPTS // 3:  # noqa: ASYNC110 (a count, not an event)
        await asyncio.sleep(0.005)
    victim.kill()
    killed_at = time.monotonic()
    # Its replica takes over; then, as ops would, the dead node is started again and joins
    # as the new primary's replica (until then that primary has none: with acks=replica its
    # drops answer 503, and a batch it ran waits for a replica before anyone is answered).
    await asyncio.to_thread(cluster.wait_failover, victim, DropKeys.of(drops[0]["id"]).drop)
    failed_over = time.monotonic() - killed_at
    await asyncio.to_thread(victim.start)
    await firing
    return {"answered": answered, "killed_at": killed_at, "resent": resent,
            "failed_over_s": failed_over}  # fmt: skip


@pytest.mark.parametrize("acks", ["replica", "leader"])
async def test_a_primary_killed_mid_burst(
    cluster: Cluster, make_stack: MakeStack, acks: str
) -> None:  # the cluster first: it must outlive the stack
    stack = await make_stack(redis_url=cluster.url, acks=acks)
    drops = [await stack.new_drop(stock=STOCK, per_buyer_limit=LIMIT) for _ in range(DROPS)]
    owners = {cluster.node_of(DropKeys.of(d["id"]).drop).port for d in drops}
    assert len(owners) >= 2, "the drops should spread over several primaries"
    run = await _burst(stack, cluster, drops)
    answered: list[tuple[str, Answer, float]] = run["answered"]
    statuses = {a.reply.status for _, a, _ in answered}
    assert statuses <= {200, 201, 409}, statuses
    after_kill = sum(a.reply.status == 201 for _, a, at in answered if at > run["killed_at"])
    assert after_kill > 0, "no purchase went through after the primary died"

    # Orders answered 201 that Redis no longer has: lost with the primary.
    redis = stack.engine.redis
    lost = 0
    for drop_id, answer, _ in answered:
        if answer.reply.status == 201:
            order_id = answer.reply.body["order"]["id"]
            if await redis.hget(DropKeys.of(drop_id).orders, order_id) is None:
                lost += 1
    created = sum(a.reply.status == 201 for _, a, _ in answered)
    print(f"\nacks={acks}: failover took {run['failed_over_s']:.1f} s; {created} orders "
          f"answered 201, {after_kill} after the kill; {run['resent']} resends after a 503; "
          f"lost with the primary: {lost}")  # fmt: skip
    if acks == "replica":
        assert lost == 0
        for drop in drops:
            mine = [a for d, a, _ in answered if d == drop["id"]]
            await assert_invariants(stack, drop["id"], mine)


async def test_a_primary_lost_for_good_after_its_replica_was_cut_off(
    cluster: Cluster, make_stack: MakeStack
) -> None:
    """The hard case under acks=replica: the busiest primary's replica is frozen and its link
    cut, then the primary dies for good and the replica, thawed, takes over with no replica
    of its own. Every request is answered within 30 s, never 500; the other shards keep
    selling and settling; every order answered 201 is in the store; the audit holds."""
    stack = await make_stack(redis_url=cluster.url, acks="replica", replica_timeout_s=2.0)
    drops = [await stack.new_drop(stock=STOCK, per_buyer_limit=LIMIT) for _ in range(6)]
    victim = cluster.node_of(DropKeys.of(drops[0]["id"]).drop)
    client = redis.Redis(port=victim.port)
    (replica_port,) = [int(r["port"]) for k, r in client.info("replication").items()
                       if k.startswith("slave")]  # fmt: skip
    replica = next(n for n in cluster.nodes if n.port == replica_port)
    rng = random.Random(11)
    plans = [
        (rng.choice(drops)["id"], f"b{rng.randrange(BUYERS)}", rng.choice((1, 1, 2)), f"k{i}")
        for i in range(1500)
    ]
    answered: list[tuple[str, Answer, float]] = []
    slowest = 0.0
    seen: set[int] = set()
    gate = asyncio.Semaphore(100)

    async def attempt(drop_id: str, buyer: str, quantity: int, key: str) -> None:
        nonlocal slowest
        async with gate:
            for _ in range(10):  # a phone resends a 503 or 504 with its key, then gives up
                start = time.monotonic()
                reply = await stack.buy(drop_id, buyer, quantity, key=key)
                slowest = max(slowest, time.monotonic() - start)
                seen.add(reply.status)
                if reply.status not in (503, 504):
                    break
                await asyncio.sleep(0.2)
        answered.append((drop_id, Answer(buyer, quantity, key, reply), time.monotonic()))

    firing = asyncio.gather(*(attempt(*p) for p in plans))
    while len(answered) < len(plans) // 3:  # noqa: ASYNC110 (a count, not an event)
        await asyncio.sleep(0.005)
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)
    client.execute_command("CLIENT", "KILL", "TYPE", "replica")
    await asyncio.sleep(0.3)
    victim.kill()  # for good: it never comes back
    killed_at = time.monotonic()
    replica.process.send_signal(signal.SIGCONT)
    client.close()
    await asyncio.to_thread(cluster.wait_failover, victim, DropKeys.of(drops[0]["id"]).drop)
    await firing

    assert 500 not in seen and slowest < 30, (seen, slowest)
    # The other shards recover; the lost one's new primary has no replica left, so its new
    # purchases stay 503 (as the contract has it) while its existing orders are found.
    lost_shard = {d["id"] for d in drops if cluster.node_of(DropKeys.of(d["id"]).drop) is replica}
    for drop_id, answer, _ in answered:
        allowed = {200, 201, 409} | ({503} if drop_id in lost_shard else set())
        assert answer.reply.status in allowed, (drop_id, answer.reply.status, answer.reply.body)
    healthy = [a for d, a, at in answered if d not in lost_shard and at > killed_at]
    # the other shards went on deciding (selling, or sold out) after the kill
    assert healthy and all(a.reply.status in (200, 201, 409) for a in healthy), "stalled"
    await stack.settle()
    for drop in drops:
        mine = [a for d, a, _ in answered if d == drop["id"]]
        await assert_invariants(stack, drop["id"], mine)
    print(f"\nslowest answer {slowest:.1f} s; statuses seen {sorted(seen)}")
