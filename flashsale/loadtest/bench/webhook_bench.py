"""(h) webhooks: how fast the outbox empties into a fast local receiver, and how far behind
the deliveries stay while a seed night's orders settle.

The receiver is the bench's bare httptools hello world (it answers every POST 200 at once),
in its own process, so what is measured is flashsale's side: claiming under a lease,
signing, sending over pooled connections, recording outcomes. For each store:
- drain: `events` order events already queued for one subscription; one deliverer is timed
  from its start until nothing is pending;
- burst: the seed night's 38,000 orders settled in batches of 200 as fast as the store
  takes them (the settlement worker's batch) while the deliverer runs; the lag (age of the
  oldest undelivered event, what /metrics shows) is sampled every 100 ms.

`SeedWatch` measures the same lag on the bench's whole rig, during its real seed night.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from flashsale.engine import (
    EVENT_TYPES,
    Deliverer,
    Order,
    OrderStore,
    WebhookSpec,
    open_store,
    subscribe,
)
from flashsale.loadtest.bench.rig import wait_port
from flashsale.loadtest.procs import start
from flashsale.loadtest.settle_bench import _pg_database
from flashsale.redis_server import free_port

BATCH = 200  # order events per settlement batch, as the worker reads them


def _orders(drop_id: str, first: int, n: int) -> list[Order]:
    now = time.time_ns() // 1_000_000
    return [Order(id=f"{drop_id}-{i:025d}", drop_id=drop_id, seq=i, buyer=f"b{i}", quantity=1,
                  amount=990, currency="CNY", status="confirmed", created_at=now)
            for i in range(first, first + n)]  # fmt: skip


async def _queue(store: OrderStore, drop_id: str, first: int, n: int) -> None:
    for at in range(first, first + n, BATCH):
        await store.apply(_orders(drop_id, at, min(BATCH, first + n - at)), {drop_id: None})


async def _pending(store: OrderStore) -> tuple[int, float]:
    """(deliveries waiting, age in s of the oldest)."""
    stats = await store.endpoint_stats()
    waiting = sum(s.pending for s in stats)
    oldest = min((s.oldest_pending_ms for s in stats if s.oldest_pending_ms), default=None)
    return waiting, 0.0 if oldest is None else time.time() - oldest / 1000


async def _measure_store(name: str, url: str, receiver: str, events: int, burst: int) -> str:
    store = open_store(url)
    await store.open()
    stop = asyncio.Event()
    try:
        spec = WebhookSpec(url=receiver, events=["order.created"])
        await subscribe(store, spec, allow_private=True)
        await _queue(store, "benchdrain01", 0, events)
        deliverer = Deliverer(store, allow_private=True)
        started, cpu = time.perf_counter(), time.process_time()
        running = asyncio.create_task(deliverer.run(stop))
        left = 1
        while left:  # polled as /metrics reads it: the store, not an event of this process
            await asyncio.sleep(0.02)
            left = (await _pending(store))[0]
        drain_s = time.perf_counter() - started
        cpu_us = (time.process_time() - cpu) / events * 1e6  # this process: the deliverer

        lags: list[float] = []
        feeding = asyncio.create_task(_queue(store, "benchburst01", 0, burst))
        fed_at = 0.0
        while True:
            waiting, lag = await _pending(store)
            lags.append(lag)
            if feeding.done() and not fed_at:
                fed_at = time.perf_counter()
            if feeding.done() and not waiting:
                break
            await asyncio.sleep(0.1)
        caught_up_s = time.perf_counter() - fed_at
        stop.set()
        await running
        return (
            f"{name}: {events:,} queued events delivered in {drain_s:.2f} s "
            f"([bold]{events / drain_s:,.0f} events/s[/bold], {deliverer.per_endpoint} in "
            f"flight, {cpu_us:.0f} us of this process's CPU an event); seed burst of "
            f"{burst:,} orders: lag at most {max(lags):.2f} s, "
            f"caught up {caught_up_s:.2f} s after the last batch settled"
        )
    finally:
        stop.set()
        await store.close()


async def measure(
    events: int = 20_000, burst: int = 38_000, postgres: str | None = None
) -> list[str]:
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="flashsale-hooks-") as tmp:
        port = free_port()
        proc = start(stack, [sys.executable, "-m", "flashsale.loadtest.hello", str(port), "bare"])
        wait_port(port, proc)
        receiver = f"http://127.0.0.1:{port}/hook"
        lines = [await _measure_store("SQLite", f"sqlite:///{Path(tmp) / 'o.db'}", receiver,
                                      events, burst)]  # fmt: skip
        if postgres:
            async with _pg_database(postgres) as pg_url:
                lines.append(await _measure_store("PostgreSQL", pg_url, receiver, events, burst))
        return lines


if __name__ == "__main__":
    import uvloop

    for line in uvloop.run(measure(postgres=sys.argv[1] if len(sys.argv) > 1 else None)):
        print(line)


class SeedWatch:
    """The webhooks during the real seed night: one subscription on the bench's rig to a
    fast local receiver, and the rig's /metrics read every 0.25 s in a thread (its lag and
    what waits) while the burst runs, then until the outbox is empty."""

    def __init__(self, stack: ExitStack, url: str, host_key: str) -> None:
        port = free_port()
        proc = start(stack, [sys.executable, "-m", "flashsale.loadtest.hello", str(port), "bare"])
        wait_port(port, proc)
        self._url, self._auth = url, {"Authorization": f"Bearer {host_key}"}
        hook = {"url": f"http://127.0.0.1:{port}/hook", "events": list(EVENT_TYPES)}
        made = self._call("POST", "/v1/webhooks", msgspec.json.encode(hook))
        self.webhook_id: str = made["webhook"]["id"]
        self.samples: list[tuple[float, float, float, float]] = []  # t, lag, pending, sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _call(self, method: str, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(self._url + path, body, self._auth, method=method)
        with urllib.request.urlopen(request, timeout=10) as r:
            raw = r.read()
        return msgspec.json.decode(raw) if path.startswith("/v1/") else raw.decode()

    def _read(self) -> tuple[float, float, float]:
        mine = {"lag": 0.0, "pending": 0.0, "delivered": 0.0}
        for family in text_string_to_metric_families(self._call("GET", "/metrics")):
            for s in family.samples:
                if s.labels.get("webhook") != self.webhook_id:
                    continue
                if s.name == "flashsale_webhook_lag_seconds":
                    mine["lag"] = s.value
                elif s.name == "flashsale_webhook_pending":
                    mine["pending"] = s.value
                elif (
                    s.name == "flashsale_webhook_deliveries_total"
                    and s.labels["outcome"] == "delivered"
                ):
                    mine["delivered"] = s.value
        return mine["lag"], mine["pending"], mine["delivered"]

    def _watch(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                self.samples.append((time.monotonic() - started, *self._read()))
            self._stop.wait(0.25)

    def finish(self, within: float = 600.0) -> list[str]:
        """Waits for the outbox to empty; the lines for the bench's output."""
        ended = time.monotonic()
        while time.monotonic() - ended < within:
            time.sleep(0.25)
            if self.samples and self.samples[-1][2] == 0 and self.samples[-1][3] > 0:
                break
        self._stop.set()
        self._thread.join()
        lag = max((s[1] for s in self.samples), default=0.0)
        sent = self.samples[-1][3] if self.samples else 0
        left = self.samples[-1][2] if self.samples else 0
        return [
            f"webhooks during the seed night: {sent:,.0f} events delivered to a local receiver "
            f"(the rig's worker); lag at most [bold]{lag:.1f} s[/bold]; the outbox "
            + (f"empty {time.monotonic() - ended:.1f} s after the runs ended" if not left
               else f"still held {left:,.0f} after {within:.0f} s")
        ]  # fmt: skip
