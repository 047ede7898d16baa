"""Rate limits per buyer and per client address: a burst of honest taps passes, a script
hammering does not, however many gateways it spreads its requests over.

Two layers, so that no request ever waits on a limit:
- each gateway process keeps a token bucket per client (`rate` a second, `burst` at once)
  and refuses at once when it is empty;
- every `sync_s`, each process adds what it admitted to per-window counters in Redis (one
  script call per shard, rate.lua) and learns which clients are past the window's allowance
  (`burst + rate * window_s`) counting every gateway; those are refused by every gateway
  until the window ends.
A client spread over N gateways therefore gets at most the window's allowance plus what the
gateways admit between two syncs. When Redis is unreachable the local buckets still hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from dataclasses import dataclass
from typing import Any

import msgspec

from flashsale.engine import REDIS_ERRORS, rate_window
from flashsale.gateway.errors import ApiError

log = logging.getLogger(__name__)

WINDOW_S = 10.0
SYNC_S = 0.1
SHARDS = 8  # counters spread over this many hash tags, so a cluster shares the work
_PRUNE_AT = 100_000
_pack = msgspec.msgpack.Encoder().encode


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float  # requests a second a client keeps up; 0 turns the limit off
    burst: int  # requests a client may send at once

    def allowance(self, window_s: float) -> int:
        return int(self.burst + self.rate * window_s)


def rate_limited(wait_s: float) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        "too many requests; slow down",
        {"Retry-After": str(max(1, math.ceil(wait_s)))},
    )


def is_loopback(ip: str) -> bool:
    """The gateway's own machine (ops' tools, a local load test) is never limited by address."""
    return ip.startswith("127.") or ip == "::1"


class RateLimiter:
    def __init__(
        self, buyer: Limit, ip: Limit, *, window_s: float = WINDOW_S, sync_s: float = SYNC_S
    ) -> None:
        self.buyer = buyer
        self.ip = ip
        self.window_s = window_s
        self.sync_s = sync_s
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._admitted: dict[str, int] = {}  # since the last sync
        self._blocked: dict[str, float] = {}  # client -> monotonic time its window ends

    def check(self, buyer: str) -> None:
        """Takes one request from a buyer's allowance, or raises 429 with Retry-After."""
        self._take("b:" + buyer, self.buyer)

    def check_ip(self, ip: str | None) -> None:
        """The same for a client address (see gateway.clients for which address)."""
        if ip and not is_loopback(ip):
            self._take("i:" + ip, self.ip)

    def _take(self, client: str, limit: Limit) -> None:
        if limit.rate <= 0:
            return
        now = time.monotonic()
        until = self._blocked.get(client)
        if until is not None:
            if now < until:
                raise rate_limited(until - now)
            del self._blocked[client]
        tokens, at = self._buckets.get(client, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - at) * limit.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            raise rate_limited((1 - tokens) / limit.rate)
        self._buckets[client] = (tokens - 1, now)
        self._admitted[client] = self._admitted.get(client, 0) + 1
        if len(self._buckets) > _PRUNE_AT:
            self._prune(now)

    def _prune(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket.
        limits = [limit for limit in (self.buyer, self.ip) if limit.rate > 0]
        full_after = max((limit.burst / limit.rate for limit in limits), default=0.0)
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        self._blocked = {k: until for k, until in self._blocked.items() if until > now}

    async def run(self, script: Any, stop: asyncio.Event) -> None:
        """Shares the counts with every other gateway until `stop` is set (`script`: the
        engine's rate.lua, Scripts.rate)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.sync_s)
            try:
                await self.sync(script)
            except (*REDIS_ERRORS, OSError) as e:
                log.debug("rate limit counts not shared this time: %r", e)

    async def sync(self, script: Any) -> None:
        """Adds this process's admissions to Redis; blocks whoever is over, everywhere."""
        admitted, self._admitted = self._admitted, {}
        if not admitted:
            return
        now = time.time()
        window = int(now // self.window_s)
        ends_in = (window + 1) * self.window_s - now
        shards: dict[int, list[str | int]] = {}
        for client, count in admitted.items():
            shard = shards.setdefault(zlib.crc32(client.encode()) % SHARDS, [])
            shard += (client, count)
        args = (
            self.buyer.allowance(self.window_s) if self.buyer.rate > 0 else 2**53,
            self.ip.allowance(self.window_s) if self.ip.rate > 0 else 2**53,
            math.ceil(self.window_s * 2),
        )
        overs = await asyncio.gather(*(
            script(keys=[rate_window(n, window)], args=(_pack(counts), *args))
            for n, counts in shards.items()
        ))  # fmt: skip
        until = time.monotonic() + ends_in
        for over in overs:
            for client in over:
                self._blocked[client.decode() if isinstance(client, bytes) else client] = until
