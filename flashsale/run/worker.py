"""The settlement worker process, and `flashsale audit`: settling the streams into the order
store beside the sweeper, the drops-with-work feed and compaction; checking the invariants."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from flashsale.config import Settings
from flashsale.engine import (
    AuditReport,
    Backoff,
    Compactor,
    Deliverer,
    SettlementWorker,
    wait_settled,
)
from flashsale.engine import audit as check_invariants
from flashsale.run.parts import Parts, connected, stop_on_signals

log = logging.getLogger("flashsale")


async def audit(settings: Settings, drop_id: str | None = None, wait: float = 10.0) -> AuditReport:
    """`flashsale audit`: lets settlement catch up (up to `wait` seconds), then checks."""
    async with connected(settings) as parts:
        await wait_settled(parts.engine.redis, parts.engine.drops, wait, drop_id)
        return await check_invariants(parts.engine.redis, parts.store, parts.engine.drops, drop_id)


async def verify_draw(settings: Settings, drop_id: str) -> list[str]:
    """`flashsale verify-draw`: what is wrong with the drop's draw (nothing: all matches)."""
    async with connected(settings) as parts:
        return await parts.engine.draws.verify(drop_id)


def settlers(parts: Parts, settings: Settings, concurrency: int) -> list[SettlementWorker]:
    workers = [
        SettlementWorker(
            parts.engine.redis,
            parts.store,
            parts.engine.active,
            claim_idle_ms=settings.claim_idle_ms,
            replicas=parts.engine.replicas,
        )
        for _ in range(concurrency)
    ]
    parts.engine.active.on_leave = workers[0].trim  # a drop at rest keeps no settled entries
    return workers


async def work(settings: Settings, concurrency: int) -> None:
    """The settlement worker process: settles streams and runs the sweeper until stopped."""
    stop = stop_on_signals()
    async with connected(settings) as parts:
        workers = settlers(parts, settings, concurrency)
        log.info("settlement worker running: %s", ", ".join(w.consumer for w in workers))
        await asyncio.gather(
            *housekeeping(parts, settings, stop, workers), *(w.run(stop) for w in workers)
        )
    log.info("settlement worker stopped")


def deliverer(parts: Parts, settings: Settings) -> Deliverer:
    """What sends the webhooks' deliveries, as the settings have it."""
    return Deliverer(
        parts.store,
        allow_private=settings.webhook_allow_private,
        timeout_s=settings.webhook_timeout_s,
        backoff=Backoff(first_s=settings.webhook_retry_s, give_up_s=settings.webhook_give_up_s),
    )


def housekeeping(
    parts: Parts, settings: Settings, stop: asyncio.Event, workers: list[SettlementWorker]
) -> list[Awaitable[None]]:
    """What runs beside settlement: the sweeper, the drops-with-work feed, compaction, and
    the webhooks' deliveries (woken by each batch the `workers` settle)."""
    engine = parts.engine
    compactor = Compactor(engine.redis, engine.scripts, engine.drops, settings.retention_s)
    sender = deliverer(parts, settings)
    for worker in workers:
        worker.on_settled = sender.wake
    return [
        engine.sweeper.run(stop),
        engine.active.run(stop, engine.url),
        compactor.run(stop),
        sender.run(stop),
    ]


__all__ = ["audit", "deliverer", "housekeeping", "settlers", "work"]
