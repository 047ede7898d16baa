"""Raw client connections for the HTTP tests: exactly the bytes a test writes go out, and
the answers come back parsed by httptools, in order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools

from tests.stack import Stack


class Line:
    """One client connection: raw bytes out, parsed answers in (httptools, in order)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.answers: list[dict[str, Any]] = []
        self._current: dict[str, Any] = {}
        self.parser = httptools.HttpResponseParser(self)

    @classmethod
    async def open(cls, stack: Stack) -> Line:
        host, port = stack.base.removeprefix("http://").rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)))

    def on_message_begin(self) -> None:
        self._current = {"headers": {}, "body": b""}

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current["headers"][name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self._current["status"] = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._current["body"] += body

    def on_message_complete(self) -> None:
        answer = self._current
        answer["json"] = json.loads(answer["body"]) if answer["body"] else None
        self.answers.append(answer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answers_until(self, n: int, within: float = 10.0) -> list[dict[str, Any]]:
        """Reads until `n` whole answers have come (or raises on a close or time-out)."""
        async with asyncio.timeout(within):
            while len(self.answers) < n:
                data = await self.reader.read(65536)
                assert data, f"closed after {len(self.answers)} of {n} answers"
                self.parser.feed_data(data)
        return self.answers[:n]

    async def closed(self, within: float = 5.0) -> bool:
        """True once the server closes the connection (answers read meanwhile are kept)."""
        async with asyncio.timeout(within):
            while data := await self.reader.read(65536):
                self.parser.feed_data(data)
        return True

    def close(self) -> None:
        self.writer.close()


def request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
    version: str = "1.1",
) -> bytes:  # fmt: skip
    lines = [f"{method} {path} HTTP/{version}", "Host: test"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def buying(stack: Stack, drop: str, buyer: str, key: str, quantity: int = 1, **more: str) -> bytes:
    headers = {**stack.as_buyer(buyer), "Idempotency-Key": key, **more}
    return request("POST", f"/v1/drops/{drop}/purchase", headers, b'{"quantity":%d}' % quantity)
