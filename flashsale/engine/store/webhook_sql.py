"""The webhook outbox's tables and statements, shared by both stores (written with `?`;
PostgreSQL's store numbers them, `numbered`).

Deliveries are rows, one per (subscription, event), written in the very transaction that
records the orders: an event is queued exactly when its order is in the store, never
before, and a batch settled twice queues nothing twice (the key is the event's id). A worker
takes due rows under a lease (`lease`, `lease_until`) and records an attempt's outcome only
while it still holds that lease, so two workers never send one event at once, and a worker
killed mid-delivery leaves rows that another takes over once the lease runs out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flashsale.engine.store.outbox import now_ms
from flashsale.engine.webhooks.events import Event
from flashsale.engine.webhooks.models import (
    ATTEMPT_OUTCOMES,
    Attempt,
    Claimed,
    Delivery,
    DeliveryStatus,
    EndpointStats,
    Webhook,
)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS webhooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        room TEXT,
        secret TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        deleted_at BIGINT,
        delivered BIGINT NOT NULL DEFAULT 0,
        retried BIGINT NOT NULL DEFAULT 0,
        failed BIGINT NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
        webhook_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        drop_id TEXT NOT NULL,
        type TEXT NOT NULL,
        rank INTEGER NOT NULL,
        event_at BIGINT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        queued_at BIGINT NOT NULL,
        next_at BIGINT NOT NULL,
        lease TEXT,
        lease_until BIGINT,
        last_code INTEGER,
        last_error TEXT,
        delivered_at BIGINT,
        PRIMARY KEY (webhook_id, event_id)
    )""",
    # What runs all the time reads only what is still to deliver: a partial index, so a
    # season's delivered rows cost the claims and /metrics nothing.
    """CREATE INDEX IF NOT EXISTS webhook_due ON webhook_deliveries (webhook_id, next_at)
       WHERE status = 'pending'""",
    # An order's earlier event still to deliver (the claim's NOT EXISTS), read by order.
    "CREATE INDEX IF NOT EXISTS webhook_order ON webhook_deliveries (webhook_id, order_id, rank)",
    "CREATE INDEX IF NOT EXISTS webhook_drop ON webhook_deliveries (drop_id)",
]

_TARGET = (
    "INSERT INTO webhook_deliveries (webhook_id, event_id, order_id, drop_id, type, rank, "
    "event_at, body, status, queued_at, next_at) "
)
# The live subscriptions an event of a drop in room `room` goes to: every room's, or that
# room's; and only those that asked for its type (`events` is the types joined by spaces).
_MATCH = (
    "w.deleted_at IS NULL AND (w.room IS NULL OR w.room = {room}) "
    "AND (' ' || w.events || ' ') LIKE ('% ' || {type} || ' %')"
)
ANY_LIVE = "SELECT 1 FROM webhooks WHERE deleted_at IS NULL LIMIT 1"
# One event to every subscription it matches (SQLite: executemany, one row per event).
QUEUE_ONE = (
    f"{_TARGET}SELECT w.id, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ? FROM webhooks w WHERE "
    + _MATCH.format(room="?", type="?")
    + " ON CONFLICT DO NOTHING"
)


def queue_staged(table: str) -> str:
    """A batch's events staged in `table` to every subscription each matches (PostgreSQL)."""
    return (
        f"{_TARGET}SELECT w.id, e.event_id, e.order_id, e.drop_id, e.type, e.rank, e.event_at, "
        f"e.body, 'pending', ?, ? FROM {table} e JOIN webhooks w ON "
        + _MATCH.format(room="e.room", type="e.type")
        + " ON CONFLICT DO NOTHING"
    )


STAGED_COLUMNS = ("event_id", "order_id", "drop_id", "type", "rank", "event_at", "body", "room")


def _values(e: Event) -> tuple[object, ...]:
    """An event's columns, in _TARGET's order after webhook_id (and STAGED_COLUMNS')."""
    return (e.id, e.order_id, e.drop_id, e.type, e.rank, e.at, e.body)


def staged_rows(
    events: Iterable[Event], rooms: Mapping[str, str | None]
) -> list[tuple[object, ...]]:
    return [(*_values(e), rooms.get(e.drop_id)) for e in events]


def queue_one_rows(
    events: Iterable[Event], rooms: Mapping[str, str | None], now: int
) -> list[tuple[object, ...]]:
    return [(*_values(e), now, now, rooms.get(e.drop_id), e.type) for e in events]


# A replay: the events queued again (or for the first time) as new, whatever became of them.
# An attempt in flight loses its lease, so what it comes to is not recorded over this.
REPLAY = (
    f"{_TARGET}VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
    "ON CONFLICT (webhook_id, event_id) DO UPDATE SET status = 'pending', attempts = 0, "
    "queued_at = excluded.queued_at, next_at = excluded.next_at, lease = NULL, "
    "lease_until = NULL, last_code = NULL, last_error = NULL, delivered_at = NULL"
)


def replay_rows(webhook_id: str, events: Iterable[Event], now: int) -> list[tuple[object, ...]]:
    return [(webhook_id, *_values(e), now, now) for e in events]


# Due deliveries of one subscription, each the next of its order (an order's `paid` waits
# while its `created` is still to deliver, leased or not), taken under a new lease. The
# probe's `status || ''` keeps PostgreSQL off the pending index for it: before its
# statistics catch up with a burst, the planner took that index and read every pending row
# of the subscription for each candidate (80 ms a claim at 10,000 pending, 200 events/s).
# PostgreSQL adds FOR UPDATE SKIP LOCKED: two workers claiming at once take different rows.
_DUE = (
    "SELECT d.webhook_id, d.event_id FROM webhook_deliveries d "
    "WHERE d.webhook_id = ? AND d.status = 'pending' AND d.next_at <= ? "
    "AND (d.lease_until IS NULL OR d.lease_until < ?) "
    "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = d.webhook_id "
    "AND e.order_id = d.order_id AND e.rank < d.rank AND e.status || '' = 'pending') "
    "ORDER BY d.next_at LIMIT ?"
)


def claim_sql(lock: str = "") -> str:
    return (
        "UPDATE webhook_deliveries SET lease = ?, lease_until = ?, attempts = attempts + 1 "
        f"WHERE (webhook_id, event_id) IN ({_DUE}{lock}) "
        "RETURNING webhook_id, event_id, order_id, body, attempts, queued_at"
    )


def claim_args(webhook_id: str, lease: str, lease_s: float, limit: int) -> tuple[object, ...]:
    """The claim's parameters, due and leased as of now."""
    now = now_ms()
    return (lease, now + int(lease_s * 1000), webhook_id, now, now, limit)


def claimed(rows: Iterable[Iterable[object]], lease: str) -> list[Claimed]:
    fields = ("webhook_id", "event_id", "order_id", "body", "attempts", "queued_at")
    return [Claimed(lease=lease, **dict(zip(fields, r, strict=True))) for r in rows]  # type: ignore[arg-type]


_STATUS_OF = {"delivered": "delivered", "retried": "pending", "failed": "failed"}
FINISH = (
    "UPDATE webhook_deliveries SET status = ?, next_at = ?, delivered_at = ?, last_code = ?, "
    "last_error = ?, lease = NULL, lease_until = NULL "
    "WHERE webhook_id = ? AND event_id = ? AND lease = ?"
)
COUNT = (
    "UPDATE webhooks SET delivered = delivered + ?, retried = retried + ?, "
    "failed = failed + ? WHERE id = ?"
)


def finish_rows(attempts: Iterable[Attempt]) -> list[tuple[object, ...]]:
    return [(_STATUS_OF[a.outcome], a.next_at, a.at if a.outcome == "delivered" else None,
             a.code, a.error, a.claimed.webhook_id, a.claimed.event_id, a.claimed.lease)
            for a in attempts]  # fmt: skip


def count_rows(attempts: Iterable[Attempt]) -> list[tuple[int, int, int, str]]:
    """Attempts by outcome per subscription (counted whether or not the lease still held:
    the attempt was made either way)."""
    counts: dict[str, list[int]] = {}
    for a in attempts:
        slot = counts.setdefault(a.claimed.webhook_id, [0] * len(ATTEMPT_OUTCOMES))
        slot[ATTEMPT_OUTCOMES.index(a.outcome)] += 1
    return [(d, r, f, webhook_id) for webhook_id, (d, r, f) in counts.items()]


WEBHOOK_COLUMNS = "id, url, events, room, secret, created_at"
INSERT_WEBHOOK = f"INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
LIVE_WEBHOOKS = (
    f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE deleted_at IS NULL ORDER BY created_at, id"
)
ONE_WEBHOOK = f"SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ? AND deleted_at IS NULL"
DELETE_WEBHOOK = "UPDATE webhooks SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL"
# A subscription gone takes what it still had to send with it; what it sent stays listed.
DROP_PENDING = "DELETE FROM webhook_deliveries WHERE webhook_id = ? AND status = 'pending'"

_DELIVERY_COLUMNS = (
    "event_id, type, order_id, status, attempts, last_code, last_error, event_at, next_at, "
    "delivered_at"
)


def deliveries_sql(status: DeliveryStatus | None) -> str:
    where = " AND status = ?" if status is not None else ""
    return (
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ?{where} "
        "AND (event_at > ? OR (event_at = ? AND event_id > ?)) ORDER BY event_at, event_id LIMIT ?"
    )


def deliveries_args(
    webhook_id: str, status: DeliveryStatus | None, after: tuple[int, str], limit: int
) -> tuple[object, ...]:
    head: tuple[object, ...] = (webhook_id,) if status is None else (webhook_id, status)
    return (*head, after[0], after[0], after[1], limit)


def delivery(r: Iterable[object]) -> Delivery:
    fields = ("event_id", "type", "order_id", "status", "attempts", "last_status",
              "last_error", "event_at", "next_at", "delivered_at")  # fmt: skip
    return Delivery(**dict(zip(fields, r, strict=True)))  # type: ignore[arg-type]


STATS = "SELECT id, url, delivered, retried, failed FROM webhooks WHERE deleted_at IS NULL"
PENDING = (
    "SELECT webhook_id, COUNT(*), MIN(queued_at) FROM webhook_deliveries "
    "WHERE status = 'pending' GROUP BY webhook_id"
)
STATES_OF_DROP = "SELECT webhook_id, event_id, status FROM webhook_deliveries WHERE drop_id = ?"

_MARK = re.compile(r"\?")


def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1`, `$2`, ... (none of these statements has a `?`
    inside a literal)."""
    counter = iter(range(1, 1000))
    return _MARK.sub(lambda _: f"${next(counter)}", sql)


def webhook(r: Sequence[Any]) -> Webhook:
    id_, url, events, room, secret, created_at = r
    return Webhook(id=id_, url=url, events=events.split(), room=room, secret=secret,
                   created_at=int(created_at))  # fmt: skip


def stats(r: Sequence[Any], pending: Mapping[str, tuple[int, int | None]]) -> EndpointStats:
    webhook_id, url, delivered, retried, failed = r
    waiting, oldest = pending.get(webhook_id, (0, None))
    counted = (int(delivered), int(retried), int(failed))  # COUNT's and STATS' order
    return EndpointStats(webhook_id=webhook_id, url=url,
                         attempts=dict(zip(ATTEMPT_OUTCOMES, counted, strict=True)),
                         pending=int(waiting),
                         oldest_pending_ms=None if oldest is None else int(oldest))  # fmt: skip
