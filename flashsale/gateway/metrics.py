"""GET /metrics: Prometheus text, for ops' dashboards (deploy/grafana/).

Three parts. What the processes counted (purchases by outcome, request and Redis latency,
batch sizes, settled orders; see flashsale/metrics.py), added up over every process of this
gateway. And what only Redis knows, read at scrape time so no request pays for it: the
settlement backlog and lag, and the remaining and sold units of each live drop. That part
is the same on every gateway; it is left out, not an error, while Redis is unreachable.
And the webhooks' deliveries, from the order store, where every worker records them.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from flashsale.engine import (
    REDIS_ERRORS,
    STORE_ERRORS,
    EndpointStats,
    Engine,
    Listed,
    backlog_by_node,
    oldest_unsettled_ms,
    settled_events,
)
from flashsale.gateway.state import gateway
from flashsale.metrics import metrics, shared_dir

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/metrics")
async def scrape(request: web.Request) -> web.Response:
    body = counted()
    gw = gateway(request)
    try:
        async with asyncio.timeout(2.0):
            body += exposition(await from_redis(gw.engine))
    except (*REDIS_ERRORS, OSError, TimeoutError) as e:
        log.debug("metrics from Redis left out: %r", e)
    try:
        async with asyncio.timeout(2.0):
            body += exposition(from_outbox(await gw.store.endpoint_stats()))
    except (*STORE_ERRORS, TimeoutError) as e:
        log.debug("webhook metrics left out: %r", e)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def from_outbox(stats: list[EndpointStats]) -> list[Metric]:
    """Per live subscription, from the store (any worker may have made the attempts): its
    attempts by outcome, what it still has to deliver, and how long the oldest has waited."""
    now = time.time()
    attempts = CounterMetricFamily(
        "flashsale_webhook_deliveries",
        "Webhook delivery attempts by outcome (delivered: 2xx; retried: failed, tried again "
        "later; failed: given up after the retry window).",
        labels=["webhook", "outcome"],
    )
    pending = GaugeMetricFamily(
        "flashsale_webhook_pending", "Webhook deliveries not yet made.", labels=["webhook"]
    )
    lag = GaugeMetricFamily(
        "flashsale_webhook_lag_seconds",
        "Age of the oldest undelivered webhook event per endpoint (0: all delivered).",
        labels=["webhook"],
    )
    for s in stats:
        for outcome, n in s.attempts.items():
            attempts.add_metric([s.webhook_id, outcome], n)
        pending.add_metric([s.webhook_id], s.pending)
        oldest = s.oldest_pending_ms
        lag.add_metric([s.webhook_id], 0.0 if oldest is None else max(0.0, now - oldest / 1000))
    return [attempts, pending, lag]


def counted() -> bytes:
    metrics().flush()  # every metric exists from the start, at zero; this tick's counts in
    where = shared_dir()
    if where is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(where))
    return generate_latest(registry)


async def from_redis(engine: Engine) -> list[Metric]:
    redis = engine.redis
    ids = await engine.active.ids()  # a season's past drops cost nothing here
    remaining = GaugeMetricFamily(
        "flashsale_drop_remaining", "Units left of each live or sold-out drop.", labels=["drop"]
    )
    sold = GaugeMetricFamily(
        "flashsale_drop_sold", "Units sold of each live or sold-out drop.", labels=["drop"]
    )
    for drop_id, left, gone in await engine.drops.stock(ids):
        remaining.add_metric([drop_id], left)
        sold.add_metric([drop_id], gone)
    by_node, lag_ms, read = await asyncio.gather(
        backlog_by_node(redis, Listed(ids)),
        oldest_unsettled_ms(redis, Listed(ids)),
        settled_events(redis),
    )
    nodes = GaugeMetricFamily(
        "flashsale_settlement_node_backlog",
        "Order events not yet in the order store, per Redis node (acks=replica holds back a "
        "node whose replica lags).",
        labels=["node"],
    )
    for node, waiting_there in sorted(by_node.items()):
        nodes.add_metric([node or "redis"], waiting_there)
    families: list[Metric] = [
        remaining,
        sold,
        GaugeMetricFamily(
            "flashsale_settlement_backlog",
            "Order events in Redis not yet written into the order store, over all drops.",
            value=sum(by_node.values()),
        ),
        nodes,
        GaugeMetricFamily(
            "flashsale_settlement_lag_seconds",
            "Age of the oldest order event not yet in the order store (0: all settled).",
            value=(lag_ms or 0) / 1000,
        ),
    ]
    families.append(
        CounterMetricFamily(
            "flashsale_stream_settled_events",
            "Order events every settlement worker has acknowledged, over all drops, ever.",
            value=read,
        )
    )
    return families


def exposition(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry)


class _Fixed:
    """A collector of families already read."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families
