"""A first-come drop's waitlist: buyers who found too few units wait in line, and units that
come back (a released hold, a restock) reach them first (lines.lua `serve_line`)."""

from __future__ import annotations

from typing import Literal, cast

from flashsale.engine.errors import Refused
from flashsale.engine.ids import is_drop_id
from flashsale.engine.keys import DropKeys
from flashsale.engine.models import Entry, FairRefusal, decode_entry
from flashsale.engine.redis import RedisClient, text
from flashsale.engine.scripts import Scripts


class Waitlist:
    def __init__(self, redis: RedisClient, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    async def _call(self, drop_id: str, *args: object) -> tuple[str, Entry]:
        if not is_drop_id(drop_id):
            raise Refused("not_found")
        outcome, packed = await Scripts.call(self._scripts.waitlist, drop_id, *args)
        if text(outcome) not in ("created", "ok"):
            raise Refused(cast(FairRefusal, text(outcome)))
        return text(outcome), decode_entry(packed)

    async def join(
        self, drop_id: str, buyer: str, quantity: int, variant: str | None
    ) -> tuple[Literal["created", "ok"], Entry]:
        outcome, entry = await self._call(drop_id, "join", buyer, quantity, variant or "")
        return cast(Literal["created", "ok"], outcome), entry

    async def leave(self, drop_id: str, buyer: str) -> Entry:
        return (await self._call(drop_id, "leave", buyer))[1]


async def entry_of(
    redis: RedisClient, drop_id: str, buyer: str, kind: Literal["draw", "waitlist"]
) -> Entry:
    """A buyer's entry in a draw or a waitlist, read without a script; raises Refused."""
    if not is_drop_id(drop_id):
        raise Refused("not_found")
    keys = DropKeys.of(drop_id)
    exists, admission = await redis.hmget(keys.drop, "id", "admission")
    if exists is None:
        raise Refused("not_found")
    if (kind == "draw") != (admission == b"draw"):
        raise Refused("no_draw" if kind == "draw" else "no_waitlist")
    packed = await redis.hget(keys.entries, buyer)
    if packed is None:
        raise Refused("none")
    return decode_entry(cast(bytes, packed))
