"""A draw's and a waitlist's entries, as their scripts keep them: one call of either script
about a buyer's entry (draw.lua, waitlist.lua), and reading an entry without a script."""

from __future__ import annotations

from typing import Any, Literal, cast

from flashsale.engine.errors import Refused, accepted
from flashsale.engine.ids import is_drop_id
from flashsale.engine.keys import DropKeys
from flashsale.engine.models import Entry, decode_entry
from flashsale.engine.redis import RedisClient
from flashsale.engine.scripts import Scripts


async def entry_call(
    script: Any, drop_id: str, *args: object
) -> tuple[Literal["created", "ok"], Entry]:
    """The script's {outcome, msgpack entry} about one buyer's entry; raises Refused."""
    if not is_drop_id(drop_id):
        raise Refused("not_found")
    outcome, packed = await Scripts.call(script, drop_id, *args)
    return accepted(outcome), decode_entry(packed)


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
