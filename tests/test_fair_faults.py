"""A queue drop's door keeps its promises across killed processes: a worker (whose sweeper
runs the door while nobody polls) and a gateway are SIGKILLed while tickets are being
admitted and passes used; buyers retry on the other gateway with the same key, and every
invariant holds afterwards, pass rules (9) and place order (7) among them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.burst import Fleet, Service
from tests.invariants import Answer, assert_invariants
from tests.stack import MakeStack, Reply, Stack


@pytest.fixture
def fleet(redis_url: str, sqlite_url: str, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(redis_url, sqlite_url, tmp_path)
    yield f
    f.close()


async def _call(stack: Stack, base: str, method: str, path: str, buyer: str,
                **headers: str) -> Reply:  # fmt: skip
    h = stack.as_buyer(buyer) | headers
    async with stack.http.request(method, base + path, headers=h,
                                  timeout=aiohttp.ClientTimeout(total=10)) as r:  # fmt: skip
        body: Any = await r.json(content_type=None)
        return Reply(r.status, body, dict(r.headers))


async def test_a_worker_and_a_gateway_killed_mid_admission(
    fleet: Fleet, make_stack: MakeStack
) -> None:
    a, b = fleet.gateway("gateway-a"), fleet.gateway("gateway-b")
    worker = fleet.worker("worker")
    stack = await make_stack(worker=False)
    await asyncio.gather(a.ready(), b.ready())
    drop = await stack.new_drop(open_it=False, admission="queue", stock=200, admit_per_s=300,
                                pass_ttl_s=5, per_buyer_limit=2)  # fmt: skip
    did = drop["id"]
    buyers = [f"k{i}" for i in range(500)]
    rng = random.Random(5)
    gateways = [a, b]
    for chunk in range(0, len(buyers), 100):
        await asyncio.gather(*(
            _call(stack, a.base, "POST", f"/v1/drops/{did}/queue", x)
            for x in buyers[chunk : chunk + 100]
        ))  # fmt: skip
    await stack.call("POST", f"/v1/drops/{did}/open", None, stack.as_host)
    answers: list[Answer] = []

    async def ask(method: str, path: str, buyer: str, **headers: str) -> Reply:
        """On the buyer's gateway; a broken connection goes to the other, same request."""
        for _ in range(20):
            live = [g for g in gateways if g.alive()]
            try:
                return await _call(stack, rng.choice(live).base, method, path, buyer, **headers)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.1)
        raise AssertionError(f"{buyer}: no gateway answered")

    async def buyer(x: str) -> None:
        while True:
            t = (await ask("GET", f"/v1/drops/{did}/queue", x)).body["ticket"]
            if t["status"] == "admitted":
                break
            if t["status"] in ("used", "sold_out", "expired"):
                return
            await asyncio.sleep(0.1)
        q = rng.choice([1, 2])
        while True:
            r = await _purchase(x, t["pass"], q)
            if r.status not in (503, 504):
                answers.append(Answer(x, q, f"{x}-buy", r))
                return
            await asyncio.sleep(0.2)

    async def _purchase(x: str, pass_: str, q: int) -> Reply:
        for _ in range(20):
            live = [g for g in gateways if g.alive()]
            try:
                async with stack.http.post(
                    rng.choice(live).base + f"/v1/drops/{did}/purchase", json={"quantity": q},
                    headers=stack.as_buyer(x) | {"Flashsale-Pass": pass_,
                                                 "Idempotency-Key": f"{x}-buy"},
                    timeout=aiohttp.ClientTimeout(total=35),
                ) as r:  # fmt: skip
                    return Reply(r.status, await r.json(content_type=None), dict(r.headers))
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.1)
        raise AssertionError(f"{x}: no gateway answered the purchase")

    async def faults(worker: Service) -> None:
        await asyncio.sleep(0.4)
        worker.kill()  # the door now moves on polls alone
        await asyncio.sleep(0.4)
        a.kill()  # mid-admission, mid-purchase: buyers go to b
        await asyncio.sleep(0.4)
        fleet.worker("worker-2")  # settles what the first one left, runs the door again

    await asyncio.gather(faults(worker), *(buyer(x) for x in buyers))
    assert not a.alive() and b.alive()
    codes = {a_.reply.code for a_ in answers}
    assert codes <= {None, "sold_out", "limit_reached"}, codes
    orders = await assert_invariants(stack, did, answers)
    assert sum(o.quantity for o in orders if o.live) == 200
