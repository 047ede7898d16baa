"""Invariant 10 for `flashsale audit`: every settled order event of a subscribed drop has
reached each subscribed endpoint. What the audit can see is the outbox: an event that was
never queued is a bug; one still pending or given up (failed) is an endpoint that has not
answered, which ops want to hear about all the same."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from flashsale.engine.models import Drop, Order
from flashsale.engine.store import OrderStore
from flashsale.engine.webhooks.events import event_at, event_id, kinds_of
from flashsale.engine.webhooks.models import Webhook

DELIVERY_INVARIANTS = {10: "webhooks delivered"}
# Events from this long after a subscription was made must be queued for it: the margin is
# for clocks (an event's time is Redis's, a subscription's the gateway's).
CLOCK_MARGIN_MS = 250


def subscribed(webhooks: Iterable[Webhook], drop: Drop) -> list[Webhook]:
    return [w for w in webhooks if w.room is None or w.room == drop.room]


async def delivery_findings(
    store: OrderStore, drop: Drop, orders: Iterable[Order], webhooks: list[Webhook]
) -> list[tuple[int, str]]:
    hooks = subscribed(webhooks, drop)
    if not hooks:
        return []
    states = await store.delivery_states(drop.id)
    orders = list(orders)
    found: list[tuple[int, str]] = []
    for hook in hooks:
        wanted = set(hook.events)
        undelivered: Counter[str] = Counter()
        example = ""
        expected = 0
        for order in orders:
            for kind in kinds_of(order):
                if kind not in wanted or event_at(order, kind) < hook.created_at + CLOCK_MARGIN_MS:
                    continue
                expected += 1
                eid = event_id(order.id, kind)
                state = states.get((hook.id, eid), "never queued")
                if state != "delivered":
                    undelivered[state] += 1
                    example = example or eid
        if undelivered:
            parts = ", ".join(f"{n} {state}" for state, n in sorted(undelivered.items()))
            missing = undelivered.total()
            found.append((10, f"webhook {hook.id} ({hook.url}): {missing} of {expected} "
                              f"event(s) not delivered ({parts}), e.g. {example}"))  # fmt: skip
    return found


__all__ = ["DELIVERY_INVARIANTS", "delivery_findings"]
