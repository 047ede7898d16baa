"""The metrics each process counts, for Prometheus (`GET /metrics`).

One gateway is several processes (a gateway per core, and `up`'s worker beside them), and a
scrape reaches only one of them, so they count in prometheus-client's multiprocess mode:
each writes its values to files in one directory, and /metrics adds up every process's.
`share_across_processes` picks that directory; it must run before the first metric is made,
so the metrics are made on first use (`metrics()`), not at import. A process that never
calls it (the tests' in-process gateway) counts in its own memory.

What a request costs is a dictionary update: counts and latencies are added up in plain
Python during an event-loop tick and written to prometheus-client once, at the tick's end
(in multiprocess mode every write is a locked write into a memory-mapped file, and a batch
of purchases is answered in one tick). What Redis knows (backlog, lag, stock) is read at
scrape time instead (gateway/metrics.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from bisect import bisect_left
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram, values

DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Every purchase outcome the contract names, so each series exists (at 0) from the start.
OUTCOMES = (
    "created", "replay", "not_found", "not_live", "not_admitted", "draw_only", "sold_out",
    "limit_reached",
    "idempotency_conflict", "invalid_request", "unauthorized", "forbidden", "rate_limited",
    "payload_too_large", "unavailable", "undecided",
)  # fmt: skip


def share_across_processes(path: Path, *, fresh: bool) -> None:
    """Counts of this process go to files under `path`, where /metrics adds them up.

    `fresh` empties it first: for the process that starts the others (`up`, `serve`), so
    counts of an earlier run are not added in. Processes it starts inherit the setting.
    """
    if fresh:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[DIR_ENV] = str(path)
    values.ValueClass = values.get_value_class()


def shared_dir() -> Path | None:
    raw = os.environ.get(DIR_ENV)
    return Path(raw) if raw else None


class Metrics:
    def __init__(self) -> None:
        self.purchases = Counter(
            "flashsale_purchases",
            "Purchase requests by outcome: created, replay, or the error code answered.",
            ["outcome"],
        )
        self.requests = Histogram(
            "flashsale_request_seconds",
            "Time from a request's arrival to its answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
        )
        self.turned_away = Counter(
            "flashsale_turned_away",
            "API requests answered 503 at once because the gateway was at its in-flight bound.",
        )
        self.batch_seconds = Histogram(
            "flashsale_redis_batch_seconds",
            "Round trip of one purchase script call (a batch) to Redis.",
            buckets=LATENCY_BUCKETS,
        )
        self.batch_size = Histogram(
            "flashsale_redis_batch_size",
            "Purchases decided by one script call.",
            buckets=BATCH_BUCKETS,
        )
        # Made once: a labelled child costs a lookup and a lock on every request otherwise.
        self.purchases_by = {o: self.purchases.labels(o) for o in OUTCOMES}
        self._route_timers: dict[str, Any] = {}
        # Counted this tick, not yet written: outcome -> n; route -> [n per bucket..., sum]
        self._outcomes: dict[str, int] = {}
        self._latencies: dict[str, list[float]] = {}
        self._flush_due = False

    def count_purchase(self, outcome: str) -> None:
        self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        self._flush_soon()

    def time_request(self, route: str, seconds: float) -> None:
        counts = self._latencies.get(route)
        if counts is None:
            counts = self._latencies[route] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bound >= seconds
        counts[-1] += seconds
        self._flush_soon()

    def answered(self, route: str, seconds: float, outcome: str | None) -> None:
        """A request's time, and a purchase's outcome (None for other routes)."""
        if outcome is not None:
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        self.time_request(route, seconds)

    def _flush_soon(self) -> None:
        if self._flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: write at once
            self.flush()
            return
        self._flush_due = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Writes what this tick counted to prometheus-client's values."""
        self._flush_due = False
        outcomes, self._outcomes = self._outcomes, {}
        for outcome, n in outcomes.items():
            counter = self.purchases_by.get(outcome)
            if counter is None:
                counter = self.purchases_by[outcome] = self.purchases.labels(outcome)
            counter.inc(n)
        latencies, self._latencies = self._latencies, {}
        for route, counts in latencies.items():
            timer = self._route_timers.get(route)
            if timer is None:
                timer = self._route_timers[route] = self.requests.labels(route)
            # A histogram child's own values: one write per bucket that moved, not per request
            # (its observe() takes one observation at a time).
            for i, seen in enumerate(counts[:-1]):
                if seen:
                    timer._buckets[i].inc(seen)
            timer._sum.inc(counts[-1])


_metrics: Metrics | None = None


def metrics() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics
