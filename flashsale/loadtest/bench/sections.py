"""The bench's measured sections over one rig: (a)/(a') the hello worlds, (b) purchases,
(c) held rates and (d) scale."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from redis import Redis

from flashsale.engine import DropKeys
from flashsale.gateway.auth import Auth
from flashsale.loadtest import cpu
from flashsale.loadtest.bench.generators import (
    CEILINGS,
    Hello,
    Measured,
    Purchases,
    lua,
    merge,
    own,
    run_wrk,
)
from flashsale.loadtest.bench.redis_cost import redis_cost_line, script_stats, wait_redis_settled
from flashsale.loadtest.bench.rig import Rig, new_drop, start, wait_port
from flashsale.redis_server import RedisServer, free_port


def purchase_loads(
    port: int,
    drop: str,
    tokens: list[str],
    procs: int,
    prefix: str,
    rate: float | None = None,
    count: int | None = None,
) -> list[Purchases]:
    """The buyers dealt out over `procs` load processes, each with its share of the load."""
    return [
        Purchases(
            f"127.0.0.1:{port}",
            drop,
            tokens[i::procs],
            f"{prefix}{i}-",
            rate / procs if rate else None,
            count // procs if count else None,
        )
        for i in range(procs)
    ]


def measure_scale(
    url: str,
    port: int,
    host_key: str,
    auth: Auth,
    tokens: list[str],
    procs: int,
    conns: int,
    dur: float,
    redis: RedisServer,
    args: argparse.Namespace,
) -> list[Measured]:
    """Does the cost of a purchase grow with the drop's stock or with the number of buyers?"""
    rows: list[Measured] = []
    # Stock: the same 1,000 purchases (buyers whose tokens are known) from a small and a huge
    # drop, alternating rounds so a noisy neighbour hurts both alike.
    rounds: dict[int, list[Measured]] = {10**3: [], 10**7: []}
    for _ in range(3):
        for stock, done in rounds.items():
            drop = asyncio.run(new_drop(url, host_key, stock=stock, per_buyer_limit=1))
            loads = purchase_loads(port, drop, tokens[:1000], procs, "s", count=1000)
            done.append(own(port, loads, conns, None))
    for stock, done in rounds.items():
        m = merge(tuple(done))
        m.target = f"(d) 1,000 purchases, stock {stock:.0e}"
        rows.append(m)
    # Buyers: tokens no gateway has seen yet, dealt in turn. With 10^4 buyers a token comes
    # back every 10^4 purchases; with 10^6, almost never within the run.
    client = Redis.from_url(redis.url)
    for n in args.scale_buyers:
        fresh = [auth.mint(f"scale{n}-{i}", 24 * 3600) for i in range(n)]
        drop = asyncio.run(new_drop(url, host_key, stock=10**9, per_buyer_limit=10**6))
        m = own(port, purchase_loads(port, drop, fresh, procs, f"n{n}-"), conns, dur)
        # The drop's own keys, not Redis as a whole: rate-limit windows come and go beside
        # them, and would make the figure noise.
        keys = DropKeys.of(drop)
        held = sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)
        made = int(client.hget(keys.drop, "seq") or 0)
        m.target = f"(d) {n:,} buyers"
        m.redis_bytes_per_order = held / max(1, made)
        rows.append(m)
    client.close()
    return rows


def measure_ceilings(
    stack: ExitStack, work: Path, procs: int, conns: int, dur: float, wrk: bool, pin: bool
) -> tuple[list[Measured], float | None]:
    """(a) and (a'): both hello worlds, measured alike; with `pin`, the load tool's own client
    against wrk too. Returns the rows and that client's ratio to wrk."""
    rows: list[Measured] = []
    client_ratio = None
    for kind, target in CEILINGS.items():
        port = free_port()
        servers = [
            start(stack, [sys.executable, "-m", "flashsale.loadtest.hello", str(port), kind])
            for _ in range(procs)
        ]
        wait_port(port, servers[0])
        script = work / "hello.lua"
        script.write_text(lua('{"quantity":1}', {"Content-Type": "application/json"}))
        url = f"http://127.0.0.1:{port}/hello"
        workloads = [Hello(f"127.0.0.1:{port}")] * procs
        pids = [p for server in servers for p in cpu.tree(server.pid)]
        used = cpu.seconds(pids)
        m = run_wrk(url, script, procs, conns, dur) if wrk else own(port, workloads, conns, dur)
        m.server_cpu_us = (cpu.seconds(pids) - used) / max(1.0, m.rps * dur) * 1e6
        m.target = target
        rows.append(m)
        cores = os.cpu_count() or 1
        if kind == "aiohttp" and pin and wrk and cores >= 2 * procs:
            # The client against wrk, each pinned to cores the server does not use.
            server_cpus, client_cpus = set(range(procs)), set(range(procs, 2 * procs))
            for server in servers:
                os.sched_setaffinity(server.pid, server_cpus)
            # Alternating short rounds, so a noisy neighbour hurts both alike.
            third = max(1, round(dur / 3))  # wrk takes whole seconds
            rounds = [
                (
                    run_wrk(url, script, procs, conns, third, client_cpus),
                    own(port, workloads, conns, third, client_cpus),
                )
                for _ in range(3)
            ]
            pinned_wrk, pinned_own = (merge(m) for m in zip(*rounds, strict=True))
            for m in (pinned_wrk, pinned_own):
                m.target = "(a) pinned, client cores apart"
            rows += [pinned_wrk, pinned_own]
            client_ratio = pinned_own.rps / pinned_wrk.rps
        for server in servers:
            server.terminate()
            server.wait(10)
    return rows, client_ratio


def measure_purchases(
    rig: Rig, work: Path, conns: int, dur: float, wrk: bool, tokens: list[str], drop: str
) -> tuple[Measured, list[str]]:
    """(b): new purchases as fast as they are answered; the row and what each part spent."""
    procs = rig.procs
    # One pass over the buyers first: (b) measures purchases from buyers whose tokens the
    # gateways have verified (a buyer taps more than once); the seed burst is the cold case.
    own(
        rig.port,
        purchase_loads(rig.port, drop, tokens, procs, "w", count=len(tokens)),
        conns,
        None,
    )
    asyncio.run(wait_redis_settled(rig.redis))  # the worker's CPU below is (b)'s orders', not these
    before = script_stats(rig.redis, drop)
    parts = {
        "gateway": cpu.tree(rig.gateway.pid),
        "settlement worker": cpu.tree(rig.worker.pid),
        "redis-server": [rig.redis.process.pid] if rig.redis.process else [],
    }
    used = {name: cpu.seconds(pids) for name, pids in parts.items()}
    if wrk:
        script = work / "purchase.lua"
        script.write_text(lua('{"quantity":1}', {"Content-Type": "application/json"}, tokens))
        b = run_wrk(f"{rig.url}/v1/drops/{drop}/purchase", script, procs, conns, dur)
    else:
        b = own(rig.port, purchase_loads(rig.port, drop, tokens, procs, "p"), conns, dur)
    spent = {name: cpu.seconds(pids) - used[name] for name, pids in parts.items()}
    after = script_stats(rig.redis, drop)
    sold = max(1, after[2] - before[2])
    b.target = "(b) flashsale purchase"
    b.server_cpu_us = spent["gateway"] / sold * 1e6
    lines = [
        f"(b) {procs} process(es), CPU per purchase: "
        + ", ".join(f"{name} {secs / sold * 1e6:.1f} us" for name, secs in spent.items())
    ]
    redis_cost = redis_cost_line(before, after)
    if redis_cost:
        lines.append(redis_cost)
    return b, lines
