"""POST /v1/drops/{id}/purchase: the buyer's tap. The decision itself is purchase.lua."""

from __future__ import annotations

from aiohttp import web

from flashsale.engine.specs import PurchaseSpec
from flashsale.gateway.bodies import idempotency_key, read_json
from flashsale.gateway.errors import error_response, json_response, unavailable
from flashsale.gateway.state import gateway

routes = web.RouteTableDef()

REFUSALS = {
    "not_found": (404, "no such drop"),
    "not_live": (409, "the drop is not live"),
    "sold_out": (409, "fewer units remain than asked for"),
    "limit_reached": (409, "this would pass the drop's per-buyer limit"),
    "idempotency_conflict": (422, "this Idempotency-Key was used with another body"),
}


@routes.post("/v1/drops/{id}/purchase")
async def purchase(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    key = idempotency_key(request)
    spec = await read_json(request, PurchaseSpec, empty_ok=True)
    gw.limiter.check(buyer)
    decision = await gw.engine.purchaser.purchase(
        request.match_info["id"], buyer, spec.quantity, key
    )
    if decision.order is not None:
        status = 200 if decision.outcome == "replay" else 201
        return json_response({"order": decision.order.public()}, status)
    if decision.outcome == "unavailable":
        raise unavailable("this request could not be decided; retry with the same key")
    # Most answers of a burst are refusals: answered directly, not raised and caught.
    status, message = REFUSALS[decision.outcome]
    return error_response(status, decision.outcome, message)
