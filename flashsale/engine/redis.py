"""Connecting to Redis: one URL for a single server, several seeds for Redis Cluster."""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio import Connection as AsyncConnection
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import SlotNotCoveredError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from flashsale.engine.errors import NeverSent

RedisClient: TypeAlias = Redis | RedisCluster


class Connection(AsyncConnection):
    """redis-py's connection, whose failure to connect says so by its type: NeverSent (the
    one place a connect failure is told from a lost answer)."""

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        try:
            await super().connect_check_health(
                check_health=check_health, retry_socket_connect=retry_socket_connect
            )
        except (RedisConnectionError, RedisTimeoutError) as e:
            raise NeverSent(str(e)) from e


class Pool(BlockingConnectionPool):
    """A pool that waits its timeout for a free connection, then says NeverSent."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except RedisConnectionError as e:
            if isinstance(e, NeverSent) or not isinstance(e.__cause__, asyncio.TimeoutError):
                raise
            raise NeverSent(f"no connection free in {self.timeout} s") from e


def connect(url: str, *, timeout: float = 5.0, max_connections: int = 128) -> RedisClient:
    """Opens a client with redis-py's own retries off.

    A command re-sent blindly after a broken connection could be a purchase decided twice
    under a new meaning; the engine re-runs purchases itself, knowing they are idempotent.
    """
    seeds = [u.strip() for u in url.split(",") if u.strip()]
    common: dict[str, Any] = dict(
        socket_timeout=timeout,
        # A server on the network accepts in well under a second; one that does not is
        # down, and callers should hear so at once (see purchase.py's fast 503).
        socket_connect_timeout=min(timeout, 1.0),
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        connection_class=Connection,
    )
    if len(seeds) > 1:
        nodes = []
        for seed in seeds:
            parts = urlsplit(seed)
            host, port = parts.hostname or "127.0.0.1", parts.port or 6379
            nodes.append(ClusterNode(host, port, connection_class=Connection))
        connection_class = common.pop("connection_class")
        cluster = Cluster(startup_nodes=nodes, max_connections=max_connections * 8, **common)
        # the nodes it learns from the slot map are made with these (no such argument)
        cluster.nodes_manager.connection_kwargs["connection_class"] = connection_class
        return cluster
    # In a burst, requests queue briefly for a connection instead of failing at the cap.
    pool = Pool.from_url(seeds[0], max_connections=max_connections, timeout=timeout, **common)
    return Redis(connection_pool=pool)


class Cluster(RedisCluster):
    """redis-py's cluster client relearns the slot map after a failover by closing its nodes'
    connections, even one another task is writing a command to at that moment; that write
    then fails with AttributeError (the connection's writer is gone). It is a broken
    connection and is raised as one, so every caller's handling of a lost connection (the
    purchase recheck above all) applies instead of a 500."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except AttributeError as e:
            raise RedisConnectionError(f"connection closed under a command: {e}") from e


def node_name(redis: RedisClient, key: str) -> str | None:
    """The name of the Redis node that owns `key` ("" for a single Redis; None while no
    node of a cluster is known to own its slot, as during a failover)."""
    if not isinstance(redis, RedisCluster):
        return ""
    try:  # a client that has sent nothing yet has no slot map either
        node = redis.get_node_from_key(key)
    except SlotNotCoveredError:
        return None
    return node.name if node is not None else None


def subscriber(url: str) -> Redis:
    """A client for pub/sub: on a cluster a PUBLISH reaches every node, so one seed will do."""
    seed = next(u.strip() for u in url.split(",") if u.strip())
    return Redis.from_url(seed, retry=Retry(NoBackoff(), 0), socket_connect_timeout=5.0)


def text(value: Any) -> str:
    """A reply as text: clients here return bytes (msgpack payloads must stay binary)."""
    return value.decode() if isinstance(value, bytes) else str(value)
