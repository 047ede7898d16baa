"""The webhook outbox in PostgreSQL (webhook_sql.py's statements, numbered for asyncpg).

A new subscription takes the webhooks table's strongest lock for its insert: it waits for
every settlement transaction that read the table, and each one after it sees the new row.
So its time stamp splits the events cleanly, those before it are not queued for it and
those after it all are, which `flashsale audit` relies on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

import flashsale.engine.store.webhook_sql as sql
import flashsale.engine.webhooks.models as m
from flashsale.engine.models import Order
from flashsale.engine.store.outbox import now_ms
from flashsale.engine.webhooks.events import Event, events_of

# Each pooled connection's staging table of a batch's events (as orders_batch for orders).
EVENT_STAGE = "webhook_events_batch"
QUEUE_STAGED = sql.numbered(sql.queue_staged(EVENT_STAGE))
CLAIM = sql.numbered(sql.claim_sql(" FOR UPDATE SKIP LOCKED"))
FINISH, COUNT, REPLAY = (sql.numbered(s) for s in (sql.FINISH, sql.COUNT, sql.REPLAY))
INSERT_WEBHOOK, ONE_WEBHOOK, DELETE_WEBHOOK, DROP_PENDING, STATES_OF_DROP = (
    sql.numbered(s)
    for s in (sql.INSERT_WEBHOOK, sql.ONE_WEBHOOK, sql.DELETE_WEBHOOK, sql.DROP_PENDING,
              sql.STATES_OF_DROP)
)  # fmt: skip
DELIVERIES = {
    status: sql.numbered(sql.deliveries_sql(status)) for status in (None, *m.DELIVERY_STATUSES)
}


async def make_event_stage(conn: asyncpg.Connection) -> None:
    await conn.execute(
        f"CREATE TEMP TABLE {EVENT_STAGE} (event_id TEXT, order_id TEXT, drop_id TEXT, "
        "type TEXT, rank INTEGER, event_at BIGINT, body TEXT, room TEXT) ON COMMIT DELETE ROWS"
    )


class PostgresOutbox:
    """Mixed into PostgresStore, whose pool it shares."""

    @property
    def pool(self) -> asyncpg.Pool:
        raise NotImplementedError

    async def _queue(
        self, conn: asyncpg.Connection, orders: Sequence[Order], rooms: Mapping[str, str | None]
    ) -> None:
        """Inside apply's transaction: queues the batch's events for the subscriptions."""
        if await conn.fetchval(sql.ANY_LIVE) is None:
            return
        rows = sql.staged_rows(events_of(orders), rooms)
        await conn.copy_records_to_table(EVENT_STAGE, records=rows, columns=sql.STAGED_COLUMNS)
        now = now_ms()
        await conn.execute(QUEUE_STAGED, now, now)

    async def add_webhook(self, webhook: m.Webhook) -> m.Webhook:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE webhooks IN ACCESS EXCLUSIVE MODE")
            webhook.created_at = now_ms()
            await conn.execute(
                INSERT_WEBHOOK, webhook.id, webhook.url,
                " ".join(webhook.events), webhook.room, webhook.secret, webhook.created_at,
            )  # fmt: skip
        return webhook

    async def webhooks(self) -> list[m.Webhook]:
        return [sql.webhook(tuple(r)) for r in await self.pool.fetch(sql.LIVE_WEBHOOKS)]

    async def webhook(self, webhook_id: str) -> m.Webhook | None:
        found = await self.pool.fetchrow(ONE_WEBHOOK, webhook_id)
        return sql.webhook(tuple(found)) if found else None

    async def delete_webhook(self, webhook_id: str) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(DELETE_WEBHOOK, now_ms(), webhook_id)
            gone = status.endswith(" 1")
            if gone:
                await conn.execute(DROP_PENDING, webhook_id)
        return gone

    async def claim(
        self, webhook_id: str, lease: str, lease_s: float, limit: int
    ) -> list[m.Claimed]:
        args = sql.claim_args(webhook_id, lease, lease_s, limit)
        return sql.claimed([tuple(r) for r in await self.pool.fetch(CLAIM, *args)], lease)

    async def finish(self, attempts: Sequence[m.Attempt]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(FINISH, sql.finish_rows(attempts))
            await conn.executemany(COUNT, sql.count_rows(attempts))

    async def replay(self, webhook_id: str, events: Sequence[Event]) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(REPLAY, sql.replay_rows(webhook_id, events, now_ms()))
        return len(events)

    async def deliveries(
        self, webhook_id: str, status: m.DeliveryStatus | None, after: tuple[int, str], limit: int
    ) -> list[m.Delivery]:
        args = sql.deliveries_args(webhook_id, status, after, limit)
        return [sql.delivery(tuple(r)) for r in await self.pool.fetch(DELIVERIES[status], *args)]

    async def endpoint_stats(self) -> list[m.EndpointStats]:
        counted = await self.pool.fetch(sql.STATS)
        pending = {r[0]: (r[1], r[2]) for r in await self.pool.fetch(sql.PENDING)}
        return [sql.stats(tuple(r), pending) for r in counted]

    async def delivery_states(self, drop_id: str) -> dict[tuple[str, str], m.DeliveryStatus]:
        rows = await self.pool.fetch(STATES_OF_DROP, drop_id)
        return {(r[0], r[1]): r[2] for r in rows}
