"""The contract's invariants, checked from what the buyers were answered and what the store
holds (with the load tool's checks), and by flashsale's own audit."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from flashsale.engine import Order, iter_orders
from flashsale.loadtest.checks import check
from flashsale.loadtest.firing import FIRST
from flashsale.loadtest.plan import Attempt
from flashsale.loadtest.results import Answer as Seen
from tests.stack import Reply, Stack


@dataclass(frozen=True)
class Answer:
    buyer: str
    quantity: int
    key: str | None
    reply: Reply
    variant: str = ""


async def assert_invariants(stack: Stack, drop_id: str, answers: list[Answer]) -> list[Order]:
    """The load tool's checks (from the answers and the orders as the API lists them), the
    store's key uniqueness, and flashsale's own audit."""
    await stack.settle()
    stored = {o.id: o async for o in iter_orders(stack.store, drop_id)}
    drop = (await stack.call("GET", f"/v1/drops/{drop_id}")).body

    # Answers with the same buyer and key are one attempt, sent several times.
    index: dict[tuple[str, str], int] = {}
    attempts, seen = [], []
    for i, a in enumerate(answers):
        n = index.setdefault((a.buyer, a.key), i) if a.key is not None else i
        if n == i:
            attempts.append(Attempt(i, a.buyer, a.quantity, a.key or "", 0.0, False, a.variant))
        seen.append(Seen(n, FIRST, a.reply.status, 0.0, a.reply.body))
    checks = check(attempts, seen, drop, [o.public() for o in stored.values()])
    assert all(c.ok for c in checks), [c.line() for c in checks]

    keyed = Counter((o.buyer, o.idempotency_key) for o in stored.values() if o.idempotency_key)
    assert max(keyed.values(), default=1) == 1

    report = await stack.audit(drop_id)
    assert report.ok, "\n".join(report.lines())
    return list(stored.values())
