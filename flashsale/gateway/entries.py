"""Entries, for buyers and hosts: a draw drop's (enter, read yours; the host lists them
all) and a first-come drop's waitlist (join when too few units remain, read, leave)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from flashsale.engine import Entry, EntrySpec, Refused, entry_of
from flashsale.gateway.bodies import read_json
from flashsale.gateway.drops import found
from flashsale.gateway.errors import json_response
from flashsale.gateway.state import gateway

routes = web.RouteTableDef()
Kind = Literal["draw", "waitlist"]


def _shown(entry: Entry, kind: Kind) -> dict[str, object]:
    return entry.draw_view() if kind == "draw" else entry.waitlist_view()


async def _join(request: web.Request, kind: Kind) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    spec = await read_json(request, EntrySpec, empty_ok=True)
    gw.limiter.check(buyer)
    join = gw.engine.draws.enter if kind == "draw" else gw.engine.waitlist.join
    outcome, entry = await join(request.match_info["id"], buyer, spec.quantity, spec.variant)
    return json_response({"entry": _shown(entry, kind)}, 201 if outcome == "created" else 200)


async def _mine(request: web.Request, kind: Kind) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    entry = await entry_of(gw.engine.redis, request.match_info["id"], buyer, kind)
    return json_response({"entry": _shown(entry, kind)})


@routes.post("/v1/drops/{id}/entries")
async def enter(request: web.Request) -> web.Response:
    return await _join(request, "draw")


@routes.get("/v1/drops/{id}/entries/me")
async def my_entry(request: web.Request) -> web.Response:
    return await _mine(request, "draw")


@routes.get("/v1/drops/{id}/entries")
async def every(request: web.Request) -> web.Response:
    gw = gateway(request)
    gw.auth.host(request)
    drop = found(await gw.engine.drops.get(request.match_info["id"]))
    if drop.admission != "draw":
        raise Refused("no_draw")
    entries = await gw.engine.draws.entries(request.match_info["id"])
    return json_response({"entries": [e.draw_view() for e in entries]})


@routes.post("/v1/drops/{id}/waitlist")
async def wait(request: web.Request) -> web.Response:
    return await _join(request, "waitlist")


@routes.get("/v1/drops/{id}/waitlist/me")
async def my_place(request: web.Request) -> web.Response:
    return await _mine(request, "waitlist")


@routes.delete("/v1/drops/{id}/waitlist/me")
async def leave(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    entry = await gw.engine.waitlist.leave(request.match_info["id"], buyer)
    return json_response({"entry": entry.waitlist_view()})
