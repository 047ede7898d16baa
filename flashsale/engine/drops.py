"""Hosts' side of a drop: create, read, list, open, close, restock."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Protocol, cast

from flashsale.engine.draws import commitment
from flashsale.engine.errors import VariantError
from flashsale.engine.ids import is_drop_id, new_drop_id
from flashsale.engine.keys import DROP_INDEX, GROUP, DropKeys, room_index
from flashsale.engine.models import Drop, variant_field, variants_value
from flashsale.engine.redis import RedisClient, text
from flashsale.engine.scripts import Scripts
from flashsale.engine.specs import DropSpec
from flashsale.engine.status_feed import StatusFeed, variant_refusal

Mark = tuple[float, str]  # a drop's place in the index: (creation score, id)


class DropIds(Protocol):
    """Where loops get the drops to visit: every drop (Drops), or those with something to do
    (active.ActiveDrops)."""

    async def ids(self) -> list[str]: ...


class Listed:
    """Drop ids read once, as DropIds: a /metrics scrape takes its figures over one reading
    of the active set, not one reading each (a reading is a full pass while the set's feed
    is down)."""

    def __init__(self, listed: list[str]) -> None:
        self.listed = listed

    async def ids(self) -> list[str]:
        return self.listed


class Drops:
    def __init__(
        self, redis: RedisClient, scripts: Scripts, feed: StatusFeed | None = None
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._feed = feed

    async def _op(self, drop_id: str, *args: object) -> Drop | None:
        if not is_drop_id(drop_id):
            return None
        flat = await Scripts.call(self._scripts.drop, drop_id, *args)
        drop = Drop.from_hash(flat) if flat else None
        if self._feed is not None and args[0] != "view":
            # This process takes its own change as heard at once (the others hear it
            # published). As heard, not just forgotten: the published message may have
            # arrived before this reply, and forgetting after it would undo what it taught.
            self._feed.heard(drop_id, drop.status if drop is not None else "")
        return drop

    async def create(self, spec: DropSpec) -> Drop:
        drop_id = new_drop_id()
        fields: dict[str, object] = {
            "id": drop_id,
            "sku": spec.sku,
            "title": spec.title,
            "currency": spec.currency,
            "per_buyer_limit": spec.per_buyer_limit,
            "room": spec.room or "",
            "status": "pending",
            "payment_window_s": spec.payment_window_s,
        }
        if spec.variants is None:
            fields.update(price=spec.price, stock=spec.stock, remaining=spec.stock)
            if spec.deposit is not None:
                fields["deposit"] = spec.deposit
        else:
            total = sum(v.stock for v in spec.variants)
            fields.update(
                variants=variants_value([v.code for v in spec.variants]),
                stock=total,
                remaining=total,
            )
            for v in spec.variants:
                own = {"title": v.title, "price": v.price, "stock": v.stock,
                       "remaining": v.stock, "sold": 0}  # fmt: skip
                if v.deposit is not None:
                    own["deposit"] = v.deposit
                fields.update({variant_field(v.code, k): x for k, x in own.items()})
        if spec.opens_at is not None:
            fields["opens_at"] = int(spec.opens_at.timestamp() * 1000)
        # Every drop has a secret seed: the ids of the orders the engine makes itself come
        # from it, a queue's pre-live order, its passes, and a draw's order (its hash is
        # published at once; the seed itself at the draw).
        seed = secrets.token_bytes(32)
        fields.update(seed=seed.hex(), admission=spec.admission)
        if spec.admission == "queue":
            fields.update(admit_per_s=spec.admit_per_s or 1000, pass_ttl_s=spec.pass_ttl_s or 120)
        elif spec.admission == "draw":
            assert spec.draws_at is not None
            fields.update(
                draws_at=int(spec.draws_at.timestamp() * 1000),
                commitment=commitment(seed),
            )
        pairs = [x for kv in fields.items() for x in kv]
        drop = await self._op(drop_id, "create", GROUP, *pairs)
        assert drop is not None
        # The index is written after the drop, so a listed drop always exists.
        score = time.time()
        await self._redis.zadd(DROP_INDEX, {drop_id: score})
        if spec.room:
            await self._redis.zadd(room_index(spec.room), {drop_id: score})
        return drop

    async def get(self, drop_id: str) -> Drop | None:
        return await self._op(drop_id, "view")

    async def open(self, drop_id: str) -> Drop | None:
        return await self._op(drop_id, "open")

    async def close(self, drop_id: str) -> Drop | None:
        return await self._op(drop_id, "close")

    async def restock(self, drop_id: str, quantity: int, variant: str = "") -> Drop | None:
        """Adds units (of one variant, on a drop with them); raises VariantError when the
        variant does not fit the drop. A drop's variants never change, so checking them
        before the script is as good as inside it."""
        drop = await self.get(drop_id)
        if drop is None:
            return None
        wrong = variant_refusal(
            None if drop.variants is None else frozenset(v.code for v in drop.variants),
            variant or None,
        )
        if wrong is not None:
            raise VariantError(wrong)
        return await self._op(drop_id, "restock", quantity, variant)

    async def is_compacted(self, drop_id: str) -> bool:
        """Whether only the drop's record is left in Redis (compaction.py)."""
        return bool(await self._redis.hexists(DropKeys.of(drop_id).drop, "compacted"))

    async def stock(self, ids: list[str]) -> list[tuple[str, int, int]]:
        """(id, remaining, sold) of each of `ids` that is live or sold out: what a dashboard
        shows of the drops selling now."""
        fields = await asyncio.gather(
            *(self._redis.hmget(DropKeys.of(i).drop, "status", "remaining", "sold") for i in ids)
        )
        return [
            (drop_id, int(left or 0), int(gone or 0))
            for drop_id, (status, left, gone) in zip(ids, fields, strict=True)
            if status is not None and text(status) in ("live", "sold_out")
        ]

    async def ids(self, room: str | None = None) -> list[str]:
        """Drop ids, oldest first: every drop, or those of one room."""
        key = room_index(room) if room is not None else DROP_INDEX
        return [text(m) for m in await self._redis.zrange(key, 0, -1)]

    async def page(
        self, room: str | None, after: Mark | None, limit: int
    ) -> tuple[list[Drop], Mark | None]:
        """Newest first: up to `limit` drops created before `after` (score, id), and the mark
        to go on from (None at the end). A mark, not a rank: drops made meanwhile, at the
        top, shift no page."""
        key = room_index(room) if room is not None else DROP_INDEX
        top: float | str = "+inf" if after is None else after[0]
        found: list[Mark] = []
        skip = 0
        while len(found) <= limit:  # one more than asked: whether there is a next page
            want = limit - len(found) + 1
            rows = cast(
                list[tuple[bytes, float]],
                await self._redis.zrevrangebyscore(
                    key, top, "-inf", start=skip, num=want + 16, withscores=True
                ),
            )
            for member, score in rows:
                mark = (float(score), text(member))
                if after is None or mark < after:  # (score, id) descending, as Redis has it
                    found.append(mark)
            if len(rows) < want + 16:
                break
            skip += len(rows)
        more = len(found) > limit
        found = found[:limit]
        drops = await asyncio.gather(*(self.get(i) for _, i in found))
        return [d for d in drops if d is not None], found[-1] if more and found else None
