"""Two gateways and two settlement workers as separate processes, the way a scaled-out
flashsale runs, against one Redis and against a Redis Cluster: a burst spread over both
gateways keeps every invariant of the contract."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from flashsale.engine import DropKeys
from tests.burst import Burst, Fleet, assert_contract, plan_taps
from tests.cluster import Cluster, start_cluster
from tests.stack import MakeStack

TAPS, BUYERS, STOCK, LIMIT = 2000, 600, 1000, 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = start_cluster(tmp_path_factory, masters=3)
    yield started
    started.stop()


@pytest.mark.parametrize("where", ["one Redis", "Redis Cluster"])
async def test_two_gateways_and_two_workers_keep_every_invariant(
    request: pytest.FixtureRequest, make_stack: MakeStack, redis_url: str, sqlite_url: str,
    tmp_path: Path, where: str,
) -> None:  # fmt: skip
    url = redis_url if where == "one Redis" else request.getfixturevalue("cluster").url
    fleet = Fleet(url, sqlite_url, tmp_path)
    try:
        gateways = [fleet.gateway("gateway-a"), fleet.gateway("gateway-b")]
        workers = [fleet.worker("worker-a"), fleet.worker("worker-b")]
        stack = await make_stack(redis_url=url, worker=False)  # to create, read and audit
        await asyncio.gather(*(g.ready() for g in gateways))
        drops = [await stack.new_drop(stock=STOCK, per_buyer_limit=LIMIT) for _ in range(2)]
        if where == "Redis Cluster":
            slots = {await stack.engine.redis.cluster_keyslot(DropKeys.of(d["id"]).drop)
                     for d in drops}  # fmt: skip
            assert len(slots) == 2
        bursts = [
            Burst(
                cast(str, d["id"]),
                plan_taps(f"s{n}", taps=TAPS, buyers=BUYERS, seed=n),
                lambda tries, n=n: gateways[(n + tries) % 2].base,
            )
            for n, d in enumerate(drops)
        ]
        # Each tap goes to one gateway first, and a resend to the other.
        await asyncio.gather(*(b.run() for b in bursts))
        for d, burst in zip(drops, bursts, strict=True):
            stored = await assert_contract(stack, d["id"], burst)
            assert sum(o.quantity for o in stored) == STOCK  # sold out, exactly
        assert all(w.alive() for w in workers), "a worker died"
        print(f"\n{where}: 2 gateways, 2 workers, {2 * TAPS:,} taps: every invariant held")
    finally:
        fleet.close()
