"""The two hello worlds `flashsale bench` measures a purchase against, each answering a POST
with a small JSON body the way flashsale's gateway serves (same loop, same socket options):

- `aiohttp`: the cheapest aiohttp+uvloop handler, what a purchase cost before the fast path;
- `bare`: uvloop and httptools with nothing else, a bare `asyncio.Protocol`: the ceiling no
  Python HTTP server on this machine passes.

`python -m flashsale.loadtest.hello PORT [aiohttp|bare]` serves one (SO_REUSEPORT, so the
bench can start several on one port)."""

from __future__ import annotations

import asyncio
from typing import Literal, cast

import httptools
import uvloop
from aiohttp import web

from flashsale.run import stop_on_signals

Kind = Literal["aiohttp", "bare"]
BODY = b'{"hello":"world"}'
_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


async def hello(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


def app() -> web.Application:
    application = web.Application()
    application.router.add_post("/hello", hello)
    return application


class Bare(asyncio.Protocol):
    """Parses each request and answers it; keep-alive, nothing more."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        assert self.transport is not None
        self.transport.write(_ANSWER)


async def serve(host: str, port: int, kind: Kind = "aiohttp", reuse_port: bool = False) -> None:
    stop = stop_on_signals()
    if kind == "bare":
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Bare, host, port, reuse_port=reuse_port or None)
        await stop.wait()
        server.close()
        return
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    await stop.wait()
    await runner.cleanup()


def main(host: str, port: int, kind: Kind = "aiohttp", reuse_port: bool = False) -> None:
    uvloop.run(serve(host, port, kind, reuse_port))


if __name__ == "__main__":
    import sys

    main(
        "127.0.0.1",
        int(sys.argv[1]),
        cast(Kind, sys.argv[2] if len(sys.argv) > 2 else "aiohttp"),
        reuse_port=True,
    )
