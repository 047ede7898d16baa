"""The engine: Redis decides every purchase (purchase.lua), settlement records it in the
order store. The purchase path: `Purchaser.submit` (purchase.py) batches a tick's requests
per drop -> purchase.lua decides them in one step -> the stream -> `SettlementWorker`
(settlement.py) -> the store.

Code outside the engine uses only the names below (checked by tests/test_public_surface.py).
"""

from __future__ import annotations

from flashsale.engine.audit import INVARIANTS, ORDER_INVARIANTS, AuditReport, audit
from flashsale.engine.backlog import (
    backlog,
    backlog_by_node,
    entry_id,
    oldest_unsettled_ms,
    settled_events,
    wait_settled,
)
from flashsale.engine.compaction import Compactor, reopen
from flashsale.engine.core import Engine
from flashsale.engine.draws import check_draw, commitment, draw_order
from flashsale.engine.drops import Listed, Mark
from flashsale.engine.entries import entry_of
from flashsale.engine.errors import (
    REDIS_ERRORS,
    NeverSent,
    Refused,
    Unavailable,
    Undecided,
    VariantError,
)
from flashsale.engine.ids import is_drop_id, new_order_ids
from flashsale.engine.keys import GROUP, DropKeys, rate_window
from flashsale.engine.live import MAX_RATE, Watch
from flashsale.engine.models import (
    LIVE_ORDER_STATUSES,
    Drop,
    Entry,
    FairRefusal,
    Order,
    PayOutcome,
    Refusal,
    Ticket,
    Variant,
    VariantRefusal,
    orders_of,
    rfc3339,
)
from flashsale.engine.purchase import DOWN_S, Decision, Outcome
from flashsale.engine.redis import RedisClient, connect, text
from flashsale.engine.scripts import Scripts
from flashsale.engine.settlement import SettlementWorker
from flashsale.engine.specs import (
    DropSpec,
    EntrySpec,
    PurchaseSpec,
    RestockSpec,
    Text64,
    VariantCode,
    VariantSpec,
)
from flashsale.engine.status_feed import Shut
from flashsale.engine.stopping import pause
from flashsale.engine.store import STORE_ERRORS, OrderStore, open_store
from flashsale.engine.store.base import iter_orders
from flashsale.engine.store.sqlite import SQLiteStore
from flashsale.engine.webhooks.deliverer import Backoff, Deliverer
from flashsale.engine.webhooks.events import EVENT_TYPES, EventType
from flashsale.engine.webhooks.models import (
    DELIVERY_STATUSES,
    Delivery,
    DeliveryStatus,
    EndpointStats,
    Webhook,
)
from flashsale.engine.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signature, verify
from flashsale.engine.webhooks.subscriptions import (
    ReplaySpec,
    WebhookSpec,
    replay_since,
    subscribe,
)
from flashsale.engine.webhooks.targets import DestinationRefused

__all__ = [
    "DELIVERY_STATUSES",
    "DOWN_S",
    "EVENT_ID_HEADER",
    "EVENT_TYPES",
    "GROUP",
    "INVARIANTS",
    "LIVE_ORDER_STATUSES",
    "MAX_RATE",
    "ORDER_INVARIANTS",
    "REDIS_ERRORS",
    "SIGNATURE_HEADER",
    "STORE_ERRORS",
    "AuditReport",
    "Backoff",
    "Compactor",
    "Decision",
    "Deliverer",
    "Delivery",
    "DeliveryStatus",
    "DestinationRefused",
    "Drop",
    "DropKeys",
    "DropSpec",
    "EndpointStats",
    "Engine",
    "Entry",
    "EntrySpec",
    "EventType",
    "FairRefusal",
    "Listed",
    "Mark",
    "NeverSent",
    "Order",
    "OrderStore",
    "Outcome",
    "PayOutcome",
    "PurchaseSpec",
    "RedisClient",
    "Refusal",
    "Refused",
    "ReplaySpec",
    "RestockSpec",
    "SQLiteStore",
    "Scripts",
    "SettlementWorker",
    "Shut",
    "Text64",
    "Ticket",
    "Unavailable",
    "Undecided",
    "Variant",
    "VariantCode",
    "VariantError",
    "VariantRefusal",
    "VariantSpec",
    "Watch",
    "Webhook",
    "WebhookSpec",
    "audit",
    "backlog",
    "backlog_by_node",
    "check_draw",
    "commitment",
    "connect",
    "draw_order",
    "entry_id",
    "entry_of",
    "is_drop_id",
    "iter_orders",
    "new_order_ids",
    "oldest_unsettled_ms",
    "open_store",
    "orders_of",
    "pause",
    "rate_window",
    "reopen",
    "replay_since",
    "rfc3339",
    "settled_events",
    "signature",
    "subscribe",
    "text",
    "verify",
    "wait_settled",
]
