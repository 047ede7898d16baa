"""GET /v1/drops/{id}/live: the drop's counters as Server-Sent Events, for the host's
console and buyers' pages.

A `stock` event (JSON `remaining`, `sold`, `status`) at connect, then whenever they change,
at most MAX_RATE a second (what changes in between is coalesced into the newest), and a
`: ping` comment every 15 s so proxies keep the stream open. When the gateway stops, every
stream ends at once rather than holding shutdown up.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from flashsale.engine import MAX_RATE, Watch, pause
from flashsale.gateway.drops import found
from flashsale.gateway.state import gateway

routes = web.RouteTableDef()
PING_S = 15.0  # a comment this often keeps proxies from closing a quiet stream


@routes.get("/v1/drops/{id}/live")
async def live(request: web.Request) -> web.StreamResponse:
    gw = gateway(request)
    drop_id = found(await gw.engine.drops.get(request.match_info["id"])).id
    stopping = gw.stopping
    async with (
        gw.engine.live.watch(drop_id) as watch,
        sse_response(request, ping_interval=PING_S) as stream,
    ):
        sent = -1
        while not stopping.is_set() and stream.is_connected():
            if watch.version == sent and not await _newer(watch, sent, stopping, stream):
                break
            sent = watch.version
            await stream.send(watch.counters.decode(), event="stock")
            await pause(stopping, 1 / MAX_RATE)
    return stream


async def _newer(
    watch: Watch, sent: int, stopping: asyncio.Event, stream: EventSourceResponse
) -> bool:
    """Waits for counters newer than `sent`; False if the gateway stops or the viewer left
    (looked at every second: a viewer that left is otherwise noticed at the next ping)."""
    while watch.version == sent and not stopping.is_set() and stream.is_connected():
        waits = [
            asyncio.ensure_future(watch.newer_than(sent)),
            asyncio.ensure_future(stopping.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
    return watch.version != sent and not stopping.is_set() and stream.is_connected()
