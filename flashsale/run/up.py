"""`flashsale up`: everything on one machine: its own redis-server, the settlement worker
and its housekeeping in this process, and the gateway here or as N processes beside it.

Stopping is ordered so nothing confirmed is lost: the gateway stops taking requests and
answers those in flight, the worker settles every event left in the streams, and only then
does the embedded Redis exit (flushing its append-only file).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace

from flashsale.config import Settings
from flashsale.engine import backlog
from flashsale.redis_server import RedisServer
from flashsale.run.gateway import start_site
from flashsale.run.gateways import Gateways, reachable
from flashsale.run.parts import Parts, connected, stop_on_signals
from flashsale.run.worker import housekeeping, settlers


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
    settings = replace(settings, redis_url=server.url)
    settings.runtime_redis_file.write_text(server.url)
    try:
        async with connected(settings) as parts:
            stop_gateways = await _start_gateways(parts, settings, host, port, workers)
            worker_stop = asyncio.Event()
            (worker,) = settlers(parts, settings, 1)
            background = asyncio.gather(
                *housekeeping(parts, settings, worker_stop), worker.run(worker_stop)
            )
            print(_banner(settings, host, port, workers), flush=True)
            await stop.wait()
            print("stopping: no new purchases; settling what is left...", flush=True)
            await stop_gateways()
            left = await backlog(parts.engine.redis, parts.engine.drops)
            worker_stop.set()
            await background
            still = 0 if await worker.drain(within=60) else await worker.backlog()
            print(_stopped(left, still), flush=True)
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


def _stopped(left: int, still: int) -> str:
    """What the stop settled: the order events not yet in the store when it began."""
    if still:
        return f"BACKLOG LEFT in Redis: {still:,} order event(s) not in the order store"
    if not left:
        return "every order was already in the order store; nothing left behind"
    return f"settled the {left:,} order event(s) still in Redis at the stop; nothing left behind"


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


__all__ = ["up"]
