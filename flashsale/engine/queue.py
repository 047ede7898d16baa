"""A queue drop's waiting room: taking a ticket and polling it (queue.lua), the door that
admits tickets (lib.lua `admit`, run by every poll and by the sweeper)."""

from __future__ import annotations

from typing import Literal, cast

from flashsale.engine.errors import Refused
from flashsale.engine.ids import is_drop_id
from flashsale.engine.models import FairRefusal, Ticket, TicketStatus, rfc3339
from flashsale.engine.redis import RedisClient, text
from flashsale.engine.scripts import Scripts


class Queue:
    def __init__(self, redis: RedisClient, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts

    async def ticket(
        self, drop_id: str, buyer: str, join: bool
    ) -> tuple[Literal["created", "ok"], Ticket]:
        """The buyer's ticket, taken first if `join` ('created'); raises Refused."""
        if not is_drop_id(drop_id):
            raise Refused("not_found")
        reply = await Scripts.call(self._scripts.queue, drop_id, "join" if join else "read", buyer)
        outcome = text(reply[0])
        if outcome not in ("created", "ok"):
            raise Refused(cast(FairRefusal, outcome))
        status, position, pass_, expires, retry = (text(x) for x in reply[1:])
        return cast(Literal["created", "ok"], outcome), Ticket(
            status=cast(TicketStatus, status),
            position=int(position) if position else None,
            pass_=pass_ or None,
            pass_expires_at=rfc3339(int(expires)) if expires else None,
            retry_after_s=int(retry) if retry else None,
        )
