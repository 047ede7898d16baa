"""The webhook outbox in SQLite (webhook_sql.py's statements, on the store's one connection)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import aiosqlite

import flashsale.engine.store.webhook_sql as sql
import flashsale.engine.webhooks.models as m
from flashsale.engine.models import Order
from flashsale.engine.store.outbox import now_ms
from flashsale.engine.webhooks.events import Event, events_of


class SQLiteOutbox:
    """Mixed into SQLiteStore, whose connection and write transactions it shares."""

    @property
    def db(self) -> aiosqlite.Connection:
        raise NotImplementedError

    def writing(self) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]:
        raise NotImplementedError  # SQLiteStore.writing: one write transaction

    async def _queue(self, orders: Sequence[Order], rooms: Mapping[str, str | None]) -> None:
        """Inside apply's write transaction (which holds the write lock, so it reads the latest
        subscriptions): queues the batch's events for them."""
        async with self.db.execute(sql.ANY_LIVE) as cur:
            if await cur.fetchone() is None:
                return
        rows = sql.queue_one_rows(events_of(orders), rooms, now_ms())
        await self.db.executemany(sql.QUEUE_ONE, rows)

    async def add_webhook(self, webhook: m.Webhook) -> m.Webhook:
        async with self.writing() as db:
            # The write lock first, then the time: no batch settles between the two.
            webhook.created_at = now_ms()
            await db.execute(
                sql.INSERT_WEBHOOK,
                (webhook.id, webhook.url, " ".join(webhook.events), webhook.room,
                 webhook.secret, webhook.created_at),
            )  # fmt: skip
        return webhook

    async def webhooks(self) -> list[m.Webhook]:
        async with self.db.execute(sql.LIVE_WEBHOOKS) as cur:
            return [sql.webhook(r) for r in await cur.fetchall()]

    async def webhook(self, webhook_id: str) -> m.Webhook | None:
        async with self.db.execute(sql.ONE_WEBHOOK, (webhook_id,)) as cur:
            found = await cur.fetchone()
        return sql.webhook(found) if found else None

    async def delete_webhook(self, webhook_id: str) -> bool:
        async with self.writing() as db:
            cur = await db.execute(sql.DELETE_WEBHOOK, (now_ms(), webhook_id))
            gone = cur.rowcount > 0
            if gone:
                await db.execute(sql.DROP_PENDING, (webhook_id,))
        return gone

    async def claim(
        self, webhook_id: str, lease: str, lease_s: float, limit: int
    ) -> list[m.Claimed]:
        args = sql.claim_args(webhook_id, lease, lease_s, limit)
        async with self.writing() as db, db.execute(sql.claim_sql(), args) as cur:
            rows = await cur.fetchall()
        return sql.claimed(rows, lease)

    async def finish(self, attempts: Sequence[m.Attempt]) -> None:
        async with self.writing() as db:
            await db.executemany(sql.FINISH, sql.finish_rows(attempts))
            await db.executemany(sql.COUNT, sql.count_rows(attempts))

    async def replay(self, webhook_id: str, events: Sequence[Event]) -> int:
        async with self.writing() as db:
            await db.executemany(sql.REPLAY, sql.replay_rows(webhook_id, events, now_ms()))
        return len(events)

    async def deliveries(
        self, webhook_id: str, status: m.DeliveryStatus | None, after: tuple[int, str], limit: int
    ) -> list[m.Delivery]:
        query, args = (
            sql.deliveries_sql(status),
            sql.deliveries_args(webhook_id, status, after, limit),
        )
        async with self.db.execute(query, args) as cur:
            return [sql.delivery(r) for r in await cur.fetchall()]

    async def endpoint_stats(self) -> list[m.EndpointStats]:
        async with self.db.execute(sql.STATS) as cur:
            counted = await cur.fetchall()
        async with self.db.execute(sql.PENDING) as cur:
            pending = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
        return [sql.stats(r, pending) for r in counted]

    async def delivery_states(self, drop_id: str) -> dict[tuple[str, str], m.DeliveryStatus]:
        async with self.db.execute(sql.STATES_OF_DROP, (drop_id,)) as cur:
            return {(r[0], r[1]): r[2] for r in await cur.fetchall()}
