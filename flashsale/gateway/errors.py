"""Every error leaves the gateway as {"error": {"code", "message"}}, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from flashsale.engine.errors import RedisError, Unavailable
from flashsale.engine.store import STORE_ERRORS

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Codes for errors aiohttp raises itself (routing, body size, bad requests).
_BY_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
    503: "unavailable",
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


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(data), status=status, content_type="application/json"
    )


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    response = json_response({"error": {"code": code, "message": message}}, status)
    response.headers.update(headers or {})
    return response


def unavailable(
    message: str = "the service is busy or its store is unreachable; retry",
) -> ApiError:
    return ApiError(503, "unavailable", message, {"Retry-After": "1"})


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_BODY:
        return error_response(
            413, "payload_too_large", f"request bodies are at most {MAX_BODY} bytes"
        )
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status, e.code, e.message, e.headers)
    except (Unavailable, RedisError, *STORE_ERRORS) as e:
        log.warning("unavailable: %r", e)
        err = unavailable()
        return error_response(err.status, err.code, err.message, err.headers)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _BY_STATUS.get(e.status, "error")
        headers = {k: v for k, v in e.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(e.status, code, e.reason or code, headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error")
