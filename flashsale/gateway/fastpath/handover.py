"""aiohttp's side of a connection the fast path handed over: its first request that is not a
hot call and everything after it, re-framed as canonical HTTP/1.1 (httptools does not say
where in a read a message starts, so the bytes cannot simply be passed on) and held until
the answers the fast path still owes are written; then aiohttp's handler gets the transport
and the connection for good."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp.web_protocol import RequestHandler

# What aiohttp is sent to end a line on a request that cannot be served: not HTTP, so it
# answers 400 after what it owes and closes.
POISON = b"\x00 / HTTP/1.1\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
HELD_MAX = 64 * 1024  # bytes held for aiohttp while earlier answers are still owed


class Relay:
    def __init__(self, handler: RequestHandler) -> None:
        self.handler = handler
        self.attached = False
        self.held: list[bytes] = []
        self.held_bytes = 0

    def head(
        self, method: bytes, target: bytes, version: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        lines = [b"%s %s HTTP/%s\r\n" % (method, target, version.encode())]
        lines += [
            b"%s: %s\r\n" % (name, value)
            for name, value in headers
            if name.lower() != b"upgrade"  # not spoken; aiohttp must not switch either
        ]
        lines.append(b"\r\n")
        self.send(b"".join(lines))

    def send(self, data: bytes) -> None:
        if self.attached:
            self.handler.data_received(data)
            return
        self.held.append(data)
        self.held_bytes += len(data)

    @property
    def too_much_held(self) -> bool:
        return self.held_bytes > HELD_MAX

    def attach(self, transport: asyncio.Transport) -> None:
        """aiohttp has the line from now on: the transport, then what was held."""
        self.attached = True
        self.handler.connection_made(transport)
        held, self.held, self.held_bytes = self.held, [], 0
        for data in held:
            self.handler.data_received(data)


def framed(body: bytes, chunked: bool) -> bytes:
    """A piece of a request's body framed again as it came (llhttp took the framing off)."""
    return b"%x\r\n%s\r\n" % (len(body), body) if chunked else body


__all__ = ["LAST_CHUNK", "POISON", "Relay", "framed"]
