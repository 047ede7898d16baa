"""`flashsale webhooks`: what ops do with subscriptions from a shell, against the order store
(and Redis, for the rooms of drops): list them with what each still has to deliver, and
replay one from a point in time, as the API's replay does."""

from __future__ import annotations

from datetime import datetime

import msgspec

from flashsale.config import ConfigError, Settings
from flashsale.engine import ReplaySpec, replay_since, rfc3339
from flashsale.run.parts import connected


async def listing(settings: Settings) -> list[str]:
    async with connected(settings) as parts:
        stats = {s.webhook_id: s for s in await parts.store.endpoint_stats()}
        lines = []
        for hook in await parts.store.webhooks():
            s = stats.get(hook.id)
            counts = (f"{s.attempts['delivered']} delivered, {s.pending} pending, "
                      f"{s.attempts['failed']} failed") if s else ""  # fmt: skip
            kinds, since = ",".join(hook.events), rfc3339(hook.created_at)
            lines.append(f"{hook.id}  {hook.url}  room={hook.room or '*'}  {kinds}  "
                         f"since {since}  {counts}")  # fmt: skip
        return lines


def parse_since(raw: str) -> datetime:
    """`--since` read by the API's own rule (ReplaySpec): RFC 3339, with its time zone."""
    try:
        return msgspec.convert({"since": raw}, ReplaySpec).since
    except msgspec.ValidationError as e:
        raise ConfigError(
            f"--since must be an RFC 3339 time with a zone, not {raw!r} ({e})"
        ) from None


async def replay(settings: Settings, webhook_id: str, since: str) -> int:
    """Queues the subscription's events since `since` again; returns how many."""
    when = parse_since(since)
    async with connected(settings) as parts:
        hook = await parts.store.webhook(webhook_id)
        if hook is None:
            raise ConfigError(f"no webhook {webhook_id!r} in {settings.database_url}")
        return await replay_since(parts.store, parts.engine.drops, hook, when)


__all__ = ["listing", "replay"]
