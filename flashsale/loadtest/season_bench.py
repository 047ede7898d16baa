"""`python -m flashsale.loadtest.season_bench`: what a long season costs, printed.

- idle: a `flashsale worker` process beside a season of past drops (each sold a little and
  closed), at 0, 1,000 and 10,000 of them: its CPU while nothing sells, and the settle lag
  of a new order (from the purchase script's answer to the row in the store) on a live drop;
- memory: Redis's `used_memory` after a night of `--night` orders over 100 drops, settled,
  then after those drops are closed and compacted (retention 0), per order and per drop;
- soak: `--soak` seconds of `flashsale loadtest` rounds at a steady rate against a gateway
  and a worker process (each round a new drop, closed after it; retention 60 s), with the
  gateway's and the worker's resident memory and Redis's `used_memory` sampled every 10 s.

It brings its own redis-server on a free port and a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import uvloop
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from flashsale.engine import (
    Compactor,
    Engine,
    OrderStore,
    open_store,
    wait_settled,
)
from flashsale.loadtest import cpu
from flashsale.loadtest.procs import flashsale, running
from flashsale.loadtest.settle_bench import buy, new_drop
from flashsale.redis_server import RedisServer, free_port

IDLE_S = 10.0  # how long the idle worker's CPU is measured
QUIET_S = 17.0  # after history is made: a trim (10 s) and a prune (5 s) to let it rest
LAG_ORDERS = 40
FILL = 2_000  # purchases per script call for the night


def _env(redis_url: str, db_url: str, work: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    return env | {
        "FLASHSALE_REDIS_URL": redis_url,
        "FLASHSALE_DATABASE_URL": db_url,
        "FLASHSALE_DATA_DIR": str(work / "data"),
        **extra,
    }


async def _history(engine: Engine, n: int) -> None:
    """`n` past drops: two orders each, then closed."""
    for start in range(0, n, 100):
        ids = await asyncio.gather(*(new_drop(engine, 5) for _ in range(min(100, n - start))))
        await asyncio.gather(*(buy(engine, d, range(2), keyed=True) for d in ids))
        await asyncio.gather(*(engine.drops.close(d) for d in ids))


async def _lag_ms(engine: Engine, store: OrderStore, drop_id: str, n: int) -> list[float]:
    """For `n` single purchases, 100 ms apart: ms until each order is in the store."""
    lags = []
    for i in range(n):
        began = time.perf_counter()
        (order_id,) = await buy(engine, drop_id, range(10_000_000 + i, 10_000_001 + i), keyed=True)
        while await store.get(order_id) is None:  # noqa: ASYNC110 (the store has no event)
            await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - began) * 1000)
        await asyncio.sleep(0.1)
    return lags


async def idle(
    work: Path, sizes: list[int], idle_s: float = IDLE_S, quiet_s: float = QUIET_S
) -> list[str]:
    lines = []
    with ExitStack() as stack:
        redis = RedisServer(work / "redis-idle", port=free_port()).start()
        stack.callback(redis.stop)
        db = f"sqlite:///{work / 'idle.db'}"
        engine = Engine.from_url(redis.url)
        store = open_store(db)
        await store.open()
        try:
            worker = stack.enter_context(
                running(flashsale("worker"), _env(redis.url, db, work), work / "worker-idle.log")
            )
            made = 0
            for size in sizes:
                await _history(engine, size - made)
                made = size
                await asyncio.sleep(quiet_s)
                pids = cpu.tree(worker.pid)
                before = cpu.seconds(pids)
                await asyncio.sleep(idle_s)
                share = (cpu.seconds(pids) - before) / idle_s
                live = await new_drop(engine, 100_000)
                lags = await _lag_ms(engine, store, live, LAG_ORDERS)
                await engine.drops.close(live)
                lines.append(
                    f"{size:>6,} past drops: idle worker {share:6.1%} of a core; settle lag "
                    f"of a new order median {statistics.median(lags):5.1f} ms, "
                    f"max {max(lags):5.1f} ms"
                )
        finally:
            await store.close()
            await engine.close()
    return lines


@contextmanager
def _client(redis: RedisServer) -> Iterator[SyncRedis]:
    assert redis.port is not None
    client = SyncRedis(port=redis.port)
    try:
        yield client
    finally:
        client.close()


def _used_memory(redis: RedisServer) -> int:
    with _client(redis) as client:
        return int(client.info("memory")["used_memory"])


def _clients_bytes(redis: RedisServer) -> int:
    with _client(redis) as client:
        return int(client.memory_stats()["clients.normal"])


def _keys_bytes(redis: RedisServer) -> int:
    """What the keys themselves take (MEMORY USAGE), without any client's buffers."""
    with _client(redis) as client:
        return sum(client.memory_usage(k) or 0 for k in client.scan_iter(count=1000))


async def _resting_memory(engine: Engine, redis: RedisServer) -> int:
    """`used_memory` once it stops moving: a client's query buffer, swollen by big batches,
    shrinks over seconds, so this process's own connections are closed first."""
    client = engine.redis
    assert isinstance(client, Redis)  # the bench's own single redis-server
    await client.connection_pool.disconnect()
    last = _used_memory(redis)
    for _ in range(30):
        await asyncio.sleep(1.0)
        now = _used_memory(redis)
        if abs(now - last) <= last // 100:
            return now
        last = now
    return last


async def memory(work: Path, night: int, drops: int = 100, quiet_s: float = QUIET_S) -> list[str]:
    with ExitStack() as stack:
        redis = RedisServer(work / "redis-night", port=free_port()).start()
        stack.callback(redis.stop)
        db = f"sqlite:///{work / 'night.db'}"
        engine = Engine.from_url(redis.url)
        try:
            stack.enter_context(
                running(flashsale("worker"), _env(redis.url, db, work), work / "worker-night.log")
            )
            empty = _used_memory(redis)
            each = night // drops
            ids = [await new_drop(engine, each) for _ in range(drops)]
            for drop_id in ids:
                for start in range(0, each, FILL):
                    await buy(engine, drop_id, range(start, min(each, start + FILL)), keyed=True)
            left = await wait_settled(engine.redis, engine.drops, 600)
            await asyncio.sleep(quiet_s)  # the worker trims what it settled
            settled, settled_keys = await _resting_memory(engine, redis), _keys_bytes(redis)
            for drop_id in ids:
                await engine.drops.close(drop_id)
            compactor = Compactor(engine.redis, engine.scripts, engine.drops, retention_s=0.0)
            compacted = await compactor.compact_once()
            after, after_keys = await _resting_memory(engine, redis), _keys_bytes(redis)
            buffers = _clients_bytes(redis)
        finally:
            await engine.close()
    orders = each * drops
    return [
        f"a night of {orders:,} orders over {drops} drops (backlog left {left}), settled "
        f"and trimmed: Redis used_memory {(settled - empty) / 2**20:,.1f} MiB above empty "
        f"({(settled - empty) / orders:,.0f} bytes per order; the keys alone "
        f"{settled_keys / orders:,.0f})",
        f"after closing and compacting them ({compacted} compacted): "
        f"{(after - empty) / 2**20:,.2f} MiB above empty, of which the clients' buffers "
        f"{buffers / 2**20:,.2f} MiB; the keys alone {after_keys / drops:,.0f} bytes per drop",
    ]


def soak(work: Path, seconds: float, rate: float, round_s: float = 60.0) -> list[str]:
    """Load-tool rounds for `seconds`; memory sampled every 10 s."""
    redis = RedisServer(work / "redis-soak", port=free_port(), appendonly=False).start()
    secret, host_key = secrets.token_urlsafe(32), "hk_" + secrets.token_urlsafe(24)
    db = f"sqlite:///{work / 'soak.db'}"
    env = _env(redis.url, db, work, FLASHSALE_TOKEN_SECRET=secret, FLASHSALE_HOST_KEYS=host_key,
               FLASHSALE_RETENTION_S="60", FLASHSALE_BUYER_RATE="0")  # fmt: skip
    port = free_port()
    samples: list[tuple[float, int, int, int]] = []
    rounds: list[str] = []
    try:
        with (
            running(flashsale("serve", "--host", "127.0.0.1", "--port", str(port)), env,
                    work / "gateway-soak.log") as gateway,
            running(flashsale("worker"), env, work / "worker-soak.log") as worker,
        ):  # fmt: skip
            began = time.monotonic()
            time.sleep(2.0)
            n = 0
            while time.monotonic() - began < seconds:
                n += 1
                out = work / f"round{n}.json"
                attempts = int(rate * round_s)
                load = subprocess.Popen(
                    flashsale("loadtest", "--quiet",
                     "--url", f"http://127.0.0.1:{port}", "--stock", str(attempts),
                     "--attempts", str(attempts), "--limit", "2", "--arrival", "rate",
                     "--rate", str(rate), "--duration", f"{round_s:g}s", "--connections", "32",
                     "--seed", str(n), "--json", str(out)),
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                )  # fmt: skip
                while load.poll() is None:
                    samples.append((
                        time.monotonic() - began,
                        cpu.rss_bytes(cpu.tree(gateway.pid)),
                        cpu.rss_bytes(cpu.tree(worker.pid)),
                        _used_memory(redis),
                    ))  # fmt: skip
                    time.sleep(10.0)
                report = json.loads(out.read_text())
                drop_id = report["drop"]["id"]
                close = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/drops/{drop_id}/close", method="POST",
                    headers={"Authorization": f"Bearer {host_key}"},
                )  # fmt: skip
                urllib.request.urlopen(close, timeout=10).close()
                rounds.append(
                    f"round {n}: {report['requests']:,} requests, p99 "
                    f"{report['latency_ms']['p99']:.1f} ms, {'PASS' if report['ok'] else 'FAIL'}"
                )
    finally:
        redis.stop()
    lines = [f"soak: {len(rounds)} rounds of {round_s:g} s at {rate:,.0f} purchases/s"]
    lines += [f"  {r}" for r in rounds]
    lines.append("  t (s)   gateway RSS   worker RSS   Redis used_memory")
    lines += [f"  {t:6.0f}   {g / 2**20:8.1f} MiB {w / 2**20:8.1f} MiB   {r / 2**20:8.1f} MiB"
              for t, g, w, r in samples]  # fmt: skip
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--past-drops", default="0,1000,10000", help="season sizes measured, in turn")
    p.add_argument("--idle-s", type=float, default=IDLE_S, help="seconds the idle CPU is read")
    p.add_argument("--quiet-s", type=float, default=QUIET_S, help="rest before each reading")
    p.add_argument("--night", type=int, default=1_000_000, help="orders in the memory night")
    p.add_argument("--soak", type=float, default=1800.0, help="soak seconds (0: skip)")
    p.add_argument("--soak-rate", type=float, default=1000.0, help="soak purchases per second")
    p.add_argument("--soak-round", type=float, default=60.0, help="seconds per soak round")


def run_all(args: argparse.Namespace, say: Callable[[str], object] = print) -> None:
    with tempfile.TemporaryDirectory(prefix="flashsale-season-") as tmp:
        work = Path(tmp)
        sizes = [int(s) for s in args.past_drops.split(",")]
        for line in uvloop.run(idle(work, sizes, args.idle_s, args.quiet_s)):
            say(line)
        for line in uvloop.run(memory(work, args.night, quiet_s=args.quiet_s)):
            say(line)
        if args.soak > 0:
            for line in soak(work, args.soak, args.soak_rate, args.soak_round):
                say(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flashsale.loadtest.season_bench")
    add_arguments(parser)
    run_all(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
