"""FLASHSALE_ACKS=replica: a write counts as done only once a replica has it too.

Redis answers a write as soon as its primary has it; a primary that dies before its replica
got the write takes it along, and the replica promoted in its place never heard of it. So
in this mode each write is followed, on the same connection, by `WAIT 1 <ms>`: Redis answers
once a replica has acknowledged everything that connection wrote. It has to be the same
connection (WAIT counts that connection's own writes), which is why this module runs its
commands on one connection it holds, to the node that owns the key, rather than through
redis-py's cluster client (whose `wait()` goes to an arbitrary node and proves nothing).

When no replica acknowledges, what was written may still be lost: the node is marked as
without replica, so that new work for it is refused (503) instead of queued behind, and the
caller keeps waiting on the same connection, for at most `timeout_s`
(FLASHSALE_REPLICA_TIMEOUT_S); then `ReplicaTimeout`: a purchase is answered 504
`undecided`, and the settlement worker leaves that node's entries for its next round. The
mark is lifted by a probe of this process's own (a small write, one WAIT, once a second),
never by letting a buyer's batch find out the slow way.

Settlement asks a second question (`promotable`): whether the node has any replica the
cluster could promote. One left with none at all keeps settling: nothing could be promoted
over it to take its writes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, NoScriptError, ResponseError, SlotNotCoveredError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flashsale.engine.errors import REDIS_ERRORS, Undecided
from flashsale.engine.keys import probe_key
from flashsale.engine.redis import Connection, RedisClient, node_name

log = logging.getLogger(__name__)

WAIT_MS = 500  # one WAIT; repeated while no replica acknowledges
WAIT_S = WAIT_MS / 1000  # `within` for a question of one WAIT
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
        self._probing: dict[str, asyncio.Task[None]] = {}  # node name -> its probe
        # On a cluster, a pool of our own per node: the cluster client closes its nodes'
        # connections when it relearns the slot map, which may happen while we hold one.
        self._pools: dict[str, ConnectionPool] = {}

    def _node(self, key: str) -> tuple[str, ConnectionPool]:
        if not isinstance(self._redis, RedisCluster):
            return "", self._redis.connection_pool
        try:
            node = self._redis.get_node_from_key(key)
        except SlotNotCoveredError:
            node = None
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
                connection_class=Connection,
            )
        return node.name, pool

    def refuses(self, key: str) -> bool:
        """Whether the node owning `key` has been without replica since its last probe:
        refuse, do not run. Once the mark is a second old, a probe is sent (in the
        background) and the node stays refused until it says a replica is back."""
        name = node_name(self._redis, key) or ""
        until = self._unreplicated.get(name)
        if until is None:
            return False
        now = asyncio.get_running_loop().time()
        if now >= until and name not in self._probing:
            self._unreplicated[name] = now + UNREPLICATED_S
            task = asyncio.get_running_loop().create_task(self._probe(name, key))
            self._probing[name] = task
            task.add_done_callback(lambda _: self._probing.pop(name, None))
        return True

    async def probe(self, key: str, node: str | None = None) -> None:
        """One small write in `key`'s slot, then one WAIT: returns if a replica has every
        earlier write of the node (raises ReplicaTimeout if not). With `node`, only if that
        node still owns the slot."""
        probe = probe_key(key)
        await self.run(probe, [("SET", probe, "probe", "PX", 60_000)], {}, within=WAIT_S, node=node)

    async def _probe(self, name: str, key: str) -> None:
        try:  # acknowledged: run() lifts the mark; not: it renews it
            await self.probe(key)
        except ReplicaTimeout:
            pass
        except (*REDIS_ERRORS, OSError) as e:  # out of reach: purchases find that out at once
            log.info("replica probe of %s failed: %r", name or "redis", e)
            self._unreplicated.pop(name, None)

    async def run(
        self,
        key: str,
        commands: list[Command],
        scripts: dict[str, str],
        within: float | None = None,
        needs_ack: Callable[[list[Any]], bool] = lambda replies: True,
        node: str | None = None,
    ) -> list[Any]:
        """Runs `commands` on one connection to the node owning `key`, then waits there until
        a replica has them (ReplicaTimeout after `within`, default `timeout_s`); returns
        their replies (an error reply as its exception).

        `scripts` maps each EVALSHA's sha to its body, loaded on that node on NOSCRIPT.
        `needs_ack` says from the replies whether anything is promised on them: when not
        (a recheck that found no order), they are returned at once, replica or not.
        With `node`, they run only if that node still owns `key` (else a ConnectionError):
        for a question about writes made there.
        """
        deadline = asyncio.get_running_loop().time() + (
            self.timeout_s if within is None else within
        )
        while True:
            try:
                return await self._run_once(key, commands, scripts, deadline, needs_ack, node)
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
        self,
        key: str,
        commands: list[Command],
        scripts: dict[str, str],
        deadline: float,
        needs_ack: Callable[[list[Any]], bool],
        node: str | None,
    ) -> list[Any]:
        name, pool = self._node(key)
        if node is not None and name != node:
            raise RedisConnectionError(f"{node} no longer owns {key} ({name} does)")
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
            while needs_ack(replies):
                # Never past the deadline (WAIT 0 would block for good: 1 ms at least).
                left_ms = int((deadline - asyncio.get_running_loop().time()) * 1000)
                wait_ms = max(1, min(WAIT_MS, left_ms))
                (acked,) = await _send(conn, [("WAIT", 1, wait_ms)])
                if isinstance(acked, Exception):
                    # The node stopped being a primary under us (a stale primary rejoining
                    # as a replica): what it took is dropped when it resyncs, so nothing ran.
                    raise acked
                if acked >= 1:
                    self._unreplicated.pop(name, None)
                    break
                now = asyncio.get_running_loop().time()
                self._unreplicated[name] = now + UNREPLICATED_S
                log.warning(
                    "no replica of %s acknowledged a write in %d ms", name or "redis", wait_ms
                )
                if now >= deadline:
                    broken = False  # the connection is sound; only the replica is missing
                    message = f"no replica of {name or 'redis'} acknowledged in time"
                    raise ReplicaTimeout(message, replies, name)
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
        for task in list(self._probing.values()):
            task.cancel()
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
