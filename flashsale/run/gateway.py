"""One gateway process: the aiohttp app behind the fast path, on its port, until stopped;
then it stops listening and answers what it owes (DRAIN_S)."""

from __future__ import annotations

import logging
import os

from aiohttp import web

from flashsale.config import ConfigError, Settings
from flashsale.gateway.app import build_app
from flashsale.gateway.auth import Auth
from flashsale.gateway.clients import ClientAddress
from flashsale.gateway.fastpath import FastSite, Limits
from flashsale.gateway.protocol import answer_unreadable_in_json
from flashsale.gateway.ratelimit import Limit, RateLimiter
from flashsale.gateway.state import Gateway
from flashsale.run.parts import Parts, connected, stop_on_signals

log = logging.getLogger("flashsale")
DRAIN_S = 10.0  # on stop, how long the answers owed may take


async def start_site(
    parts: Parts, settings: Settings, host: str, port: int, reuse_port: bool = False
) -> web.AppRunner:
    parts.engine.purchaser.replays = parts.store.by_key  # a compacted drop's replays
    gw = Gateway(
        engine=parts.engine,
        store=parts.store,
        auth=Auth(settings.token_secret, settings.host_keys),
        limiter=RateLimiter(
            Limit(settings.buyer_rate, settings.buyer_burst),
            Limit(settings.ip_rate, settings.ip_burst),
        ),
        clients=ClientAddress(settings.trusted_proxies),
        max_in_flight=settings.max_in_flight,
        webhook_allow_private=settings.webhook_allow_private,
    )
    runner = web.AppRunner(build_app(gw), access_log=None, shutdown_timeout=DRAIN_S)
    await runner.setup()
    answer_unreadable_in_json(runner)
    limits = Limits(idle_s=settings.http_idle_s, read_s=settings.http_read_s)
    site = FastSite(runner, gw, host, port, reuse_port=reuse_port, limits=limits, drain_s=DRAIN_S)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return runner


async def serve(settings: Settings, host: str, port: int, reuse_port: bool = False) -> None:
    stop = stop_on_signals()
    async with connected(settings) as parts:
        runner = await start_site(parts, settings, host, port, reuse_port)
        log.info("gateway listening on http://%s:%d (pid %d)", host, port, os.getpid())
        await stop.wait()
        await runner.cleanup()
    log.info("gateway stopped")


__all__ = ["DRAIN_S", "serve", "start_site"]
