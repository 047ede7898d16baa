"""A run as people read it: the live view while it fires, the final tables, and `--json`."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from flashsale.loadtest.results import PERCENTILES, expected
from flashsale.loadtest.run import Live, Outcome

V = TypeVar("V")


def labelled_once(rows: list[tuple[str, V]]) -> list[tuple[str, V]]:
    """Rows of (label, value) with a label repeated on the rows after it left blank there:
    how both reports show several lines from one source."""
    return [
        ("" if i and rows[i - 1][0] == label else label, v) for i, (label, v) in enumerate(rows)
    ]


def _ms(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us < 1_000_000 else f"{us / 1_000_000:.2f} s"


def live_view(live: Live) -> RenderableType:
    t = Table.grid(padding=(0, 2))
    for _ in range(5):
        t.add_column(justify="right")
    t.add_row("sent", "answered", "to go", "remaining stock", "req/s")
    t.add_row(
        f"{live.sent:,}",
        f"{live.answered:,}",
        f"{max(0, live.attempts - live.sent):,}",
        "-" if live.remaining is None else f"{live.remaining:,}",
        f"{live.rate:,.0f}",
    )
    return t


def tables(o: Outcome) -> RenderableType:
    s, sc, d = o.summary, o.scenario, o.drop
    head = Table(title=f"flashsale loadtest: run {o.run}, drop {d['id']}", show_header=False)
    head.add_column(style="bold")
    head.add_column()
    head.add_row(
        "scenario",
        f"{s.purchases:,} purchase requests ({sc.total_attempts:,} attempts) "
        f"from {sc.total_buyers:,} buyers, {sc.arrival}, {sc.connections} connections "
        f"in {sc.processes} process(es)",
    )
    head.add_row(
        "drop",
        f"stock {d['stock']:,}, sold {d['sold']:,}, remaining {d['remaining']:,}"
        f", limit {d['per_buyer_limit']}, {d['status']}",
    )
    for v in d.get("variants") or ():
        head.add_row(
            f"  {v['code']}",
            f"stock {v['stock']:,}, sold {v['sold']:,}, remaining {v['remaining']:,}",
        )
    head.add_row("sold out", "no" if s.sellout_s is None else f"after {s.sellout_s:.3f} s")
    head.add_row("throughput", f"{s.rps:,.0f} answers/s over {s.span_s:.2f} s")
    head.add_row("errors", f"{s.errors:,} ({s.error_rate:.3%})")

    lat = Table(title="latency (purchases; open loop: from the intended send time)")
    for p in PERCENTILES:
        lat.add_column(f"p{p:g}", justify="right")
    lat.add_column("max", justify="right")
    lat.add_column("mean", justify="right")
    lat.add_row(
        *(_ms(s.latency.percentiles.get(p, 0)) for p in PERCENTILES),
        _ms(s.latency.max),
        _ms(s.latency.mean),
    )

    ans = Table(title="answers")
    ans.add_column("answer")
    ans.add_column("every answer", justify="right")
    ans.add_column("attempts ending so", justify="right")
    for label, n in sorted(s.answers.items(), key=lambda kv: -kv[1]):
        ans.add_row(
            Text(label, style="" if expected(label) else "red"),
            f"{n:,}",
            f"{s.outcomes[label]:,}" if label in s.outcomes else "-",
        )

    audit = Table(title="audit", show_header=False)
    audit.add_column(style="bold")
    audit.add_column()
    rows: list[tuple[str, Text]] = [
        ("from the answers", Text(c.line(), style="" if c.ok else "red")) for c in o.checks
    ]
    if not o.settled:
        rows.append(("", Text("FAIL settlement did not list every answered order in time", "red")))
    if o.audit_lines is None:
        rows.append(("flashsale audit", Text("not run (--no-engine-audit)")))
    else:
        style = "" if o.audit_ok else "red"
        rows += [("flashsale audit", Text(line, style=style)) for line in o.audit_lines]
    for label, line in labelled_once(rows):
        audit.add_row(label, line)
    parts: list[RenderableType] = [head, lat, ans, audit]
    if o.thresholds:
        th = Table(title="thresholds")
        th.add_column("threshold")
        th.add_column("measured", justify="right")
        th.add_column("")
        for t, value, ok in o.thresholds:
            th.add_row(
                t.text, t.shown(value), Text("pass" if ok else "MISSED", "green" if ok else "red")
            )
        parts.append(th)
    verdict = "PASS" if o.ok else "FAIL"
    parts.append(Text(verdict, style="bold green" if o.ok else "bold red"))
    return Group(*parts)


def to_json(o: Outcome) -> dict[str, Any]:
    s = o.summary
    return {
        "ok": o.ok,
        "run": o.run,
        "started_at": o.started_at,
        "scenario": msgspec.to_builtins(o.scenario),
        "drop": o.drop,
        "requests": s.requests,
        "purchases": s.purchases,
        "payments": s.payments,
        "answers": dict(s.answers),
        "outcomes": dict(s.outcomes),
        "errors": s.errors,
        "error_rate": s.error_rate,
        "span_s": s.span_s,
        "rps": s.rps,
        "sellout_s": s.sellout_s,
        "units_created": s.units_created,
        "latency_ms": {
            **{f"p{p:g}": v / 1000 for p, v in s.latency.percentiles.items()},
            "max": s.latency.max / 1000,
            "mean": s.latency.mean / 1000,
            "count": s.latency.count,
        },
        "throughput": {"bucket_s": s.bucket_s, "answers": s.throughput, "units_sold": s.created},
        "stock": [[t, r] for t, r in s.stock],
        "checks": [
            {"invariant": c.number, "name": c.name, "ok": c.ok, "problems": c.problems}
            for c in o.checks
        ],
        "settled": o.settled,
        "audit": None if o.audit_lines is None else {"ok": o.audit_ok, "lines": o.audit_lines},
        "thresholds": [{"threshold": t.text, "value": v, "ok": ok} for t, v, ok in o.thresholds],
    }
