"""A keep-alive HTTP/1.1 client connection on a raw asyncio protocol.

aiohttp's client spends more CPU per request than the server it measures; a load tool that
is slower than its target measures itself. One request at a time per connection (no
pipelining, like wrk and like a phone), responses parsed by httptools (llhttp).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import httptools

OnAnswer = Callable[["Connection", int, bytes], None]
OnLost = Callable[["Connection"], None]


class Connection(asyncio.Protocol):
    """One socket. Its owner writes a request, and hears back through `on_answer` (status and
    body) or `on_lost` (the socket closed with or without a request in flight)."""

    __slots__ = ("_body", "_on_answer", "_on_lost", "_parser", "transport")

    def __init__(self, on_answer: OnAnswer, on_lost: OnLost) -> None:
        self._on_answer = on_answer
        self._on_lost = on_lost
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self._body)
        self._body = []
        status = self._parser.get_status_code()
        if not self._parser.should_keep_alive():
            self.close()  # first, so the owner sends nothing more on this socket
        self._on_answer(self, status, body)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_lost(self)


def split_url(url: str) -> tuple[str, int, str]:
    """(host, port, Host header) of an http:// base URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the load tool speaks plain http://, not {url!r}")
    port = parts.port or 80
    return parts.hostname, port, parts.netloc


def request_bytes(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    """One request on the wire: built once per attempt, replayed byte for byte on retries."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + body
