"""For the fault tests: a burst of buyers over real HTTP, flashsale's commands run as the
processes ops run, and the contract checked from everything the buyers were answered.

Every tap carries an Idempotency-Key. A tap answered with a broken connection or a 503 is
sent again with the same key and body (to another gateway if the test routes it so), as a
buyer's app does, until it gets a definite answer. Every answer is kept with the time it
came, so a test can tell what was answered before, during and after its fault.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from flashsale.engine import Order
from flashsale.gateway.auth import Auth
from flashsale.redis_server import free_port
from tests.invariants import Answer, assert_invariants
from tests.processes import flashsale_env, spawn_logged, wait_ready
from tests.stack import HOST_KEY, SECRET, Reply, Stack

LOST = 0  # no answer: the connection broke, would not open, or timed out
RETRIED = (LOST, 503)  # what a buyer's app sends again with the same key


@dataclass(frozen=True)
class Tap:
    buyer: str
    quantity: int
    key: str


def plan_taps(
    run: str, *, taps: int, buyers: int, max_quantity: int = 2, repeats: float = 0.2, seed: int = 7
) -> list[Tap]:
    """`taps` purchases by `buyers` buyers, 1..max_quantity units each; a share `repeats`
    are an earlier tap of the same buyer again (same key, same body), as a phone that lost
    the answer sends it."""
    rng = random.Random(seed)
    out: list[Tap] = []
    mine: dict[str, list[Tap]] = {}
    for i in range(taps):
        buyer = f"{run}-{rng.randrange(buyers)}"
        earlier = mine.setdefault(buyer, [])
        if earlier and rng.random() < repeats:
            out.append(rng.choice(earlier))
            continue
        tap = Tap(buyer, rng.randint(1, max_quantity), f"{run}-key-{i}")
        earlier.append(tap)
        out.append(tap)
    return out


@dataclass(frozen=True)
class Sent:
    tap: int
    base: str
    status: int  # LOST: no answer
    body: Any
    retry_after: str | None
    at: float  # time.monotonic() when the answer (or the failure) came

    @property
    def order(self) -> dict[str, Any] | None:
        if self.status in (200, 201) and isinstance(self.body, dict):
            return self.body.get("order")  # type: ignore[no-any-return]
        return None

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")  # type: ignore[no-any-return]
        return None


Route = Callable[[int], str]  # try number (0: the first send) -> the gateway's base URL


class Burst:
    """Fires `taps` at a drop, their first sends spread evenly over `spread` seconds, at
    most `concurrency` requests open at once; resends a LOST or 503 answer after
    `retry_delay` s (with the same key and body) for up to `retry_for` s."""

    def __init__(
        self,
        drop_id: str,
        taps: list[Tap],
        route: str | Route,
        *,
        spread: float = 2.5,
        concurrency: int = 128,
        retry_for: float = 30.0,
        retry_delay: float = 0.1,
        timeout: float = 20.0,
    ) -> None:
        self.drop_id = drop_id
        self.taps = taps
        self.route: Route = (lambda _: route) if isinstance(route, str) else route
        self.spread = spread
        self.concurrency = concurrency
        self.retry_for = retry_for
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.sent: list[Sent] = []
        self.final: dict[int, Sent] = {}  # tap -> its definite answer
        self.retrying = True  # cleared: a failed tap is left unresolved
        self._auth = Auth(SECRET, [HOST_KEY])
        self._tokens: dict[str, str] = {}

    def _token(self, buyer: str) -> str:
        if buyer not in self._tokens:
            self._tokens[buyer] = self._auth.mint(buyer, 3600)
        return self._tokens[buyer]

    async def run(self) -> None:
        start = time.monotonic()
        step = self.spread / len(self.taps)
        await self._fire([(i, start + i * step) for i in range(len(self.taps))])

    async def resolve(self, base: str) -> None:
        """Sends every tap still without a definite answer again, to `base`."""
        self.route, self.retrying = (lambda _: base), True
        now = time.monotonic()
        await self._fire([(i, now) for i in self.unresolved()])

    async def _fire(self, schedule: list[tuple[int, float]]) -> None:
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await asyncio.gather(*(self._tap(http, i, at) for i, at in schedule))

    async def _tap(self, http: aiohttp.ClientSession, i: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        deadline = time.monotonic() + self.retry_for
        tries = 0
        while True:
            sent = await self._send(http, i, self.route(tries))
            self.sent.append(sent)
            if sent.status not in RETRIED:
                self.final[i] = sent
                return
            tries += 1
            if not self.retrying or time.monotonic() >= deadline:
                return
            await asyncio.sleep(self.retry_delay)

    async def _send(self, http: aiohttp.ClientSession, i: int, base: str) -> Sent:
        tap = self.taps[i]
        headers = {"Authorization": f"Bearer {self._token(tap.buyer)}", "Idempotency-Key": tap.key}
        url = f"{base}/v1/drops/{self.drop_id}/purchase"
        try:
            async with http.post(url, json={"quantity": tap.quantity}, headers=headers) as r:
                raw = await r.read()
                status, retry_after = r.status, r.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError):
            return Sent(i, base, LOST, None, None, time.monotonic())
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        return Sent(i, base, status, body, retry_after, time.monotonic())

    async def until(self, fraction: float, within: float = 30.0) -> float:
        """Waits until `fraction` of the taps have a definite answer; returns the time."""
        deadline = time.monotonic() + within
        while len(self.final) < fraction * len(self.taps):
            assert time.monotonic() < deadline, f"only {len(self.final)} taps answered"
            await asyncio.sleep(0.005)
        return time.monotonic()

    # What happened.

    def unresolved(self) -> list[int]:
        return [i for i in range(len(self.taps)) if i not in self.final]

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter[int]:
        return Counter(s.status for s in self.sent if since <= s.at < until)

    def created(self) -> dict[str, Tap]:
        """Order id -> the tap answered 201 with it."""
        return {s.order["id"]: self.taps[s.tap] for s in self.sent if s.status == 201 and s.order}

    def replayed_only(self) -> set[str]:
        """Orders that reached their buyer only as a replay (200), never as a 201: made by a
        request that was answered something else (a lost connection, a 503)."""
        replayed = {s.order["id"] for s in self.sent if s.status == 200 and s.order}
        return replayed - set(self.created())

    def answers(self) -> list[Answer]:
        out = []
        for s in self.sent:
            tap = self.taps[s.tap]
            headers = {"Retry-After": s.retry_after} if s.retry_after else {}
            out.append(Answer(tap.buyer, tap.quantity, tap.key, Reply(s.status, s.body, headers)))
        return out


async def assert_contract(
    stack: Stack, drop_id: str, burst: Burst, *, replays_of_lost_answers: bool = False
) -> list[Order]:
    """Every tap answered for good, never a 500, every 503 with Retry-After; then, once
    settlement has caught up, the six invariants from the answers, the store and the audit
    (tests/invariants.py), and the store holding exactly the orders the buyers were given.

    An order that reached its buyer only as a replay was made by a request answered
    otherwise: allowed only where a process died holding its answer
    (`replays_of_lost_answers`), never for a 503 ("a 503 means no purchase was made").
    """
    assert not burst.unresolved(), f"{len(burst.unresolved())} taps never got an answer"
    statuses = burst.statuses()
    assert set(statuses) <= {LOST, 200, 201, 409, 503}, statuses
    refusals = Counter(s.code for s in burst.sent if s.status == 409)
    assert set(refusals) <= {"sold_out", "limit_reached"}, refusals
    assert refusals["sold_out"] > 0, "stock must be smaller than demand"
    assert all(s.retry_after for s in burst.sent if s.status == 503)
    replayed_only = burst.replayed_only()
    if not replays_of_lost_answers:
        assert not replayed_only, f"orders made but answered otherwise: {sorted(replayed_only)}"
    for oid in replayed_only:  # their requests' answers: lost connections, never a 503
        sends = [s for s in burst.sent if burst.taps[s.tap].key == _key_of(burst, oid)]
        assert not any(s.status == 503 for s in sends), f"{oid} was made, yet answered 503"

    stored = await assert_invariants(stack, drop_id, burst.answers())
    by_id = {o.id: o for o in stored}
    created = burst.created()
    # No lost order: every 201 is in the store with its buyer and quantity ...
    for oid, tap in created.items():
        assert oid in by_id, f"order {oid} was answered 201 but is not in the store"
        assert (by_id[oid].buyer, by_id[oid].quantity) == (tap.buyer, tap.quantity), oid
    # ... and no phantom: every order in the store reached its buyer (201, or a replay).
    given = set(created) | replayed_only
    assert set(by_id) == given, (sorted(set(by_id) - given)[:5], sorted(given - set(by_id))[:5])
    drop = (await stack.call("GET", f"/v1/drops/{drop_id}")).body
    assert drop["remaining"] == 0 and drop["sold"] == drop["stock"], drop
    assert sum(o.quantity for o in stored) == drop["stock"]
    return stored


def _key_of(burst: Burst, order_id: str) -> str:
    for s in burst.sent:
        if s.order and s.order["id"] == order_id:
            return burst.taps[s.tap].key
    raise KeyError(order_id)


# flashsale's commands as processes.


class Service:
    """One `flashsale` command running as its own process, its output in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        self.proc = spawn_logged(*args, env=env, log=self.log)
        self.port: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def ready(self, within: float = 30.0) -> None:
        """Until its /readyz answers 200 (a gateway, or `up`)."""
        await wait_ready(self.base, self.alive, self.output, within)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, holding whatever it held."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    async def terminate(self, within: float = 15.0) -> tuple[int, float]:
        """SIGTERM; returns its exit code and how long it took to exit."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.proc.wait, within)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running {within} s after SIGTERM") from None
        return code, time.monotonic() - start


class Fleet:
    """The processes of one test, all on one Redis and one store; whatever is still running
    at the end is killed."""

    def __init__(self, redis_url: str, database_url: str, tmp: Path, **extra: str) -> None:
        self.tmp = tmp
        self.env = flashsale_env(
            redis_url, database_url, FLASHSALE_TOKEN_SECRET=SECRET, FLASHSALE_HOST_KEYS=HOST_KEY,
            FLASHSALE_BUYER_RATE="0", FLASHSALE_DATA_DIR=str(tmp / "data"), **extra,
        )  # fmt: skip
        self.services: list[Service] = []

    def start(self, name: str, *args: str, **extra: str) -> Service:
        service = Service(name, list(args), self.env | extra, self.tmp)
        self.services.append(service)
        return service

    def gateway(self, name: str) -> Service:
        port = free_port()
        service = self.start(name, "serve", "--host", "127.0.0.1", "--port", str(port))
        service.port = port
        return service

    def worker(self, name: str, **extra: str) -> Service:
        return self.start(name, "worker", **extra)

    def close(self) -> None:
        for service in self.services:
            if service.alive():
                service.kill()


async def until(condition: Callable[[], Awaitable[bool]], what: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)
