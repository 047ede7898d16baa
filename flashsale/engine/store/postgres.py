"""PostgreSQL order store (asyncpg): for production, and for many workers on many hosts.

A batch goes in with binary COPY into a staging table, then one INSERT ... SELECT with the
store's upsert rule: a few round trips per batch however large, where a statement per row
made PostgreSQL the slowest part of settlement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

import flashsale.engine.store.webhook_sql as webhook_sql
from flashsale.engine.models import Order
from flashsale.engine.store.base import (
    ADDED_COLUMNS,
    COLUMNS,
    SCHEMA,
    SELECT,
    collapse,
    from_row,
    row,
    upsert_from_sql,
)
from flashsale.engine.store.postgres_outbox import PostgresOutbox, make_event_stage

# Each pooled connection's own temporary table, made once when the connection opens; it
# empties itself at every commit, so a batch always starts from an empty one.
STAGE = "orders_batch"
UPSERT_STAGED = upsert_from_sql(STAGE)
COMMAND_TIMEOUT_S = 15


async def _make_stage(conn: asyncpg.Connection) -> None:
    await conn.execute(f"CREATE TEMP TABLE {STAGE} (LIKE orders) ON COMMIT DELETE ROWS")
    await make_event_stage(conn)


class PostgresStore(PostgresOutbox):
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store not open")
        return self._pool

    async def open(self) -> None:
        # The schema comes first: every pooled connection's staging table is made LIKE it.
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            # Two workers starting at once must not race on CREATE TABLE IF NOT EXISTS.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(7305)")
                for statement in (*SCHEMA, *webhook_sql.SCHEMA):
                    await conn.execute(statement)
                for name, kind in ADDED_COLUMNS:
                    await conn.execute(f"ALTER TABLE orders ADD COLUMN IF NOT EXISTS {name} {kind}")
        finally:
            await conn.close()
        # A statement that gets no answer (a network partition leaves no error) ends after
        # COMMAND_TIMEOUT_S: the gateway answers 503, the worker retries its batch.
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=4,
            timeout=10,
            command_timeout=COMMAND_TIMEOUT_S,
            init=_make_stage,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def apply(
        self, orders: Sequence[Order], rooms: Mapping[str, str | None] | None = None
    ) -> None:
        # Collapsed first: one INSERT ... ON CONFLICT may not update a row twice.
        rows = [row(o) for o in collapse(orders)]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table(STAGE, records=rows, columns=COLUMNS)
            await conn.execute(UPSERT_STAGED)
            if rooms is not None:
                await self._queue(conn, orders, rooms)

    async def get(self, order_id: str) -> Order | None:
        found = await self.pool.fetchrow(f"{SELECT} WHERE id = $1", order_id)
        return from_row(tuple(found)) if found else None

    async def page(self, drop_id: str, after_seq: int, limit: int) -> list[Order]:
        query = f"{SELECT} WHERE drop_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        return [from_row(tuple(r)) for r in await self.pool.fetch(query, drop_id, after_seq, limit)]

    async def by_key(self, drop_id: str, buyer: str, key: str) -> Order | None:
        query = f"{SELECT} WHERE drop_id = $1 AND buyer = $2 AND idempotency_key = $3"
        found = await self.pool.fetchrow(query, drop_id, buyer, key)
        return from_row(tuple(found)) if found else None

    async def drop_ids(self) -> list[str]:
        return [r[0] for r in await self.pool.fetch("SELECT DISTINCT drop_id FROM orders")]

    async def delete(self, order_id: str) -> None:
        await self.pool.execute("DELETE FROM orders WHERE id = $1", order_id)
