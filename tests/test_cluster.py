"""The same scripts, unchanged, on a 3-master Redis Cluster this test starts on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from flashsale.engine import DropKeys
from tests.cluster import start_cluster
from tests.invariants import Answer, assert_invariants
from tests.stack import MakeStack


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    started = start_cluster(tmp_path_factory, masters=3)
    yield started.url
    started.stop()


async def test_purchases_on_a_three_master_cluster(make_stack: MakeStack, cluster: str) -> None:
    stack = await make_stack(redis_url=cluster)
    drops = [await stack.new_drop(stock=200, per_buyer_limit=2) for _ in range(6)]
    slots = {await stack.engine.redis.cluster_keyslot(DropKeys.of(d["id"]).drop) for d in drops}
    owners = {stack.engine.redis.get_node_from_key(DropKeys.of(d["id"]).drop).name for d in drops}
    assert len(slots) == 6 and len(owners) >= 2  # spread over several masters
    for d in drops:  # every key of a drop is in one slot: that is what lets scripts run
        keys = DropKeys.of(d["id"])
        assert {await stack.engine.redis.cluster_keyslot(k) for k in keys} == {
            await stack.engine.redis.cluster_keyslot(keys.drop)
        }

    async def attempt(drop_id: str, i: int) -> Answer:
        buyer, key = f"b{i % 150}", f"k{i % 400}"
        return Answer(buyer, 1, key, await stack.buy(drop_id, buyer, 1, key=key))

    for d in drops:
        answers = await asyncio.gather(*(attempt(d["id"], i) for i in range(500)))
        assert {a.reply.status for a in answers} <= {200, 201, 409}
        await assert_invariants(stack, d["id"], answers)
        assert (await stack.call("GET", f"/v1/drops/{d['id']}")).body["remaining"] == 0

    # A node that lost its scripts (restart, SCRIPT FLUSH) gets them again on NOSCRIPT.
    for seed in cluster.split(","):
        node = redis.Redis.from_url(seed)
        node.script_flush()
        node.close()
    extra = await stack.new_drop(stock=1)
    assert (await stack.buy(extra["id"], "late")).status == 201
    await stack.settle()
    assert (await stack.audit()).ok
