"""A draw drop: its entries, its draw at `draws_at`, and the one rule both the engine and
`flashsale verify-draw` order the entries by.

The order (CONTRACT "Draw"): each entry's buyer id, in UTF-8, through HMAC-SHA256 keyed by
the seed's 32 bytes, ascending as bytes. The seed is chosen at creation and only its SHA-256
is shown until the draw, so neither the host nor a buyer could know the order when entries
closed, and anyone can recompute it afterwards. Lua has no SHA-256, so the order is computed
here and handed to draw.lua, which checks that it covers exactly the entries Redis holds and
gives the units out along it atomically (lines.lua `serve_line`); a won hold that expires goes
down the same order.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import Literal, cast

import msgspec

from flashsale.engine.entries import entry_call
from flashsale.engine.keys import DropKeys
from flashsale.engine.models import Entry, decode_entry
from flashsale.engine.redis import RedisClient, text
from flashsale.engine.scripts import Scripts

log = logging.getLogger(__name__)
_pack = msgspec.msgpack.Encoder().encode


def draw_key(seed: bytes, buyer: str) -> bytes:
    return hmac.new(seed, buyer.encode("utf-8"), hashlib.sha256).digest()


def draw_order(seed: bytes, buyers: Iterable[str]) -> list[str]:
    """The buyers in the draw's order."""
    return sorted(buyers, key=lambda b: draw_key(seed, b))


def commitment(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


class Draws:
    def __init__(self, redis: RedisClient, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    async def enter(
        self, drop_id: str, buyer: str, quantity: int, variant: str | None
    ) -> tuple[Literal["created", "ok"], Entry]:
        """The buyer's entry, made if they have none ('created'); raises Refused."""
        return await entry_call(
            self._scripts.draw, drop_id, "enter", buyer, quantity, variant or ""
        )

    async def entries(self, drop_id: str) -> list[Entry]:
        """Every entry, in the draw's order once drawn (else as entered)."""
        keys = DropKeys.of(drop_id)
        raw = await self._redis.hvals(keys.entries)
        found = [decode_entry(cast(bytes, p)) for p in raw]
        return sorted(found, key=lambda e: (e.rank or 0, e.at, e.buyer))

    async def run(self, drop_id: str) -> int | None:
        """Draws the drop if its moment has come: the winners' count, None if not drawn now
        (not due, drawn already, or entries moved while it was reading them)."""
        keys = DropKeys.of(drop_id)
        seed_hex, admission = await self._redis.hmget(keys.drop, "seed", "admission")
        if seed_hex is None or admission != b"draw":
            return None
        buyers = [text(b) for b in await self._redis.hkeys(keys.entries)]
        ordered = draw_order(bytes.fromhex(text(seed_hex)), buyers)
        outcome, winners = await Scripts.call(
            self._scripts.draw, drop_id, "draw", len(ordered), _pack(ordered)
        )
        if outcome != b"drawn":
            return None
        log.info("drew %s: %d entries, %d winners", drop_id, len(ordered), winners)
        return int(winners)

    async def verify(self, drop_id: str) -> list[str]:
        """What is wrong with the drop's draw (`check_draw`); a drop not drawn is wrong too."""
        keys = DropKeys.of(drop_id)
        admission, drawn, seed, promised, stock = await self._redis.hmget(
            keys.drop, "admission", "drawn", "seed", "commitment", "drawn_stock"
        )
        if admission != b"draw":
            return ["no such draw drop"]
        if not drawn:
            return ["not drawn yet: the seed is still secret"]
        entries = await self.entries(drop_id)
        return check_draw(text(seed), text(promised), text(stock), entries)


def parse_stock(value: str) -> dict[str | None, int]:
    """draw.lua's `drawn_stock`: "code=n ..." (a drop without variants: "=n")."""
    out: dict[str | None, int] = {}
    for pair in value.split():
        code, _, n = pair.partition("=")
        out[code or None] = int(n)
    return out


def passed_over(entries: list[Entry], served: str) -> list[str]:
    """Entries (in line order) served out of their order: an earlier entry still unserved,
    of the same variant and asking no more than a later one that was served, would have
    fitted when that one was (lines.lua `serve_line` passes over only what does not fit)."""
    problems = []
    waiting: dict[str | None, list[Entry]] = {}  # variant -> unserved entries seen so far
    for e in entries:
        if e.status == served:
            for earlier in waiting.get(e.variant, []):
                if earlier.quantity <= e.quantity:
                    problems.append(
                        f"{e.buyer!r} was served before {earlier.buyer!r}, earlier in line, "
                        f"who asked for no more ({earlier.quantity} <= {e.quantity})"
                    )
                    break
        elif e.status in ("lost", "waiting"):
            waiting.setdefault(e.variant, []).append(e)
    return problems


def check_draw(
    seed_hex: str,
    commitment_hex: str,
    drawn_stock: str | dict[str | None, int],
    entries: list[Entry],
    at_draw_known: bool = True,
) -> list[str]:
    """What is wrong with a draw (nothing: an empty list): `draw_findings`, in words."""
    return [p for _, p in draw_findings(seed_hex, commitment_hex, drawn_stock, entries,
                                        at_draw_known)]  # fmt: skip


def draw_findings(
    seed_hex: str,
    commitment_hex: str,
    drawn_stock: str | dict[str | None, int],
    entries: list[Entry],
    at_draw_known: bool = True,
) -> list[tuple[int, str]]:
    """What is wrong with a draw, as (invariant, problem), from its revealed seed, its
    commitment, what each variant had at the draw, and every entry: invariant 8 (the seed
    hashes to the commitment, the winners at the draw are those the order picks) and 7
    (backfills went down the order). Without `at_draw_known` (entries as the API lists them,
    which do not say who won at the draw and who by a backfill) every entry the order picks
    must have won, and the rest may have won only down the order."""
    seed = bytes.fromhex(seed_hex)
    problems: list[tuple[int, str]] = []
    if commitment(seed) != commitment_hex:
        problems.append((8, "the seed does not hash to the commitment"))
    ordered = draw_order(seed, [e.buyer for e in entries])
    by_buyer = {e.buyer: e for e in entries}
    for rank, buyer in enumerate(ordered, 1):
        if by_buyer[buyer].rank != rank:
            problems.append(
                (8, f"{buyer!r} is at rank {by_buyer[buyer].rank}, the order says {rank}")
            )
    left = dict(parse_stock(drawn_stock) if isinstance(drawn_stock, str) else drawn_stock)
    for buyer in ordered:
        e = by_buyer[buyer]
        picked = left.get(e.variant, 0) >= e.quantity
        if picked:
            left[e.variant] -= e.quantity
        won = e.won_at_draw if at_draw_known else e.status == "won"
        if picked != won and (at_draw_known or picked):
            problems.append((8, (
                f"{buyer!r} {'was' if won else 'was not'} picked at the draw; "
                f"the order {'does not pick' if won else 'picks'} it"
            )))  # fmt: skip
    in_order = [by_buyer[b] for b in ordered]
    problems += [(7, p) for p in passed_over(in_order, "won")]
    return problems
