"""The order store: where settled orders live for shipping. SQLite or PostgreSQL."""

from __future__ import annotations

import sqlite3

import asyncpg

from flashsale.engine.store.base import OrderStore

# What a store raises when it cannot answer: the caller answers 503 and retries later.
STORE_ERRORS = (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError)


def open_store(url: str) -> OrderStore:
    """An unopened store for a `sqlite:///path` or `postgresql://...` URL."""
    if url.startswith("sqlite:///"):
        from flashsale.engine.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from flashsale.engine.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://")


__all__ = ["STORE_ERRORS", "OrderStore", "open_store"]
