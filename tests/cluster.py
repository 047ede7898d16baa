"""A Redis Cluster on loopback, started by the tests themselves (redis-cli --cluster create)."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from flashsale.redis_server import RedisServer, redis_binary


def port_with_free_bus() -> int:
    """A free port whose cluster bus port (port + 10000, on Redis 6.2 and 7) is free too."""
    rng = random.Random()
    while True:
        port = rng.randrange(20_000, 55_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


@dataclass
class Cluster:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """FLASHSALE_REDIS_URL for it: every node as a seed."""
        return ",".join(f"redis://127.0.0.1:{n.port}" for n in self.nodes)

    def node_of(self, key: str) -> RedisServer:
        """The primary that owns `key`'s slot now."""
        alive = next(n for n in self.nodes if n.process and n.process.poll() is None)
        client = redis.Redis(port=alive.port)
        try:
            slot = client.cluster("keyslot", key)
            for start, end, primary, *_ in client.cluster("slots"):
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == primary[1])
        finally:
            client.close()
        raise AssertionError(f"no node owns {key}")

    def wait_ok(self, within: float = 30.0) -> None:
        """Until every live node says the cluster is ok (after a start or a failover)."""
        deadline = time.monotonic() + within
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                continue
            client = redis.Redis(port=node.port)
            try:
                while client.cluster("info").get("cluster_state") != "ok":  # type: ignore[union-attr]
                    assert time.monotonic() < deadline, "the cluster is not ok"
                    time.sleep(0.1)
            finally:
                client.close()

    def wait_failover(self, dead: RedisServer, key: str, within: float = 30.0) -> None:
        """Until a replica has taken over `key`'s slot from the `dead` primary."""
        deadline = time.monotonic() + within
        while True:
            try:
                if self.node_of(key) is not dead:
                    break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "no replica took over"
            time.sleep(0.05)
        self.wait_ok(within)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def start_cluster(
    tmp: pytest.TempPathFactory, masters: int = 3, replicas_each: int = 0, aof: bool = False
) -> Cluster:
    """Primaries and their replicas, `cluster-node-timeout 1000`: a dead primary's replica
    takes over in about 2-3 s here. With `aof`, a node started again comes back with its
    data, as a production node would."""
    nodes = []
    for _ in range(masters * (1 + replicas_each)):
        port = port_with_free_bus()
        directory: Path = tmp.mktemp(f"node{port}")
        extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(directory / "nodes.conf"),
                 "--cluster-node-timeout", "1000")  # fmt: skip
        nodes.append(RedisServer(directory, port=port, appendonly=aof, extra=extra).start())
    cluster = Cluster(nodes)
    try:
        subprocess.run(
            [redis_binary("redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", str(replicas_each), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        cluster.wait_ok()
        if replicas_each:  # every replica attached and in sync before the tests lean on it
            deadline = time.monotonic() + 30
            for n in nodes:
                client = redis.Redis(port=n.port)
                try:
                    while True:
                        info = client.info("replication")
                        if info["role"] == "master" and info["connected_slaves"] >= replicas_each:
                            break
                        if info["role"] == "slave" and info.get("master_link_status") == "up":
                            break
                        assert time.monotonic() < deadline, "replicas did not attach"
                        time.sleep(0.1)
                finally:
                    client.close()
    except BaseException:
        cluster.stop()
        raise
    return cluster
