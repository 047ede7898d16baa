"""Every invariant of the contract under a real burst: 10,000 concurrent purchase requests
over HTTP from 3,000 buyers for 1,000 units, limit 2, a share retried with the same key."""

from __future__ import annotations

import asyncio
import random
import time

from tests.invariants import Answer, assert_invariants
from tests.stack import MakeStack


async def test_burst_keeps_every_invariant(make_stack: MakeStack, store_url: str) -> None:
    stack = await make_stack(database_url=store_url)
    drop = await stack.new_drop(stock=1000, per_buyer_limit=2)
    rng = random.Random(7)
    buyers = [f"buyer-{i}" for i in range(3000)]
    tokens = {b: stack.as_buyer(b) for b in buyers}
    plans: list[tuple[str, int, str | None]] = []
    for i in range(7000):
        key = f"tap-{i}" if rng.random() < 0.45 else None
        plans.append((rng.choice(buyers), rng.choice((1, 1, 1, 2)), key))
    # 3,000 retries with the same key and body, some racing their first attempt.
    plans += rng.sample([p for p in plans if p[2] is not None], 3000)
    rng.shuffle(plans)

    async def attempt(buyer: str, quantity: int, key: str | None) -> Answer:
        headers = dict(tokens[buyer])
        if key is not None:
            headers["Idempotency-Key"] = key
        reply = await stack.call(
            "POST", f"/v1/drops/{drop['id']}/purchase", {"quantity": quantity}, headers
        )
        return Answer(buyer, quantity, key, reply)

    started = time.perf_counter()
    answers = await asyncio.gather(*(attempt(*p) for p in plans))
    elapsed = time.perf_counter() - started
    print(
        f"\n{len(plans)} purchase requests in {elapsed:.2f}s: {len(plans) / elapsed:.0f}/s "
        f"(client and server share one process)"
    )

    statuses = {(a.reply.status, a.reply.code) for a in answers}
    assert statuses <= {(201, None), (200, None), (409, "sold_out"), (409, "limit_reached")}
    assert (409, "sold_out") in statuses and (200, None) in statuses
    stored = await assert_invariants(stack, drop["id"], answers)
    assert sum(o.quantity for o in stored) == 1000  # oversubscribed: every unit sold
    final = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    assert (final["status"], final["remaining"], final["sold"]) == ("sold_out", 0, 1000)
