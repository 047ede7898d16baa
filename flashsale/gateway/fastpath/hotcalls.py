"""The buyer's hot calls, served off the socket once connection.py has read a request
whole: a purchase (handed to the engine's purchaser, answered from a callback on its
decision), a drop's view, and a queue ticket's poll. No request object and no task per
purchase; the checks and the answers are gateway/purchase.py's and gateway/queue.py's, the
same code aiohttp's routes run, so a purchase is decided alike whichever path carried it."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Protocol

from flashsale.engine import Decision, Ticket
from flashsale.gateway import purchase
from flashsale.gateway.drops import view
from flashsale.gateway.errors import BUSY, INTERNAL, Answer, answer_error, translate
from flashsale.gateway.fastpath.routes import POLL_ROUTE, PURCHASE_ROUTE, ROUTE_NAMES, Route
from flashsale.gateway.fastpath.wire import Slot
from flashsale.gateway.queue import ticket_answer
from flashsale.logs import REQUEST_ID, request_id
from flashsale.metrics import metrics

if TYPE_CHECKING:
    from flashsale.gateway.fastpath.site import Front

log = logging.getLogger(__name__)

# The headers read off every request (the hot calls' own, and those that frame a body);
# the rest are only counted against the limits.
WANTED = frozenset({
    b"authorization", b"idempotency-key", b"flashsale-pass", b"x-request-id",
    b"x-forwarded-for", b"expect", b"content-length", b"transfer-encoding",
})  # fmt: skip


class Line(Protocol):
    """What a hot call needs of the connection it came on: the request as read, and where
    its answer goes (in order, after those owed before it)."""

    front: Front
    peer: str | None
    route: Route | None
    drop_id: str
    headers: dict[bytes, bytes]
    forwarded: list[str]
    body: bytes

    def answer(self, slot: Slot, answer: Answer) -> None: ...

    def abandon(self) -> None: ...


def read_headers(raw: list[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], list[str]]:
    """The headers the hot calls use (the first of each), and every X-Forwarded-For."""
    headers: dict[bytes, bytes] = {}
    forwarded: list[str] = []
    for name, value in raw:
        lower = name.lower()
        if lower in WANTED:
            value = value.rstrip(b" \t")  # llhttp took the leading white space off
            if lower == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif lower not in headers:
                headers[lower] = value
    return headers, forwarded


def serve(line: Line, slot: Slot) -> None:
    front, gw, h = line.front, line.front.gw, line.headers
    rid = request_id(text(h.get(b"x-request-id")))
    slot.request_id = rid
    assert line.route is not None and line.route != "aiohttp"
    route = ROUTE_NAMES[line.route]
    if not gw.admit():
        _reply(line, slot, BUSY, route, admitted=False)
        return
    try:
        gw.limiter.check_ip(gw.clients.of(line.peer, line.forwarded))
        if line.route == "purchase":
            tap = purchase.check(
                gw,
                text(h.get(b"authorization")),
                text(h.get(b"idempotency-key")),
                line.body,
                text(h.get(b"flashsale-pass")),
            )
            gw.engine.purchaser.submit(line.drop_id, *tap, partial(_decided, line, slot))
        elif line.route == "poll":  # as a purchase: no task, the answer from a callback
            buyer = gw.auth.require("buyer", text(h.get(b"authorization"))).id
            polled = gw.engine.queue.poll(line.drop_id, buyer)
            polled.add_done_callback(partial(_polled, line, slot))
        else:
            task = front.loop.create_task(view(gw, line.drop_id))
            task.add_done_callback(partial(_viewed, line, slot, route))
    except Exception as e:
        _reply(line, slot, _error(e, rid), route)


def _decided(line: Line, slot: Slot, result: Decision | BaseException) -> None:
    if isinstance(result, Decision):
        answer = purchase.answer(result)
    elif isinstance(result, asyncio.CancelledError):  # stopping mid-batch: no promise
        _abandon(line)
        return
    else:
        answer = _error(result, slot.request_id)
    _reply(line, slot, answer, PURCHASE_ROUTE)


def _polled(line: Line, slot: Slot, polled: asyncio.Future[Ticket]) -> None:
    if polled.cancelled():
        _abandon(line)
        return
    error = polled.exception()
    answer = ticket_answer(polled.result()) if error is None else _error(error, slot.request_id)
    _reply(line, slot, answer, POLL_ROUTE)


def _viewed(line: Line, slot: Slot, route: str, task: asyncio.Task[Answer]) -> None:
    if task.cancelled():
        _abandon(line)
        return
    error = task.exception()
    answer = task.result() if error is None else _error(error, slot.request_id)
    _reply(line, slot, answer, route)


def _reply(line: Line, slot: Slot, answer: Answer, route: str, admitted: bool = True) -> None:
    gw = line.front.gw
    if admitted:  # give its place back
        gw.in_flight -= 1
    outcome = answer.outcome if route == PURCHASE_ROUTE else None
    metrics().answered(route, time.perf_counter() - slot.started, outcome)
    line.answer(slot, answer)


def _abandon(line: Line) -> None:
    line.front.gw.in_flight -= 1
    line.abandon()


def _error(e: BaseException, rid: str) -> Answer:
    """The one place the fast path turns an exception into an answer, as aiohttp's
    middleware does for its routes."""
    token = REQUEST_ID.set(rid)  # what is logged of it carries the request's id
    try:
        api = translate(e) if isinstance(e, Exception) else None
        if api is not None:
            return answer_error(api)
        log.error("unhandled error on the fast path", exc_info=e)
        return INTERNAL
    finally:
        REQUEST_ID.reset(token)


def request_id_in(raw: list[tuple[bytes, bytes]]) -> str:
    """The request's id, from headers not yet read as a whole (a request refused midway)."""
    given = next((v for n, v in raw if n.lower() == b"x-request-id"), None)
    return request_id(text(given and given.strip(b" \t")))


def text(value: bytes | None) -> str | None:
    """A header value as aiohttp hands it to handlers: UTF-8, bad bytes as surrogates."""
    return None if value is None else value.decode("utf-8", "surrogateescape")
