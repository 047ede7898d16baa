"""`python -m flashsale.loadtest.settle_bench`: how fast settlement writes orders into
SQLite and PostgreSQL, and how far behind it stays while purchases keep coming.

For each store, one settlement worker with its default batch:
- throughput: `orders` purchases already wait in a drop's stream; the worker is timed from
  its start until nothing is unsettled (every entry committed and acknowledged);
- live: purchases are fed at a fixed `rate` (a batch every 10 ms) for `seconds` while the
  worker runs, and the settlement lag (`oldest_unsettled_ms`) is sampled every 100 ms until
  the worker has caught up.

Purchases go straight into the purchase script, in big batches, so the bench measures
settlement and not the gateway. It brings its own parts: a redis-server on a free port, a
fresh SQLite file, and a PostgreSQL database it creates and drops (given an admin URL).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import uvloop

from flashsale.engine import (
    DropSpec,
    Engine,
    OrderStore,
    SettlementWorker,
    new_order_ids,
    oldest_unsettled_ms,
    open_store,
)
from flashsale.loadtest.results import Latency
from flashsale.redis_server import RedisServer, free_port

FILL_BATCH = 2_000  # purchases per script call while filling the stream
TICK = 0.01  # live mode: a batch of purchases every 10 ms
SAMPLE_EVERY = 0.1  # live mode: how often the lag is read


@dataclass
class SettleFigures:
    store: str  # "sqlite" or "postgresql"
    orders: int  # throughput run: orders settled
    seconds: float  # ... and how long that took
    live_rate: float  # live run: purchases fed per second, as achieved
    live_orders: int
    lag_max_ms: int
    lag_p99_ms: int

    @property
    def orders_per_s(self) -> float:
        return self.orders / self.seconds

    def line(self) -> str:
        return (
            f"{self.store:<10} {self.orders_per_s:>9,.0f} orders/s "
            f"({self.orders:,} in {self.seconds:.2f} s) | live {self.live_rate:,.0f}/s, "
            f"{self.live_orders:,} orders: lag max {self.lag_max_ms} ms, "
            f"p99 {self.lag_p99_ms} ms"
        )


async def new_drop(engine: Engine, stock: int) -> str:
    """An open drop of `stock` units, straight through the engine."""
    spec = DropSpec(sku="BENCH", title="bench", price=100, currency="EUR", stock=stock)
    drop = await engine.drops.create(spec)
    await engine.drops.open(drop.id)
    return drop.id


async def buy(engine: Engine, drop_id: str, buyers: range, keyed: bool = False) -> list[str]:
    """One purchase of one unit by each buyer `b<n>` (under key `k<n>` if `keyed`), in one
    call of the purchase script; returns the order ids, and raises if any was refused."""
    ids = new_order_ids(drop_id, len(buyers))
    requests = [
        (oid, f"b{n}", 1, f"k{n}" if keyed else "", "", "")
        for oid, n in zip(ids, buyers, strict=True)
    ]
    decisions = await engine.purchaser.decide_once(drop_id, 0, requests)
    refused = [d.outcome for d in decisions if d.outcome != "created"]
    if refused:
        raise RuntimeError(f"purchases refused: {refused[:3]}")
    return [d.order.id for d in decisions if d.order is not None]


@asynccontextmanager
async def _running(engine: Engine, store: OrderStore) -> AsyncIterator[SettlementWorker]:
    """A settlement worker running in the background while the block lasts."""
    worker = SettlementWorker(engine.redis, store, engine.drops)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


async def _caught_up(engine: Engine, poll: float) -> None:
    """Returns once every order event is committed and acknowledged."""
    while True:
        if await oldest_unsettled_ms(engine.redis, engine.drops) is None:
            return
        await asyncio.sleep(poll)


async def _throughput(engine: Engine, store: OrderStore, orders: int) -> float:
    """Seconds one worker takes to settle `orders` purchases waiting in a stream."""
    drop_id = await new_drop(engine, orders)
    for start in range(0, orders, FILL_BATCH):
        await buy(engine, drop_id, range(start, min(orders, start + FILL_BATCH)))
    began = time.perf_counter()
    async with _running(engine, store) as worker:
        await _caught_up(engine, poll=0.005)
        took = time.perf_counter() - began
    if worker.settled != orders:
        raise RuntimeError(f"settled {worker.settled} of {orders} orders")
    return took


async def _feed(engine: Engine, drop_id: str, rate: float, total: int) -> float:
    """Feeds `total` purchases at `rate` per second; returns the rate achieved.

    Each tick sends what is due by then, so a slow tick is made up at the next one.
    """
    loop = asyncio.get_running_loop()
    began, sent, tick = loop.time(), 0, 0
    while sent < total:
        tick += 1
        due = min(total, round(rate * TICK * tick)) - sent
        await buy(engine, drop_id, range(sent, sent + due))
        sent += due
        await asyncio.sleep(max(0.0, began + tick * TICK - loop.time()))
    return total / (loop.time() - began)


async def _sample_lag(engine: Engine, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(await oldest_unsettled_ms(engine.redis, engine.drops) or 0)
        await asyncio.sleep(SAMPLE_EVERY)


async def _live(
    engine: Engine, store: OrderStore, rate: float, seconds: float
) -> tuple[float, int, list[int]]:
    """Feeds purchases at `rate` while a worker settles them; (rate, orders, lag samples)."""
    total = round(rate * seconds)
    drop_id = await new_drop(engine, total)
    samples: list[int] = []
    done = asyncio.Event()
    async with _running(engine, store):
        sampler = asyncio.create_task(_sample_lag(engine, samples, done))
        achieved = await _feed(engine, drop_id, rate, total)
        await _caught_up(engine, poll=SAMPLE_EVERY)
        done.set()
        await sampler
    return achieved, total, samples


async def _measure_store(
    engine: Engine, name: str, url: str, orders: int, rate: float, seconds: float
) -> SettleFigures:
    await engine.redis.flushall()  # each store starts from empty streams
    store = open_store(url)
    await store.open()
    try:
        took = await _throughput(engine, store, orders)
        achieved, fed, lags = await _live(engine, store, rate, seconds)
    finally:
        await store.close()
    p99 = Latency.of(lags).percentiles.get(99.0, 0)  # the load tool's HDR percentiles, of ms
    return SettleFigures(name, orders, took, achieved, fed, max(lags, default=0), p99)


@asynccontextmanager
async def _pg_database(admin_url: str) -> AsyncIterator[str]:
    """A database of its own on the server at `admin_url`, dropped afterwards."""
    name = f"flashsale_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def measure(
    orders: int = 200_000,
    postgres: str | None = None,
    rate: float = 20_000,
    seconds: float = 5.0,
) -> list[SettleFigures]:
    """Figures for SQLite, then for PostgreSQL when `postgres` (an admin URL) is given."""
    with tempfile.TemporaryDirectory(prefix="flashsale-settle-bench-") as tmp:
        server = RedisServer(Path(tmp) / "redis", port=free_port(), appendonly=False)
        await asyncio.to_thread(server.start)
        engine = Engine.from_url(server.url)
        try:
            sqlite_url = f"sqlite:///{Path(tmp) / 'orders.db'}"
            figures = [await _measure_store(engine, "sqlite", sqlite_url, orders, rate, seconds)]
            if postgres:
                async with _pg_database(postgres) as pg_url:
                    figures.append(
                        await _measure_store(engine, "postgresql", pg_url, orders, rate, seconds)
                    )
            return figures
        finally:
            await engine.close()
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flashsale.loadtest.settle_bench")
    parser.add_argument("--orders", type=int, default=200_000, help="throughput run size")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL admin URL (optional)")
    parser.add_argument("--rate", type=float, default=20_000, help="live purchases per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="live run length")
    args = parser.parse_args(argv)
    print(
        f"settlement: {args.orders:,} waiting orders, then {args.rate:,.0f} purchases/s "
        f"for {args.seconds:g} s (lag sampled every {SAMPLE_EVERY * 1000:.0f} ms)"
    )
    for figures in uvloop.run(measure(args.orders, args.postgres, args.rate, args.seconds)):
        print(figures.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
