"""Running flashsale's processes: the gateway, the settlement worker, and `up` (all of it).

Stopping is ordered so nothing confirmed is lost: the gateway stops taking requests and
answers those in flight, the worker settles every event left in the streams, and only then
does an embedded Redis exit (flushing its append-only file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from flashsale.config import ConfigError, Settings
from flashsale.engine.audit import AuditReport
from flashsale.engine.audit import audit as check_invariants
from flashsale.engine.compaction import Compactor
from flashsale.engine.engine import Engine
from flashsale.engine.settlement import SettlementWorker, wait_settled
from flashsale.engine.store import STORE_ERRORS, OrderStore, open_store
from flashsale.gateway.app import build_app
from flashsale.gateway.auth import Auth
from flashsale.gateway.clients import ClientAddress
from flashsale.gateway.fastpath import FastSite, Limits
from flashsale.gateway.protocol import answer_unreadable_in_json
from flashsale.gateway.ratelimit import Limit, RateLimiter
from flashsale.gateway.state import Gateway
from flashsale.gateways import Gateways, reachable
from flashsale.redis_server import RedisServer

log = logging.getLogger("flashsale")
DRAIN_S = 10.0  # on stop, how long the answers owed may take


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


async def audit(settings: Settings, drop_id: str | None = None, wait: float = 10.0) -> AuditReport:
    """`flashsale audit`: lets settlement catch up (up to `wait` seconds), then checks."""
    async with connected(settings) as parts:
        await wait_settled(parts.engine.redis, parts.engine.drops, wait, drop_id)
        return await check_invariants(parts.engine.redis, parts.store, parts.engine.drops, drop_id)


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


def _workers(parts: Parts, settings: Settings, concurrency: int) -> list[SettlementWorker]:
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
        workers = _workers(parts, settings, concurrency)
        log.info("settlement worker running: %s", ", ".join(w.consumer for w in workers))
        await asyncio.gather(*_housekeeping(parts, settings, stop), *(w.run(stop) for w in workers))
    log.info("settlement worker stopped")


def _housekeeping(parts: Parts, settings: Settings, stop: asyncio.Event) -> list[Awaitable[None]]:
    """What runs beside settlement: the sweeper, the drops-with-work feed, compaction."""
    engine = parts.engine
    compactor = Compactor(engine.redis, engine.scripts, engine.drops, settings.retention_s)
    return [engine.sweeper.run(stop), engine.active.run(stop, engine.url), compactor.run(stop)]


def _claim_orphan(server: RedisServer, settings: Settings) -> None:
    """A Redis left running by an `up` that was killed is shut down before a new one starts."""
    pid_file = settings.up_pid_file
    if pid_file.exists():
        pid = int(pid_file.read_text() or 0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pid and pid != os.getpid():
                os.kill(pid, 0)
                raise SystemExit(f"flashsale up is already running here (pid {pid})")
    if server.socket_path.exists():
        import redis

        with contextlib.suppress(redis.RedisError, OSError):
            redis.Redis(unix_socket_path=str(server.socket_path)).shutdown()
        server.socket_path.unlink(missing_ok=True)


async def up(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Redis, the settlement worker and the sweeper in this process, and `workers` gateway
    processes beside it (with one, the gateway runs in this process too)."""
    stop = stop_on_signals()
    server = RedisServer(settings.data_dir / "redis")
    _claim_orphan(server, settings)
    server.start()
    pid_file = settings.up_pid_file
    pid_file.write_text(str(os.getpid()))
    settings.redis_url = server.url
    settings.runtime_redis_file.write_text(server.url)
    try:
        async with connected(settings) as parts:
            stop_gateways = await _start_gateways(parts, settings, host, port, workers)
            worker_stop = asyncio.Event()
            (worker,) = _workers(parts, settings, 1)
            background = asyncio.gather(
                *_housekeeping(parts, settings, worker_stop), worker.run(worker_stop)
            )
            print(_banner(settings, host, port, workers), flush=True)
            await stop.wait()
            print("stopping: no new purchases; settling what is left...", flush=True)
            await stop_gateways()
            worker_stop.set()
            await background
            drained = await worker.drain(within=60)
            print(
                f"settled {worker.settled} order event(s); "
                f"{'nothing left behind' if drained else 'BACKLOG LEFT in Redis'}",
                flush=True,
            )
    finally:
        settings.runtime_redis_file.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
        server.stop()
    print("flashsale stopped", flush=True)


async def _start_gateways(
    parts: Parts, settings: Settings, host: str, port: int, workers: int
) -> Callable[[], Awaitable[None]]:
    """The gateway, in this process or as `workers` processes; returns how to stop it."""
    if workers <= 1:
        runner = await start_site(parts, settings, host, port)
        return runner.cleanup
    gateways = Gateways(settings, host, port, workers)
    gateways.start()

    async def stop() -> None:
        gateways.stop()
        await asyncio.to_thread(gateways.join)

    try:
        await gateways.wait_listening()
    except BaseException:
        await stop()
        raise
    return stop


def _banner(settings: Settings, host: str, port: int, workers: int) -> str:
    shown = reachable(host)
    return "\n".join([
        "flashsale is up",
        f"  API         http://{shown}:{port}/v1/drops ({max(workers, 1)} gateway process(es))",
        f"  health      http://{shown}:{port}/readyz",
        f"  host key    {settings.host_keys[0]}",
        f"  redis       {settings.redis_url}",
        f"  orders      {settings.database_url}",
        f"  data dir    {settings.data_dir}",
        "  buyer token: flashsale token --user alice",
        "Ctrl-C stops it; every confirmed order is settled first.",
    ])  # fmt: skip
