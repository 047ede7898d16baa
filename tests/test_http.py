"""HTTP/1.1 on the gateway's port, byte for byte: the fast path (purchase, drop view) as strict
as aiohttp, every refusal in the contract's JSON, and the line handed to aiohttp intact for
everything else. Raw sockets, so the tests send exactly what a broken or hostile client
would."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from flashsale.gateway.fastpath.connection import FEED_BYTES
from tests.lines import Line, buying, request
from tests.stack import MakeStack, Stack, redis_busy


def refused(answer: dict[str, Any], status: int, code: str) -> None:
    assert answer["status"] == status, answer
    assert answer["headers"]["content-type"] == "application/json", answer
    assert set(answer["json"]) == {"error"} and set(answer["json"]["error"]) == {"code", "message"}
    assert answer["json"]["error"]["code"] == code, answer


@pytest.fixture
async def quick(make_stack: MakeStack) -> Stack:
    """A gateway with short idle and read time-outs."""
    return await make_stack(http_idle_s=1.0, http_read_s=0.6)


async def test_keep_alive_http10_and_connection_close(stack: Stack) -> None:
    drop = (await stack.new_drop(stock=10, per_buyer_limit=10))["id"]
    line = await Line.open(stack)
    await line.send(buying(stack, drop, "a", "k1"))
    await line.send(buying(stack, drop, "a", "k2"))
    first, second = await line.answers_until(2)
    assert (first["status"], second["status"]) == (201, 201)
    assert "connection" not in first["headers"]  # HTTP/1.1 stays open by default
    await line.send(buying(stack, drop, "a", "k3", Connection="close"))
    assert await line.closed()
    assert line.answers[2]["status"] == 201 and line.answers[2]["headers"]["connection"] == "close"

    line = await Line.open(stack)  # HTTP/1.0: closed after the answer unless asked otherwise
    await line.send(request("GET", f"/v1/drops/{drop}", version="1.0"))
    assert await line.closed()
    assert line.answers[0]["status"] == 200 and line.answers[0]["json"]["sold"] == 3
    line = await Line.open(stack)
    await line.send(
        request("GET", f"/v1/drops/{drop}", {"Connection": "keep-alive"}, version="1.0")
    )
    await line.send(
        request("GET", f"/v1/drops/{drop}", {"Connection": "keep-alive"}, version="1.0")
    )
    answers = await line.answers_until(2)
    assert [a["headers"].get("connection") for a in answers] == ["keep-alive"] * 2
    line.close()


async def test_pipelined_answers_keep_their_order_behind_a_purchase_waiting_on_redis(
    stack: Stack, redis_url: str
) -> None:
    drop = (await stack.new_drop(stock=10, per_buyer_limit=10))["id"]
    async with redis_busy(redis_url, 0.5):  # the purchase waits, the 401 is ready at once
        line = await Line.open(stack)
        await line.send(
            buying(stack, drop, "a", "k1")
            + request("POST", f"/v1/drops/{drop}/purchase", {"Authorization": "Bearer nope"})
            + request("GET", "/healthz")  # aiohttp's: the line is handed over after the two
            + buying(stack, drop, "a", "k2")  # and then aiohttp serves the purchase too
            + request("GET", f"/v1/drops/{drop}", {"X-Request-Id": "last-one"})
        )
        answers = await line.answers_until(5)
    assert [a["status"] for a in answers] == [201, 401, 200, 201, 200]
    refused(answers[1], 401, "unauthorized")
    assert answers[1]["headers"]["www-authenticate"] == "Bearer"
    assert answers[3]["json"]["order"]["id"] != answers[0]["json"]["order"]["id"]
    assert answers[4]["json"]["sold"] == 2 and answers[4]["headers"]["x-request-id"] == "last-one"
    line.close()


async def test_a_hundred_pipelined_purchases_are_read_ahead_only_so_far(
    stack: Stack, redis_url: str
) -> None:
    drop = (await stack.new_drop(stock=1000, per_buyer_limit=1000))["id"]
    async with redis_busy(redis_url, 0.6):
        line = await Line.open(stack)
        taps = [buying(stack, drop, "a", f"k{i:02}") for i in range(100)]
        await line.send(b"".join(taps))  # one write: the whole burst arrives in one read
        await asyncio.sleep(0.3)
        (front,) = [site._front for site in stack.runner.sites]  # type: ignore[attr-defined]
        (conn,) = [c for c in front.connections if c.queue]
        # parsing stops at the bound, give or take the requests of the one piece being parsed
        bound = front.limits.max_pipeline + FEED_BYTES // len(taps[0]) + 1
        assert 0 < len(conn.queue) <= bound < 100
        answers = await line.answers_until(100)
    assert [a["status"] for a in answers] == [201] * 100
    assert len({a["json"]["order"]["id"] for a in answers}) == 100
    line.close()


async def test_chunked_bodies_and_expect_100_continue(stack: Stack) -> None:
    drop = (await stack.new_drop(stock=10, per_buyer_limit=10))["id"]
    path = f"/v1/drops/{drop}/purchase"
    line = await Line.open(stack)
    chunked = {**stack.as_buyer("a"), "Transfer-Encoding": "chunked"}
    await line.send(request("POST", path, chunked) + b'5\r\n{"qua\r\na\r\nntity": 2}\r\n0\r\n\r\n')
    (bought,) = await line.answers_until(1)
    assert bought["status"] == 201 and bought["json"]["order"]["quantity"] == 2

    expect = {**stack.as_buyer("b"), "Expect": "100-continue", "Content-Length": "15"}
    await line.send(request("POST", path, expect))
    interim = await asyncio.wait_for(line.reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    await line.send(b'{"quantity": 3}')
    assert (await line.answers_until(2))[1]["json"]["order"]["quantity"] == 3
    await line.send(request("POST", path, {**stack.as_buyer("b"), "Expect": "tea"}))
    assert await line.closed()
    refused(line.answers[2], 417, "expectation_failed")


@pytest.mark.parametrize("how", ["content-length", "chunked"])
async def test_bodies_over_16_kib_are_413_without_reading_them(stack: Stack, how: str) -> None:
    drop = (await stack.new_drop())["id"]
    path = f"/v1/drops/{drop}/purchase"
    line = await Line.open(stack)
    if how == "content-length":
        await line.send(request("POST", path, {**stack.as_buyer("a"), "Content-Length": "16385"}))
    else:
        head = request("POST", path, {**stack.as_buyer("a"), "Transfer-Encoding": "chunked"})
        await line.send(head + b"4000\r\n" + b" " * 0x4000 + b"\r\n10\r\n" + b" " * 16)
    assert await line.closed()
    refused(line.answers[0], 413, "payload_too_large")
    assert (await stack.call("GET", f"/v1/drops/{drop}")).body["sold"] == 0


HEAD_LIMITS = {
    "200 header lines": (431, "headers_too_large", "".join(f"X-{i}: v\r\n" for i in range(200))),
    "one 20 KiB header": (431, "headers_too_large", "X-Big: " + "v" * 20_000 + "\r\n"),
    "Content-Length with Transfer-Encoding": (
        400,
        "invalid_request",
        "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
    ),
    "Content-Length twice": (400, "invalid_request", "Content-Length: 2\r\nContent-Length: 2\r\n"),
    "NUL in a header value": (400, "invalid_request", "X-A: a\x00b\r\n"),
    "CR in a header value": (400, "invalid_request", "X-A: a\rb\r\n"),
    "LF alone ending a header": (400, "invalid_request", "X-A: ab\n"),
    "a folded header line": (400, "invalid_request", "X-A: a\r\n b\r\n"),
}


@pytest.mark.parametrize("case", list(HEAD_LIMITS.values()), ids=list(HEAD_LIMITS))
async def test_malformed_or_oversized_heads_are_refused_and_closed(
    stack: Stack, case: tuple[int, str, str]
) -> None:
    status, code, headers = case
    drop = (await stack.new_drop())["id"]
    line = await Line.open(stack)
    head = f"POST /v1/drops/{drop}/purchase HTTP/1.1\r\nHost: t\r\n{headers}\r\n"
    await line.send(head.encode() + b"{}")
    assert await line.closed()
    refused(line.answers[0], status, code)


async def test_the_request_target_is_bounded(stack: Stack) -> None:
    line = await Line.open(stack)
    await line.send(request("GET", "/v1/drops/" + "a" * 9000))
    assert await line.closed()
    refused(line.answers[0], 414, "uri_too_long")


async def test_http_versions_other_than_1x_and_upgrades(stack: Stack) -> None:
    drop = (await stack.new_drop())["id"]
    for version in ("2.0", "0.9"):
        line = await Line.open(stack)
        await line.send(request("GET", f"/v1/drops/{drop}", version=version))
        assert await line.closed()
        refused(line.answers[0], 400, "invalid_request")
    line = await Line.open(stack)  # an Upgrade is not spoken, and the request served plainly
    upgrade = {"Connection": "Upgrade", "Upgrade": "h2c"}
    await line.send(
        request("GET", f"/v1/drops/{drop}", upgrade) + request("GET", "/healthz", upgrade)
    )
    view, health = await line.answers_until(2)
    assert (view["status"], view["json"]["id"], health["status"]) == (200, drop, 200)


async def test_a_slow_head_is_timed_out_and_an_idle_line_closed(quick: Stack) -> None:
    drop = (await quick.new_drop())["id"]
    # slowloris: a purchase's first line and one header, then nothing
    line = await Line.open(quick)
    start = time.monotonic()
    await line.send(f"POST /v1/drops/{drop}/purchase HTTP/1.1\r\nHost: t\r\n".encode())
    assert await line.closed(within=5)
    assert time.monotonic() - start < 2.5
    refused(line.answers[0], 408, "request_timeout")
    # a body promised and never sent
    line = await Line.open(quick)
    await line.send(request("POST", f"/v1/drops/{drop}/purchase", {"Content-Length": "10"}))
    assert await line.closed(within=5)
    refused(line.answers[0], 408, "request_timeout")
    # idle after an answer, and idle from the start
    line = await Line.open(quick)
    await line.send(request("GET", f"/v1/drops/{drop}"))
    await line.answers_until(1)
    start = time.monotonic()
    assert await line.closed(within=5)
    assert 0.8 < time.monotonic() - start < 2.5
    line = await Line.open(quick)
    assert await line.closed(within=5) and not line.answers


async def test_a_slow_head_on_a_line_aiohttp_has_is_answered_too(quick: Stack) -> None:
    line = await Line.open(quick)
    await line.send(request("GET", "/healthz"))  # the line is aiohttp's from here
    await line.answers_until(1)
    await line.send(b"GET /v1/drops HTTP/1.1\r\nHost: t\r\n")
    assert await line.closed(within=5)
    refused(line.answers[1], 400, "invalid_request")


async def test_a_client_that_half_closes_still_gets_its_answer(stack: Stack) -> None:
    drop = (await stack.new_drop())["id"]
    line = await Line.open(stack)
    await line.send(buying(stack, drop, "a", "k"))
    line.writer.write_eof()
    assert await line.closed()
    assert line.answers[0]["status"] == 201


async def test_stopping_answers_what_is_in_flight_then_closes(
    make_stack: MakeStack, redis_url: str
) -> None:
    stack = await make_stack()
    drop = (await stack.new_drop(stock=10, per_buyer_limit=10))["id"]
    idle = await Line.open(stack)
    async with redis_busy(redis_url, 0.5):
        busy = await Line.open(stack)
        await busy.send(buying(stack, drop, "a", "k1"))
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(stack.runner.cleanup())
        assert await idle.closed(within=0.3)  # nothing owed: closed at once
        assert await busy.closed(within=5)
        await stopping
    assert busy.answers[0]["status"] == 201 and busy.answers[0]["headers"]["connection"] == "close"
