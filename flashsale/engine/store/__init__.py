"""The order store: where settled orders live for shipping. SQLite or PostgreSQL."""

from __future__ import annotations

from flashsale.engine.store.base import OrderStore


def open_store(url: str) -> OrderStore:
    """An unopened store for a `sqlite:///path` or `postgresql://...` URL."""
    if url.startswith("sqlite:///"):
        from flashsale.engine.store.sqlite import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from flashsale.engine.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://")


__all__ = ["OrderStore", "open_store"]
