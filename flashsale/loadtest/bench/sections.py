"""The bench's measured sections: (a)/(a') the hello worlds, then over one rig (b)
purchases, (c) held rates, (d) scale and the seed night."""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import msgspec
from redis import Redis

from flashsale.engine import DropKeys
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
from flashsale.loadtest.bench.redis_cost import (
    redis_cost_line,
    script_stats,
    script_time,
    wait_redis_settled,
)
from flashsale.loadtest.bench.rig import Rig, new_drop, start, wait_port
from flashsale.loadtest.run import run
from flashsale.loadtest.scenario import Scenario
from flashsale.redis_server import free_port

PURCHASE = "(b) flashsale purchase"


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


def measure_rates(
    rig: Rig, drop: str, tokens: list[str], rates: list[int], conns: int, dur: float
) -> list[Measured]:
    """(c): purchases due at a held rate (open loop), for the latency at that rate."""
    return [
        own(
            rig.port,
            purchase_loads(rig.port, drop, tokens, rig.procs, f"r{rate}-", rate=rate),
            max(conns, 256),
            min(dur, 5.0),
            open_loop=True,
            target=f"(c) {rate:,} purchases/s held, open loop",
        )
        for rate in rates
    ]


def measure_scale(
    rig: Rig, tokens: list[str], buyers: list[int], conns: int, dur: float
) -> list[Measured]:
    """(d): does the cost of a purchase grow with the drop's stock or with the number of
    buyers?"""
    rows: list[Measured] = []
    port, procs = rig.port, rig.procs
    # Stock: the same 1,000 purchases (buyers whose tokens are known) from a small and a huge
    # drop, alternating rounds so a noisy neighbour hurts both alike.
    rounds: dict[int, list[Measured]] = {10**3: [], 10**7: []}
    for _ in range(3):
        for stock, done in rounds.items():
            drop = asyncio.run(new_drop(rig.url, rig.host_key, stock=stock, per_buyer_limit=1))
            loads = purchase_loads(port, drop, tokens[:1000], procs, "s", count=1000)
            done.append(own(port, loads, conns, None))
    for stock, done in rounds.items():
        rows.append(merge(tuple(done), f"(d) 1,000 purchases, stock {stock:.0e}"))
    # Buyers: tokens no gateway has seen yet, dealt in turn. With 10^4 buyers a token comes
    # back every 10^4 purchases; with 10^6, almost never within the run.
    client = Redis.from_url(rig.redis.url)
    for n in buyers:
        fresh = [rig.auth.mint(f"scale{n}-{i}", 24 * 3600) for i in range(n)]
        drop = asyncio.run(new_drop(rig.url, rig.host_key, stock=10**9, per_buyer_limit=10**6))
        loads = purchase_loads(port, drop, fresh, procs, f"n{n}-")
        m = own(port, loads, conns, dur, target=f"(d) {n:,} buyers")
        # The drop's own keys, not Redis as a whole: rate-limit windows come and go beside
        # them, and would make the figure noise.
        keys = DropKeys.of(drop)
        held = sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)
        made = int(client.hget(keys.drop, "seq") or 0)
        rows.append(replace(m, redis_bytes_per_order=held / max(1, made)))
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
        m = (
            run_wrk(url, script, procs, conns, dur, target=target)
            if wrk
            else own(port, workloads, conns, dur, target=target)
        )
        used = cpu.seconds(pids) - used
        rows.append(replace(m, server_cpu_us=used / max(1.0, m.rps * dur) * 1e6))
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
            pinned_wrk, pinned_own = (
                merge(m, "(a) pinned, client cores apart") for m in zip(*rounds, strict=True)
            )
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
        url = f"{rig.url}/v1/drops/{drop}/purchase"
        b = run_wrk(url, script, procs, conns, dur, target=PURCHASE)
    else:
        loads = purchase_loads(rig.port, drop, tokens, procs, "p")
        b = own(rig.port, loads, conns, dur, target=PURCHASE)
    spent = {name: cpu.seconds(pids) - used[name] for name, pids in parts.items()}
    after = script_stats(rig.redis, drop)
    sold = max(1, after[2] - before[2])
    b = replace(b, server_cpu_us=spent["gateway"] / sold * 1e6)
    lines = [
        f"(b) {procs} process(es), CPU per purchase: "
        + ", ".join(f"{name} {secs / sold * 1e6:.1f} us" for name, secs in spent.items())
    ]
    redis_cost = redis_cost_line(before, after)
    if redis_cost:
        lines.append(redis_cost)
    return b, lines


# The lotus of the seed night as it was sold: two pack sizes, 38,000 units together.
LOTUS = "1KG:20000:1290,2KG:18000:2390"


def measure_seed(rig: Rig, conns: int) -> tuple[bool, list[str]]:
    """The seed night: 38,000 units, 380,000 attempts, limit 2, in one burst, audited; once
    as one SKU, then as the lotus was sold (LOTUS), with what each cost Redis per purchase:
    variants must not make a purchase dearer."""
    ok, lines, figures = True, [], {}
    for name, shape in (("one SKU", {"stock": 38_000}), ("two pack sizes", {"variants": LOTUS})):
        common = {"url": rig.url, "connections": conns, "processes": rig.procs,
                  "attempts": 380_000, "limit": 2}  # fmt: skip
        sc = msgspec.convert(common | shape, Scenario)
        before = script_time(rig.redis)
        outcome = asyncio.run(
            run(
                sc,
                host_key=rig.host_key,
                token_secret=rig.secret,
                settings=rig.settings,
                thresholds=[],
            )
        )
        after = script_time(rig.redis)
        s = outcome.summary
        sold = outcome.drop["sold"] or 1
        per_purchase = (after[1] - before[1]) / sold
        figures[name] = (s.sellout_s, per_purchase)
        sold_out = "not sold out" if s.sellout_s is None else f"sold out in {s.sellout_s:.2f} s"
        lines.append(
            f"seed scenario, {name}: {sold_out}; {s.requests:,} answers in {s.span_s:.1f} s "
            f"({s.rps:,.0f}/s), p99 {s.latency.percentiles[99.0] / 1e6:.1f} s from t0; Redis "
            f"{per_purchase:.2f} us per purchase ({after[0] - before[0]:,} script calls)"
        )
        lines += [
            f"  {line}" for line in [c.line() for c in outcome.checks] + (outcome.audit_lines or [])
        ]
        ok = ok and outcome.ok
    (one_s, one_us), (two_s, two_us) = figures.values()
    if one_s and two_s:
        lines.append(
            f"  two pack sizes / one SKU: sell-out {two_s / one_s:.2f}x, "
            f"Redis per purchase {two_us / one_us:.2f}x"
        )
    return ok, lines
