"""The contract's invariants, checked from what the buyers were answered and what the store
holds: independent of flashsale's own audit, which each test runs as well."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from flashsale.engine.models import Order
from flashsale.engine.store.base import iter_orders
from tests.stack import Reply, Stack


@dataclass(frozen=True)
class Answer:
    buyer: str
    quantity: int
    key: str | None
    reply: Reply


async def assert_invariants(stack: Stack, drop_id: str, answers: list[Answer]) -> list[Order]:
    await stack.settle()
    stored = {o.id: o async for o in iter_orders(stack.store, drop_id)}
    drop = (await stack.call("GET", f"/v1/drops/{drop_id}")).body
    live = [o for o in stored.values() if o.live]
    created = {a.reply.body["order"]["id"]: a for a in answers if a.reply.status == 201}

    # 1. No oversell.
    assert sum(o.quantity for o in live) <= drop["stock"]
    # 2. Exact accounting.
    assert drop["remaining"] + drop["sold"] == drop["stock"]
    assert drop["sold"] == sum(o.quantity for o in live)
    # 3. No lost order: every 201 is in the store with its buyer and quantity.
    for oid, a in created.items():
        assert oid in stored, f"answered order {oid} is not in the store"
        assert (stored[oid].buyer, stored[oid].quantity) == (a.buyer, a.quantity)
    # 4. No phantom order: everything stored was answered 201 (replays answer 200 with it).
    assert set(stored) == set(created)
    for a in answers:
        if a.reply.status == 200:
            assert a.reply.body["order"]["id"] in created
    # 5. Per-buyer limit.
    held: Counter[str] = Counter()
    for o in live:
        held[o.buyer] += o.quantity
    assert max(held.values(), default=0) <= drop["per_buyer_limit"]
    # 6. Idempotency: one key, one order.
    by_key: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for a in answers:
        if a.key is not None and a.reply.status in (200, 201):
            by_key[(a.buyer, a.key)].add(a.reply.body["order"]["id"])
    assert all(len(ids) == 1 for ids in by_key.values())
    keyed = Counter((o.buyer, o.idempotency_key) for o in stored.values() if o.idempotency_key)
    assert max(keyed.values(), default=1) == 1

    report = await stack.audit(drop_id)
    assert report.ok, "\n".join(report.lines())
    return list(stored.values())
