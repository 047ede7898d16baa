"""A first-come drop's waitlist, for buyers: join when too few units remain, read, leave."""

from __future__ import annotations

from aiohttp import web

from flashsale.engine import EntrySpec, entry_of
from flashsale.gateway.bodies import read_json
from flashsale.gateway.errors import json_response
from flashsale.gateway.state import gateway

routes = web.RouteTableDef()


@routes.post("/v1/drops/{id}/waitlist")
async def join(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    spec = await read_json(request, EntrySpec, empty_ok=True)
    gw.limiter.check(buyer)
    outcome, entry = await gw.engine.waitlist.join(
        request.match_info["id"], buyer, spec.quantity, spec.variant
    )
    return json_response({"entry": entry.waitlist_view()}, 201 if outcome == "created" else 200)


@routes.get("/v1/drops/{id}/waitlist/me")
async def mine(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    entry = await entry_of(gw.engine.redis, request.match_info["id"], buyer, "waitlist")
    return json_response({"entry": entry.waitlist_view()})


@routes.delete("/v1/drops/{id}/waitlist/me")
async def leave(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    entry = await gw.engine.waitlist.leave(request.match_info["id"], buyer)
    return json_response({"entry": entry.waitlist_view()})
