"""One client connection on the gateway's port, read with httptools.

The buyer's hot calls (routes.py) are read here and served by hotcalls.py, straight off the
socket: no request or response objects, no router, no middleware, no task per purchase.
Everything else is aiohttp's: the first request on a connection that is not a hot call
turns the connection over to an aiohttp request handler for good, and from then on this
parser only frames what it reads, forwarding each request to that handler as canonical
HTTP/1.1. So every byte on the port is parsed and bounded in one place (the limits in
wire.py), and what aiohttp serves sees only requests that passed them.

Answers leave in the order their requests came (pipelining): each request takes a slot in
`queue` when its headers are read, and a slot is written only once every slot before it
has been. A connection turned over to aiohttp waits for the slots it still owes before
aiohttp writes anything.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING, cast

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from flashsale.gateway.errors import INTERNAL, TOO_LARGE, Answer
from flashsale.gateway.fastpath import hotcalls, wire
from flashsale.gateway.fastpath.handover import LAST_CHUNK, POISON, Relay, framed
from flashsale.gateway.fastpath.routes import Route, route_of
from flashsale.gateway.fastpath.wire import Refused, Slot

if TYPE_CHECKING:
    from flashsale.gateway.fastpath.site import Front

log = logging.getLogger(__name__)

FEED_BYTES = 4096


class Connection(asyncio.Protocol):
    def __init__(self, front: Front) -> None:
        self.front = front
        self.limits = front.limits
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.queue: deque[Slot] = deque()
        self.deadline = math.inf  # loop time: idle or read timeout (front.sweep)
        self.in_message = False
        self.done_reading = False  # after a refused request, or when closing
        self.shutting = False
        self.read_paused = False
        self.write_paused = False
        self.relay: Relay | None = None  # aiohttp's side, once the line is handed over
        self.unfed = bytearray()  # read, not yet parsed: waits for the pipeline to drain
        self.feeding_due = False
        self.headers: dict[bytes, bytes] = {}  # what hotcalls.WANTED names, once read
        self.forwarded: list[str] = []
        self.started = 0.0  # perf_counter at the request's first byte
        self._reset()

    def _reset(self) -> None:
        self.target = b""
        self.route: Route | None = None
        self.drop_id = ""
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.head_fed = 0
        self.head_done = False
        self.head_sent = False  # aiohttp has this request's head
        self.body = b""
        self.chunked = False
        self.slot: Slot | None = None

    # ---- transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is not one
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else None
        self.front.opened(self)
        self.deadline = self.front.loop.time() + self.limits.idle_s

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.closed(self)
        self.transport = None
        self.done_reading = True
        if self.relay is not None and self.relay.attached:
            self.relay.handler.connection_lost(exc)

    def eof_received(self) -> bool | None:
        if self.relay is not None:
            if self.relay.attached:
                self.relay.handler.eof_received()
                return None
            return True  # aiohttp gets the line once the answers owed are out
        self.done_reading = True
        if not self.queue:
            return None  # nothing owed: close
        for slot in self.queue:  # answer what was asked, then close
            slot.close, slot.connection = True, wire.CLOSE
        return True

    def pause_writing(self) -> None:
        self._writing(paused=True)

    def resume_writing(self) -> None:
        self._writing(paused=False)

    def _writing(self, paused: bool) -> None:
        """The client stopped (or resumed) reading its answers."""
        if self.relay is not None and self.relay.attached:
            handler = self.relay.handler
            (handler.pause_writing if paused else handler.resume_writing)()
            return
        self.write_paused = paused
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.done_reading:
            return
        if self.unfed:  # parsing waits for answers to go out; reading has paused too
            self.unfed += data
        elif len(data) <= FEED_BYTES and len(self.queue) < self.limits.max_pipeline:
            self._parse(data)  # the usual case: a request or a few, in one read
        else:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Parses in pieces of at most FEED_BYTES, so that a client pipelining a whole burst
        in one write is stopped at `max_pipeline` unanswered requests (give or take one
        piece): the rest waits, unparsed, until answers have gone out."""
        for start in range(0, len(data), FEED_BYTES):
            if self.done_reading:
                return
            if len(self.queue) >= self.limits.max_pipeline:
                self.unfed = bytearray(data[start:])
                self._update_reading()
                return
            self._parse(data if len(data) <= FEED_BYTES else data[start : start + FEED_BYTES])

    def _resume_feeding(self) -> None:
        self.feeding_due = False
        unfed, self.unfed = self.unfed, bytearray()
        if unfed and self.transport is not None:
            self._feed(bytes(unfed))
        self._update_reading()

    def _parse(self, data: bytes) -> None:
        was_in_head = self.in_message and not self.head_done
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as e:
            # Upgrades are not spoken here: the request was served as a plain one (a body
            # would have been skipped, and is refused in on_headers_complete).
            rest = data[e.args[0] :]
            if rest:
                self._parse(rest)
            return
        except HttpParserCallbackError as e:
            refused = e.__context__
            if isinstance(refused, Refused):
                self._fail(refused.answer)
                return
            log.error("fast path callback failed", exc_info=refused)
            self._fail(INTERNAL)
            return
        except HttpParserError:
            self._fail(wire.NOT_HTTP)
            return
        # A head still incomplete: httptools holds its partial header line, unbounded; the
        # chunks that arrived wholly inside the head count against max_head too.
        if was_in_head and self.in_message and not self.head_done:
            self.head_fed += len(data)
            if self.head_fed + self.head_bytes > self.limits.max_head:
                self._fail(wire.HEADERS_TOO_LARGE)

    # ---- httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()
        self.in_message = True
        self.started = time.perf_counter()
        self.deadline = self.front.loop.time() + self.limits.read_s

    def on_url(self, url: bytes) -> None:
        self.target += url
        if len(self.target) > self.limits.max_url:
            raise Refused(wire.URI_TOO_LONG)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called for every header of every request: kept to the least, read once complete.
        if self.head_done:
            return  # a chunked body's trailer: not headers of the request
        self.raw_headers.append((name, value))
        self.head_bytes += len(name) + len(value) + 4
        limits = self.limits
        if self.head_bytes > limits.max_head or len(self.raw_headers) > limits.max_headers:
            raise Refused(wire.HEADERS_TOO_LARGE)

    def on_headers_complete(self) -> None:
        self.head_done = True
        parser = self.parser
        route, self.drop_id = route_of(parser.get_method(), self.target)
        if self.relay is not None:
            route = "aiohttp"  # the line is aiohttp's now
        self.route = route
        self.headers, self.forwarded = hotcalls.read_headers(self.raw_headers)
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise Refused(wire.BAD_VERSION)
        headers = self.headers
        self.chunked = b"transfer-encoding" in headers
        length = int(headers.get(b"content-length", b"0"))  # llhttp checked its digits
        if parser.should_upgrade() and (length or self.chunked):
            raise Refused(wire.NO_UPGRADE)
        keep = parser.should_keep_alive() and not self.shutting
        if route == "aiohttp":
            self._relay_head(version)
            return
        if length > self.limits.max_body:
            raise Refused(TOO_LARGE)
        slot = self.slot = Slot(self.started, wire.connection_header(keep, version), not keep)
        self.queue.append(slot)
        expect = headers.get(b"expect")
        if expect is not None:
            if expect.lower() != b"100-continue":
                raise Refused(wire.BAD_EXPECT)
            if version == "1.1" and (length or self.chunked):
                slot.continue_due = True
                if slot is self.queue[0]:
                    self._flush()
        if len(self.queue) >= self.limits.max_pipeline:
            self._update_reading()

    def on_body(self, body: bytes) -> None:
        if self.route == "aiohttp":
            self._to_aiohttp(framed(body, self.chunked))
            return
        self.body = self.body + body if self.body else body
        if len(self.body) > self.limits.max_body:
            raise Refused(TOO_LARGE)

    def on_message_complete(self) -> None:
        self.in_message = False
        self.deadline = math.inf
        if self.route == "aiohttp":
            if self.chunked:
                self._to_aiohttp(LAST_CHUNK)
            self._reset()
            return
        slot = self.slot
        assert slot is not None
        slot.continue_due = False
        hotcalls.serve(self, slot)
        self._reset()

    # ---- writing, in order
    def answer(self, slot: Slot, answer: Answer) -> None:
        """A request's answer, written once every slot before it has been."""
        slot.data = wire.encode(answer, slot.request_id, slot.connection, self.front.clock)
        if self.queue and slot is self.queue[0]:
            self._flush()

    def abandon(self) -> None:
        """Stopping mid-decision: no answer can be promised, so the line closes."""
        if self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        transport, queue = self.transport, self.queue
        if transport is None:
            return
        while queue:
            slot = queue[0]
            if slot.data is None:
                if slot.continue_due:
                    slot.continue_due = False
                    transport.write(wire.CONTINUE)
                break
            queue.popleft()
            transport.write(slot.data)
            if slot.close:
                self.done_reading = True
                queue.clear()
                transport.close()
                return
        if queue or self.in_message:
            self._update_reading()
            return
        if self.relay is not None:
            self._attach()
        elif self.shutting:
            transport.close()
        else:
            self.deadline = self.front.loop.time() + self.limits.idle_s
            self._update_reading()

    def _fail(self, answer: Answer) -> None:
        """A request that cannot be served: its answer after those owed, then close."""
        self.done_reading = True
        if self.relay is not None:
            if self.head_sent:
                # aiohttp is reading this request's body: nothing can be said in order
                if self.transport is not None:
                    self.transport.close()
                return
            self._to_aiohttp(POISON)
            return
        slot = self.slot
        if slot is None or slot.data is not None:
            slot = Slot(self.started or time.perf_counter(), wire.CLOSE, True)
            self.queue.append(slot)
        slot.close, slot.connection = True, wire.CLOSE
        slot.request_id = hotcalls.request_id_in(self.raw_headers)
        self.in_message = False
        self.answer(slot, answer)

    def _update_reading(self) -> None:
        """Reading pauses while the client does not read its answers, while too many
        requests wait for theirs, or while too much waits to be handed to aiohttp."""
        transport = self.transport
        if transport is None or self._handed_over:
            return
        below = len(self.queue) < self.limits.max_pipeline
        if self.unfed and below and not self.feeding_due:
            self.feeding_due = True  # not from inside a callback of the parser
            self.front.loop.call_soon(self._resume_feeding)
        pause = (
            self.write_paused
            or not below
            or bool(self.unfed)
            or (self.relay is not None and self.relay.too_much_held)
        )
        if pause != self.read_paused:
            self.read_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    # ---- timeouts and shutdown (called by the front)
    def expire(self, now: float) -> None:
        if now < self.deadline or self.transport is None:
            return
        self.deadline = math.inf
        if self.in_message:
            self._fail(wire.TIMED_OUT)
        elif not self.queue and not self._handed_over:
            self.transport.close()  # idle

    def shutdown(self) -> None:
        """No new requests; close once the answers owed are written."""
        self.shutting = True
        if self.transport is None or self._handed_over:
            return  # aiohttp shuts its own connections down
        for slot in self.queue:
            slot.close, slot.connection = True, wire.CLOSE
        if not self.queue and not self.in_message:
            self.transport.close()

    # ---- handing the line to aiohttp (handover.py)
    @property
    def _handed_over(self) -> bool:
        return self.relay is not None and self.relay.attached

    def _relay_head(self, version: str) -> None:
        if self.relay is None:
            self.relay = Relay(self.front.server())
        self.relay.head(self.parser.get_method(), self.target, version, self.raw_headers)
        self.head_sent = True
        if not self.queue:
            self._attach()

    def _attach(self) -> None:
        relay, transport = self.relay, self.transport
        if relay is None or relay.attached or transport is None:
            return
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()
        if not self.in_message:
            self.deadline = math.inf  # idle connections are aiohttp's to close now
        relay.attach(transport)
        self.front.handed_over(self)

    def _to_aiohttp(self, data: bytes) -> None:
        """Bytes of a request aiohttp answers; while held, reading pauses once too much waits."""
        assert self.relay is not None
        self.relay.send(data)
        if not self.relay.attached:
            self._update_reading()
