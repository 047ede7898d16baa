"""The `flashsale` command: run a flash sale engine (up, serve, worker; demo to watch one),
sign buyer tokens, check its invariants, rehearse a drop (loadtest) and measure it (bench)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import uvloop

from flashsale import config, logs, run
from flashsale.config import ConfigError, Settings
from flashsale.engine import REDIS_ERRORS, STORE_ERRORS
from flashsale.metrics import share_across_processes
from flashsale.run import Gateways, cores, demo
from flashsale.run.demo import DEMO_DIR

# The commands that make the data dir's secrets when they are missing; the others only read
# them, so that one run from the wrong place says so instead of signing with a new secret.
_SERVING = ("up", "serve", "worker", "demo")
_GATEWAYS = ("up", "serve", "demo")  # the commands that serve HTTP on --port


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flashsale", description=__doc__)
    p.add_argument("--data-dir", help="where `up` keeps its files (FLASHSALE_DATA_DIR)")
    p.add_argument("--redis-url", help="FLASHSALE_REDIS_URL")
    p.add_argument("--database-url", help="FLASHSALE_DATABASE_URL")
    p.add_argument("--acks", choices=config.ACKS, help="FLASHSALE_ACKS")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--log-format", choices=logs.FORMATS, help="text lines or JSON objects (text)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("up", help="everything on this machine: Redis, SQLite, gateway, worker")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument(
        "--workers", type=int, default=cores(), help="gateway processes (default: one per core)"
    )

    s = sub.add_parser(
        "demo", help=f"up in {DEMO_DIR}/, with a drop and buyers to watch sell it out"
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument(
        "--workers", type=int, default=1, help="gateway processes (default 1: the show is small)"
    )
    s.add_argument(
        "--trickle", type=float, default=demo.TRICKLE_S, metavar="S",
        help=f"seconds of a trickle of buyers before the burst ({demo.TRICKLE_S:g})",
    )  # fmt: skip

    s = sub.add_parser("serve", help="the HTTP gateway alone")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--workers", type=int, default=1, help="gateway processes (SO_REUSEPORT)")

    s = sub.add_parser("worker", help="the settlement worker alone (run any number)")
    s.add_argument("--concurrency", type=int, default=1, help="consumers in this process")

    s = sub.add_parser("token", help="print a buyer token signed with the token secret")
    s.add_argument("--user", required=True, help="the buyer id (1..64 characters)")
    s.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")

    s = sub.add_parser("audit", help="check every invariant against Redis and the order store")
    s.add_argument("--drop", help="only this drop")
    s.add_argument(
        "--wait",
        type=float,
        default=10.0,
        help="seconds to let settlement catch up first (default 10)",
    )

    s = sub.add_parser(
        "verify-draw",
        help="recompute a draw from its revealed seed and entries; exit 0 only if all matches",
    )
    s.add_argument("--drop", required=True, help="the draw drop's id")

    s = sub.add_parser("webhooks", help="list webhook subscriptions; replay one from a time")
    hooks = s.add_subparsers(dest="webhooks_command", required=True)
    hooks.add_parser("list", help="every subscription, with what it delivered and has left")
    r = hooks.add_parser("replay", help="send a subscription's events since a time again")
    r.add_argument("webhook", help="the webhook's id (wh_...)")
    r.add_argument("--since", required=True, help="RFC 3339: events at or after this time")

    s = sub.add_parser("loadtest", help="rehearse a drop: fire, measure, audit")
    from flashsale.loadtest.command import add_arguments

    add_arguments(s)

    s = sub.add_parser("bench", help="purchases against an aiohttp hello world; the seed burst")
    from flashsale.loadtest import bench

    bench.add_arguments(s)
    return p


def _serve(settings: Settings, host: str, port: int, workers: int) -> int:
    if workers <= 1:
        uvloop.run(run.serve(settings, host, port))
        return 0
    gateways = Gateways(settings, host, port, workers)
    # Each gateway drains its own requests on SIGTERM; the parent only waits for them.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: gateways.stop())
    gateways.start()
    return gateways.join()


async def _verify_draw(settings: Settings, drop_id: str) -> int:
    problems = await run.verify_draw(settings, drop_id)
    for problem in problems:
        print(f"MISMATCH {problem}")
    print(
        "the draw matches its commitment and its order" if not problems else "DRAW DOES NOT MATCH"
    )
    return 0 if not problems else 1


async def _audit(settings: Settings, drop: str | None, wait: float) -> int:
    report = await run.audit(settings, drop, wait)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


async def _webhooks(settings: Settings, args: argparse.Namespace) -> int:
    from flashsale.run import webhooks

    if args.webhooks_command == "list":
        print("\n".join(await webhooks.listing(settings)) or "no webhooks")
        return 0
    queued = await webhooks.replay(settings, args.webhook, args.since)
    print(f"{queued} event(s) queued again for {args.webhook}; the workers send them now")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        logs.setup(logging.DEBUG if args.verbose else logging.INFO, args.log_format)
        data_dir = args.data_dir or (DEMO_DIR if args.command == "demo" else None)
        settings = config.load(
            data_dir=data_dir, redis_url=args.redis_url,
            database_url=args.database_url, acks=args.acks,
            keep=args.command in _SERVING,
        )  # fmt: skip
        if args.command in _GATEWAYS:  # the gateway processes on this port count together
            share_across_processes(settings.data_dir / "metrics" / str(args.port), fresh=True)
        if args.command == "token":
            from flashsale.gateway.auth import Auth

            if not settings.token_secret:
                raise config.missing_secret(settings, "token secret")
            print(Auth(settings.token_secret, settings.host_keys).mint(args.user, args.ttl))
            code = 0
        elif args.command == "up":
            uvloop.run(run.up(settings, args.host, args.port, args.workers))
            code = 0
        elif args.command == "demo":
            uvloop.run(
                run.up(settings, args.host, args.port, args.workers, show=demo.show(args.trickle))
            )
            code = 0
        elif args.command == "serve":
            code = _serve(settings, args.host, args.port, args.workers)
        elif args.command == "worker":
            uvloop.run(run.work(settings, args.concurrency))
            code = 0
        elif args.command == "bench":
            from flashsale.loadtest import bench

            code = bench.main(args)
        elif args.command == "verify-draw":
            code = uvloop.run(_verify_draw(settings, args.drop))
        elif args.command == "webhooks":
            code = uvloop.run(_webhooks(settings, args))
        elif args.command == "loadtest":
            from flashsale.loadtest import command

            code = command.main(args, settings)
        else:
            code = uvloop.run(_audit(settings, args.drop, args.wait))
    except (ConfigError, ValueError) as e:
        print(f"flashsale: {e}", file=sys.stderr)
        code = 2
    except (*REDIS_ERRORS, *STORE_ERRORS) as e:
        print(f"flashsale: cannot reach Redis or the order store: {e!r}", file=sys.stderr)
        code = 1
    sys.exit(code)
