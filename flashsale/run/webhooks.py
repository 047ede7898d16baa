"""`flashsale webhooks`: what ops do with subscriptions from a shell, against the order store
(and Redis, for the rooms of drops): list them with what each still has to deliver, and
replay one from a point in time, as the API's replay does."""

from __future__ import annotations

from datetime import datetime

from flashsale.config import ConfigError, Settings
from flashsale.engine import replay_since, rfc3339
from flashsale.run.parts import connected


async def listing(settings: Settings) -> list[str]:
    async with connected(settings) as parts:
        stats = {s.webhook_id: s for s in await parts.store.endpoint_stats()}
        lines = []
        for hook in await parts.store.webhooks():
            s = stats.get(hook.id)
            counts = f"{s.delivered} delivered, {s.pending} pending, {s.failed} failed" if s else ""
            kinds, since = ",".join(hook.events), rfc3339(hook.created_at)
            lines.append(f"{hook.id}  {hook.url}  room={hook.room or '*'}  {kinds}  "
                         f"since {since}  {counts}")  # fmt: skip
        return lines


def parse_since(raw: str) -> int:
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since must be an RFC 3339 time, not {raw!r}") from None
    if when.tzinfo is None:
        raise ConfigError("--since needs a time zone (2026-12-03T08:00:00Z)")
    return int(when.timestamp() * 1000)


async def replay(settings: Settings, webhook_id: str, since: str) -> int:
    """Queues the subscription's events since `since` again; returns how many."""
    since_ms = parse_since(since)
    async with connected(settings) as parts:
        hook = await parts.store.webhook(webhook_id)
        if hook is None:
            raise ConfigError(f"no webhook {webhook_id!r} in {settings.database_url}")
        return await replay_since(parts.store, parts.engine.drops, hook, since_ms)


__all__ = ["listing", "replay"]
