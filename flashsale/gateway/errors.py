"""Every error leaves the gateway as {"error": {"code", "message"}}, never a traceback.

Both HTTP paths (aiohttp's, and the buyer's fast path in `fastpath/`) build what they send
as an `Answer`; `translate` is the one place where an exception from below (the engine,
Redis, the store) becomes the API error it means.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import NamedTuple, cast

import msgspec
from aiohttp import web

from flashsale.engine import (
    REDIS_ERRORS,
    STORE_ERRORS,
    DestinationRefused,
    FairRefusal,
    Refusal,
    Refused,
    Unavailable,
    Undecided,
    VariantError,
)

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
# The error code this request was last answered with (each request runs in its own task,
# so its own context): the middleware counts purchase outcomes by it.
ERROR_CODE: ContextVar[str | None] = ContextVar("error_code", default=None)

# Codes for errors raised by the HTTP layers themselves (routing, body size, bad requests).
BY_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    417: "expectation_failed",
    429: "rate_limited",
    431: "headers_too_large",
    503: "unavailable",
    504: "undecided",
}


# A variant that does not fit the drop is the request's fault (400), from a purchase
# (purchase.lua) or a restock (engine VariantError) alike.
VARIANT_REFUSALS: dict[Refusal, tuple[int, str]] = {
    "unknown_variant": (400, "the drop has no variant of this code"),
    "variant_required": (400, 'this drop has variants: say which one ("variant")'),
    "no_variants": (400, 'this drop has no variants: leave "variant" out'),
}


# A queue ticket's, a draw entry's or a waitlist entry's call that the drop refuses.
FAIR_REFUSALS: dict[FairRefusal, tuple[int, str, str]] = {
    "not_found": (404, "not_found", "no such drop"),
    "none": (404, "not_found", "you have none on this drop"),
    "no_queue": (409, "no_queue", "this drop has no waiting room (admission is not queue)"),
    "no_draw": (409, "no_draw", "this drop has no draw (admission is not draw)"),
    "no_waitlist": (
        409,
        "no_waitlist",
        "only first-come drops with a payment window have a waitlist",
    ),
    "not_live": (409, "not_live", "the drop is not live"),
    "entries_closed": (409, "entries_closed", "the draw's entries are closed"),
    "not_sold_out": (409, "not_sold_out", "enough units remain: buy them instead"),
    "limit_reached": (409, "limit_reached", "this would pass the drop's per-buyer limit"),
    **{
        cast(FairRefusal, r): (status, "invalid_request", text)
        for r, (status, text) in VARIANT_REFUSALS.items()
    },
}


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class Answer(NamedTuple):
    """What either HTTP path sends: a status, a JSON body, and extra headers; `outcome` is
    what /metrics counts a purchase as (created, replay, or the error code)."""

    status: int
    body: bytes
    outcome: str = "ok"
    headers: tuple[tuple[str, str], ...] = ()


_encode = msgspec.json.encode
UNDECIDED = "this purchase could not be decided in time; retry with the same Idempotency-Key"


def ok(data: object, status: int = 200, outcome: str = "ok") -> Answer:
    return Answer(status, _encode(data), outcome)


def refusal(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    body = _encode({"error": {"code": code, "message": message}})
    return Answer(status, body, code, tuple((headers or {}).items()))


def answer_error(e: ApiError) -> Answer:
    return refusal(e.status, e.code, e.message, e.headers)


def unavailable(
    message: str = "the service is busy or its store is unreachable; retry",
) -> ApiError:
    return ApiError(503, "unavailable", message, {"Retry-After": "1"})


def translate(e: Exception) -> ApiError | None:
    """The API error an exception stands for; None for a bug (answered 500 by the caller)."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, Refused):
        return ApiError(*FAIR_REFUSALS[e.refusal])
    if isinstance(e, VariantError):
        status, message = VARIANT_REFUSALS[e.refusal]
        return ApiError(status, "invalid_request", message)
    if isinstance(e, DestinationRefused):  # a webhook's URL the rules do not allow
        return ApiError(400, "invalid_request", str(e))
    if isinstance(e, Undecided):
        log.warning("undecided: %r", e)
        return ApiError(504, "undecided", UNDECIDED, {"Retry-After": "1"})
    if isinstance(e, (Unavailable, *REDIS_ERRORS, *STORE_ERRORS)):
        log.warning("unavailable: %r", e)
        return unavailable()
    return None


INTERNAL = refusal(500, "internal", "internal error")
TOO_LARGE = refusal(413, "payload_too_large", f"request bodies are at most {MAX_BODY} bytes")
BUSY = refusal(503, "unavailable", "this gateway is at capacity; retry", {"Retry-After": "1"})


def response(answer: Answer) -> web.Response:
    """An Answer as aiohttp sends it."""
    r = web.Response(body=answer.body, status=answer.status, content_type="application/json")
    if answer.headers:
        r.headers.update(answer.headers)
    if answer.status >= 400:
        ERROR_CODE.set(answer.outcome)  # for the metrics, without reading the body back
    return r


def json_response(data: object, status: int = 200) -> web.Response:
    return response(ok(data, status))


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return response(refusal(status, code, message, headers))
