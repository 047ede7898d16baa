"""aiohttp's own answers to requests it cannot parse, in the contract's error shape.

A request line with control characters, an unknown method, a header value with control
bytes or a bad Content-Length never reaches the application or its middleware: aiohttp's
protocol handler answers it, in plain text, echoing the offending line (a bearer token
included). Here that answer is the contract's JSON with a fixed message instead.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from flashsale.gateway.errors import BY_STATUS, error_response

log = logging.getLogger(__name__)


class _JsonErrors(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # Hostile input is routine on a public port: not worth an error line each.
        log.debug("unreadable request from %s: %r", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer was under way; the connection is closed")
        if status >= 500:
            response = error_response(status, "internal", "internal error")
        else:
            code = BY_STATUS.get(status, "invalid_request")
            response = error_response(status, code, "the request is not valid HTTP")
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        handler.__class__ = _JsonErrors  # the same slots: only handle_error differs
        return handler


def answer_unreadable_in_json(runner: web.AppRunner) -> None:
    """To call after `runner.setup()` and before a site starts."""
    server = runner.server
    assert server is not None, "the runner is not set up"
    server.__class__ = _JsonErrorServer
