"""A queue drop's waiting room, for buyers: take a ticket, poll it (with Retry-After)."""

from __future__ import annotations

from aiohttp import web

from flashsale.engine import Ticket
from flashsale.gateway.errors import json_response
from flashsale.gateway.state import gateway

routes = web.RouteTableDef()


def _answer(ticket: Ticket, status: int) -> web.Response:
    r = json_response({"ticket": ticket}, status)
    if ticket.retry_after_s is not None:
        r.headers["Retry-After"] = str(ticket.retry_after_s)
    return r


@routes.post("/v1/drops/{id}/queue")
async def join(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    gw.limiter.check(buyer)
    outcome, ticket = await gw.engine.queue.ticket(request.match_info["id"], buyer, join=True)
    return _answer(ticket, 201 if outcome == "created" else 200)


@routes.get("/v1/drops/{id}/queue")
async def poll(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    _, ticket = await gw.engine.queue.ticket(request.match_info["id"], buyer, join=False)
    return _answer(ticket, 200)
