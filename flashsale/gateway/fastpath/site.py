"""The gateway's listening port: every connection starts on the fast path (connection.py),
and aiohttp's runner starts and stops it like any of its own sites, so `runner.cleanup()`
shuts it down in order: stop listening, let every connection write the answers it owes
(closing idle ones at once), then aiohttp's own shutdown of the lines it was handed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from flashsale.gateway.fastpath.connection import Connection
from flashsale.gateway.fastpath.wire import Clock, Limits
from flashsale.gateway.state import Gateway

log = logging.getLogger(__name__)

SWEEP_S = 0.5  # how often idle and read deadlines are checked


class Front:
    """What every connection of one site shares."""

    def __init__(
        self, gw: Gateway, server: web.Server, limits: Limits, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.gw = gw
        self.server: web.Server = server  # makes aiohttp request handlers, one per line
        self.limits = limits
        self.loop = loop
        self.clock = Clock()
        self.connections: set[Connection] = set()  # open: their deadlines are swept
        self.owing: set[Connection] = set()  # open and not aiohttp's: shutdown waits for them
        self._emptied = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None

    def connection(self) -> Connection:
        return Connection(self)

    def opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.owing.add(conn)

    def handed_over(self, conn: Connection) -> None:
        """aiohttp has the line now, and shuts it down itself."""
        self.owing.discard(conn)
        if not self.owing:
            self._emptied.set()

    def closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.handed_over(conn)

    def start(self) -> None:
        self._sweeper = self.loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        """One timer for every connection, rather than one per request: a deadline is a
        float each request sets, and this reads them twice a second."""
        while True:
            await asyncio.sleep(SWEEP_S)
            now = self.loop.time()
            for conn in list(self.connections):
                conn.expire(now)

    async def shutdown(self, within: float) -> None:
        for conn in list(self.owing):
            conn.shutdown()
        if self.owing:
            self._emptied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), within)
        for conn in list(self.owing):
            if conn.transport is not None:
                log.warning("closing a connection whose answers did not finish in %gs", within)
                conn.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


class FastSite(web.BaseSite):
    __slots__ = ("_drain_s", "_front", "_gw", "_host", "_limits", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        gw: Gateway,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        limits: Limits | None = None,
        backlog: int = 2048,  # a burst connects all at once
        drain_s: float = 10.0,  # on stop, how long answers owed may take
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._drain_s = drain_s
        self._gw = gw
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self._limits = limits or Limits()
        self._front: Front | None = None

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._front = Front(self._gw, server, self._limits, loop)
        self._server = await loop.create_server(
            self._front.connection,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_port=self._reuse_port or None,
        )
        self._front.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections
        if self._front is not None:
            await self._front.shutdown(self._drain_s)
        await super().stop()
