"""`flashsale bench`: on this machine, in one run, for each process count and with the same
load generator, (a) a plain aiohttp+uvloop hello-world POST and (a') a bare uvloop+httptools
one, the ceiling, against (b) flashsale's purchase endpoint, with the ratios and what each
costs in CPU per request; then held rates, scale, settlement, and the seed scenario (38,000
units, 380,000 attempts, limit 2) with its sellout time and audit.

wrk is the generator when it is installed, and then the load tool's own client is measured
against it on (a) too: the client must not be what limits the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from redis import Redis
from rich.console import Console
from rich.table import Table

from flashsale.config import Settings
from flashsale.engine import DropKeys, Engine, new_order_ids, wait_settled
from flashsale.gateway.auth import Auth
from flashsale.loadtest import cpu, fleet, season_bench, settle_bench
from flashsale.loadtest.firing import Job, Shot, Workload
from flashsale.loadtest.http import request_bytes
from flashsale.loadtest.results import Latency
from flashsale.loadtest.run import Outcome, run
from flashsale.loadtest.scenario import Scenario
from flashsale.redis_server import RedisServer, free_port

BENCH_BUYERS = 20_000
CEILINGS = {
    "aiohttp": "(a) aiohttp hello world",
    "bare": "(a') bare httptools hello world",
}  # enough that no buyer nears the per-buyer rate limit


@dataclass
class Measured:
    target: str
    generator: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None = None  # the load tool's CPU per request
    server_cpu_us: float | None = None  # the server's CPU per request answered
    redis_bytes_per_order: float | None = None  # the drop's Redis bytes per purchase made


# ---- workloads for the tool's own client (closed loop, for a fixed time)
@dataclass
class Hello(Workload):
    host: str

    def shots(self) -> Iterator[Shot]:
        req = request_bytes(
            "POST", "/hello", self.host, {"Content-Type": "application/json"}, b'{"quantity":1}'
        )
        return (Shot(0.0, i, req) for i in itertools.count())


@dataclass
class Purchases(Workload):
    """Every request a real purchase: a new key, buyers in turn, stock that never ends.
    With a rate, requests are due at that rate (open loop); else as fast as answered."""

    host: str
    drop_id: str
    tokens: list[str]
    prefix: str
    rate: float | None = None
    count: int | None = None

    def shots(self) -> Iterator[Shot]:
        target = f"/v1/drops/{self.drop_id}/purchase"
        n = len(self.tokens)
        gap = 1.0 / self.rate if self.rate else 0.0
        for i in range(self.count) if self.count is not None else itertools.count():
            headers = {
                "Authorization": f"Bearer {self.tokens[i % n]}",
                "Idempotency-Key": f"{self.prefix}{i}",
                "Content-Type": "application/json",
            }
            body = b'{"quantity":1}'
            yield Shot(i * gap, i, request_bytes("POST", target, self.host, headers, body))


def _own(
    port: int,
    workloads: list[Hello] | list[Purchases],
    conns: int,
    dur: float | None,
    cpus: set[int] | None = None,
    open_loop: bool = False,
) -> Measured:
    """Fires for `dur` seconds (or until the workloads end); answers 2xx per second."""
    job = Job("127.0.0.1", port, conns, 0.0, closed_loop=not open_loop, duration=dur, resends=0)
    started = time.perf_counter()
    records = asyncio.run(fleet.fire(job, workloads, cpus=cpus))
    span = dur or max(records.done, default=0.0) or time.perf_counter() - started
    ok = sum(1 for s in records.status if 200 <= s < 300)
    lat = Latency.of(list(records.latency_us))
    p50, p99 = lat.percentiles[50.0] / 1000, lat.percentiles[99.0] / 1000
    cpu_us = records.cpu_s / len(records) * 1e6 if len(records) else None
    return Measured("", "flashsale loadtest client", ok / span, p50, p99, cpu_us)


def _merge(rounds: tuple[Measured, ...]) -> Measured:
    """Several rounds as one: mean rate, median percentiles."""
    mid = sorted(rounds, key=lambda m: m.rps)[len(rounds) // 2]
    cpu = [m.cpu_us for m in rounds if m.cpu_us is not None]
    return Measured(
        mid.target,
        mid.generator,
        sum(m.rps for m in rounds) / len(rounds),
        mid.p50_ms,
        mid.p99_ms,
        sum(cpu) / len(cpu) if cpu else None,
    )


# ---- wrk
_WRK_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_WRK_PCT = re.compile(r"^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.M)
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _wrk(
    url: str, script: Path, procs: int, conns: int, dur: float, cpus: set[int] | None = None
) -> Measured:
    args = [
        "wrk",
        f"-t{procs}",
        f"-c{conns}",
        f"-d{max(1, round(dur))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if cpus:
        args = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *args]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = _WRK_RPS.search(out)
    pct = {p: float(v) * _UNIT_MS[u] for p, v, u in _WRK_PCT.findall(out)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if rps is None or non2xx:
        raise RuntimeError(f"wrk: unexpected answers:\n{out}")
    return Measured("", "wrk", float(rps.group(1)), pct.get("50", 0.0), pct.get("99", 0.0))


def _lua(body: str, headers: dict[str, str], tokens: list[str] | None = None) -> str:
    head = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    if tokens is None:
        return f"wrk.method = \"POST\"\nwrk.body = '{body}'\n{head}"
    listed = ",\n".join(f'"{t}"' for t in tokens)
    return f"""{head}
local tokens = {{
{listed}
}}
local n = #tokens
local i = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function request()
  i = i + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[(i % n) + 1]
  wrk.headers["Idempotency-Key"] = "w" .. tid .. "-" .. i
  return wrk.format("POST", nil, nil, '{body}')
end
"""


# ---- processes
def _wait_port(port: int, proc: subprocess.Popen[bytes], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {within:g}s")


def _start(
    stack: ExitStack, args: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    return proc


async def _new_drop(url: str, host_key: str, **spec: object) -> str:
    headers = {"Authorization": f"Bearer {host_key}"}
    body = {"sku": "bench", "title": "Bench", "price": 1, "currency": "EUR", **spec}
    async with aiohttp.ClientSession(url, headers=headers) as http:
        async with http.post("/v1/drops", json=body) as r:
            drop = await r.json()
        async with http.post(f"/v1/drops/{drop['id']}/open") as r:
            r.raise_for_status()
    return str(drop["id"])


def _purchase_loads(
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


def _scale(
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
            drop = asyncio.run(_new_drop(url, host_key, stock=stock, per_buyer_limit=1))
            loads = _purchase_loads(port, drop, tokens[:1000], procs, "s", count=1000)
            done.append(_own(port, loads, conns, None))
    for stock, done in rounds.items():
        m = _merge(tuple(done))
        m.target = f"(d) 1,000 purchases, stock {stock:.0e}"
        rows.append(m)
    # Buyers: tokens no gateway has seen yet, dealt in turn. With 10^4 buyers a token comes
    # back every 10^4 purchases; with 10^6, almost never within the run.
    client = Redis.from_url(redis.url)
    for n in args.scale_buyers:
        fresh = [auth.mint(f"scale{n}-{i}", 24 * 3600) for i in range(n)]
        drop = asyncio.run(_new_drop(url, host_key, stock=10**9, per_buyer_limit=10**6))
        m = _own(port, _purchase_loads(port, drop, fresh, procs, f"n{n}-"), conns, dur)
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


async def _settled(redis: RedisServer) -> None:
    engine = Engine.from_url(redis.url)
    try:
        await wait_settled(engine.redis, engine.drops, 60)
    finally:
        await engine.close()


def _script_stats(redis: RedisServer, drop: str) -> tuple[int, int, int]:
    """Script calls Redis ran, the microseconds it spent in them, and the drop's units sold."""
    client = Redis.from_url(redis.url)
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        sold = int(client.hget(DropKeys.of(drop).drop, "sold") or 0)
        return int(stats.get("calls", 0)), int(stats.get("usec", 0)), sold
    finally:
        client.close()


def _redis_cost(before: tuple[int, int, int], after: tuple[int, int, int]) -> str | None:
    """What (b) cost Redis itself: a drop lives in one slot, on one Redis core, so this is
    how many purchases a second one hot drop can take however many gateways there are."""
    calls, usec, sold = (a - b for a, b in zip(after, before, strict=True))
    if not calls or not sold:
        return None
    per_purchase = usec / sold
    return (
        f"(b) Redis: {calls:,} script calls, {sold / calls:.1f} purchases each, "
        f"{usec / calls:.1f} us each, {per_purchase:.2f} us per purchase: one Redis core "
        f"decides up to {1e6 / per_purchase:,.0f} purchases/s of one drop"
    )


async def _unbatched_cost(redis: RedisServer, drop: str, n: int = 2000) -> str:
    """The same script with one purchase per call, as a gateway without batching sends it:
    Redis's own time per call, from its command statistics."""
    engine = Engine.from_url(redis.url)
    try:
        stats = await engine.redis.info("commandstats")
        calls0, usec0 = (int(stats["cmdstat_evalsha"][k]) for k in ("calls", "usec"))
        ids = new_order_ids(drop, n)
        for i, order_id in enumerate(ids):
            await engine.purchaser.decide_once(drop, 0, [(order_id, f"u{i}", 1, "")])
        stats = await engine.redis.info("commandstats")
        calls = int(stats["cmdstat_evalsha"]["calls"]) - calls0
        usec = int(stats["cmdstat_evalsha"]["usec"]) - usec0
    finally:
        await engine.close()
    return (
        f"    unbatched, one purchase per call: {usec / calls:.1f} us each, so "
        f"{1e6 * calls / usec:,.0f} script calls/s on one core"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--processes",
        type=lambda v: [int(n) for n in v.split(",") if n],
        default=[1, 2],
        help="server and client process counts to compare, each in turn (1,2)",
    )
    p.add_argument("--connections", type=int, default=64, help="connections in all")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--generator", choices=("auto", "wrk", "own"), default="auto")
    p.add_argument("--no-seed", action="store_true", help="skip the 380,000-attempt scenario")
    p.add_argument(
        "--rates",
        type=lambda v: [int(r) for r in v.split(",") if r],
        default=[5000, 10000, 20000],
        help="purchases/s to hold, open loop, for p50/p99 at each (5000,10000,20000)",
    )
    p.add_argument(
        "--scale-buyers",
        type=lambda v: [int(r) for r in v.split(",") if r],
        default=[10_000, 1_000_000],
        help="distinct buyers to compare (10000,1000000); empty to skip",
    )
    p.add_argument("--no-scale", action="store_true", help="skip the stock and buyer scale runs")
    p.add_argument(
        "--postgres",
        metavar="URL",
        help="PostgreSQL admin URL: settlement into PostgreSQL is measured too",
    )
    p.add_argument("--no-settle", action="store_true", help="skip the settlement measurement")
    p.add_argument("--settle-orders", type=int, default=200_000, help="orders settled, timed")
    p.add_argument("--no-season", action="store_true", help="skip (f), the long season")
    season_bench.add_arguments(p)


@dataclass
class Rig:
    """A whole flashsale of the bench's own: Redis, `serve --workers N`, one worker."""

    procs: int
    url: str
    port: int
    redis: RedisServer
    env: dict[str, str]
    secret: str
    host_key: str
    gateway: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]


def _start_rig(stack: ExitStack, work: Path, procs: int) -> Rig:
    redis = RedisServer(work / f"redis-{procs}").start()
    stack.callback(redis.stop)
    secret, host_key = secrets.token_urlsafe(32), "hk_" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")} | {
        "FLASHSALE_REDIS_URL": redis.url,
        "FLASHSALE_DATABASE_URL": f"sqlite:///{work / f'orders-{procs}.db'}",
        "FLASHSALE_TOKEN_SECRET": secret,
        "FLASHSALE_HOST_KEYS": host_key,
        "FLASHSALE_DATA_DIR": str(work / f"data-{procs}"),
    }
    port = free_port()
    cli = [sys.executable, "-m", "flashsale"]
    serve = [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(procs)]
    gateway = _start(stack, serve, env)
    worker = _start(stack, [*cli, "worker"], env)
    _wait_port(port, gateway)
    return Rig(
        procs, f"http://127.0.0.1:{port}", port, redis, env, secret, host_key, gateway, worker
    )


def _ceilings(
    stack: ExitStack, work: Path, procs: int, conns: int, dur: float, wrk: bool, pin: bool
) -> tuple[list[Measured], float | None]:
    """(a) and (a'): both hello worlds, measured alike; with `pin`, the load tool's own client
    against wrk too. Returns the rows and that client's ratio to wrk."""
    rows: list[Measured] = []
    client_ratio = None
    for kind, target in CEILINGS.items():
        port = free_port()
        servers = [
            _start(stack, [sys.executable, "-m", "flashsale.loadtest.hello", str(port), kind])
            for _ in range(procs)
        ]
        _wait_port(port, servers[0])
        script = work / "hello.lua"
        script.write_text(_lua('{"quantity":1}', {"Content-Type": "application/json"}))
        url = f"http://127.0.0.1:{port}/hello"
        workloads = [Hello(f"127.0.0.1:{port}")] * procs
        pids = [p for server in servers for p in cpu.tree(server.pid)]
        used = cpu.seconds(pids)
        m = _wrk(url, script, procs, conns, dur) if wrk else _own(port, workloads, conns, dur)
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
                    _wrk(url, script, procs, conns, third, client_cpus),
                    _own(port, workloads, conns, third, client_cpus),
                )
                for _ in range(3)
            ]
            pinned_wrk, pinned_own = (_merge(m) for m in zip(*rounds, strict=True))
            for m in (pinned_wrk, pinned_own):
                m.target = "(a) pinned, client cores apart"
            rows += [pinned_wrk, pinned_own]
            client_ratio = pinned_own.rps / pinned_wrk.rps
        for server in servers:
            server.terminate()
            server.wait(10)
    return rows, client_ratio


def _purchases(
    rig: Rig, work: Path, conns: int, dur: float, wrk: bool, tokens: list[str], drop: str
) -> tuple[Measured, list[str]]:
    """(b): new purchases as fast as they are answered; the row and what each part spent."""
    procs = rig.procs
    # One pass over the buyers first: (b) measures purchases from buyers whose tokens the
    # gateways have verified (a buyer taps more than once); the seed burst is the cold case.
    _own(
        rig.port,
        _purchase_loads(rig.port, drop, tokens, procs, "w", count=len(tokens)),
        conns,
        None,
    )
    asyncio.run(_settled(rig.redis))  # the worker's CPU below is (b)'s orders', not these
    before = _script_stats(rig.redis, drop)
    parts = {
        "gateway": cpu.tree(rig.gateway.pid),
        "settlement worker": cpu.tree(rig.worker.pid),
        "redis-server": [rig.redis.process.pid] if rig.redis.process else [],
    }
    used = {name: cpu.seconds(pids) for name, pids in parts.items()}
    if wrk:
        script = work / "purchase.lua"
        script.write_text(_lua('{"quantity":1}', {"Content-Type": "application/json"}, tokens))
        b = _wrk(f"{rig.url}/v1/drops/{drop}/purchase", script, procs, conns, dur)
    else:
        b = _own(rig.port, _purchase_loads(rig.port, drop, tokens, procs, "p"), conns, dur)
    spent = {name: cpu.seconds(pids) - used[name] for name, pids in parts.items()}
    after = _script_stats(rig.redis, drop)
    sold = max(1, after[2] - before[2])
    b.target = "(b) flashsale purchase"
    b.server_cpu_us = spent["gateway"] / sold * 1e6
    lines = [
        f"(b) {procs} process(es), CPU per purchase: "
        + ", ".join(f"{name} {secs / sold * 1e6:.1f} us" for name, secs in spent.items())
    ]
    redis_cost = _redis_cost(before, after)
    if redis_cost:
        lines.append(redis_cost)
    return b, lines


def main(args: argparse.Namespace) -> int:
    console = Console()
    conns, dur = args.connections, args.duration
    wrk = shutil.which("wrk") if args.generator != "own" else None
    if args.generator == "wrk" and wrk is None:
        raise ValueError("--generator wrk: wrk is not installed (apt install wrk)")
    generator = "wrk" if wrk else "flashsale loadtest client"
    rows: list[Measured] = []
    notes: list[str] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="flashsale-bench-") as tmp:
        work = Path(tmp)
        rig: Rig | None = None
        tokens: list[str] = []
        drop = ""
        for n, procs in enumerate(args.processes):
            console.print(f"{procs} server process(es), {conns} connections, {dur:g}s each")
            console.print("(a) and (a') the hello worlds")
            ceilings, client_ratio = _ceilings(stack, work, procs, conns, dur, bool(wrk), n == 0)
            console.print(f"(b) purchases: {procs} gateway process(es) + 1 settlement worker")
            rig = _start_rig(stack, work, procs)
            drop = asyncio.run(_new_drop(rig.url, rig.host_key, stock=10**9, per_buyer_limit=10**6))
            auth = Auth(rig.secret, [])
            tokens = [auth.mint(f"bench-{i}", 24 * 3600) for i in range(BENCH_BUYERS)]
            b, lines = _purchases(rig, work, conns, dur, bool(wrk), tokens, drop)
            rows += [*ceilings, b]
            hello, bare = (next(m for m in ceilings if m.target == t) for t in CEILINGS.values())
            notes.append(
                f"{procs} process(es): purchase / hello world ({generator}): "
                f"[bold]{b.rps / hello.rps:.2f}x[/bold]; purchase / bare httptools: "
                f"[bold]{b.rps / bare.rps:.2f}x[/bold]; server CPU per request: purchase "
                f"{b.server_cpu_us:.1f} us, aiohttp hello {hello.server_cpu_us:.1f} us, bare "
                f"{bare.server_cpu_us:.1f} us"
            )
            notes += lines
            if client_ratio is not None:
                notes.append(
                    f"load tool's client / wrk on hello world: [bold]{client_ratio:.2f}x[/]"
                )
            if n + 1 < len(args.processes):  # the last rig stays for the sections below
                for proc in (rig.gateway, rig.worker):
                    proc.terminate()
                    proc.wait(20)
        assert rig is not None, "--processes names no process count"
        if rig.redis.process is not None:
            notes.append(asyncio.run(_unbatched_cost(rig.redis, drop)))
        procs, url, port = rig.procs, rig.url, rig.port
        for rate in args.rates:
            loads = _purchase_loads(port, drop, tokens, procs, f"r{rate}-", rate=rate)
            m = _own(port, loads, max(conns, 256), min(dur, 5.0), open_loop=True)
            m.target = f"(c) {rate:,} purchases/s held, open loop"
            rows.append(m)
        if not args.no_scale:
            auth = Auth(rig.secret, [])
            rows += _scale(
                url, port, rig.host_key, auth, tokens, procs, conns, dur, rig.redis, args
            )
        table = Table(title=f"flashsale bench: {conns} connections")
        for col in ("target", "generator", "req/s", "p50", "p99", "server CPU"):
            table.add_column(col, justify="left" if col in ("target", "generator") else "right")
        for m in rows:
            server = f"{m.server_cpu_us:.1f} us" if m.server_cpu_us is not None else ""
            table.add_row(
                m.target, m.generator, f"{m.rps:,.0f}", f"{m.p50_ms:.2f} ms",
                f"{m.p99_ms:.2f} ms", server,
            )  # fmt: skip
        console.print(table)
        for note in notes:
            console.print(note)
        for m in rows:
            if m.redis_bytes_per_order is not None:
                console.print(
                    f"{m.target}: the drop's keys in Redis hold {m.redis_bytes_per_order:,.0f} "
                    "bytes per purchase (the order, its key, the buyer's count, "
                    "the stream entry until settled)"
                )
        cpu_us = [m.cpu_us for m in rows if m.cpu_us]
        if cpu_us:
            console.print(
                f"the load tool's client spent {min(cpu_us):.1f} us of CPU per request: "
                f"one core drives up to {1e6 / min(cpu_us):,.0f} req/s"
            )

        if not args.no_settle:
            console.print(
                f"(e) settlement: {args.settle_orders:,} orders waiting, "
                "then 20,000 purchases/s for 5 s"
            )
            measured = settle_bench.measure(args.settle_orders, postgres=args.postgres)
            for figures in asyncio.run(measured):
                console.print(f"  {figures.line()}")
        if not args.no_season:
            console.print(
                "(f) a long season: an idle worker among past drops, a night's memory, a soak"
            )
            season_bench.run_all(args, lambda line: console.print(f"  {line}"))
        if args.no_seed:
            return 0
        console.print("seed scenario: 38,000 units, 380,000 attempts, limit 2, burst")
        settings = Settings(
            data_dir=work / "data",
            redis_url=rig.redis.url,
            database_url=rig.env["FLASHSALE_DATABASE_URL"],
            token_secret=rig.secret,
            host_keys=[rig.host_key],
        )
        sc = Scenario(
            url=url, connections=conns, processes=procs, stock=38_000, attempts=380_000, limit=2
        )
        outcome: Outcome = asyncio.run(
            run(
                sc, host_key=rig.host_key, token_secret=rig.secret, settings=settings, thresholds=[]
            )
        )
        s = outcome.summary
        sold_out = "not sold out" if s.sellout_s is None else f"sold out in {s.sellout_s:.2f} s"
        console.print(
            f"seed scenario: {sold_out}; {s.requests:,} answers in {s.span_s:.1f} s "
            f"({s.rps:,.0f}/s), p99 {s.latency.percentiles[99.0] / 1e6:.1f} s from t0"
        )
        for line in [c.line() for c in outcome.checks] + (outcome.audit_lines or []):
            console.print(f"  {line}")
        return 0 if outcome.ok else 1
