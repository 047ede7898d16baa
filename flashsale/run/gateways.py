"""Several gateway processes on one port: Python runs one core per process, so a gateway
scales on one machine by running N of them, the kernel spreading connections (SO_REUSEPORT).

Used by `flashsale serve --workers N` and by `flashsale up`.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
from multiprocessing.process import BaseProcess

import uvloop

from flashsale import logs
from flashsale.config import ConfigError, Settings
from flashsale.run.gateway import serve


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0))


def _gateway(settings: Settings, host: str, port: int, level: int) -> None:
    # A spawned process starts with no logging set up.
    logs.setup(level)
    uvloop.run(serve(settings, host, port, reuse_port=True))


class Gateways:
    def __init__(self, settings: Settings, host: str, port: int, count: int) -> None:
        self.host, self.port = host, port
        ctx = multiprocessing.get_context("spawn")
        level = logging.getLogger().level
        self.procs: list[BaseProcess] = [
            ctx.Process(target=_gateway, args=(settings, host, port, level), daemon=False)
            for _ in range(count)
        ]

    def start(self) -> None:
        _ensure_free(self.host, self.port)
        for proc in self.procs:
            proc.start()

    def stop(self) -> None:
        """SIGTERM: each gateway stops listening and answers the requests it has."""
        for proc in self.procs:
            if proc.pid is not None and proc.exitcode is None:
                os.kill(proc.pid, signal.SIGTERM)

    def join(self) -> int:
        for proc in self.procs:
            proc.join()
        return max((proc.exitcode or 0) for proc in self.procs)

    async def wait_listening(self, within: float = 30.0) -> None:
        """Returns once the port takes connections; raises if a gateway died first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            if any(p.exitcode is not None for p in self.procs):
                raise ConfigError("a gateway process exited while starting; see its output")
            try:
                _, writer = await asyncio.open_connection(reachable(self.host), self.port)
                writer.close()
                return
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)


def reachable(host: str) -> str:
    """Where a client on this machine reaches a server listening on `host`."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _ensure_free(host: str, port: int) -> None:
    """SO_REUSEPORT would let our gateways share a port with another server's: refuse that."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None


__all__ = ["Gateways", "cores", "reachable"]
