"""The ceiling `flashsale bench` measures against: the cheapest aiohttp+uvloop POST handler,
served the way flashsale's gateway is (same framework, loop and socket options)."""

from __future__ import annotations

import uvloop
from aiohttp import web

from flashsale.services import stop_on_signals

BODY = b'{"hello":"world"}'


async def hello(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


def app() -> web.Application:
    application = web.Application()
    application.router.add_post("/hello", hello)
    return application


async def serve(host: str, port: int, reuse_port: bool = False) -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
    await stop_on_signals().wait()
    await runner.cleanup()


def main(host: str, port: int, reuse_port: bool = False) -> None:
    uvloop.run(serve(host, port, reuse_port))


if __name__ == "__main__":
    import sys

    main("127.0.0.1", int(sys.argv[1]), reuse_port=True)
