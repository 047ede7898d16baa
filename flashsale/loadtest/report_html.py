"""`--report out.html`: one self-contained file (plotly.js inlined once, no network) with
throughput and remaining stock over time, the latency percentile curve, and the tables."""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from flashsale.loadtest.report import labelled_once
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
        go.Scatter(  # polled from before the start: those samples show at 0
            x=[max(0.0, t) for t, _ in s.stock],
            y=[r for _, r in s.stock],
            name="remaining stock",
            mode="lines",
            line={"shape": "hv"},
        ),
        secondary_y=True,
    )
    fig.update_layout(bargap=0, **_phone_layout("Throughput and stock over time"))
    fig.update_xaxes(title_text="seconds since start")
    fig.update_yaxes(title_text="answers/s", tickformat="~s", secondary_y=False)
    # Whole units, never "37.5k" or 2.5: stock is counted in units.
    fig.update_yaxes(
        title_text="remaining stock", secondary_y=True, rangemode="tozero", tickformat=",d",
        showgrid=False, tickmode="auto", nticks=6,
    )  # fmt: skip
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
    fig.update_layout(**_phone_layout("Latency by percentile"))
    return fig


# Charts that fit a phone: sized by the page, not fixed; the legend under the plot, not
# beside it; small margins. (Plotly's default layout is 700 px wide with a side legend.)
def _phone_layout(title: str) -> dict[str, object]:
    return {
        "autosize": True,
        "height": 360,
        "margin": {"l": 50, "r": 50, "t": 50, "b": 40},
        "legend": {"orientation": "h", "y": -0.25},
        "title": {"text": title, "font": {"size": 15}},
    }


def _rows(rows: list[tuple[str, str]]) -> str:
    return "".join(
        f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>"
        for a, b in labelled_once(rows)
    )


def render(o: Outcome) -> str:
    s, d = o.summary, o.drop
    config = {"responsive": True, "displaylogo": False}
    charts = [
        pio.to_html(_over_time(o), include_plotlyjs=True, full_html=False, div_id="throughput",
                    config=config, default_width="100%"),
        pio.to_html(_latency(o), include_plotlyjs=False, full_html=False, div_id="latency",
                    config=config, default_width="100%"),
    ]  # fmt: skip
    lat = s.latency
    marks = [(f"p{p:g}", f"{lat.percentiles.get(p, 0) / 1000:,.2f} ms") for p in PERCENTILES]
    marks.append(("max", f"{lat.max / 1000:,.2f} ms"))
    facts = [
        ("verdict", "PASS" if o.ok else "FAIL"),
        ("drop", f"{d['id']}: stock {d['stock']}, sold {d['sold']}, remaining {d['remaining']}"),
        ("requests", f"{s.requests:,} ({s.purchases:,} purchases, {s.payments:,} payments)"),
        ("throughput", f"{s.rps:,.0f} answers/s over {s.span_s:.2f} s"),
        ("sold out", "no" if s.sellout_s is None else f"after {s.sellout_s:.3f} s"),
        ("errors", f"{s.errors:,} ({s.error_rate:.3%})"),
    ]
    answers = sorted(((k, f"{v:,}") for k, v in s.answers.items()), key=lambda kv: kv[0])
    audit = [("from the answers", c.line()) for c in o.checks]
    audit += [("flashsale audit", line) for line in (o.audit_lines or ["not run"])]
    judged = [(t.text, f"{'pass' if ok else 'MISSED'} ({t.shown(v)})") for t, v, ok in o.thresholds]
    sections = [
        ("Run", facts),
        ("Latency", marks),
        ("Answers", answers),
        ("Audit", audit),
        ("Thresholds", judged),
    ]
    tables = "".join(
        f"<h2>{title}</h2><table>{_rows(rows)}</table>" for title, rows in sections if rows
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flashsale loadtest {html.escape(o.run)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:0 auto;padding:1rem;max-width:1100px}}
h1{{font-size:1.3rem;overflow-wrap:anywhere}} h1 small{{display:block;font-weight:400}}
table{{border-collapse:collapse;width:100%}}
th,td{{padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top;text-align:start;
overflow-wrap:anywhere}} th{{font-weight:600;width:35%}}
.plotly-graph-div{{max-width:100%}}</style>
</head><body>
<h1>flashsale loadtest: run {html.escape(o.run)}<small>{html.escape(o.started_at)}</small></h1>
{charts[0]}{charts[1]}{tables}
</body></html>
"""


def write(o: Outcome, path: str | Path) -> None:
    Path(path).write_text(render(o), encoding="utf-8")
