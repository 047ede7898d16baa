"""`--report out.html`: one self-contained file (plotly.js inlined once, no network) with
throughput and remaining stock over time, the latency percentile curve, and the tables."""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from flashsale.loadtest.results import PERCENTILES
from flashsale.loadtest.run import Outcome


def _over_time(o: Outcome) -> go.Figure:
    s = o.summary
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    times = [i * s.bucket_s for i in range(len(s.throughput))]
    fig.add_trace(
        go.Bar(x=times, y=[n / s.bucket_s for n in s.throughput], name="answers/s"),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=[t for t, _ in s.stock],
            y=[r for _, r in s.stock],
            name="remaining stock",
            mode="lines",
            line={"shape": "hv"},
        ),
        secondary_y=True,
    )
    fig.update_layout(title="Throughput and remaining stock over time", bargap=0)
    fig.update_xaxes(title_text="seconds since start")
    fig.update_yaxes(title_text="answers per second", secondary_y=False)
    fig.update_yaxes(title_text="remaining stock", secondary_y=True, rangemode="tozero")
    return fig


def _latency(o: Outcome) -> go.Figure:
    lat = o.summary.latency
    # HdrHistogram's classic plot: x is 1/(1-p), so the tail gets the room it deserves.
    points = [(p, v) for p, v in lat.curve if p < 100.0]
    fig = go.Figure(
        go.Scatter(
            x=[1 / (1 - p / 100) for p, _ in points],
            y=[v / 1000 for _, v in points],
            customdata=[p for p, _ in points],
            hovertemplate="p%{customdata:.4f}: %{y:.2f} ms<extra></extra>",
            mode="lines",
            name="latency",
        )
    )
    ticks = [50.0, 90.0, 99.0, 99.9, 99.99]
    fig.update_xaxes(
        type="log",
        title_text="percentile",
        tickvals=[1 / (1 - p / 100) for p in ticks],
        ticktext=[f"p{p:g}" for p in ticks],
    )
    fig.update_yaxes(title_text="milliseconds")
    marks = ", ".join(f"p{p:g} {lat.percentiles.get(p, 0) / 1000:.2f} ms" for p in PERCENTILES)
    fig.update_layout(title=f"Latency by percentile ({marks}, max {lat.max / 1000:.2f} ms)")
    return fig


def _rows(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>" for a, b in rows)


def render(o: Outcome) -> str:
    s, d = o.summary, o.drop
    charts = [
        pio.to_html(_over_time(o), include_plotlyjs=True, full_html=False, div_id="throughput"),
        pio.to_html(_latency(o), include_plotlyjs=False, full_html=False, div_id="latency"),
    ]
    facts = [
        ("verdict", "PASS" if o.ok else "FAIL"),
        ("drop", f"{d['id']}: stock {d['stock']}, sold {d['sold']}, remaining {d['remaining']}"),
        ("requests", f"{s.requests:,} ({s.purchases:,} purchases, {s.payments:,} payments)"),
        ("throughput", f"{s.rps:,.0f} answers/s over {s.span_s:.2f} s"),
        ("sold out", "no" if s.sellout_s is None else f"after {s.sellout_s:.3f} s"),
        ("errors", f"{s.errors:,} ({s.error_rate:.3%})"),
    ]
    answers = sorted(((k, f"{v:,}") for k, v in s.answers.items()), key=lambda kv: kv[0])
    audit = [(f"{c.number}. {c.name}", c.line()) for c in o.checks]
    audit += [("flashsale audit", line) for line in (o.audit_lines or ["not run"])]
    judged = [(t.text, f"{'pass' if ok else 'MISSED'} ({t.shown(v)})") for t, v, ok in o.thresholds]
    sections = [
        ("Run", facts),
        ("Answers", answers),
        ("Audit", audit),
        ("Thresholds", judged),
    ]
    tables = "".join(
        f"<h2>{title}</h2><table>{_rows(rows)}</table>" for title, rows in sections if rows
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>flashsale loadtest {html.escape(o.run)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}
td{{padding:2px 12px;border-bottom:1px solid #ddd;vertical-align:top}}</style>
</head><body>
<h1>flashsale loadtest: run {html.escape(o.run)}, {html.escape(o.started_at)}</h1>
{charts[0]}{charts[1]}{tables}
</body></html>
"""


def write(o: Outcome, path: str | Path) -> None:
    Path(path).write_text(render(o), encoding="utf-8")
