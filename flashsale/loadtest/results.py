"""What a run measured, from every process's records: answers by status, latency
percentiles from an HDR histogram, throughput over time, sellout time."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from flashsale.loadtest.firing import LOST, PAY, TIMEOUT, Records

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# Answers that are a drop working as intended, not errors: created, replayed, refused for
# the business reasons the contract names, a late payment refused.
EXPECTED = frozenset({"201", "200", "409 sold_out", "409 limit_reached", "409 expired"})


def expected(label: str) -> bool:
    """Whether an answer label (payments' prefixed "pay ") is a drop working as intended."""
    return label.removeprefix("pay ") in EXPECTED


@dataclass(frozen=True, slots=True)
class Answer:
    attempt: int
    kind: int
    status: int
    done: float
    body: Any  # decoded JSON, or None

    @property
    def code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            return code if isinstance(code, str) else None
        return None

    @property
    def order(self) -> dict[str, Any] | None:
        if self.status in (200, 201) and isinstance(self.body, dict):
            order = self.body.get("order")
            return order if isinstance(order, dict) else None
        return None

    @property
    def label(self) -> str:
        if self.status == LOST:
            return "connection lost"
        if self.status == TIMEOUT:
            return "timeout"
        code = self.code
        return f"{self.status} {code}" if code else str(self.status)


def decode(records: Records) -> list[Answer]:
    out = []
    for i in range(len(records)):
        raw = records.bodies[i]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        out.append(
            Answer(records.attempt[i], records.kind[i], records.status[i], records.done[i], body)
        )
    return out


@dataclass
class Latency:
    """Microseconds."""

    count: int = 0
    mean: float = 0.0
    max: int = 0
    percentiles: dict[float, int] = field(default_factory=dict)
    # the percentile curve, for the report's chart: (percentile, microseconds)
    curve: list[tuple[float, int]] = field(default_factory=list)

    @classmethod
    def of(cls, values: list[int]) -> Latency:
        if not values:
            return cls()
        hist = HdrHistogram(1, max(2, max(values)) * 2, 3)
        for v in values:
            hist.record_value(max(1, v))
        curve = [
            (item.percentile, item.value_iterated_to) for item in hist.get_percentile_iterator(5)
        ]
        return cls(
            count=hist.get_total_count(),
            mean=hist.get_mean_value(),
            max=hist.get_max_value(),
            percentiles={p: hist.get_value_at_percentile(p) for p in PERCENTILES},
            curve=curve,
        )


@dataclass
class Summary:
    requests: int
    purchases: int  # purchase requests sent: firsts, repeats, resends
    payments: int
    answers: Counter[str]
    errors: int
    span_s: float  # from t0 to the last answer
    latency: Latency
    units_created: int
    sellout_s: float | None
    bucket_s: float
    throughput: list[int]  # answers per bucket
    created: list[int]  # units sold (201) per bucket
    # each attempt by the last answer its buyer saw: a 503 here is one the resends did not
    # get past; `answers` counts every answer, resends included
    outcomes: Counter[str] = field(default_factory=Counter)
    stock: list[tuple[float, int]] = field(default_factory=list)  # (t, remaining), polled

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.span_s if self.span_s > 0 else 0.0

    def metrics(self) -> dict[str, float | None]:
        """Everything a threshold can name, latencies in milliseconds."""
        out: dict[str, float | None] = {
            f"p{p:g}": v / 1000 for p, v in self.latency.percentiles.items()
        }
        out.update(
            max=self.latency.max / 1000,
            mean=self.latency.mean / 1000,
            errors=self.error_rate,
            rps=self.rps,
            sellout=self.sellout_s,
        )
        return out


def _bucket(span: float) -> float:
    for size in (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0):
        if span / size <= 300:
            return size
    return 60.0


def summarize(records: Records, answers: list[Answer], stock: int | None) -> Summary:
    purchases = [a for a in answers if a.kind != PAY]
    span = max((a.done for a in answers), default=0.0)
    size = _bucket(span)
    buckets = int(span / size) + 1
    throughput = [0] * buckets
    created = [0] * buckets
    for a in answers:
        throughput[int(a.done / size)] += 1
    sold = 0
    sellout = None
    for a in sorted((a for a in purchases if a.status == 201), key=lambda a: a.done):
        order = a.order
        units = int(order["quantity"]) if order else 0
        created[int(a.done / size)] += units
        sold += units
        if stock is not None and sellout is None and sold >= stock:
            sellout = a.done
    labels = Counter(a.label if a.kind != PAY else f"pay {a.label}" for a in answers)
    last: dict[int, Answer] = {}
    for a in purchases:
        if a.attempt not in last or a.done >= last[a.attempt].done:
            last[a.attempt] = a
    errors = sum(n for label, n in labels.items() if not expected(label))
    latency = [records.latency_us[i] for i in range(len(records)) if records.kind[i] != PAY]
    return Summary(
        requests=len(answers),
        purchases=len(purchases),
        payments=len(answers) - len(purchases),
        answers=labels,
        errors=errors,
        span_s=span,
        latency=Latency.of(latency),
        units_created=sold,
        sellout_s=sellout,
        bucket_s=size,
        throughput=throughput,
        created=created,
        outcomes=Counter(a.label for a in last.values()),
    )
