"""Group commit per drop, for the engine's hot calls (purchases, queue polls): the requests
of one drop that arrive in one event-loop tick go to Redis as one batch (at most
`max_batch` each), and while `in_flight` batches of a drop are on their way the next one
fills up and goes when one of them lands. Taps that trickle in share a call too, at the cost
of at most one round trip of waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerTick(Generic[T]):
    """Queues items per drop; `start(drop, batch)` is called for each batch that goes, and
    the caller says `landed(drop)` when that batch's call is over, answered or not."""

    def __init__(
        self, start: Callable[[str, list[T]], None], max_batch: int, in_flight: int
    ) -> None:
        self._start = start
        self.max_batch = max_batch
        self.in_flight = in_flight
        self._queues: dict[str, list[T]] = {}
        self._going: dict[str, int] = {}  # drop -> its batches on their way
        self._flush_due = False

    def add(self, drop_id: str, item: T) -> None:
        queue = self._queues.get(drop_id)
        if queue is None:
            queue = self._queues[drop_id] = []
        queue.append(item)
        if len(queue) >= self.max_batch:
            del self._queues[drop_id]
            self._go(drop_id, queue)
        elif self._going.get(drop_id, 0) < self.in_flight:
            self._flush_soon()

    def landed(self, drop_id: str) -> None:
        left = self._going[drop_id] - 1
        if left:
            self._going[drop_id] = left
        else:
            del self._going[drop_id]
        if drop_id in self._queues:
            self._flush_soon()

    def _go(self, drop_id: str, batch: list[T]) -> None:
        self._going[drop_id] = self._going.get(drop_id, 0) + 1
        self._start(drop_id, batch)

    def _flush_soon(self) -> None:
        """At the end of this tick, when every request ready now has queued."""
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        for drop_id in list(self._queues):
            if self._going.get(drop_id, 0) < self.in_flight:
                self._go(drop_id, self._queues.pop(drop_id))
