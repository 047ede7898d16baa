"""Every error leaves the gateway as {"error": {"code", "message"}}, never a traceback."""

from __future__ import annotations

from contextvars import ContextVar

import msgspec
from aiohttp import web

MAX_BODY = 16 * 1024
# The error code this request was last answered with (each request runs in its own task,
# so its own context): the middleware counts purchase outcomes by it.
ERROR_CODE: ContextVar[str | None] = ContextVar("error_code", default=None)

# Codes for errors aiohttp raises itself (routing, body size, bad requests).
BY_STATUS = {
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
    ERROR_CODE.set(code)  # for the metrics, without reading the body back
    return response


def unavailable(
    message: str = "the service is busy or its store is unreachable; retry",
) -> ApiError:
    return ApiError(503, "unavailable", message, {"Retry-After": "1"})
