"""GET /metrics: Prometheus text, for ops' dashboards (deploy/grafana/).

Two parts. What the processes counted (purchases by outcome, request and Redis latency,
batch sizes, settled orders; see flashsale/metrics.py), added up over every process of this
gateway. And what only Redis knows, read at scrape time so no request pays for it: the
settlement backlog and lag, and the remaining and sold units of each live drop. That part
is the same on every gateway; it is left out, not an error, while Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from flashsale.engine import (
    REDIS_ERRORS,
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
    try:
        async with asyncio.timeout(2.0):
            body += exposition(await from_redis(gateway(request).engine))
    except (*REDIS_ERRORS, OSError) as e:
        log.debug("metrics from Redis left out: %r", e)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


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
