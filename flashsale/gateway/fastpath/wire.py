"""What the fast path writes on the wire: HTTP/1.1 answers as bytes, each in its request's
slot until those before it are out, and the limits every request it reads is held to."""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from flashsale.gateway.errors import MAX_BODY, Answer, refusal

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# The Connection header an answer carries: none on HTTP/1.1 keep-alive (its default).
KEEP_ALIVE_10 = b"Connection: keep-alive\r\n"
CLOSE = b"Connection: close\r\n"


def connection_header(keep_alive: bool, version: str) -> bytes:
    if not keep_alive:
        return CLOSE
    return b"" if version == "1.1" else KEEP_ALIVE_10


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one connection may make the gateway hold (aiohttp's, or tighter)."""

    idle_s: float = 75.0  # a keep-alive connection with nothing to do is closed after this
    read_s: float = 10.0  # a request must arrive whole this long after its first byte
    max_url: int = 8190  # bytes of the request target (414)
    max_head: int = 16 * 1024  # bytes of all header lines together (431)
    max_headers: int = 100  # header lines (431)
    max_body: int = MAX_BODY  # bytes of a body (413)
    max_pipeline: int = 32  # requests read ahead of their answers before reading pauses


# What a request that breaks them is answered (and the connection closes after it).
NOT_HTTP = refusal(400, "invalid_request", "the request is not valid HTTP")
BAD_VERSION = refusal(400, "invalid_request", "only HTTP/1.0 and 1.1 are spoken here")
NO_UPGRADE = refusal(400, "invalid_request", "protocol upgrades are not supported")
BAD_EXPECT = refusal(417, "expectation_failed", "only 100-continue is expected")
TIMED_OUT = refusal(408, "request_timeout", "the request did not arrive in time")
URI_TOO_LONG = refusal(414, "uri_too_long", "the request target is too long")
HEADERS_TOO_LARGE = refusal(431, "headers_too_large", "the request's headers are too large")


class Clock:
    """The Date header, formatted once a second rather than once an answer."""

    __slots__ = ("_date", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._date = b""

    def date(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._date = formatdate(second, usegmt=True).encode()
        return self._date


_heads: dict[tuple[int, bytes], bytes] = {}


def encode(answer: Answer, request_id: str, connection: bytes, clock: Clock) -> bytes:
    """One whole answer: status line, headers, JSON body."""
    head = _heads.get((answer.status, connection))
    if head is None:
        reason = _REASONS.get(answer.status, b"Unknown")
        head = _heads[(answer.status, connection)] = (
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nServer: flashsale\r\n%s"
            % (answer.status, reason, connection)
        )
    extra = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in answer.headers)
    return head + b"Content-Length: %d\r\nDate: %s\r\nX-Request-Id: %s\r\n%s\r\n%s" % (
        len(answer.body), clock.date(), request_id.encode(), extra, answer.body,
    )  # fmt: skip


class Refused(Exception):
    """Raised inside a parser callback to stop reading: the request gets `answer`, and the
    connection closes after it (nothing after a broken request can be trusted)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.outcome)
        self.answer = answer


class Slot:
    """One request's place in the order answers go out."""

    __slots__ = ("close", "connection", "continue_due", "data", "request_id", "started")

    def __init__(self, started: float, connection: bytes, close: bool) -> None:
        self.data: bytes | None = None
        self.started = started
        self.connection = connection  # the Connection header its answer carries
        self.close = close
        self.request_id = ""
        self.continue_due = False  # Expect: 100-continue, sent once the slot is first
