"""What every request passes before its handler: size, admission, the address's rate limit;
the one place an exception becomes the contract's JSON error; and where each request gets
its id (X-Request-Id, given or made; every log line of the request carries it), is timed,
and a purchase's outcome is counted for /metrics.

Admission control: a gateway takes at most `max_in_flight` API requests at once. When Redis
is slow or the process is saturated, the next one is answered 503 with Retry-After at once
rather than queued without bound, so a client learns in milliseconds to come back, and the
requests already admitted keep their latency. Health and metrics are never turned away: a
busy gateway is not a dead one; nor are /live streams counted, which stay open as long as
someone watches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from flashsale.gateway.errors import (
    BUSY,
    BY_STATUS,
    ERROR_CODE,
    INTERNAL,
    MAX_BODY,
    TOO_LARGE,
    answer_error,
    error_response,
    response,
    translate,
)
from flashsale.gateway.state import GATEWAY
from flashsale.logs import REQUEST_ID, request_id
from flashsale.metrics import metrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PURCHASE_ROUTE = "/v1/drops/{id}/purchase"


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    rid = request_id(request.headers.get("X-Request-Id"))
    REQUEST_ID.set(rid)
    ERROR_CODE.set(None)
    response = await _guarded(request, handler)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    if not response.prepared:  # a /live stream has sent its headers long ago
        response.headers["X-Request-Id"] = rid
        metrics().time_request(route, time.perf_counter() - start)
    if route == PURCHASE_ROUTE:
        code = ERROR_CODE.get()
        metrics().count_purchase(code or ("created" if response.status == 201 else "replay"))
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return response(TOO_LARGE)
    gw = request.app[GATEWAY]
    path = request.path
    # A /live stream is open for as long as someone watches: it is not work in progress.
    api = path.startswith("/v1/") and not path.endswith("/live")
    if api and not gw.admit():
        return response(BUSY)
    try:
        if path.startswith("/v1/"):
            forwarded = request.headers.getall("X-Forwarded-For", ())
            gw.limiter.check_ip(gw.clients.of(request.remote, forwarded))
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = BY_STATUS.get(e.status, "error")
        headers = {k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(e.status, code, e.reason or code, headers)
    except Exception as e:
        error = translate(e)
        if error is not None:
            return response(answer_error(error))
        log.exception("unhandled error on %s %s", request.method, request.path)
        return response(INTERNAL)
    finally:
        if api:
            gw.in_flight -= 1
