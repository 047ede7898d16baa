"""Real HTTP receivers for webhook tests, and the README's verification snippet, loaded from
the README itself so the test holds the very code a shop pastes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
from aiohttp import web

from flashsale.engine import OrderStore
from flashsale.redis_server import free_port
from tests.burst import until

README = Path(__file__).parent.parent / "README.md"
SNIPPET_MARK = "<!-- webhook verification: tests/test_webhooks.py runs this block -->"

# What a receiver does with one request: answer 2xx, answer 500, answer 2xx after `slow_s`,
# hang for `slow_s` (longer than the deliverer waits) and count it as nothing, or close the
# connection without answering.
Behaviour = Literal["ok", "fail", "slow", "hang", "close"]


def readme_verifier() -> Callable[[str, bytes, str], bool]:
    """`verify_flashsale` as the README writes it."""
    text = README.read_text(encoding="utf-8")
    after = text.split(SNIPPET_MARK, 1)[1]
    code = re.search(r"```python\n(.*?)```", after, re.S)
    assert code, "the README's verification block is gone"
    scope: dict[str, Any] = {}
    exec(compile(code[1], "README.md", "exec"), scope)
    return scope["verify_flashsale"]  # type: ignore[no-any-return]


@dataclass
class Received:
    event_id: str
    signature: str
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return msgspec.json.decode(self.body)


@dataclass
class Receiver:
    """One endpoint on loopback. `behave` picks, per request, what it does (by default it
    answers 200); `received` lists every request that got an answer of any kind, in order
    of arrival, `delivered` those answered 2xx."""

    behave: Callable[[Received], Behaviour] = lambda _r: "ok"
    slow_s: float = 3.0
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    delivered: list[Received] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    overlaps: int = 0  # times one event id was being received twice at once
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        got = Received(request.headers.get("Flashsale-Event-Id", ""),
                       request.headers.get("Flashsale-Signature", ""), await request.read(),
                       asyncio.get_running_loop().time())  # fmt: skip
        self.in_flight[got.event_id] = self.in_flight.get(got.event_id, 0) + 1
        self.overlaps += self.in_flight[got.event_id] > 1
        try:
            what = self.behave(got)
            self.received.append(got)
            if what in ("slow", "hang"):
                await asyncio.sleep(self.slow_s)
            if what == "close":
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=204)  # written to nobody
            if what in ("fail", "hang"):
                return web.json_response({"error": "not today"}, status=500)
            self.delivered.append(got)
            return web.json_response({"ok": True})
        finally:
            self.in_flight[got.event_id] -= 1

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ids(self) -> set[str]:
        return {r.event_id for r in self.delivered}


async def outbox_empty(store: OrderStore, within: float = 30) -> None:
    """Until no subscription has anything left to deliver (every outcome recorded)."""

    async def empty() -> bool:
        return all(s.pending == 0 for s in await store.endpoint_stats())

    await until(empty, "the webhook outbox to empty", within)


def assert_in_order(receiver: Receiver) -> None:
    """Invariant 10's order: an order's paid or expired arrives only after its created did."""
    first: dict[str, float] = {}
    for r in receiver.delivered:
        first.setdefault(r.event_id, r.at)
    for r in receiver.received:
        kind = r.event["type"]
        if kind != "order.created":
            created = r.event_id.rsplit("_", 1)[0] + "_created"
            assert created in first and first[created] <= r.at, f"{r.event_id} before {created}"


def assert_signed(receiver: Receiver, secret: str) -> None:
    verify = readme_verifier()
    for r in receiver.received:
        assert verify(secret, r.body, r.signature), f"bad signature on {r.event_id}"
