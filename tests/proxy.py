"""A TCP proxy the test controls, to break a connection at exactly the wrong moment."""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self._sever_on: bytes | None = None
        self._forward_first = True
        self.severed = 0
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> Proxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def cut(self) -> None:
        """Breaks every open connection (with close(), the port then refuses new ones)."""
        for writer in list(self._open):
            writer.transport.abort()
        await asyncio.sleep(0.05)

    def sever_on(self, pattern: bytes, *, forward_first: bool) -> None:
        """The next client write containing `pattern` kills its connection: after it reached
        the server (the answer is lost) or before (the request is lost)."""
        self._sever_on = pattern
        self._forward_first = forward_first

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._open.add(writer)
        muted = False  # once severing, nothing more reaches the client

        async def client_to_server() -> None:
            nonlocal muted
            while data := await reader.read(65536):
                if self._sever_on is not None and self._sever_on in data:
                    self._sever_on = None
                    muted = True
                    self.severed += 1
                    if self._forward_first:
                        up_writer.write(data)
                        await up_writer.drain()
                        await asyncio.sleep(0.05)  # let the server run it
                    return
                up_writer.write(data)
                await up_writer.drain()

        async def server_to_client() -> None:
            while data := await up_reader.read(65536):
                if muted:
                    return
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        self._open.discard(writer)
        for w in (writer, up_writer):
            w.close()
