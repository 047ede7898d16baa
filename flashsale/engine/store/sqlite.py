"""SQLite order store: the default, one file, WAL so readers never block the worker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import aiosqlite

import flashsale.engine.store.webhook_sql as webhook_sql
from flashsale.engine.models import Order
from flashsale.engine.store.base import (
    ADDED_COLUMNS,
    SCHEMA,
    SELECT,
    collapse,
    from_row,
    row,
    upsert_sql,
)
from flashsale.engine.store.sqlite_outbox import SQLiteOutbox

UPSERT = upsert_sql("?")
log = logging.getLogger(__name__)


class SQLiteStore(SQLiteOutbox):
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # One connection is shared by whoever holds the store (a worker's loop and its
        # drain, the gateway's reads): a write and its commit go as one, never interleaved
        # with another task's write on the same connection.
        self._writing = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store not open")
        return self._db

    async def open(self) -> None:
        if self.path not in ("", ":memory:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, timeout=30)
        # Several processes may open one file at once (a gateway and a worker started
        # together): the busy timeout comes first, so that every later step waits for the
        # lock. Switching to WAL and creating the schema can still be refused at once
        # (SQLite answers "locked" rather than wait where waiting could deadlock), so they
        # are tried again until they pass. synchronous=FULL: a commit is on disk before the
        # stream entry is acknowledged.
        await self.db.execute("PRAGMA busy_timeout=30000")
        for attempt in itertools.count():
            try:
                for pragma in ("journal_mode=WAL", "synchronous=FULL"):
                    await self.db.execute(f"PRAGMA {pragma}")
                for statement in (*SCHEMA, *webhook_sql.SCHEMA):
                    await self.db.execute(statement)
                async with self.db.execute("PRAGMA table_info(orders)") as cur:
                    have = {r[1] for r in await cur.fetchall()}
                for name, kind in ADDED_COLUMNS:
                    if name not in have:  # SQLite has no ADD COLUMN IF NOT EXISTS
                        await self.db.execute(f"ALTER TABLE orders ADD COLUMN {name} {kind}")
                await self.db.commit()
                return
            except sqlite3.OperationalError as e:
                if ("locked" not in str(e) and "busy" not in str(e)) or attempt >= 200:
                    raise
                log.info("order store %s is locked by another process; trying again", self.path)
                await self.db.rollback()
                await asyncio.sleep(min(0.5, 0.01 * 2 ** min(attempt, 6)))

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def ping(self) -> None:
        await self.db.execute("SELECT 1")

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, committed at the end or rolled back whole. The write lock
        is taken first (BEGIN IMMEDIATE): a writer in another process is then waited for
        (busy_timeout), where a deferred transaction that had read first could be refused
        at once ("database is locked") because its snapshot went stale meanwhile."""
        async with self._writing:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                await self.db.commit()
            except BaseException:
                await self.db.rollback()  # the next batch must not commit half of this one
                raise

    async def apply(
        self, orders: Sequence[Order], rooms: Mapping[str, str | None] | None = None
    ) -> None:
        # Collapsed: an order created and paid within one batch is one row written, not two.
        async with self.writing() as db:
            await db.executemany(UPSERT, [row(o) for o in collapse(orders)])
            if rooms is not None:
                await self._queue(orders, rooms)

    async def get(self, order_id: str) -> Order | None:
        async with self.db.execute(f"{SELECT} WHERE id = ?", (order_id,)) as cur:
            found = await cur.fetchone()
        return from_row(found) if found else None

    async def page(self, drop_id: str, after_seq: int, limit: int) -> list[Order]:
        query = f"{SELECT} WHERE drop_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        async with self.db.execute(query, (drop_id, after_seq, limit)) as cur:
            return [from_row(r) for r in await cur.fetchall()]

    async def by_key(self, drop_id: str, buyer: str, key: str) -> Order | None:
        query = f"{SELECT} WHERE drop_id = ? AND buyer = ? AND idempotency_key = ?"
        async with self.db.execute(query, (drop_id, buyer, key)) as cur:
            found = await cur.fetchone()
        return from_row(found) if found else None

    async def drop_ids(self) -> list[str]:
        async with self.db.execute("SELECT DISTINCT drop_id FROM orders") as cur:
            return [r[0] for r in await cur.fetchall()]

    async def delete(self, order_id: str) -> None:
        async with self.writing() as db:
            await db.execute("DELETE FROM orders WHERE id = ?", (order_id,))
