"""What the API and the command line do with subscriptions: make one (its destination
checked), and replay one from a point in time out of the order store."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from flashsale.engine.drops import Drops
from flashsale.engine.specs import Text64, When
from flashsale.engine.store import OrderStore
from flashsale.engine.store.base import iter_orders
from flashsale.engine.webhooks.events import (
    EVENT_TYPES,
    Event,
    EventType,
    event,
    event_at,
    kinds_of,
)
from flashsale.engine.webhooks.models import Webhook
from flashsale.engine.webhooks.signing import new_secret
from flashsale.engine.webhooks.targets import MAX_URL, check_destination

REPLAY_CHUNK = 1000  # events queued per transaction


class WebhookSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[str, Meta(min_length=1, max_length=MAX_URL)]
    events: Annotated[list[EventType], Meta(min_length=1, max_length=len(EVENT_TYPES))]
    room: Text64 | None = None


class ReplaySpec(msgspec.Struct, forbid_unknown_fields=True):
    since: When


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(8)


async def subscribe(store: OrderStore, spec: WebhookSpec, allow_private: bool) -> Webhook:
    """Records a subscription; raises DestinationRefused for a destination not allowed."""
    await check_destination(spec.url, allow_private)
    kinds = [k for k in EVENT_TYPES if k in spec.events]  # each once, in the contract's order
    webhook = Webhook(id=new_webhook_id(), url=spec.url, events=kinds, room=spec.room,
                      secret=new_secret())  # fmt: skip
    return await store.add_webhook(webhook)


async def replay_since(store: OrderStore, drops: Drops, webhook: Webhook, since: datetime) -> int:
    """Queues again every event of the subscription's drops that happened at or after
    `since`, from the orders in the store (so also those settled before it existed);
    returns how many. Each keeps its id and body: a receiver that had it already sees a
    duplicate it can drop by id."""
    ids = await drops.ids(webhook.room) if webhook.room else await store.drop_ids()
    wanted = set(webhook.events)
    since_ms = int(since.timestamp() * 1000)
    queued = 0
    chunk: list[Event] = []
    for drop_id in ids:
        async for order in iter_orders(store, drop_id):
            for kind in kinds_of(order):
                if kind in wanted and event_at(order, kind) >= since_ms:
                    chunk.append(event(order, kind))
            if len(chunk) >= REPLAY_CHUNK:
                queued += await store.replay(webhook.id, chunk)
                chunk = []
    if chunk:
        queued += await store.replay(webhook.id, chunk)
    return queued


__all__ = ["ReplaySpec", "WebhookSpec", "replay_since", "subscribe"]
