"""One object holding a Redis connection and everything that runs against it."""

from __future__ import annotations

from flashsale.engine.active import ActiveDrops
from flashsale.engine.draws import Draws
from flashsale.engine.drops import Drops
from flashsale.engine.live import LiveFeed
from flashsale.engine.orders import Orders
from flashsale.engine.pipe import Pipe
from flashsale.engine.purchase import Purchaser
from flashsale.engine.queue import Queue
from flashsale.engine.redis import RedisClient, connect
from flashsale.engine.replicas import ReplicaAcks
from flashsale.engine.scripts import Scripts
from flashsale.engine.status_feed import StatusFeed
from flashsale.engine.sweeper import Sweeper
from flashsale.engine.waitlist import Waitlist


class Engine:
    """A process's engine: one Redis client and what runs against it (the purchaser, the
    drops, orders, the status and live feeds, the drops with work, the sweeper). Built once
    per process from the Redis URL; the gateway and the worker each hold one."""

    def __init__(
        self, redis: RedisClient, url: str, acks: str = "leader", replica_timeout_s: float = 5.0
    ) -> None:
        self.redis = redis
        self.url = url
        self.scripts = Scripts(redis)
        self.feed = StatusFeed(redis)
        self.drops = Drops(redis, self.scripts, self.feed)
        self.active = ActiveDrops(redis, self.drops)  # what loops visit (active.py)
        self.replicas = ReplicaAcks(redis, replica_timeout_s) if acks == "replica" else None
        # Batches go on a connection of their own (pipe.py), but under acks=replica, which
        # WAITs on connections of its own per node.
        self.pipe = None if self.replicas else Pipe.for_url(url, connect_timeout=1.0, timeout=5.0)
        self.purchaser = Purchaser(redis, self.scripts, self.feed, self.replicas, self.pipe)
        self.orders = Orders(redis, self.scripts, self.feed)
        self.queue = Queue(redis, self.scripts)
        self.draws = Draws(redis, self.scripts)
        self.waitlist = Waitlist(redis, self.scripts)
        self.sweeper = Sweeper(self.active, self.scripts, self.draws)
        self.live = LiveFeed(redis, url)

    @classmethod
    def from_url(cls, url: str, acks: str = "leader", replica_timeout_s: float = 5.0) -> Engine:
        return cls(connect(url), url, acks, replica_timeout_s)

    async def ping(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        self.feed.close()  # its reads in flight would only log the closing connection
        if self.pipe is not None:
            self.pipe.close()
        await self.live.close()
        if self.replicas is not None:
            await self.replicas.close()
        await self.redis.aclose()
