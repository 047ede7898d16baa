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
import shutil
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

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


# What `demo` runs beside `up` once it is serving: given the settings (with the URL of the
# Redis `up` started) and the base URL of the gateway; cancelled when `up` stops.
Show = Callable[[Settings, str], Coroutine[Any, Any, None]]


async def up(
    settings: Settings, host: str, port: int, workers: int = 1, show: Show | None = None
) -> None:
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
                *housekeeping(parts, settings, worker_stop, [worker]), worker.run(worker_stop)
            )
            print(_banner(settings, host, port, workers), flush=True)
            base = f"http://{reachable(host)}:{port}"
            settings.runtime_url_file.write_text(base)
            showing = asyncio.create_task(show(settings, base)) if show else None
            await stop.wait()
            print("stopping: no new purchases; settling what is left...", flush=True)
            if showing is not None:
                showing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await showing
            await stop_gateways()
            left = await backlog(parts.engine.redis, parts.engine.drops)
            worker_stop.set()
            await background
            still = 0 if await worker.drain(within=60) else await worker.backlog()
            print(_stopped(left, still), flush=True)
    finally:
        settings.runtime_redis_file.unlink(missing_ok=True)
        settings.runtime_url_file.unlink(missing_ok=True)
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
    base = f"http://{reachable(host)}:{port}"
    return "\n".join([
        "flashsale is up",
        f"  console     {console_url(base, settings.host_keys[0])}",
        f"  API         {base}/v1/drops ({max(workers, 1)} gateway process(es))",
        f"  health      {base}/readyz",
        f"  host key    {settings.host_keys[0]}",
        f"  redis       {settings.redis_url}",
        f"  orders      {settings.database_url}",
        f"  data dir    {settings.data_dir}",
        f"  buyer token {command()} --data-dir {_shown(settings.data_dir)} token --user alice",
        "Ctrl-C stops it; every confirmed order is settled first.",
    ])  # fmt: skip


def console_url(base: str, host_key: str, drop_id: str | None = None) -> str:
    """The console, signed in: the key rides in the fragment, which the browser never sends;
    the console keeps it for the tab and takes it out of the address bar."""
    return f"{base}/console#key={quote(host_key)}" + (f"&drop={drop_id}" if drop_id else "")


def command() -> str:
    """How to type `flashsale` here: the bare name if it is on PATH, else the venv's."""
    mine = Path(sys.executable).with_name("flashsale")
    found = shutil.which("flashsale")
    if found and Path(found).resolve() == mine.resolve():
        return "flashsale"
    return _shown(mine)


def _shown(path: Path) -> str:
    """A path as short as it can be typed from here."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


__all__ = ["Show", "command", "console_url", "up"]
