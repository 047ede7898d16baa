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

from flashsale.engine.errors import RedisError, Unavailable
from flashsale.engine.store import STORE_ERRORS
from flashsale.gateway.errors import (
    BY_STATUS,
    ERROR_CODE,
    MAX_BODY,
    ApiError,
    error_response,
    unavailable,
)
from flashsale.gateway.state import GATEWAY
from flashsale.logs import REQUEST_ID, REQUEST_ID_SHAPE, new_request_id
from flashsale.metrics import metrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PURCHASE_ROUTE = "/v1/drops/{id}/purchase"
_BUSY = ApiError(503, "unavailable", "this gateway is at capacity; retry", {"Retry-After": "1"})


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    given = request.headers.get("X-Request-Id")
    rid = given if given is not None and REQUEST_ID_SHAPE.match(given) else new_request_id()
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
        return error_response(
            413, "payload_too_large", f"request bodies are at most {MAX_BODY} bytes"
        )
    gw = request.app[GATEWAY]
    path = request.path
    # A /live stream is open for as long as someone watches: it is not work in progress.
    api = path.startswith("/v1/") and not path.endswith("/live")
    if api and gw.in_flight >= gw.max_in_flight:
        metrics().turned_away.inc()
        return _answer(_BUSY)
    gw.in_flight += api
    try:
        if path.startswith("/v1/"):
            gw.limiter.check_ip(gw.clients.of(request))
        return await handler(request)
    except ApiError as e:
        return _answer(e)
    except (Unavailable, RedisError, *STORE_ERRORS) as e:
        log.warning("unavailable: %r", e)
        return _answer(unavailable())
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = BY_STATUS.get(e.status, "error")
        headers = {k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(e.status, code, e.reason or code, headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error")
    finally:
        gw.in_flight -= api


def _answer(e: ApiError) -> web.Response:
    return error_response(e.status, e.code, e.message, e.headers)
