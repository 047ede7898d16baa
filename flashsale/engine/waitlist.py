"""A first-come drop's waitlist: buyers who found too few units wait in line, and units that
come back (a released hold, a restock) reach them first (lines.lua `serve_line`)."""

from __future__ import annotations

from typing import Literal

from flashsale.engine.entries import entry_call
from flashsale.engine.models import Entry
from flashsale.engine.redis import RedisClient
from flashsale.engine.scripts import Scripts


class Waitlist:
    def __init__(self, redis: RedisClient, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    async def join(
        self, drop_id: str, buyer: str, quantity: int, variant: str | None
    ) -> tuple[Literal["created", "ok"], Entry]:
        """The buyer's waiting entry, made if they have none waiting; raises Refused."""
        return await entry_call(
            self._scripts.waitlist, drop_id, "join", buyer, quantity, variant or ""
        )

    async def leave(self, drop_id: str, buyer: str) -> Entry:
        return (await entry_call(self._scripts.waitlist, drop_id, "leave", buyer))[1]
