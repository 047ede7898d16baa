"""The engine's clock: opens scheduled drops and releases unpaid holds, with no outside cron.

It also runs the draws whose moment came (draws.py) and, through sweep.lua, a queue drop's
door, so passes expire and tickets are admitted while nobody polls.

Every script also opens a due drop itself (lib.lua promote), so the sweeper only makes sure
it happens when nobody is asking. Any number of sweepers may run: the scripts are atomic and
releasing a hold twice is impossible.
"""

from __future__ import annotations

import asyncio
import logging

from flashsale.engine.draws import Draws
from flashsale.engine.drops import DropIds
from flashsale.engine.errors import REDIS_ERRORS
from flashsale.engine.scripts import Scripts
from flashsale.engine.stopping import pause

log = logging.getLogger(__name__)
BATCH = 500


class Sweeper:
    def __init__(
        self, drops: DropIds, scripts: Scripts, draws: Draws | None = None, interval: float = 0.2
    ) -> None:
        self._drops = drops
        self._scripts = scripts
        self.draws = draws  # runs a draw when its moment comes
        self.interval = interval

    async def sweep_once(self) -> int:
        """Sweeps every drop it is given (those with work, in a process following them);
        returns how many holds it released."""
        released = 0
        for drop_id in await self._drops.ids():
            while True:
                n, draw_due = await Scripts.call(self._scripts.sweep, drop_id, BATCH)
                released += n
                if draw_due and self.draws is not None:
                    await self.draws.run(drop_id)
                if n < BATCH:
                    break
        return released

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep_once()
            except (*REDIS_ERRORS, OSError) as exc:
                log.warning("sweep failed, retrying: %s", exc)
            await pause(stop, self.interval)
