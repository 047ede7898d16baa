"""What callers may ask of the engine, with the contract's limits on every field.

msgspec validates these straight from JSON bytes, so a bad field is refused with a message
naming it (`... - at $.stock`) before anything reaches Redis.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

# Lua numbers are doubles: every amount (price x quantity) must stay exact below 2**53.
MAX_EXACT = 2**53 - 1
# opens_at is kept as epoch ms and shown back in UTC: it must be a UTC time Python can
# write (1970-01-01 to 9999-12-31). "0001-01-01T00:00:00+14:00" is year 0 in UTC, and
# answering it failed after the drop was already in Redis.
OPENS_AT_RANGE_S = (0, 253_402_300_800)
# Anchored with \Z, not $: msgspec matches with re.search, and $ also matches before a
# final newline, so "CNY\n" passed as a currency and "a\n" as a sku.
PRINTABLE = r"^[^\x00-\x1f\x7f]+\Z"

Text64 = Annotated[str, Meta(min_length=1, max_length=64, pattern=PRINTABLE)]
Quantity = Annotated[int, Meta(ge=1, le=10**9)]


class DropSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    sku: Text64
    title: Annotated[str, Meta(min_length=1, max_length=200, pattern=PRINTABLE)]
    price: Annotated[int, Meta(ge=0, le=MAX_EXACT)]
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}\Z")]
    stock: Quantity
    per_buyer_limit: Quantity = 1
    room: Text64 | None = None
    opens_at: Annotated[datetime, Meta(tz=True)] | None = None
    payment_window_s: Annotated[int, Meta(ge=0, le=7 * 86400)] = 0

    def __post_init__(self) -> None:
        if self.price * self.per_buyer_limit > MAX_EXACT:
            raise ValueError("price x per_buyer_limit must stay below 2^53")
        if self.opens_at is not None:
            low, high = OPENS_AT_RANGE_S
            if not low <= self.opens_at.timestamp() < high:
                raise ValueError("opens_at must fall between 1970 and 9999 in UTC")


class PurchaseSpec(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Quantity = 1


class RestockSpec(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Quantity
