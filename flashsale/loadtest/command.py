"""`flashsale loadtest`: its flags, and what it prints, writes and exits with."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from rich.console import Console
from rich.live import Live as RichLive

from flashsale.config import Settings, missing_secret
from flashsale.loadtest import report
from flashsale.loadtest.run import Live, RunError, run
from flashsale.loadtest.scenario import ARRIVALS, DEFAULT_URL, Scenario, load
from flashsale.loadtest.thresholds import Threshold

# (flag, type, help); each is also a key of the scenario file
_SCENARIO_FLAGS: list[tuple[str, Any, str]] = [
    (
        "url",
        str,
        "the gateway (default: where `up` in the data dir serves, else http://127.0.0.1:8080)",
    ),
    ("drop", str, "fire at this existing drop instead of creating one"),
    ("stock", int, "units in the drop it creates (default 1000)"),
    ("limit", int, "per-buyer limit of the drop it creates (default 2)"),
    ("price", int, "price in minor units (default 100)"),
    ("currency", str, "ISO 4217 code (default EUR)"),
    ("payment-window", int, "seconds a reservation is held for payment (default 0)"),
    (
        "variants",
        str,
        "a drop of variants, code:stock:price[:deposit], e.g. 1KG:20000:1290,2KG:18000:2390",
    ),
    ("variant-mix", str, "which variant buyers pick, code:weight (default: by stock)"),
    ("attempts", int, "purchase attempts (default stock x oversubscription)"),
    ("oversubscription", float, "attempts per unit when --attempts is not given (default 10)"),
    ("buyers", int, "distinct buyers (default attempts / 2)"),
    ("quantities", str, "quantity mix, quantity:weight, e.g. 1:80,2:20 (default 1)"),
    ("arrival", str, f"{' | '.join(ARRIVALS)} (default burst)"),
    ("duration", str, "ramp: how long the rate climbs; rate: how long it runs (10s, 2m)"),
    ("rate", float, "arrival rate: attempts a second"),
    ("connections", int, "keep-alive connections in all (default 64)"),
    ("processes", int, "load processes (default 1)"),
    ("repeat", float, "share of attempts sent again with the same Idempotency-Key"),
    ("pay", float, "with a payment window: share that pays in time (default 1)"),
    ("pay-late", float, "share that pays after the hold ended; the rest abandons"),
    ("timeout", str, "per request (default 10s)"),
    ("resends", int, "resends, same key, after 503/504/429/lost/timeout (default 3)"),
    ("seed", int, "random seed of the plan (default 1)"),
    ("settle-wait", str, "how long settlement may take before the audit (default 60s)"),
    ("admission", str, "first_come | queue | draw: who gets the units (default first_come)"),
    ("admit-per-s", int, "queue: tickets the door admits a second (default 1000)"),
    ("draw-in", str, "draw: from creation to draws_at (default 3s)"),
    ("bots", int, "queue or draw: bot accounts arriving after the start (default 0)"),
    ("bot-connections", int, "connections each bot uses at once (default 8)"),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", metavar="FILE.toml", help="scenario file; flags override it")
    for flag, kind, text in _SCENARIO_FLAGS:
        p.add_argument(f"--{flag}", type=kind, help=text)
    p.add_argument("--host-key", help="default: FLASHSALE_HOST_KEYS or the data dir's")
    p.add_argument("--token-secret", help="default: FLASHSALE_TOKEN_SECRET or the data dir's")
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="fail unless it holds: p99<10ms, errors<0.1%%, rps>5000, sellout<2s (repeatable)",
    )
    p.add_argument(
        "--report", metavar="OUT.html",
        help="write a self-contained HTML report (a relative path: in the data dir's reports/)",
    )  # fmt: skip
    p.add_argument(
        "--json", metavar="OUT.json",
        help="write the results as JSON (- for stdout; a relative path lands in reports/ too)",
    )  # fmt: skip
    p.add_argument(
        "--no-engine-audit",
        action="store_true",
        help="skip `flashsale audit` (when running away from Redis and the store)",
    )
    p.add_argument("--quiet", action="store_true", help="no live display")


def main(args: argparse.Namespace, settings: Settings) -> int:
    flags = {f.replace("-", "_"): getattr(args, f.replace("-", "_")) for f, _, _ in _SCENARIO_FLAGS}
    sc = load(args.scenario, flags)
    if sc.url == DEFAULT_URL and settings.runtime_url_file.exists():  # neither flag nor file
        url = settings.runtime_url_file.read_text(encoding="utf-8").strip()
        sc = msgspec.structs.replace(sc, url=url)
    thresholds = [Threshold.parse(t) for t in args.threshold]
    host_key = args.host_key or (settings.host_keys[0] if settings.host_keys else None)
    if not host_key:
        raise missing_secret(settings, "host key")
    secret = args.token_secret or settings.token_secret
    if not secret:
        raise missing_secret(settings, "token secret")
    to_stdout = args.json == "-"
    console = Console(stderr=to_stdout)
    if sc.admission != "first_come":
        return _fair(sc, host_key, secret, None if args.no_engine_audit else settings, console)
    live = Live()
    try:
        showing = RichLive(
            console=console,
            refresh_per_second=4,
            get_renderable=lambda: report.live_view(live),
            transient=True,
        )
        with contextlib.nullcontext() if args.quiet else showing:
            outcome = uvloop.run(
                run(
                    sc,
                    host_key=host_key,
                    token_secret=secret,
                    settings=None if args.no_engine_audit else settings,
                    thresholds=thresholds,
                    live=live,
                )
            )
    except RunError as e:
        print(f"flashsale loadtest: {e}", file=sys.stderr)
        return 1
    console.print(report.tables(outcome))
    if args.json:
        text = json.dumps(report.to_json(outcome), indent=2)
        if to_stdout:
            print(text)
        else:
            out = _report_path(settings, args.json)
            out.write_text(text + "\n", encoding="utf-8")
            console.print(f"results written to {out}")
    if args.report:
        from flashsale.loadtest import report_html

        out = _report_path(settings, args.report)
        report_html.write(outcome, str(out))
        console.print(f"report written to {out}")
    return 0 if outcome.ok else 1


def _fair(
    sc: Scenario, host_key: str, secret: str, settings: Settings | None, console: Console
) -> int:
    """A rehearsal of a queue or a draw: its own lines, the checks and the audit."""
    from flashsale.loadtest.fair_run import run_fair

    try:
        outcome = uvloop.run(
            run_fair(sc, host_key=host_key, token_secret=secret, settings=settings)
        )
    except RunError as e:
        print(f"flashsale loadtest: {e}", file=sys.stderr)
        return 1
    for line in outcome.lines:
        console.print(line, highlight=False)
    console.print("invariants, from the answers and the API:")
    for c in outcome.checks:
        console.print(f"  {c.line()}", highlight=False)
    if outcome.audit_lines is not None:
        console.print("flashsale audit:")
        for line in outcome.audit_lines:
            console.print(f"  {line}", highlight=False)
    console.print("PASS" if outcome.ok else "FAIL")
    return 0 if outcome.ok else 1


def _report_path(settings: Settings, given: str) -> Path:
    """Reports are run data, like the rest of the data dir: a relative path is taken there,
    under reports/, not in whatever directory the tool was started from."""
    path = Path(given)
    if not path.is_absolute():
        path = settings.data_dir / "reports" / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
