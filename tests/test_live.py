"""GET /v1/drops/{id}/live: Server-Sent Events of a drop's counters, coalesced, the same on
every gateway, with heartbeats, and ended at once when the gateway stops."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

import flashsale.gateway.live
from tests.stack import MakeStack, Stack


@dataclass
class Viewer:
    """One /live stream, read in the background: its events and comments as they came."""

    response: aiohttp.ClientResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        event = None
        try:
            async for raw in self.response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: ") and event == "stock":
                    self.events.append(json.loads(line[len("data: ") :]))
        except aiohttp.ClientError:
            pass
        finally:
            self.ended.set()

    async def until(self, check: Any, within: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while not (self.events and check(self.events[-1])):
            assert time.monotonic() < deadline, f"never seen; last: {self.events[-1:]}"
            await asyncio.sleep(0.01)
        return self.events[-1]


@pytest.fixture
async def watch() -> AsyncIterator[Any]:
    session = aiohttp.ClientSession()
    tasks: list[asyncio.Task[None]] = []

    async def open_viewer(stack: Stack, drop_id: str) -> Viewer:
        response = await session.get(f"{stack.base}/v1/drops/{drop_id}/live")
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        viewer = Viewer(response)
        tasks.append(asyncio.create_task(viewer.read()))
        return viewer

    yield open_viewer
    for task in tasks:
        task.cancel()
    await session.close()


async def test_counters_at_connect_then_coalesced_never_one_per_purchase(
    stack: Stack, watch: Any
) -> None:
    drop = await stack.new_drop(stock=300, per_buyer_limit=1)
    viewer = await watch(stack, drop["id"])
    first = await viewer.until(lambda e: True)
    assert first == {"remaining": 300, "sold": 0, "status": "live", "variants": None, "queue": None}
    start = time.monotonic()
    for wave in range(10):  # 300 purchases in 10 waves over about a second
        await asyncio.gather(*(stack.buy(drop["id"], f"w{wave}b{i}") for i in range(30)))
        await asyncio.sleep(0.1)
    last = await viewer.until(lambda e: e["status"] == "sold_out")
    took = time.monotonic() - start
    assert last == {
        "remaining": 0, "sold": 300, "status": "sold_out", "variants": None, "queue": None
    }  # fmt: skip
    events = len(viewer.events) - 1
    print(f"\n300 purchases in {took:.2f} s: {events} stock events")
    assert events <= took * 10 + 2, "more than 10 events a second"
    sold = [e["sold"] for e in viewer.events]
    assert sold == sorted(sold)  # never backwards
    assert all(e["remaining"] + e["sold"] == 300 for e in viewer.events)


async def test_every_gateway_shows_the_same_counters(make_stack: MakeStack, watch: Any) -> None:
    a = await make_stack()
    b = await make_stack(worker=False)
    drop = await a.new_drop(stock=5)
    on_a, on_b = await watch(a, drop["id"]), await watch(b, drop["id"])
    assert (await a.buy(drop["id"], "alice")).status == 201  # bought through A
    seen_on_b = await on_b.until(lambda e: e["sold"] == 1)
    assert seen_on_b == await on_a.until(lambda e: e["sold"] == 1)
    restocked = await b.call("POST", f"/v1/drops/{drop['id']}/restock", {"quantity": 10}, b.as_host)
    assert restocked.status == 200
    assert (await on_a.until(lambda e: e["remaining"] == 14))["status"] == "live"
    await a.call("POST", f"/v1/drops/{drop['id']}/close", None, a.as_host)
    assert (await on_b.until(lambda e: e["status"] == "closed"))["remaining"] == 14


async def test_heartbeats_keep_an_idle_stream_open(
    stack: Stack, watch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flashsale.gateway.live, "PING_S", 0.1)
    drop = await stack.new_drop(stock=5)
    viewer = await watch(stack, drop["id"])
    await viewer.until(lambda e: True)
    deadline = time.monotonic() + 5
    while len(viewer.comments) < 3:
        assert time.monotonic() < deadline, "no heartbeat comments"
        await asyncio.sleep(0.05)
    assert all(c.startswith(": ping") for c in viewer.comments)
    assert len(viewer.events) == 1  # nothing changed, nothing sent but pings


async def test_streams_end_at_once_when_the_gateway_stops(
    make_stack: MakeStack, watch: Any
) -> None:
    stack = await make_stack()
    drop = await stack.new_drop(stock=5)
    viewers = [await watch(stack, drop["id"]) for _ in range(20)]
    for viewer in viewers:
        await viewer.until(lambda e: True)
    start = time.monotonic()
    await stack.close()
    await asyncio.wait_for(asyncio.gather(*(v.ended.wait() for v in viewers)), 5)
    took = time.monotonic() - start
    print(f"\nthe gateway stopped with 20 open streams in {took * 1000:.0f} ms")
    assert took < 3, f"stopping waited {took:.1f} s on open streams"


async def test_unknown_drops_and_other_methods_are_contract_errors(stack: Stack) -> None:
    missing = await stack.call("GET", "/v1/drops/aaaaaaaaaaaa/live")
    assert (missing.status, missing.code) == (404, "not_found")
    drop = await stack.new_drop(stock=5)
    wrong = await stack.call("POST", f"/v1/drops/{drop['id']}/live")
    assert (wrong.status, wrong.code) == (405, "method_not_allowed")


async def test_viewers_are_not_held_to_the_in_flight_bound(
    make_stack: MakeStack, watch: Any
) -> None:
    stack = await make_stack(max_in_flight=4)
    drop = await stack.new_drop(stock=5)
    viewers = [await watch(stack, drop["id"]) for _ in range(10)]
    assert (await stack.buy(drop["id"], "alice")).status == 201
    for viewer in viewers:
        await viewer.until(lambda e: e["sold"] == 1)


async def test_a_viewer_that_leaves_is_let_go(
    stack: Stack, watch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flashsale.gateway.live, "PING_S", 0.1)  # a ping finds the gone peer
    drop = await stack.new_drop(stock=5)
    viewer = await watch(stack, drop["id"])
    await viewer.until(lambda e: True)
    assert stack.engine.live.watching() == {drop["id"]: 1}
    viewer.response.close()
    deadline = time.monotonic() + 5
    while stack.engine.live.watching():
        assert time.monotonic() < deadline, "the gateway still holds a viewer that left"
        await asyncio.sleep(0.05)
