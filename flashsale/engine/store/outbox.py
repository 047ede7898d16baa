"""What every order store offers the webhooks: subscriptions, and the outbox of deliveries
(the SQL in webhook_sql.py; each store's own module runs it)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import flashsale.engine.webhooks.models as m
from flashsale.engine.webhooks.events import Event


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Outbox(Protocol):
    async def add_webhook(self, webhook: m.Webhook) -> m.Webhook:
        """Records a subscription, stamped with the time it was recorded: every event
        settled from then on is queued for it (none that a batch in flight already passed)."""

    async def webhooks(self) -> list[m.Webhook]:
        """The live subscriptions, oldest first."""

    async def webhook(self, webhook_id: str) -> m.Webhook | None: ...

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Ends a subscription and drops what it still had to deliver; False if none."""

    async def claim(
        self, webhook_id: str, lease: str, lease_s: float, limit: int
    ) -> list[m.Claimed]:
        """Up to `limit` due deliveries of one subscription, each the next of its order,
        leased to `lease` for `lease_s` seconds."""

    async def finish(self, attempts: Sequence[m.Attempt]) -> None:
        """Records attempts' outcomes, each only if its lease still holds."""

    async def replay(self, webhook_id: str, events: Sequence[Event]) -> int:
        """Queues `events` for the subscription again, as new."""

    async def deliveries(
        self, webhook_id: str, status: m.DeliveryStatus | None, after: tuple[int, str], limit: int
    ) -> list[m.Delivery]:
        """A subscription's deliveries after the (event time, event id) `after`, in that order."""

    async def endpoint_stats(self) -> list[m.EndpointStats]: ...

    async def delivery_states(self, drop_id: str) -> dict[tuple[str, str], m.DeliveryStatus]:
        """(subscription, event id) -> status, for every delivery of the drop's events."""


__all__ = ["Outbox", "now_ms"]
