"""A draw drop: its entries, its draw at `draws_at`, and the one rule both the engine and
`flashsale verify-draw` order the entries by.

The order (CONTRACT "Draw"): each entry's buyer id, in UTF-8, through HMAC-SHA256 keyed by
the seed's 32 bytes, ascending as bytes. The seed is chosen at creation and only its SHA-256
is shown until the draw, so neither the host nor a buyer could know the order when entries
closed, and anyone can recompute it afterwards. Lua has no SHA-256, so the order is computed
here and handed to draw.lua, which checks that it covers exactly the entries Redis holds and
gives the units out along it atomically (lib.lua `serve_line`); a won hold that expires goes
down the same order.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from typing import Literal, cast

import msgspec

from flashsale.engine.errors import Refused
from flashsale.engine.ids import is_drop_id
from flashsale.engine.keys import DropKeys
from flashsale.engine.models import Entry, FairRefusal, decode_entry
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
        if not is_drop_id(drop_id):
            raise Refused("not_found")
        outcome, packed = await Scripts.call(
            self._scripts.draw, drop_id, "enter", buyer, quantity, variant or ""
        )
        if text(outcome) not in ("created", "ok"):
            raise Refused(cast(FairRefusal, text(outcome)))
        return cast(Literal["created", "ok"], text(outcome)), decode_entry(packed)

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
