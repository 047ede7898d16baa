"""What a rehearsal fires: from flags, a TOML file, or both (flags win).

Every key of the TOML file is a long flag's name with `_` for `-`:

    stock = 38000
    attempts = 380000
    limit = 2
    quantities = "1:80,2:20"
    arrival = "burst"

Variants, as a flag (`code:stock:price[:deposit]`, comma-separated) or a table:

    variants = "1KG:20000:1290,2KG:18000:2390"
    variant_mix = "1KG:60,2KG:40"       # which one buyers pick (default: by stock)

    [[variants]]
    code = "SEDAN"
    stock = 1000
    price = 15990000
    deposit = 500000
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

ARRIVALS = ("burst", "ramp", "rate", "closed")
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(us|ms|s|m)?\s*$")
_SCALE = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, None: 1.0}
DURATION_FIELDS = ("duration", "timeout", "settle_wait", "draw_in")


def seconds(value: str | float) -> float:
    """`250ms`, `10s`, `2m` or a plain number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"{value!r} is not a duration (try 500ms, 10s or 2m)")
    return float(m.group(1)) * _SCALE[m.group(2)]


def parse_mix(text: str) -> list[tuple[int, float]]:
    """`1:80,2:20` (quantity:weight) or `1`, as (quantity, share) pairs."""
    pairs: list[tuple[int, float]] = []
    for part in text.split(","):
        q, _, w = part.strip().partition(":")
        try:
            pairs.append((int(q), float(w) if w else 1.0))
        except ValueError:
            raise ValueError(f"quantity mix {text!r}: write it like 1:80,2:20") from None
    if any(q < 1 or w < 0 for q, w in pairs) or sum(w for _, w in pairs) <= 0:
        raise ValueError(f"quantity mix {text!r}: quantities >= 1, weights >= 0, not all 0")
    total = sum(w for _, w in pairs)
    return [(q, w / total) for q, w in pairs]


class VariantPlan(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One variant of the drop the tool makes (the API's variant, with a default title)."""

    code: str
    stock: int
    price: int
    deposit: int | None = None
    title: str | None = None

    def spec(self) -> dict[str, Any]:
        out = {"code": self.code, "title": self.title or self.code, "price": self.price,
               "stock": self.stock}  # fmt: skip
        if self.deposit is not None:
            out["deposit"] = self.deposit
        return out


def parse_variants(text: str) -> list[VariantPlan]:
    """`1KG:20000:1290,2KG:18000:2390` (code:stock:price, then :deposit if any)."""
    out = []
    for part in text.split(","):
        fields = part.strip().split(":")
        try:
            code, stock, price, *deposit = fields
            if len(deposit) > 1:
                raise ValueError
            out.append(VariantPlan(code=code, stock=int(stock), price=int(price),
                                   deposit=int(deposit[0]) if deposit else None))  # fmt: skip
        except ValueError:
            raise ValueError(
                f"variants {text!r}: write them like 1KG:20000:1290,2KG:18000:2390 "
                "(code:stock:price[:deposit])"
            ) from None
    return out


def parse_weights(text: str) -> dict[str, float]:
    """`1KG:60,2KG:40` (code:weight), as shares."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        code, _, w = part.strip().partition(":")
        try:
            weights[code] = float(w)
        except ValueError:
            raise ValueError(f"variant mix {text!r}: write it like 1KG:60,2KG:40") from None
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"variant mix {text!r}: weights >= 0, not all 0")
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


DEFAULT_URL = "http://127.0.0.1:8080"


class Scenario(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str = DEFAULT_URL
    drop: str | None = None  # fire at this existing drop instead of creating one
    stock: int = 1000
    limit: int = 2
    price: int = 100
    currency: str = "EUR"
    payment_window: int = 0
    variants: str | list[VariantPlan] | None = None  # a drop of these variants
    variant_mix: str | None = None  # which variant buyers pick; default: by stock
    attempts: int | None = None  # default: stock x oversubscription
    oversubscription: float = 10.0
    buyers: int | None = None  # default: attempts / 2, so limits are reached
    quantities: str = "1"
    arrival: str = "burst"
    duration: float | None = None  # ramp: how long it climbs; rate: how long it runs
    rate: float | None = None  # rate: attempts a second
    connections: int = 64
    processes: int = 1
    repeat: float = 0.0  # share of attempts sent again with the same Idempotency-Key
    pay: float = 1.0  # with a payment window: share that pays in time
    pay_late: float = 0.0  # share that pays after the hold ended (the rest abandons)
    timeout: float = 10.0
    resends: int = 3
    seed: int = 1
    settle_wait: float = 60.0
    # who gets the units (fair_run.py): a queue's door, a draw's moment, and the bots
    admission: str = "first_come"
    admit_per_s: int = 1000
    draw_in: float = 3.0  # a draw: seconds from creation to draws_at
    bots: int = 0  # accounts that arrive after the start, with many connections each
    bot_connections: int = 8

    def __post_init__(self) -> None:
        parse_mix(self.quantities)
        if isinstance(self.variants, str):
            self.variants = parse_variants(self.variants)
        if self.variant_mix is not None:
            if not self.variants and not self.drop:
                raise ValueError("variant_mix needs variants (or a --drop that has them)")
            mixed = set(parse_weights(self.variant_mix))
            if self.variants and not mixed <= {v.code for v in self.planned_variants}:
                raise ValueError("variant_mix names a variant the drop does not have")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival is one of {', '.join(ARRIVALS)}")
        if self.arrival == "rate" and not self.rate:
            raise ValueError("arrival rate needs --rate (attempts a second)")
        if self.arrival == "ramp" and not self.duration:
            raise ValueError("arrival ramp needs --duration (how long the rate climbs)")
        if min(self.stock, self.limit, self.connections, self.processes) < 1:
            raise ValueError("stock, limit, connections and processes are at least 1")
        if self.connections < self.processes:
            raise ValueError("at least one connection per process")
        for name in ("repeat", "pay", "pay_late"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a share between 0 and 1")
        if self.admission not in ("first_come", "queue", "draw"):
            raise ValueError("admission is one of first_come, queue, draw")
        if self.admission != "first_come" and (self.drop or self.variants):
            raise ValueError("--admission queue|draw makes its own drop of one SKU")
        if self.pay + self.pay_late > 1:
            raise ValueError("pay + pay_late is at most 1 (the rest abandons)")

    @property
    def mix(self) -> list[tuple[int, float]]:
        return parse_mix(self.quantities)

    @property
    def planned_variants(self) -> list[VariantPlan]:
        """The variants of the drop the tool makes ([] for a drop of one SKU)."""
        assert not isinstance(self.variants, str)  # parsed in __post_init__
        return self.variants or []

    @property
    def total_stock(self) -> int:
        return sum(v.stock for v in self.planned_variants) or self.stock

    def variant_shares(self, drop_variants: list[dict[str, Any]] | None) -> dict[str, float]:
        """Which variant buyers pick, code -> share: the mix given, else by each one's
        remaining stock ({} on a drop without variants)."""
        if not drop_variants:
            return {}
        if self.variant_mix is not None:
            shares = parse_weights(self.variant_mix)
            unknown = set(shares) - {v["code"] for v in drop_variants}
            if unknown:
                raise ValueError(f"variant_mix names variants the drop lacks: {sorted(unknown)}")
            return shares
        total = sum(v["remaining"] for v in drop_variants) or len(drop_variants)
        return {v["code"]: (v["remaining"] or 0) / total for v in drop_variants}

    @property
    def total_attempts(self) -> int:
        if self.attempts is not None:
            return self.attempts
        if self.arrival == "rate" and self.rate and self.duration:
            return max(1, round(self.rate * self.duration))
        return max(1, round(self.total_stock * self.oversubscription))

    @property
    def total_buyers(self) -> int:
        return self.buyers or max(1, self.total_attempts // 2)

    def offset(self, i: int, n: int) -> float:
        """When attempt i of n is due, in seconds after the start."""
        if self.arrival == "rate":
            assert self.rate
            return i / self.rate
        if self.arrival == "ramp":
            assert self.duration
            return self.duration * (i / n) ** 0.5  # the rate climbs linearly from 0
        return 0.0  # burst: everyone at once; closed: as fast as answers come


def load(file: str | Path | None, flags: dict[str, Any]) -> Scenario:
    """The scenario file's keys, overridden by the flags given (those not None)."""
    raw: dict[str, Any] = {}
    if file is not None:
        with open(file, "rb") as f:
            raw = tomllib.load(f)
    raw.update({k: v for k, v in flags.items() if v is not None})
    for name in DURATION_FIELDS:
        if raw.get(name) is not None:
            raw[name] = seconds(raw[name])
    try:
        return msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as e:
        raise ValueError(f"scenario: {e}") from None
