"""A queue drop's waiting room, for buyers: take a ticket, poll it (with Retry-After)."""

from __future__ import annotations

from aiohttp import web

from flashsale.engine import Ticket
from flashsale.gateway.errors import Answer, ok, response
from flashsale.gateway.state import Gateway, gateway

routes = web.RouteTableDef()


def ticket_answer(ticket: Ticket, status: int = 200) -> Answer:
    answer = ok({"ticket": ticket}, status)
    if ticket.retry_after_s is None:
        return answer
    return answer._replace(headers=(("Retry-After", str(ticket.retry_after_s)),))


async def poll_answer(gw: Gateway, authorization: str | None, drop_id: str) -> Answer:
    """GET /v1/drops/{id}/queue, for either HTTP path: the waiting room's hot call."""
    buyer = gw.auth.require("buyer", authorization).id
    return ticket_answer(await gw.engine.queue.poll(drop_id, buyer))


@routes.post("/v1/drops/{id}/queue")
async def join(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    gw.limiter.check(buyer)
    outcome, ticket = await gw.engine.queue.join(request.match_info["id"], buyer)
    return response(ticket_answer(ticket, 201 if outcome == "created" else 200))


@routes.get("/v1/drops/{id}/queue")
async def poll(request: web.Request) -> web.Response:
    gw = gateway(request)
    return response(
        await poll_answer(gw, request.headers.get("Authorization"), request.match_info["id"])
    )
