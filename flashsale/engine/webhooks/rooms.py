"""Which room each drop is in, for the settlement worker: a subscription can be for one room,
and the order store does not know rooms. A drop's room is set when it is made and never
changes, so a worker reads each drop's once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from flashsale.engine.keys import DropKeys
from flashsale.engine.redis import RedisClient, text

KEEP = 100_000  # drops remembered; past that the memory starts over (reads are cheap)


class Rooms:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._known: dict[str, str | None] = {}

    async def of(self, drop_ids: Iterable[str]) -> dict[str, str | None]:
        wanted = set(drop_ids)
        missing = [d for d in wanted if d not in self._known]
        if missing:
            if len(self._known) > KEEP:
                self._known.clear()
            found = await asyncio.gather(
                *(self._redis.hget(DropKeys.of(d).drop, "room") for d in missing)
            )
            for drop_id, room in zip(missing, found, strict=True):
                self._known[drop_id] = (text(room) or None) if room is not None else None
        return {d: self._known[d] for d in wanted}
