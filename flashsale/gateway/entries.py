"""A draw drop's entries: buyers enter and read theirs, the host lists them all."""

from __future__ import annotations

from aiohttp import web

from flashsale.engine import EntrySpec, Refused, entry_of
from flashsale.gateway.bodies import read_json
from flashsale.gateway.drops import found
from flashsale.gateway.errors import json_response
from flashsale.gateway.state import gateway

routes = web.RouteTableDef()


@routes.post("/v1/drops/{id}/entries")
async def enter(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    spec = await read_json(request, EntrySpec, empty_ok=True)
    gw.limiter.check(buyer)
    outcome, entry = await gw.engine.draws.enter(
        request.match_info["id"], buyer, spec.quantity, spec.variant
    )
    return json_response({"entry": entry.draw_view()}, 201 if outcome == "created" else 200)


@routes.get("/v1/drops/{id}/entries/me")
async def mine(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    entry = await entry_of(gw.engine.redis, request.match_info["id"], buyer, "draw")
    return json_response({"entry": entry.draw_view()})


@routes.get("/v1/drops/{id}/entries")
async def every(request: web.Request) -> web.Response:
    gw = gateway(request)
    gw.auth.host(request)
    drop = found(await gw.engine.drops.get(request.match_info["id"]))
    if drop.admission != "draw":
        raise Refused("no_draw")
    entries = await gw.engine.draws.entries(request.match_info["id"])
    return json_response({"entries": [e.draw_view() for e in entries]})
