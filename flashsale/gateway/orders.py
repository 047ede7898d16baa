"""A buyer's own order: read it, pay it. Another buyer's order does not exist (404)."""

from __future__ import annotations

from aiohttp import web

from flashsale.gateway.errors import ApiError, json_response
from flashsale.gateway.state import gateway

routes = web.RouteTableDef()

NOT_FOUND = ApiError(404, "not_found", "no such order")


@routes.get("/v1/orders/{id}")
async def get(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = gw.auth.identify(request.headers.get("Authorization"))
    order_id = request.match_info["id"]
    order, settled = await gw.engine.orders.find(order_id, gw.store)
    if order is None or (who.role == "buyer" and order.buyer != who.id):
        raise NOT_FOUND
    return json_response({"order": {**order.public(), "settled": settled}})


@routes.post("/v1/orders/{id}/pay")
async def pay(request: web.Request) -> web.Response:
    gw = gateway(request)
    buyer = gw.auth.buyer(request).id
    gw.limiter.check(buyer)
    outcome, order = await gw.engine.orders.pay(request.match_info["id"], buyer)
    if outcome == "paid" and order is not None:
        return json_response({"order": order.public()})
    if outcome == "expired":
        raise ApiError(409, "expired", "the payment window has ended; the units are back on sale")
    if outcome == "not_payable":
        raise ApiError(409, "not_payable", "this order is confirmed and needs no payment")
    raise NOT_FOUND
