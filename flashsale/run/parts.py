"""What every flashsale process holds: the engine (Redis) and the order store, opened
together and closed in order; and the one way every loop is told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from flashsale.config import Settings
from flashsale.engine import STORE_ERRORS, Engine, OrderStore, open_store

log = logging.getLogger("flashsale")


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: the one way every loop here is told to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@dataclass
class Parts:
    engine: Engine
    store: OrderStore


STORE_WAIT_S = 30.0  # at start, how long an unreachable order store is waited for


@contextlib.asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Parts]:
    engine = Engine.from_url(settings.require_redis(), settings.acks, settings.replica_timeout_s)
    store = open_store(settings.database_url)
    try:
        await _open(store)
        yield Parts(engine, store)
    finally:
        await store.close()
        await engine.close()


async def _open(store: OrderStore) -> None:
    """A store briefly down at start (PostgreSQL restarting, a container not up yet) is
    waited for with a line in the log each time, rather than the process exiting."""
    loop = asyncio.get_running_loop()
    deadline, delay = loop.time() + STORE_WAIT_S, 0.25
    while True:
        try:
            await store.open()
            return
        except STORE_ERRORS as e:
            if loop.time() + delay > deadline:
                raise
            log.warning("order store not reachable yet (%r); trying again in %gs", e, delay)
            await store.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


__all__ = ["Parts", "connected", "stop_on_signals"]
