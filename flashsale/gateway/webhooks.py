"""Webhook subscriptions, for hosts: make, list, end; their deliveries; a replay."""

from __future__ import annotations

import re
from typing import cast

from aiohttp import web

from flashsale.engine import (
    DELIVERY_STATUSES,
    DeliveryStatus,
    ReplaySpec,
    Webhook,
    WebhookSpec,
    replay_since,
    subscribe,
)
from flashsale.gateway.bodies import decode_cursor, encode_cursor, invalid, query_int, read_json
from flashsale.gateway.errors import ApiError, json_response
from flashsale.gateway.state import Gateway, gateway

routes = web.RouteTableDef()
PAGE_MAX = 1_000
# A deliveries cursor is opaque: "d<event time, ms>:<event id>" (an event id is
# evt_<order id>_<kind>) in base64url.
CURSOR = re.compile(r"d([0-9]{1,15}):(evt_[a-z0-9_-]{1,80})")


async def _found(gw: Gateway, request: web.Request) -> Webhook:
    gw.auth.host(request)
    webhook = await gw.store.webhook(request.match_info["id"])
    if webhook is None:
        raise ApiError(404, "not_found", "no such webhook")
    return webhook


@routes.post("/v1/webhooks")
async def create(request: web.Request) -> web.Response:
    gw = gateway(request)
    gw.auth.host(request)
    spec = await read_json(request, WebhookSpec)
    webhook = await subscribe(gw.store, spec, gw.webhook_allow_private)
    return json_response({"webhook": webhook.public(with_secret=True)}, 201)


@routes.get("/v1/webhooks")
async def every(request: web.Request) -> web.Response:
    gw = gateway(request)
    gw.auth.host(request)
    return json_response({"webhooks": [w.public() for w in await gw.store.webhooks()]})


@routes.get("/v1/webhooks/{id}")
async def one(request: web.Request) -> web.Response:
    gw = gateway(request)
    return json_response({"webhook": (await _found(gw, request)).public()})


@routes.delete("/v1/webhooks/{id}")
async def delete(request: web.Request) -> web.Response:
    gw = gateway(request)
    webhook = await _found(gw, request)
    if not await gw.store.delete_webhook(webhook.id):
        raise ApiError(404, "not_found", "no such webhook")
    return json_response({"webhook": webhook.public()})


@routes.get("/v1/webhooks/{id}/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    gw = gateway(request)
    webhook = await _found(gw, request)
    status = request.query.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise invalid(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
    limit = query_int(request, "limit", 100, 1, PAGE_MAX)
    after = (-1, "")
    if (raw := request.query.get("after")) is not None:
        m = decode_cursor(raw, CURSOR)
        after = (int(m[1]), m[2])
    page = await gw.store.deliveries(webhook.id, cast(DeliveryStatus | None, status), after,
                                     limit + 1)  # fmt: skip
    shown, more = page[:limit], len(page) > limit
    last = shown[-1] if shown else None
    next_cursor = encode_cursor(f"d{last.event_at}:{last.event_id}") if more and last else None
    return json_response({"deliveries": [d.public() for d in shown], "next": next_cursor})


@routes.post("/v1/webhooks/{id}/replay")
async def replay(request: web.Request) -> web.Response:
    gw = gateway(request)
    webhook = await _found(gw, request)
    spec = await read_json(request, ReplaySpec)
    queued = await replay_since(gw.store, gw.engine.drops, webhook, spec.since)
    return json_response({"replayed": queued})
