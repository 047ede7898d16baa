"""FLASHSALE_ACKS=replica when the replica stops acknowledging: no buyer is left hanging.

A real primary and replica. The replica is frozen (SIGSTOP): purchases sent meanwhile are
made on the primary but no replica has them, so each is answered 504 `undecided` within
FLASHSALE_REPLICA_TIMEOUT_S, never held; new purchases on that node are 503 and make
nothing, while a same-key retry is let through to find its order. Settlement holds those
orders back (a failover could take them back) until the replica is gone for good: a
primary with no replica that could be promoted keeps settling, the retries get their
orders (200), and every invariant holds, a 504 counting as answered."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flashsale.engine import iter_orders
from flashsale.redis_server import RedisServer, free_port
from tests.invariants import Answer, assert_invariants
from tests.stack import MakeStack


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(tmp_path / "primary", port=free_port(), appendonly=False).start()
    replica = RedisServer(
        tmp_path / "replica", port=free_port(), appendonly=False,
        extra=("--replicaof", "127.0.0.1", str(primary.port)),
    ).start()  # fmt: skip
    client = redis.Redis.from_url(primary.url)
    deadline = time.monotonic() + 10
    while client.info("replication").get("slave0", {}).get("state") != "online":
        assert time.monotonic() < deadline, "the replica never connected"
        time.sleep(0.05)
    client.close()
    yield primary, replica
    if replica.process is not None and replica.process.poll() is None:
        replica.process.send_signal(signal.SIGCONT)
    replica.stop()
    primary.stop()


async def test_a_frozen_then_lost_replica_leaves_no_buyer_hanging(
    pair: tuple[RedisServer, RedisServer], make_stack: MakeStack
) -> None:
    primary, replica = pair
    stack = await make_stack(redis_url=primary.url, acks="replica", replica_timeout_s=1.0)
    drop = await stack.new_drop(stock=50, per_buyer_limit=2)
    before = [await stack.buy(drop["id"], f"early{i}", key="k") for i in range(3)]
    assert [r.status for r in before] == [201] * 3
    await stack.settle()  # in the store while the replica still acknowledged

    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)  # frozen: it acknowledges nothing
    start = time.monotonic()
    frozen = await asyncio.gather(*(stack.buy(drop["id"], f"b{i}", key="k") for i in range(8)))
    took = time.monotonic() - start
    assert {(r.status, r.code) for r in frozen} <= {(504, "undecided"), (503, "unavailable")}
    assert (504, "undecided") in {(r.status, r.code) for r in frozen}
    assert took < 5.0, f"answered after {took:.1f} s"  # bounded by the replica timeout
    # A new purchase on a node without a replica makes nothing: 503 at once.
    fresh = await stack.buy(drop["id"], "newcomer", key="k")
    assert (fresh.status, fresh.code) == (503, "unavailable")

    # Those orders may still be lost in a failover: settlement holds them back.
    await asyncio.sleep(1.5)
    stored = {o.buyer async for o in iter_orders(stack.store, drop["id"])}
    assert stored == {"early0", "early1", "early2"}, stored

    replica.kill()  # gone for good: nothing is left that could be promoted over the primary
    await asyncio.sleep(1.5)  # past the node's 503 mark
    retries = await asyncio.gather(*(stack.buy(drop["id"], f"b{i}", key="k") for i in range(8)))
    for first, again in zip(frozen, retries, strict=True):
        if first.status == 504:  # its order was made: the retry finds it
            assert again.status == 200, again.body
        else:  # nothing was made: the retry is answered as any purchase is now
            assert again.status in (200, 201, 503), again.body
    answers = [Answer(f"early{i}", 1, "k", r) for i, r in enumerate(before)]
    answers += [Answer(f"b{i}", 1, "k", r) for i, r in enumerate(retries)]
    answers.append(Answer("newcomer", 1, "k", fresh))
    stored_orders = await assert_invariants(stack, drop["id"], answers)
    undecided = {f"b{i}" for i, r in enumerate(frozen) if r.status == 504}
    assert undecided <= {o.buyer for o in stored_orders}
