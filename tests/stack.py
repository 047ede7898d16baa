"""A whole flashsale in the test's event loop: the real gateway on a real port (so every
request is real HTTP), a settlement worker and the sweeper, over real Redis and a real store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio
from aiohttp import web

from flashsale.config import CLAIM_IDLE_MS, Settings
from flashsale.engine import AuditReport, Deliverer, SettlementWorker, audit, wait_settled
from flashsale.gateway.auth import Auth
from flashsale.redis_server import free_port
from flashsale.run import Parts, connected, deliverer, start_site

HOST_KEY = "hk_test_host_key"
BUSY_LUA = """local function now() local t = redis.call('TIME') return t[1] * 1e6 + t[2] end
              local s = now() while now() - s < tonumber(ARGV[1]) * 1e6 do end"""


@contextlib.asynccontextmanager
async def redis_busy(redis_url: str, seconds: float) -> AsyncIterator[None]:
    """Redis runs a script that answers nothing else for `seconds`; the block starts once it
    has begun, and its end waits for it to finish."""
    slow = redis.asyncio.Redis.from_url(redis_url)
    sleeper = asyncio.create_task(slow.eval(BUSY_LUA, 0, seconds))
    try:
        await asyncio.sleep(0.1)  # the script has started
        yield
    finally:
        await sleeper
        await slow.aclose()


SECRET = "test-token-secret-of-at-least-32-bytes"


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def code(self) -> str | None:
        return self.body.get("error", {}).get("code") if isinstance(self.body, dict) else None


@dataclass
class Stack:
    settings: Settings
    parts: Parts
    base: str
    http: aiohttp.ClientSession
    worker: SettlementWorker | None
    runner: web.AppRunner
    deliverer: Deliverer | None = None
    _exits: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def engine(self):
        return self.parts.engine

    @property
    def store(self):
        return self.parts.store

    def token(self, buyer: str, ttl: int = 3600) -> str:
        return Auth(SECRET, [HOST_KEY]).mint(buyer, ttl)

    def as_buyer(self, buyer: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(buyer)}"}

    @property
    def as_host(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {HOST_KEY}"}

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        async with self.http.request(
            method, self.base + path, json=json, data=data, headers=headers
        ) as r:
            text = await r.text()
            try:
                body: Any = await r.json(content_type=None) if text else None
            except ValueError:
                body = text
            return Reply(r.status, body, dict(r.headers))

    async def new_drop(self, open_it: bool = True, **fields: Any) -> dict[str, Any]:
        spec = {"sku": "SKU-1", "title": "Mushrooms", "price": 990, "currency": "CNY",
                "stock": 10} | fields  # fmt: skip
        r = await self.call("POST", "/v1/drops", spec, self.as_host)
        assert r.status == 201, r.body
        if open_it:
            r = await self.call("POST", f"/v1/drops/{r.body['id']}/open", None, self.as_host)
            assert r.status == 200, r.body
        return r.body

    async def buy(
        self,
        drop_id: str,
        buyer: str,
        quantity: int = 1,
        key: str | None = None,
        variant: str | None = None,
    ) -> Reply:
        headers = self.as_buyer(buyer)
        if key is not None:
            headers["Idempotency-Key"] = key
        body: dict[str, Any] = {"quantity": quantity}
        if variant is not None:
            body["variant"] = variant
        return await self.call("POST", f"/v1/drops/{drop_id}/purchase", body, headers)

    async def settle(self) -> None:
        """Waits until every order event is in the store: settled by this stack's worker, or
        (a stack without one) by the workers running elsewhere, on their own."""
        if self.worker is None:
            left = await wait_settled(self.engine.redis, self.engine.drops, 60)
            assert left == 0, f"settlement did not catch up: {left} event(s) left"
            return
        assert await self.worker.drain(within=60), "settlement did not catch up"

    async def audit(self, drop_id: str | None = None) -> AuditReport:
        return await audit(self.engine.redis, self.store, self.engine.drops, drop_id)

    async def close(self) -> None:
        self.stop.set()
        await self._exits.aclose()


async def start_stack(
    tmp: Path,
    *,
    redis_url: str,
    database_url: str,
    worker: bool = True,
    buyer_rate: float = 1000.0,
    buyer_burst: int = 1000,
    claim_idle_ms: int = CLAIM_IDLE_MS,
    sweep_interval: float = 0.05,
    **more_settings: Any,
) -> Stack:
    settings = Settings(
        data_dir=tmp, redis_url=redis_url, database_url=database_url, token_secret=SECRET,
        host_keys=[HOST_KEY], buyer_rate=buyer_rate, buyer_burst=buyer_burst,
        claim_idle_ms=claim_idle_ms, **more_settings,
    )  # fmt: skip
    # Whatever fails half-way through closes what was started before it.
    async with contextlib.AsyncExitStack() as exits:
        parts = await exits.enter_async_context(connected(settings))
        port = free_port()
        runner = await start_site(parts, settings, "127.0.0.1", port)
        exits.push_async_callback(runner.cleanup)
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=400))
        exits.push_async_callback(http.close)
        stack = Stack(settings, parts, f"http://127.0.0.1:{port}", http, None, runner)
        if worker:
            stack.worker = SettlementWorker(
                parts.engine.redis, parts.store, parts.engine.active,
                claim_idle_ms=claim_idle_ms, replicas=parts.engine.replicas,
            )  # fmt: skip
            parts.engine.active.on_leave = stack.worker.trim
            parts.engine.sweeper.interval = sweep_interval
            stack.deliverer = deliverer(parts, settings)
            stack.worker.on_settled = stack.deliverer.wake
            tasks = [
                asyncio.create_task(stack.worker.run(stack.stop)),
                asyncio.create_task(parts.engine.sweeper.run(stack.stop)),
                asyncio.create_task(stack.deliverer.run(stack.stop)),
            ]
            exits.push_async_callback(asyncio.gather, *tasks)  # they end once stop is set
        stack._exits = exits.pop_all()
    return stack


# What the `make_stack` fixture (conftest.py) hands a test: start_stack with its defaults.
MakeStack = Callable[..., Awaitable[Stack]]
