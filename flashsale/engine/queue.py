"""A queue drop's waiting room: taking a ticket and polling it (queue.lua), the door that
admits tickets (lines.lua `admit`, run by every call here and by the sweeper).

Polls are the waiting room's hot call: a million buyers each asking every few seconds.
Those of one drop that arrive in one event-loop tick share one script call, and while a
drop's call is on its way the next one fills up (group commit, as purchases do,
purchase.py): a poll costs Redis a ZRANK or an HGET, not a script call of its own.
"""

from __future__ import annotations

import asyncio
from typing import Literal, cast

from flashsale.engine.errors import REDIS_ERRORS, Refused, Unavailable, accepted
from flashsale.engine.ids import is_drop_id
from flashsale.engine.models import Ticket, TicketStatus, rfc3339
from flashsale.engine.redis import RedisClient, text
from flashsale.engine.scripts import Scripts
from flashsale.engine.ticks import PerTick

MAX_POLLS = 500  # buyers read in one script call
FIELDS = 5  # per buyer in queue.lua's reply
Poll = tuple[str, "asyncio.Future[Ticket]"]  # buyer, and where their ticket goes


def _ticket(fields: list[object]) -> Ticket:
    status, position, pass_, expires, retry = (text(x) for x in fields)
    if status == "none":
        raise Refused("none")
    return Ticket(
        status=cast(TicketStatus, status),
        position=int(position) if position else None,
        pass_=pass_ or None,
        pass_expires_at=rfc3339(int(expires)) if expires else None,
        retry_after_s=int(retry) if retry else None,
    )


class Queue:
    def __init__(self, redis: RedisClient, scripts: Scripts) -> None:
        self._redis = redis
        self._scripts = scripts
        self._polls: PerTick[Poll] = PerTick(self._send, MAX_POLLS, 1)
        self._batches: set[asyncio.Task[None]] = set()

    async def join(self, drop_id: str, buyer: str) -> tuple[Literal["created", "ok"], Ticket]:
        """The buyer's ticket, taken if they had none ('created'); raises Refused."""
        if not is_drop_id(drop_id):
            raise Refused("not_found")
        reply = await Scripts.call(self._scripts.queue, drop_id, "join", buyer)
        return accepted(reply[0]), _ticket(reply[1:])

    def poll(self, drop_id: str, buyer: str) -> asyncio.Future[Ticket]:
        """The buyer's ticket as it is now (Refused `none` without one), read with the
        other polls of the drop in this tick."""
        answer: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        if not is_drop_id(drop_id):
            answer.set_exception(Refused("not_found"))
            return answer
        self._polls.add(drop_id, (buyer, answer))
        return answer

    def _send(self, drop_id: str, waiting: list[Poll]) -> None:
        task = asyncio.get_running_loop().create_task(self._read(drop_id, waiting))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _read(self, drop_id: str, waiting: list[Poll]) -> None:
        try:
            reply = await Scripts.call(
                self._scripts.queue, drop_id, "read", *(b for b, _ in waiting)
            )
        except (*REDIS_ERRORS, OSError) as e:  # a read: nothing was decided
            for _, answer in waiting:
                if not answer.done():
                    answer.set_exception(Unavailable(f"Redis is unreachable: {e!r}"))
            return
        finally:
            self._polls.landed(drop_id)  # those that came meanwhile go now, together
        for i, (_, answer) in enumerate(waiting):
            if answer.done():
                continue
            try:
                accepted(reply[0])  # the drop's answer to them all: ok, or why not
                answer.set_result(_ticket(reply[1 + i * FIELDS : 1 + (i + 1) * FIELDS]))
            except Refused as e:
                answer.set_exception(e)
