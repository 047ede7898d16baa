"""Subscriptions and their deliveries, as the store keeps them and the API shows them."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from flashsale.engine.models import rfc3339
from flashsale.engine.webhooks.events import EventType

DeliveryStatus = Literal["pending", "delivered", "failed"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "delivered", "failed")
# What one attempt came to: `retried` is a failed attempt with time left to try again.
AttemptOutcome = Literal["delivered", "retried", "failed"]
ATTEMPT_OUTCOMES: tuple[AttemptOutcome, ...] = ("delivered", "retried", "failed")


class Webhook(msgspec.Struct, kw_only=True):
    id: str
    url: str
    events: list[EventType]
    room: str | None
    secret: str
    created_at: int = 0  # ms; the store sets it as the subscription is recorded

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        """The contract's webhook object; the secret only in the answer that made it."""
        shown: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "room": self.room,
            "created_at": rfc3339(self.created_at),
        }
        if with_secret:
            shown["secret"] = self.secret
        return shown


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery a worker holds the lease of, for one attempt."""

    webhook_id: str
    event_id: str
    order_id: str
    body: str
    attempts: int  # this one included
    queued_at: int  # ms: since when it is due (its event's settlement, or a replay)
    lease: str


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """What an attempt came to, as the store records it (only under the attempt's lease)."""

    claimed: Claimed
    outcome: AttemptOutcome
    at: int  # ms
    next_at: int  # ms: when to try again (`retried`)
    code: int | None = None  # the HTTP status, if one came back
    error: str | None = None  # why it did not count as delivered


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    type: EventType
    order_id: str
    status: DeliveryStatus
    attempts: int
    last_status: int | None
    last_error: str | None
    event_at: int
    next_at: int
    delivered_at: int | None

    def public(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "order_id": self.order_id,
            "status": self.status,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "event_created_at": rfc3339(self.event_at),
            "next_attempt_at": rfc3339(self.next_at) if self.status == "pending" else None,
            "delivered_at": rfc3339(self.delivered_at),
        }


class EndpointStats(msgspec.Struct, frozen=True, kw_only=True):
    """One live subscription's counts, for /metrics."""

    webhook_id: str
    url: str
    attempts: dict[AttemptOutcome, int]  # ever, by outcome
    pending: int  # deliveries not yet made
    oldest_pending_ms: int | None  # when the oldest of those was queued


__all__ = [
    "ATTEMPT_OUTCOMES",
    "DELIVERY_STATUSES",
    "Attempt",
    "AttemptOutcome",
    "Claimed",
    "Delivery",
    "DeliveryStatus",
    "EndpointStats",
    "Webhook",
]
