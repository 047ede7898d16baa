"""What the engine hands out: drops and orders, as the contract shapes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from flashsale.engine.specs import Admission

DropStatus = Literal["pending", "live", "sold_out", "closed"]
OrderStatus = Literal["confirmed", "reserved", "paid", "expired"]
LIVE_ORDER_STATUSES = frozenset({"confirmed", "reserved", "paid"})
# What purchase.lua decides for one request: `created` (a new order, or this very request's
# lost answer), `replay` (an earlier request's order under the same Idempotency-Key), or a
# refusal; `unavailable` is a request id a recheck voided (no order, none to come);
# `undecided`, an order that exists but that no replica has acknowledged (acks=replica);
# `compacted`, a keyed request of a compacted drop, which the purchaser looks up in the
# store (a replay, or `not_live`): it never reaches a buyer.
# The refusals, each answered with its own status and code (gateway/purchase.py REFUSALS).
# Three refusals are the request's fault and answered 400: a variant the drop does not have,
# none on a drop with variants, one on a drop without.
VariantRefusal = Literal["unknown_variant", "variant_required", "no_variants"]
# `not_admitted`: a queue drop's purchase without a valid pass; `draw_only`: any purchase of
# a draw drop (its units go to the draw's winners).
Refusal = Literal[
    "not_found",
    "not_live",
    "not_admitted",
    "draw_only",
    "sold_out",
    "limit_reached",
    "idempotency_conflict",
    VariantRefusal,
]
# What a call about a queue ticket, a draw entry or a waitlist entry can be refused with
# (queue.lua, draw.lua, waitlist.lua); `none`: the buyer has no ticket or entry to read.
FairRefusal = Literal[
    "not_found",
    "no_queue",
    "no_draw",
    "no_waitlist",
    "not_live",
    "entries_closed",
    "not_sold_out",
    "limit_reached",
    "none",
    VariantRefusal,
]
Outcome = Refusal | Literal["created", "replay", "unavailable", "undecided", "compacted"]
# What paying an order comes to (pay.lua).
PayOutcome = Literal["paid", "not_found", "not_payable", "expired"]


def rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def variant_field(code: str, name: str) -> str:
    """The drop hash field of one variant's `name` (the scripts spell it alike)."""
    return f"v:{code}:{name}"


# The drop hash's `variants` field: the codes in the order given, joined by spaces (a code
# has none; lib.lua reads it with gmatch '%S+').
def variants_value(codes: list[str]) -> str:
    return " ".join(codes)


def variant_codes(value: str | None) -> list[str] | None:
    """The codes of a drop's `variants` field (None: a drop without variants)."""
    return value.split(" ") if value else None


class Variant(msgspec.Struct, kw_only=True):
    code: str
    title: str
    price: int
    deposit: int | None
    stock: int
    remaining: int
    sold: int


class Drop(msgspec.Struct, kw_only=True):
    id: str
    sku: str
    title: str
    price: int | None  # null on a drop with variants: each has its own
    deposit: int | None
    currency: str
    stock: int  # with variants, these three are their sums
    remaining: int
    sold: int
    per_buyer_limit: int
    room: str | None
    status: DropStatus
    opens_at: str | None
    payment_window_s: int
    variants: list[Variant] | None
    admission: Admission = "first_come"
    admit_per_s: int | None = None  # queue only
    pass_ttl_s: int | None = None  # queue only
    draws_at: str | None = None  # draw only, as the three below
    draw_commitment: str | None = None  # hex SHA-256 of the seed's 32 bytes
    draw_seed: str | None = None  # hex, once drawn

    @classmethod
    def from_hash(cls, flat: list[bytes]) -> Drop:
        """Builds a drop from HGETALL's flat field/value list as the scripts return it."""
        h = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
        codes = variant_codes(h.get("variants"))
        return cls(
            id=h["id"],
            sku=h["sku"],
            title=h["title"],
            price=int(h["price"]) if "price" in h else None,
            deposit=int(h["deposit"]) if "deposit" in h else None,
            currency=h["currency"],
            stock=int(h["stock"]),
            remaining=int(h["remaining"]),
            sold=int(h["sold"]),
            per_buyer_limit=int(h["per_buyer_limit"]),
            room=h.get("room") or None,
            status=h["status"],  # type: ignore[arg-type]
            opens_at=rfc3339(int(h["opens_at"])) if h.get("opens_at") else None,
            payment_window_s=int(h["payment_window_s"]),
            variants=None if codes is None else [_variant(h, code) for code in codes],
            admission=h.get("admission") or "first_come",  # type: ignore[arg-type]
            admit_per_s=_int(h.get("admit_per_s")),
            pass_ttl_s=_int(h.get("pass_ttl_s")),
            draws_at=rfc3339(_int(h.get("draws_at"))),
            draw_commitment=h.get("commitment"),
            # the seed is the drop's secret until its draw, which reveals it
            draw_seed=h["seed"] if h.get("drawn") and h.get("admission") == "draw" else None,
        )


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def _variant(h: dict[str, str], code: str) -> Variant:
    def field(name: str) -> str:
        return h[variant_field(code, name)]

    deposit = h.get(variant_field(code, "deposit"))
    return Variant(
        code=code,
        title=field("title"),
        price=int(field("price")),
        deposit=int(deposit) if deposit else None,
        stock=int(field("stock")),
        remaining=int(field("remaining")),
        sold=int(field("sold")),
    )


class Order(msgspec.Struct, kw_only=True):
    """An order as the purchase script wrote it (msgpack), with times in epoch ms."""

    id: str
    drop_id: str
    seq: int
    buyer: str
    quantity: int
    amount: int
    currency: str
    status: OrderStatus
    created_at: int
    expires_at: int | None = None
    ended_at: int | None = None  # when it was paid or expired
    idempotency_key: str | None = None
    variant: str | None = None
    balance: int | None = None  # (price - deposit) x quantity, due off the platform

    @property
    def live(self) -> bool:
        return self.status in LIVE_ORDER_STATUSES

    def public(self) -> dict[str, Any]:
        """The contract's order object."""
        return {
            "id": self.id,
            "drop_id": self.drop_id,
            "buyer": self.buyer,
            "quantity": self.quantity,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "expires_at": rfc3339(self.expires_at),
            "variant": self.variant,
            "balance": self.balance,
        }


TicketStatus = Literal["waiting", "admitted", "used", "expired", "sold_out"]
EntryStatus = Literal["entered", "won", "lost", "waiting", "served", "left"]


class Ticket(msgspec.Struct, kw_only=True):
    """A queue ticket as the contract shows it (queue.lua builds it)."""

    status: TicketStatus
    position: int | None = None
    # "pass" is a Python keyword: the struct's field is `pass_`, its name on the wire `pass`
    pass_: str | None = msgspec.field(default=None, name="pass")
    pass_expires_at: str | None = None
    retry_after_s: int | None = None


class Entry(msgspec.Struct, kw_only=True, omit_defaults=False):
    """A draw's or a waitlist's entry, as the scripts keep it (msgpack, in `entries`)."""

    buyer: str
    quantity: int
    status: EntryStatus
    variant: str | None = None
    order_id: str | None = None
    position: int | None = None  # a waitlist's: its place in line, from 1
    rank: int | None = None  # a draw's: its place in the draw's order, from 1
    won_at_draw: bool = False  # a draw's: picked at the draw itself, not by a backfill
    at: int = 0  # ms: when it entered

    def draw_view(self) -> dict[str, Any]:
        return {
            "buyer": self.buyer,
            "quantity": self.quantity,
            "variant": self.variant,
            "status": self.status,
            "order_id": self.order_id,
        }

    def waitlist_view(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "position": self.position,
            "quantity": self.quantity,
            "variant": self.variant,
            "order_id": self.order_id,
        }


_entry_decoder = msgspec.msgpack.Decoder(Entry)


def decode_entry(packed: bytes) -> Entry:
    return _entry_decoder.decode(packed)


_order_decoder = msgspec.msgpack.Decoder(Order)
_batch_decoder = msgspec.msgpack.Decoder(list[Order])


def decode_order(packed: bytes) -> Order:
    return _order_decoder.decode(packed)


def orders_of(entry: dict[bytes, bytes]) -> list[Order]:
    """The orders one drop stream entry carries (lib.lua `append_event[s]`): a batch of
    purchases ('b'), one order ('o'), or none (an entry deleted after delivery)."""
    batch = entry.get(b"b")
    if batch is not None:
        return _batch_decoder.decode(batch)
    single = entry.get(b"o")
    return [] if single is None else [_order_decoder.decode(single)]
