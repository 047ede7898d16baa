"""What every order store offers, and the SQL they share.

Each order event carries the whole order after the change, and the upsert only ever moves
an order forward (reserved -> paid | expired). So events may be applied twice, or out of
order by two workers, and the row still ends up as Redis has it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Protocol

from flashsale.engine.models import Order
from flashsale.engine.store.outbox import Outbox

COLUMNS = (
    "id", "drop_id", "seq", "buyer", "quantity", "amount", "currency", "status",
    "idempotency_key", "created_at", "expires_at", "ended_at", "variant", "balance",
)  # fmt: skip

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY,
        drop_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        buyer TEXT NOT NULL,
        quantity BIGINT NOT NULL,
        amount BIGINT NOT NULL,
        currency TEXT NOT NULL,
        status TEXT NOT NULL,
        idempotency_key TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        ended_at BIGINT,
        variant TEXT,
        balance BIGINT
    )""",
    "CREATE INDEX IF NOT EXISTS orders_drop_seq ON orders (drop_id, seq)",
    # same-key replays of a compacted drop are answered from here (compaction.py)
    "CREATE INDEX IF NOT EXISTS orders_drop_key ON orders (drop_id, buyer, idempotency_key)",
]


# Columns added after the first release, with their types: a store made before them gets
# them when it opens (each store's own ALTER TABLE; rows made before have NULL, as they mean).
ADDED_COLUMNS = (("variant", "TEXT"), ("balance", "BIGINT"))


# The one rule of the store, spelled once in SQL and once in Python right below: an order
# only moves forward, out of `reserved` (to paid or expired) and never back or onward.
OPEN = "reserved"
ON_CONFLICT = (
    "ON CONFLICT (id) DO UPDATE SET status = excluded.status, ended_at = excluded.ended_at "
    f"WHERE orders.status = '{OPEN}' AND excluded.status <> '{OPEN}'"
)


def moves_forward(held: Order, event: Order) -> bool:
    """Whether `event` changes a row holding `held`: the Python twin of ON_CONFLICT."""
    return held.status == OPEN and event.status != OPEN


def collapse(orders: Iterable[Order]) -> list[Order]:
    """Each order once, as applying its events one by one would leave it, in id order.

    One statement writing many rows (PostgreSQL's INSERT ... SELECT) may not touch a row
    twice, and a batch can hold an order's `created` event and its `paid` or `expired` one.
    Id order makes two PostgreSQL workers lock shared rows in the same order (no deadlock).
    """
    final: dict[str, Order] = {}
    for order in orders:
        held = final.get(order.id)
        if held is None or moves_forward(held, order):
            final[order.id] = order
    return [final[order_id] for order_id in sorted(final)]


_COLUMN_LIST = ", ".join(COLUMNS)


def upsert_sql(placeholder: str) -> str:
    """One row's write; `placeholder.format(i=...)` spells the i-th parameter."""
    values = ", ".join(placeholder.format(i=i + 1) for i in range(len(COLUMNS)))
    return f"INSERT INTO orders ({_COLUMN_LIST}) VALUES ({values}) {ON_CONFLICT}"


def upsert_from_sql(table: str) -> str:
    """A whole staged batch's write, from `table` (with the orders' columns) in one statement."""
    return (
        f"INSERT INTO orders ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {table} ORDER BY id "
        f"{ON_CONFLICT}"
    )


SELECT = f"SELECT {_COLUMN_LIST} FROM orders"


def row(order: Order) -> tuple[object, ...]:
    return tuple(getattr(order, c) for c in COLUMNS)


def from_row(values: Sequence[object]) -> Order:
    return Order(**dict(zip(COLUMNS, values, strict=True)))  # type: ignore[arg-type]


class OrderStore(Outbox, Protocol):
    async def open(self) -> None:
        """Connects and creates the schema if it is not there."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raises if the store cannot answer."""

    async def apply(
        self, orders: Sequence[Order], rooms: Mapping[str, str | None] | None = None
    ) -> None:
        """Records a batch of order events in one transaction; an event already applied, or
        one behind the stored row, changes nothing. With `rooms` (drop id -> its room), the
        same transaction queues the events for the webhooks subscribed to them."""

    async def get(self, order_id: str) -> Order | None: ...

    async def page(self, drop_id: str, after_seq: int, limit: int) -> list[Order]:
        """A drop's orders with seq > after_seq, oldest first."""

    async def by_key(self, drop_id: str, buyer: str, key: str) -> Order | None:
        """The order a buyer made under an Idempotency-Key, if any."""

    async def drop_ids(self) -> list[str]:
        """Every drop that has orders in the store."""

    async def delete(self, order_id: str) -> None:
        """Removes an order: for repairs and for tests that corrupt a store on purpose."""


async def iter_orders(store: OrderStore, drop_id: str, page: int = 10_000) -> AsyncIterator[Order]:
    after = 0
    while batch := await store.page(drop_id, after, page):
        for order in batch:
            yield order
        after = batch[-1].seq
