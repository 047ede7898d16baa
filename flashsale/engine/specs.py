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
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

Text64 = Annotated[str, Meta(min_length=1, max_length=64, pattern=PRINTABLE)]
Quantity = Annotated[int, Meta(ge=1, le=10**9)]


class DropSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    sku: Text64
    title: Annotated[str, Meta(min_length=1, max_length=200, pattern=PRINTABLE)]
    price: Annotated[int, Meta(ge=0, le=MAX_EXACT)]
    currency: Annotated[str, Meta(pattern="^[A-Z]{3}$")]
    stock: Quantity
    per_buyer_limit: Quantity = 1
    room: Text64 | None = None
    opens_at: Annotated[datetime, Meta(tz=True)] | None = None
    payment_window_s: Annotated[int, Meta(ge=0, le=7 * 86400)] = 0

    def __post_init__(self) -> None:
        if self.price * self.per_buyer_limit > MAX_EXACT:
            raise ValueError("price x per_buyer_limit must stay below 2^53")


class PurchaseSpec(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Quantity = 1


class RestockSpec(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Quantity
