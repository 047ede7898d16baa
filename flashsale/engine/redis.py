"""Connecting to Redis: one URL for a single server, several seeds for Redis Cluster."""

from __future__ import annotations

from typing import TypeAlias
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

RedisClient: TypeAlias = Redis | RedisCluster


def connect(url: str, *, timeout: float = 5.0) -> RedisClient:
    """Opens a client with redis-py's own retries off.

    A command re-sent blindly after a broken connection could be a purchase decided twice
    under a new meaning; the engine re-runs purchases itself, knowing they are idempotent.
    """
    seeds = [u.strip() for u in url.split(",") if u.strip()]
    common = dict(
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    if len(seeds) > 1:
        nodes = []
        for seed in seeds:
            parts = urlsplit(seed)
            nodes.append(ClusterNode(parts.hostname or "127.0.0.1", parts.port or 6379))
        return RedisCluster(startup_nodes=nodes, **common)
    return Redis.from_url(seeds[0], **common)
