"""FLASHSALE_ACKS=replica: a write counts as done only once a replica has it too.

Redis answers a write as soon as its primary has it; a primary that dies before its replica
got the write takes it along, and the replica promoted in its place never heard of it. So
in this mode each write is followed, on the same connection, by `WAIT 1 <ms>`: Redis answers
once a replica has acknowledged everything that connection wrote. It has to be the same
connection (WAIT counts that connection's own writes), which is why this module runs its
commands on one connection it holds, to the node that owns the key, rather than through
redis-py's cluster client (whose `wait()` goes to an arbitrary node and proves nothing).

When no replica acknowledges, what was written may still be lost: the node is marked as
without replica for a moment, so that new work for it is refused (503) instead of queued
behind, and the caller keeps waiting on the same connection, for at most `timeout_s`
(FLASHSALE_REPLICA_TIMEOUT_S); then `ReplicaTimeout`: a purchase is answered 504
`undecided`, and the settlement worker leaves that node's entries for its next round.

Settlement asks a second question (`promotable`): whether the node has any replica the
cluster could promote. One left with none at all keeps settling: nothing could be promoted
over it to take its writes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flashsale.engine.errors import Undecided
from flashsale.engine.redis import RedisClient, node_name

log = logging.getLogger(__name__)

WAIT_MS = 500  # one WAIT; repeated while no replica acknowledges
UNREPLICATED_S = 1.0  # a node whose replica did not acknowledge is refused work this long

Command = Sequence[Any]


REPLICA_TIMEOUT_S = 5.0


class ReplicaTimeout(Undecided):
    """No replica acknowledged a write within the timeout: it may still be lost. `replies`
    are what the commands answered (they ran)."""

    def __init__(self, message: str, replies: list[Any], node: str) -> None:
        super().__init__(message)
        self.replies = replies
        self.node = node  # the node that ran them: only it can say whether they are safe


class ReplicaAcks:
    def __init__(self, redis: RedisClient, timeout_s: float = REPLICA_TIMEOUT_S) -> None:
        self._redis = redis
        self.timeout_s = timeout_s
        self._unreplicated: dict[str, float] = {}  # node name -> loop time it is refused until
        # On a cluster, a pool of our own per node: the cluster client closes its nodes'
        # connections when it relearns the slot map, which may happen while we hold one.
        self._pools: dict[str, ConnectionPool] = {}

    def _node(self, key: str) -> tuple[str, ConnectionPool]:
        if not isinstance(self._redis, RedisCluster):
            return "", self._redis.connection_pool
        node = self._redis.get_node_from_key(key)
        if node is None:
            raise RedisConnectionError(f"no node owns the slot of {key} yet")
        pool = self._pools.get(node.name)
        if pool is None:
            kwargs = node.connection_kwargs
            pool = self._pools[node.name] = ConnectionPool(
                host=node.host,
                port=node.port,
                socket_timeout=kwargs.get("socket_timeout"),
                socket_connect_timeout=kwargs.get("socket_connect_timeout"),
                max_connections=64,
            )
        return node.name, pool

    def refuses(self, key: str) -> bool:
        """Whether the node owning `key` lost its replica a moment ago: refuse, do not run."""
        until = self._unreplicated.get(node_name(self._redis, key) or "")
        return until is not None and asyncio.get_running_loop().time() < until

    async def run(
        self,
        key: str,
        commands: list[Command],
        scripts: dict[str, str],
        within: float | None = None,
    ) -> list[Any]:
        """Runs `commands` on one connection to the node owning `key`, then waits there until
        a replica has them (ReplicaTimeout after `within`, default `timeout_s`); returns
        their replies (an error reply as its exception).

        `scripts` maps each EVALSHA's sha to its body, loaded on that node on NOSCRIPT.
        """
        deadline = asyncio.get_running_loop().time() + (
            self.timeout_s if within is None else within
        )
        while True:
            try:
                return await self._run_once(key, commands, scripts, deadline)
            except MovedError:
                # A failover moved the slot (the command did not run): ask the new owner.
                await self.relearn()
            except (RedisConnectionError, RedisTimeoutError, OSError):
                await self.relearn()  # the caller finds out what ran; it needs the new owner
                raise

    async def relearn(self) -> None:
        """After a failover the cluster's slot map is read again. Mid-failover the slots are
        not all covered yet, and redis-py refuses the map: the caller's own error stands,
        and the next call asks again."""
        if isinstance(self._redis, RedisCluster):
            try:
                await self._redis.nodes_manager.initialize()
            except Exception as e:
                log.info("the cluster's slot map could not be read yet: %r", e)

    async def _run_once(
        self, key: str, commands: list[Command], scripts: dict[str, str], deadline: float
    ) -> list[Any]:
        name, pool = self._node(key)
        conn = await pool.get_connection()
        broken = True
        try:
            replies = await _send(conn, commands)
            for i, reply in enumerate(replies):
                if isinstance(reply, NoScriptError):
                    sha = commands[i][1]
                    await _send(conn, [("SCRIPT", "LOAD", scripts[sha])])
                    replies[i] = (await _send(conn, [commands[i]]))[0]
            for reply in replies:
                if isinstance(reply, MovedError):
                    raise reply
            while True:
                (acked,) = await _send(conn, [("WAIT", 1, WAIT_MS)])
                if isinstance(acked, Exception):
                    # The node stopped being a primary under us (a stale primary rejoining
                    # as a replica): what it took is dropped when it resyncs, so nothing ran.
                    raise acked
                if acked >= 1:
                    break
                now = asyncio.get_running_loop().time()
                self._unreplicated[name] = now + UNREPLICATED_S
                log.warning(
                    "no replica of %s acknowledged a write in %d ms", name or "redis", WAIT_MS
                )
                if now >= deadline:
                    broken = False  # the connection is sound; only the replica is missing
                    message = f"no replica of {name or 'redis'} acknowledged in time"
                    raise ReplicaTimeout(message, replies, name)
            self._unreplicated.pop(name, None)
            broken = False
            return replies
        finally:
            if broken:
                await conn.disconnect()
            await pool.release(conn)

    async def promotable(self, unacked: ReplicaTimeout) -> bool:
        """Whether the node that ran the commands of `unacked` has a replica that could be
        promoted in its place: on a cluster, any replica the cluster lists for it and has
        not failed (connected or not: a frozen one can still win a failover); on a single
        Redis, a connected one. A node that cannot be asked (it died meanwhile) may have
        been replaced by such a replica: True, the careful answer."""
        pool = self._pools.get(unacked.node) if unacked.node else None
        if pool is None:
            if isinstance(self._redis, RedisCluster):
                return True
            pool = self._redis.connection_pool
        try:
            conn = await pool.get_connection()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return True
        try:
            if isinstance(self._redis, RedisCluster):
                (myself,) = await _send(conn, [("CLUSTER", "MYID")])
                (listed,) = await _send(conn, [("CLUSTER", "REPLICAS", myself)])
                if isinstance(listed, Exception):
                    return True  # cannot tell: the careful answer
                # "<id> <addr> <flags> ...": one the cluster has failed (a dead old primary
                # is listed as the new one's replica) can never be promoted.
                return any(
                    "fail"
                    not in (line.decode() if isinstance(line, bytes) else line)
                    .split()[2]
                    .split(",")
                    for line in listed
                )
            (info,) = await _send(conn, [("INFO", "replication")])
            text = info.decode() if isinstance(info, bytes) else str(info)
            return "connected_slaves:0" not in text
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return True
        finally:
            await pool.release(conn)

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.disconnect()


async def _send(conn: Any, commands: list[Command]) -> list[Any]:
    """Writes commands in one go and reads every reply; an error reply is returned as its
    exception, so one refused command does not hide the others' replies."""
    if not conn.is_connected:
        await conn.connect()
    await conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await conn.read_response())
        except ResponseError as e:
            replies.append(e)
    return replies
