"""`flashsale bench`: its flags, and the sections in their order over one rig."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.table import Table

from flashsale.loadtest import season_bench, settle_bench
from flashsale.loadtest.bench.generators import BENCH_BUYERS, CEILINGS, Measured
from flashsale.loadtest.bench.queue_bench import measure_queue
from flashsale.loadtest.bench.redis_cost import unbatched_cost
from flashsale.loadtest.bench.rig import Rig, new_drop, start_rig
from flashsale.loadtest.bench.sections import (
    measure_ceilings,
    measure_purchases,
    measure_rates,
    measure_scale,
    measure_seed,
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
    p.add_argument("--no-webhooks", action="store_true", help="skip (h), webhook deliveries")
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
        "--queue-tickets", type=int, default=1_000_000,
        help="(g): tickets in one queue drop, for its memory and its polls (0 to skip)",
    )  # fmt: skip
    p.add_argument(
        "--postgres",
        metavar="URL",
        help="PostgreSQL admin URL: settlement into PostgreSQL is measured too",
    )
    p.add_argument("--no-settle", action="store_true", help="skip the settlement measurement")
    p.add_argument("--settle-orders", type=int, default=200_000, help="orders settled, timed")
    p.add_argument("--no-season", action="store_true", help="skip (f), the long season")
    season_bench.add_arguments(p)


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
            ceilings, client_ratio = measure_ceilings(
                stack, work, procs, conns, dur, bool(wrk), n == 0
            )
            console.print(f"(b) purchases: {procs} gateway process(es) + 1 settlement worker")
            rig = start_rig(stack, work, procs)
            drop = asyncio.run(new_drop(rig.url, rig.host_key, stock=10**9, per_buyer_limit=10**6))
            tokens = [rig.auth.mint(f"bench-{i}", 24 * 3600) for i in range(BENCH_BUYERS)]
            b, lines = measure_purchases(rig, work, conns, dur, bool(wrk), tokens, drop)
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
            notes.append(asyncio.run(unbatched_cost(rig.redis, drop)))
        rows += measure_rates(rig, drop, tokens, args.rates, conns, dur)
        if not args.no_scale:
            rows += measure_scale(rig, tokens, args.scale_buyers, conns, dur)
        if args.queue_tickets and wrk:
            console.print(f"(g) a waiting room of {args.queue_tickets:,} tickets")
            polled, lines = measure_queue(rig, work, tokens, args.queue_tickets, conns, dur, b)
            rows += polled
            notes += lines
        print_rows(console, rows, notes, conns)

        if not args.no_settle:
            console.print(
                f"(e) settlement: {args.settle_orders:,} orders waiting, "
                "then 20,000 purchases/s for 5 s"
            )
            measured = settle_bench.measure(args.settle_orders, postgres=args.postgres)
            for figures in asyncio.run(measured):
                console.print(f"  {figures.line()}")
        if not args.no_webhooks:
            from flashsale.loadtest.bench import webhook_bench  # its own module, run alone too

            console.print("(h) webhooks: the outbox into a fast local receiver; the seed burst")
            for line in asyncio.run(webhook_bench.measure(postgres=args.postgres)):
                console.print(f"  {line}")
        if not args.no_season:
            console.print(
                "(f) a long season: an idle worker among past drops, a night's memory, a soak"
            )
            season_bench.run_all(args, lambda line: console.print(f"  {line}"))
        if args.no_seed:
            return 0
        console.print(
            "seed scenario: 38,000 units, 380,000 attempts, limit 2, burst; one SKU, then two"
        )
        watch = None
        if not args.no_webhooks:
            from flashsale.loadtest.bench.webhook_bench import SeedWatch

            watch = SeedWatch(stack, rig.url, rig.host_key)
        ok, lines = measure_seed(rig, conns)
        if watch is not None:
            lines += watch.finish()
        for line in lines:
            console.print(line)
        return 0 if ok else 1


def print_rows(console: Console, rows: list[Measured], notes: list[str], conns: int) -> None:
    """The table of every row measured, then the notes the sections left."""
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
