"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from aiohttp import web

from flashsale.gateway.errors import error_response, json_response
from flashsale.gateway.state import gateway

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    gw = gateway(request)
    checks = {"redis": gw.engine.ping(), "store": gw.store.ping()}
    failed = []
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, 1.0)
        except Exception:
            failed.append(name)
    if failed:
        return error_response(
            503, "unavailable", f"not reachable: {', '.join(failed)}", {"Retry-After": "1"}
        )
    return json_response({"status": "ready"})
