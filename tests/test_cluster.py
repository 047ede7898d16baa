"""The same scripts, unchanged, on a 3-master Redis Cluster this test starts on loopback."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flashsale.engine.keys import DropKeys
from flashsale.redis_server import RedisServer, redis_binary
from tests.conftest import MakeStack
from tests.invariants import Answer, assert_invariants


def _port_with_free_bus() -> int:
    """A free port whose cluster bus port (port + 10000, on Redis 6.2 and 7) is free too."""
    rng = random.Random()
    while True:
        port = rng.randrange(20_000, 55_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    nodes = []
    for _ in range(3):
        port = _port_with_free_bus()
        directory: Path = tmp_path_factory.mktemp(f"node{port}")
        extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(directory / "nodes.conf"),
                 "--cluster-node-timeout", "1000")  # fmt: skip
        nodes.append(RedisServer(directory, port=port, appendonly=False, extra=extra).start())
    try:
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            [redis_binary("redis-cli"), "--cluster", "create", *addresses,
             "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        for n in nodes:
            client = redis.Redis(port=n.port)
            while client.cluster("info").get("cluster_state") != "ok":  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the cluster did not come up"
                time.sleep(0.1)
            client.close()
        yield ",".join(f"redis://{a}" for a in addresses)
    finally:
        for n in nodes:
            n.kill()


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
