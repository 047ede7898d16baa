"""What callers may ask of the engine, with the contract's limits on every field.

msgspec validates these straight from JSON bytes, so a bad field is refused with a message
naming it (`... - at $.stock`) before anything reaches Redis.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

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
Price = Annotated[int, Meta(ge=0, le=MAX_EXACT)]
Deposit = Annotated[int, Meta(ge=1, le=MAX_EXACT)]
# A variant's code names Redis hash fields ("v:<code>:remaining") and travels in status
# messages split on spaces: the contract's alphabet has neither ':' nor white space.
VariantCode = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+\Z")]
MAX_VARIANTS = 50
# How a drop hands out scarce units (CONTRACT "Who gets scarce units").
Admission = Literal["first_come", "queue", "draw"]
When = Annotated[datetime, Meta(tz=True)]


class VariantSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One SKU of a drop (a pack size, a colour): its own price, stock and deposit."""

    code: VariantCode
    title: Annotated[str, Meta(min_length=1, max_length=100, pattern=PRINTABLE)]
    price: Price
    stock: Quantity
    deposit: Deposit | None = None


class DropSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    sku: Text64
    title: Annotated[str, Meta(min_length=1, max_length=200, pattern=PRINTABLE)]
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}\Z")]
    # price and stock: required on a drop without variants, refused on one with them
    price: Price | None = None
    stock: Quantity | None = None
    deposit: Deposit | None = None
    variants: Annotated[list[VariantSpec], Meta(min_length=1, max_length=MAX_VARIANTS)] | None = (
        None
    )
    per_buyer_limit: Quantity = 1
    room: Text64 | None = None
    opens_at: When | None = None
    payment_window_s: Annotated[int, Meta(ge=0, le=7 * 86400)] = 0
    admission: Admission = "first_come"
    # queue: tickets admitted a second at most, and how long a pass lasts
    admit_per_s: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    pass_ttl_s: Annotated[int, Meta(ge=1, le=86400)] | None = None
    draws_at: When | None = None  # draw: when entries close and the winners are picked

    def __post_init__(self) -> None:
        if self.variants is not None:
            given = [f for f in ("price", "stock", "deposit") if getattr(self, f) is not None]
            if given:
                raise ValueError(
                    f"a drop with variants takes {', '.join(given)} per variant, not at the top"
                )
            codes = [v.code for v in self.variants]
            if len(set(codes)) != len(codes):
                raise ValueError("variant codes must be unique in the drop")
            if sum(v.stock for v in self.variants) > 10**9:
                raise ValueError("the variants' stock must add up to at most 10^9")
        elif self.price is None or self.stock is None:
            raise ValueError("price and stock are required (or variants, each with its own)")
        for price, deposit in self.priced():
            if price * self.per_buyer_limit > MAX_EXACT:
                raise ValueError("price x per_buyer_limit must stay below 2^53")
            if deposit is not None:
                if deposit > price:
                    raise ValueError(f"a deposit ({deposit}) may not be above the price ({price})")
                if self.payment_window_s == 0:
                    raise ValueError("a deposit needs a payment window (payment_window_s > 0)")
        for name in ("opens_at", "draws_at"):
            when: datetime | None = getattr(self, name)
            low, high = OPENS_AT_RANGE_S
            if when is not None and not low <= when.timestamp() < high:
                raise ValueError(f"{name} must fall between 1970 and 9999 in UTC")
        self._check_admission()

    def _check_admission(self) -> None:
        if self.admission != "queue" and (self.admit_per_s or self.pass_ttl_s) is not None:
            raise ValueError("admit_per_s and pass_ttl_s apply to admission queue only")
        if self.admission != "draw":
            if self.draws_at is not None:
                raise ValueError("draws_at applies to admission draw only")
            return
        if self.draws_at is None:
            raise ValueError("a draw needs draws_at")
        if self.payment_window_s == 0:
            raise ValueError("a draw needs a payment window (payment_window_s > 0)")
        if self.opens_at is not None and self.opens_at >= self.draws_at:
            raise ValueError("draws_at must come after opens_at")

    def priced(self) -> list[tuple[int, int | None]]:
        """(price, deposit) of every SKU the drop sells."""
        if self.variants is not None:
            return [(v.price, v.deposit) for v in self.variants]
        assert self.price is not None
        return [(self.price, self.deposit)]


class PurchaseSpec(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Quantity = 1
    variant: VariantCode | None = None


class RestockSpec(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Quantity
    variant: VariantCode | None = None


class EntrySpec(msgspec.Struct, forbid_unknown_fields=True):
    """A draw entry or a waitlist entry: how many units of which variant the buyer wants."""

    quantity: Quantity = 1
    variant: VariantCode | None = None
