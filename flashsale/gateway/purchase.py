"""The buyer's tap, POST /v1/drops/{id}/purchase: the one piece of code that turns a request
into a purchase and its decision into an answer, whichever HTTP path carried it (aiohttp's
route below, or the fast path in `fastpath/`). The decision itself is purchase.lua.

It is split in two around the wait for Redis, `check` and `answer`, so that the fast path
can hand the purchaser a callback (`Purchaser.submit`) instead of a task per request.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from aiohttp import web

from flashsale.engine import Decision, PurchaseSpec, Refusal
from flashsale.gateway.bodies import decode_json, idempotency_key
from flashsale.gateway.errors import (
    UNDECIDED,
    VARIANT_REFUSALS,
    Answer,
    answer_error,
    ok,
    refusal,
    response,
    unavailable,
)
from flashsale.gateway.state import Gateway, gateway

routes = web.RouteTableDef()

REFUSALS: dict[Refusal, tuple[int, str]] = {
    "not_found": (404, "no such drop"),
    "not_live": (409, "the drop is not live"),
    "not_admitted": (409, "this drop sells through its queue: buy with your ticket's pass"),
    "draw_only": (409, "this drop's units go to the winners of its draw: enter the draw"),
    "sold_out": (409, "fewer units remain than asked for"),
    "limit_reached": (409, "this would pass the drop's per-buyer limit"),
    "idempotency_conflict": (422, "this Idempotency-Key was used with another body"),
    **VARIANT_REFUSALS,
}
# Most answers of a burst are refusals: made once, not per request.
# A refusal's code is its outcome, but for a 400: the request was bad, not refused.
_REFUSED = {
    outcome: refusal(status, "invalid_request" if status == 400 else outcome, text)
    for outcome, (status, text) in REFUSALS.items()
}
_VOIDED = answer_error(unavailable("no purchase was made; retry with the same key"))
_NOT_REPLICATED = refusal(504, "undecided", UNDECIDED, {"Retry-After": "1"})


class Tap(NamedTuple):
    """A purchase request, checked: what the purchaser is handed."""

    buyer: str
    quantity: int
    key: str | None
    variant: str | None
    pass_: str | None  # Flashsale-Pass: a queue drop's admission (any other value: refused)


def check(
    gw: Gateway, authorization: str | None, key: str | None, body: bytes, pass_: str | None
) -> Tap:
    """The buyer, quantity, Idempotency-Key, variant and pass of a purchase request, or
    ApiError: 401, 403, 400, 429, in that order. Then the purchaser decides
    (`Purchaser.submit`)."""
    buyer = gw.auth.require("buyer", authorization).id
    checked_key = idempotency_key(key)
    spec = decode_json(body, PurchaseSpec, empty_ok=True)
    gw.limiter.check(buyer)
    return Tap(buyer, spec.quantity, checked_key, spec.variant, _pass(pass_))


# A pass as the door makes them (32 hex digits). Any other value is a pass that cannot be
# valid: it still goes to Redis as one (409 `not_admitted`, after `not_live`), but as a
# value no ticket holds, never as the header's bytes: a header that is not UTF-8 failed to
# pack, and took the rest of its batch down with it.
_PASS = re.compile(r"[0-9a-f]{32}")
NO_PASS = "-"


def _pass(given: str | None) -> str | None:
    if not given:
        return None
    return given if _PASS.fullmatch(given) else NO_PASS


def answer(decision: Decision) -> Answer:
    order = decision.order
    if order is not None:
        if decision.outcome == "replay":
            return ok({"order": order.public()}, 200, "replay")
        return ok({"order": order.public()}, 201, "created")
    match decision.outcome:
        case "unavailable":  # a voided request id: nothing was made
            return _VOIDED
        case "undecided":  # made, but no replica has it yet
            return _NOT_REPLICATED
        case "compacted":  # the store had no order under the key
            return _REFUSED["not_live"]
        case "created" | "replay":  # these carry their order
            raise AssertionError(f"{decision.outcome} without an order")
        case refusal:
            return _REFUSED[refusal]


@routes.post("/v1/drops/{id}/purchase")
async def purchase(request: web.Request) -> web.Response:
    gw, h = gateway(request), request.headers
    body = await request.read()  # over the size limit: 413 from aiohttp
    tap = check(gw, h.get("Authorization"), h.get("Idempotency-Key"), body, h.get("Flashsale-Pass"))
    decision = await gw.engine.purchaser.purchase(request.match_info["id"], *tap)
    return response(answer(decision))
