"""Sends what the outbox holds: due deliveries, claimed under a lease, POSTed concurrently.

Each subscription has its own share of the connections (`per_endpoint` in flight at most)
and is claimed for on its own each pass, so a slow or dead endpoint fills only its own
share: the others' deliveries never wait behind its timeouts. A failed attempt is tried
again after an exponential backoff with jitter, for `give_up_s` (24 h) from when it was
queued, and then kept as failed, for a replay. Outcomes are written back in one transaction
per pass, each only under the lease it was sent with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

import aiohttp

from flashsale.engine.settlement import consumer_name
from flashsale.engine.store import STORE_ERRORS, OrderStore
from flashsale.engine.store.outbox import now_ms
from flashsale.engine.webhooks.models import Attempt, AttemptOutcome, Claimed, Webhook
from flashsale.engine.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signature
from flashsale.engine.webhooks.targets import DestinationRefused, GuardedResolver, check_literal

log = logging.getLogger(__name__)
BODY_LIMIT = 4096  # bytes of an answer read, at most: a receiver's body is never used
USER_AGENT = "flashsale-webhooks/1"


@dataclass
class Backoff:
    """When a failed delivery is tried again: `first_s`, doubling each attempt up to `max_s`,
    each delay drawn from its upper half (so a burst of failures does not come back as one
    burst), for `give_up_s` from when it was queued."""

    first_s: float = 5.0
    max_s: float = 3600.0
    give_up_s: float = 86_400.0

    def next_at(self, claimed: Claimed, now: int) -> int | None:
        """ms of the next try, or None: time is up, it is kept as failed."""
        if now - claimed.queued_at >= self.give_up_s * 1000:
            return None
        delay = min(self.first_s * 2 ** (claimed.attempts - 1), self.max_s)
        return now + int(1000 * delay * (0.5 + random.random() / 2))


@dataclass
class Deliverer:
    store: OrderStore
    allow_private: bool = False
    timeout_s: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    per_endpoint: int = 64  # attempts in flight per subscription (and claimed per pass)
    idle_s: float = 0.05  # first pause after a pass that found nothing ...
    max_idle_s: float = 1.0  # ... doubling up to this while nothing comes
    lease: str = field(default_factory=lambda: "d-" + consumer_name())
    attempts: int = 0  # made by this deliverer, for tests and the bench
    _in_flight: dict[str, int] = field(default_factory=dict)
    _done: list[Attempt] = field(default_factory=list)
    _woken: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def lease_s(self) -> float:
        """Longer than any attempt can take: a lease runs out only on a worker that died."""
        return 2 * self.timeout_s + 1

    def wake(self) -> None:
        """New deliveries were queued (settlement in this process): look now."""
        self._woken.set()

    def _client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, resolver=GuardedResolver(self.allow_private)
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            auto_decompress=False,
        )

    async def run(self, stop: asyncio.Event) -> None:
        async with self._client() as http:
            quiet = self.idle_s
            while not stop.is_set():
                # Cleared before the pass, not after: an attempt that ends during the pass
                # wakes the next one instead of being slept through.
                self._woken.clear()
                try:
                    started = await self.step(http)
                except STORE_ERRORS as e:
                    log.warning("webhook deliveries: the order store failed, will retry: %r", e)
                    started = 0
                if started:
                    quiet = self.idle_s
                    await asyncio.sleep(0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), quiet)
                quiet = min(quiet * 2, self.max_idle_s)
            await self._finish_in_flight(stop)

    async def _finish_in_flight(self, stop: asyncio.Event) -> None:
        """On a stop: the attempts in flight end (each within its timeout) and are recorded."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.timeout_s + 1)
        with contextlib.suppress(*STORE_ERRORS):
            await self._flush()

    async def step(self, http: aiohttp.ClientSession) -> int:
        """One pass: records what finished, then claims and starts what each subscription has
        room for; returns how many attempts it started (or recorded)."""
        recorded = await self._flush()
        started = 0
        for webhook in await self.store.webhooks():
            room = self.per_endpoint - self._in_flight.get(webhook.id, 0)
            if room <= 0:
                continue
            for claimed in await self.store.claim(webhook.id, self.lease, self.lease_s, room):
                self._start(http, webhook, claimed)
                started += 1
        return started + recorded

    async def _flush(self) -> int:
        if not self._done:
            return 0
        done, self._done = self._done, []
        try:
            await self.store.finish(done)
        except BaseException:
            self._done = done + self._done  # recorded next pass (or taken over by the lease)
            raise
        return len(done)

    def _start(self, http: aiohttp.ClientSession, webhook: Webhook, claimed: Claimed) -> None:
        self._in_flight[webhook.id] = self._in_flight.get(webhook.id, 0) + 1
        task = asyncio.create_task(self._attempt(http, webhook, claimed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(
        self, http: aiohttp.ClientSession, webhook: Webhook, claimed: Claimed
    ) -> None:
        try:
            code, error = await self.send(http, webhook, claimed)
        finally:
            self._in_flight[webhook.id] -= 1
        self.attempts += 1
        now = now_ms()
        if error is None:  # send's 2xx
            self._done.append(Attempt(claimed=claimed, outcome="delivered", at=now, next_at=now,
                                      code=code))  # fmt: skip
        else:
            again = self.backoff.next_at(claimed, now)
            outcome: AttemptOutcome = "failed" if again is None else "retried"
            self._done.append(Attempt(claimed=claimed, outcome=outcome, at=now,
                                      next_at=again or now, code=code, error=error))  # fmt: skip
        self.wake()  # the next event of its order may be due now

    async def send(
        self, http: aiohttp.ClientSession, webhook: Webhook, claimed: Claimed
    ) -> tuple[int | None, str | None]:
        """One POST: (its status, or None) and why it does not count (None: 2xx, delivered)."""
        body = claimed.body.encode()
        headers = {
            EVENT_ID_HEADER: claimed.event_id,
            SIGNATURE_HEADER: signature(webhook.secret, body),
        }
        try:
            check_literal(webhook.url, self.allow_private)
            async with http.post(
                webhook.url, data=body, headers=headers, allow_redirects=False
            ) as r:
                await r.content.read(BODY_LIMIT)  # never more; a longer answer ends its connection
                if not r.content.at_eof():
                    r.close()
                if 200 <= r.status < 300:
                    return r.status, None
                if 300 <= r.status < 400:
                    return r.status, f"redirect to {r.headers.get('Location', '?')} not followed"
                return r.status, f"answered {r.status}"
        except TimeoutError:
            return None, f"no answer within {self.timeout_s:g} s"
        except DestinationRefused as e:
            return None, str(e)
        except (aiohttp.ClientError, OSError) as e:
            return None, f"{type(e).__name__}: {e}"[:300]
        except Exception as e:  # a surprise is a failed attempt, tried again: never a lost one
            log.exception("webhook delivery to %s failed unexpectedly", webhook.url)
            return None, f"{type(e).__name__}: {e}"[:300]


__all__ = ["Backoff", "Deliverer"]
