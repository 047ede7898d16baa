"""`flashsale demo`: `up` in a data dir of its own, plus a show to watch in the console: a
drop made and opened, and simulated buyers buying it for about a minute, a trickle and then
a burst that sells it out. It is the first thing a newcomer runs, so it prints where to
look (the console, signed in, and the buyer page) and needs nothing else.

The buyers are real HTTP clients of the gateway with real tokens, so what the console
shows is the engine at work, not an animation; the audit holds afterwards as for any drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

import aiohttp

from flashsale.config import Settings
from flashsale.gateway.auth import Auth
from flashsale.run.up import Show, console_url

DEMO_DIR = ".flashsale-demo"
DROP = {
    "sku": "LOTUS-1KG",
    "title": "Lotus root 莲藕 · 1 kg",
    "price": 1290,
    "currency": "CNY",
    "stock": 2000,
    "per_buyer_limit": 2,
    "room": "demo",
}
TRICKLE_S, TRICKLE_RATE = 25.0, 6.0  # taps per second while the host warms up the room
BURST_RATE = 600.0  # taps per second once "3, 2, 1, buy!"
AFTER_S = 10.0  # taps go on this long after the sellout: refused at once, without Redis
BUYERS = 5000
IN_FLIGHT = 200  # taps waiting for their answers at once, at most


def show(trickle_s: float = TRICKLE_S) -> Show:
    """The show for `up`, with a trickle of `trickle_s` seconds before the burst."""

    async def run(settings: Settings, base: str) -> None:
        await _show(settings, base, trickle_s)

    return run


async def _show(settings: Settings, base: str, trickle_s: float) -> None:
    """Makes the drop, says where to watch, then plays the buyers; ends when it has sold
    out (or when `up` stops)."""
    host = {"Authorization": f"Bearer {settings.host_keys[0]}"}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(base, timeout=timeout, connector=connector) as http:
        async with http.post("/v1/drops", json=DROP, headers=host) as r:
            r.raise_for_status()
            drop = await r.json()
        async with http.post(f"/v1/drops/{drop['id']}/open", headers=host) as r:
            r.raise_for_status()
        print(
            "\n".join([
                f"demo: drop {drop['id']} ({DROP['title']}, {DROP['stock']:,} units) is open",
                f"  watch it    {console_url(base, settings.host_keys[0], drop['id'])}",
                f"  buy one     {base}/buy/{drop['id']}",
                f"  buyers: a trickle for {trickle_s:g} s, then a burst until it sells out",
            ]),
            flush=True,
        )  # fmt: skip
        buyers = Buyers(http, drop["id"], Auth(settings.token_secret, []), trickle_s)
        await buyers.play()
        print(f"demo: {buyers.summary()}; Ctrl-C stops it", flush=True)


class Buyers:
    """Taps at a given rate, each from a random buyer with a fresh idempotency key."""

    def __init__(
        self, http: aiohttp.ClientSession, drop_id: str, auth: Auth, trickle_s: float
    ) -> None:
        self.http = http
        self.trickle_s = trickle_s
        self.path = f"/v1/drops/{drop_id}/purchase"
        self.auth = auth
        self.tokens: dict[int, str] = {}
        self.answers: dict[int, int] = {}
        self.sold_out_at: float | None = None
        self.started = time.monotonic()
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()
        self._taps = 0

    async def play(self) -> None:
        def since(t: float) -> float:
            return time.monotonic() - t

        try:
            await self._fire(TRICKLE_RATE, until=lambda: since(self.started) > self.trickle_s)
            await self._fire(BURST_RATE, until=lambda: self.sold_out_at is not None)
            sold_out_at = self.sold_out_at or time.monotonic()
            await self._fire(BURST_RATE / 10, until=lambda: since(sold_out_at) > AFTER_S)
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()

    async def _fire(self, rate: float, until: Callable[[], bool]) -> None:
        """Taps due at `rate` per second (a few per wake-up at high rates) until `until`."""
        started, fired = time.monotonic(), 0
        while not until():
            due = int((time.monotonic() - started) * rate) + 1
            for _ in range(due - fired):
                await self._slots.acquire()
                task = asyncio.create_task(self._tap())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            fired = due
            await asyncio.sleep(min(0.02, 1 / rate))

    async def _tap(self) -> None:
        try:
            self._taps += 1
            buyer = random.randrange(BUYERS)
            token = self.tokens.get(buyer)
            if token is None:
                token = self.tokens[buyer] = self.auth.mint(f"demo-buyer-{buyer}", 3600)
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"demo-{self._taps}"}
            body = {"quantity": random.choice((1, 1, 2))}
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with self.http.post(self.path, json=body, headers=headers) as r:
                    self.answers[r.status] = self.answers.get(r.status, 0) + 1
                    if r.status == 409 and self.sold_out_at is None:
                        code = (await r.json()).get("error", {}).get("code")
                        if code == "sold_out":
                            self.sold_out_at = time.monotonic()
        finally:
            self._slots.release()

    def summary(self) -> str:
        made = self.answers.get(201, 0)
        refused = sum(n for status, n in self.answers.items() if status >= 400)
        return f"{self._taps:,} taps: {made:,} orders made, {refused:,} refused"


__all__ = ["DEMO_DIR", "TRICKLE_S", "show"]
