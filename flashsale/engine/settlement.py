"""The settlement worker: drop streams -> order store, exactly as Redis decided.

Each worker is one consumer in every drop stream's group. It reads a batch, commits it to
the store in one transaction, and only then XACKs; a worker killed in between leaves its
entries pending, and another worker takes them over with XAUTOCLAIM once they have been idle
for `claim_idle_ms`. A worker that is alive but failed a batch (the store or Redis went away
between the read and the XACK) reads its own pending entries again first, every retry, until
they are settled: when the outage ends it catches up at once instead of waiting
`claim_idle_ms` for its own entries, and a long outage does not pile up new entries in its
hands. The store's upsert makes a replayed entry change nothing, so the worst a crash costs
is writing a batch twice.

On a single Redis one XREADGROUP reads every drop stream at once and BLOCKs briefly when
there is nothing, so a new order is picked up at once and an idle worker costs nothing. On a
Redis Cluster the streams live in different slots, so each is read on its own and an idle
worker polls less and less often (up to `max_idle_sleep`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from flashsale.config import CLAIM_IDLE_MS
from flashsale.engine.backlog import Entries, backlog, entry_id, group_of
from flashsale.engine.drops import DropIds
from flashsale.engine.errors import REDIS_ERRORS
from flashsale.engine.keys import GROUP, SETTLED, DropKeys
from flashsale.engine.models import orders_of
from flashsale.engine.redis import RedisClient, node_name, text
from flashsale.engine.replicas import ReplicaAcks, ReplicaTimeout
from flashsale.engine.stopping import pause
from flashsale.engine.store import OrderStore
from flashsale.engine.webhooks.rooms import Rooms

log = logging.getLogger(__name__)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _vanished(reply: object) -> bool:
    """A read of a stream compacted away meanwhile: nothing to read, not a failure."""
    return isinstance(reply, ResponseError) and "NOGROUP" in str(reply)


Work = list[tuple[str, Entries]]  # (stream, its entries), streams with no entries left out


@dataclass
class SettlementWorker:
    """One consumer of the settlement group: reads the streams of the drops it is given
    (those with work, in a worker process), writes each batch into the store in one
    transaction and acknowledges it only then; takes over a dead consumer's entries after
    `claim_idle_ms`; trims what everyone has acknowledged. Any number may run."""

    redis: RedisClient
    store: OrderStore
    drops: DropIds
    consumer: str = field(default_factory=consumer_name)
    batch: int = 200  # entries per stream per read (a batch of purchases is one entry)
    claim_idle_ms: int = CLAIM_IDLE_MS
    block_ms: int = 100  # single Redis: how long a read waits for new entries
    idle_sleep: float = 0.005  # cluster: first pause after a read found nothing ...
    max_idle_sleep: float = 0.1  # ... doubling up to this while nothing comes
    settled: int = 0
    retry_own: bool = False  # a batch failed: read this consumer's pending entries first
    replicas: ReplicaAcks | None = None  # acks=replica: settle only what a replica has
    trim_every: float = 10.0  # seconds between trims of acknowledged entries
    linger_s: float = 0.02  # after a partial batch, the wait before the next read
    # called after each batch is in the store: webhook deliveries may have been queued
    on_settled: Callable[[], None] | None = None
    _rooms: Rooms = field(init=False)

    def __post_init__(self) -> None:
        self._rooms = Rooms(self.redis)

    @property
    def cluster(self) -> bool:
        return isinstance(self.redis, RedisCluster)

    async def _claim(self, streams: list[str], claim_idle_ms: int) -> Work:
        async def one(stream: str) -> Entries:
            claimed = await self.redis.xautoclaim(
                stream, GROUP, self.consumer, claim_idle_ms, "0-0", count=self.batch
            )
            return cast(Entries, claimed[1])

        streams = await self._existing(streams)  # a rare pass: asking first costs little
        claimed = await asyncio.gather(*(one(s) for s in streams))
        return [(s, entries) for s, entries in zip(streams, claimed, strict=True) if entries]

    async def _streams(self) -> list[str]:
        return [DropKeys.of(d).events for d in await self.drops.ids()]

    async def _existing(self, streams: list[str]) -> list[str]:
        """Those still there: a drop compacted a moment ago has no stream (nor group)."""
        there = await asyncio.gather(*(self.redis.exists(s) for s in streams))
        return [s for s, n in zip(streams, there, strict=True) if n]

    async def _read(self, streams: list[str], block_ms: int | None, at: str = ">") -> Work:
        try:
            return await self._read_all(streams, block_ms, at)
        except ResponseError as e:
            if not _vanished(e) and "no longer exists" not in str(e):
                raise
        return await self._read_all(await self._existing(streams), block_ms, at)

    async def _read_all(self, streams: list[str], block_ms: int | None, at: str) -> Work:
        """New entries (`at` ">"), or this consumer's own pending ones (`at` "0", delivered
        to it and never acknowledged): one XREADGROUP for all streams on a single Redis,
        else one each."""
        if not streams:
            if block_ms:  # as a blocking read of no stream would: wait, find nothing
                await asyncio.sleep(block_ms / 1000)
            return []
        if self.cluster:  # a command may not span slots
            replies = await asyncio.gather(
                *(self._xreadgroup([s], None, at) for s in streams), return_exceptions=True
            )
            replies = [[] if _vanished(r) else r for r in replies]
            failed = [r for r in replies if isinstance(r, BaseException)]
            if failed and len(failed) == len(replies):
                raise failed[0]
            if failed:  # one node out of reach (a failover): the others settle on
                log.warning("%d drop stream(s) not read this round: %r", len(failed), failed[0])
                self.retry_own = True
            return [pair for reply in replies if not isinstance(reply, BaseException)
                    for pair in reply]  # fmt: skip
        return await self._xreadgroup(streams, block_ms, at)

    async def _xreadgroup(self, streams: list[str], block_ms: int | None, at: str = ">") -> Work:
        # BLOCK 0 would wait forever: no block is None.
        reply = await self.redis.xreadgroup(
            GROUP, self.consumer, dict.fromkeys(streams, at), count=self.batch,
            block=block_ms or None,
        )  # fmt: skip
        pairs = cast(list[tuple[bytes, Entries]], reply or [])
        return [(text(stream), entries) for stream, entries in pairs if entries]

    async def step(self, claim_idle_ms: int | None = None, block_ms: int | None = None) -> int:
        """Settles one batch from every drop stream and acks it; returns the entries done.

        With `claim_idle_ms` it takes over entries pending that long (a dead consumer's, or
        its own failed batch) instead of reading new ones. With `block_ms`, on a single
        Redis, it waits that long for new entries when there are none yet.
        """
        streams = await self._streams()
        # Which node each stream is read from, as the client's slot map has it before the
        # read: acks=replica must ask that node, not whoever owns the slot by the time the
        # entries are in hand (a replica promoted meanwhile never had the unreplicated ones).
        read_from = {s: node_name(self.redis, s) for s in streams}
        work: Work = []
        if claim_idle_ms is not None:
            work = await self._claim(streams, claim_idle_ms)
        else:
            if self.retry_own:
                work = await self._read(streams, None, at="0")
                self.retry_own = bool(work)
            if not work:
                work = await self._read(streams, block_ms)
        if not work:
            return 0
        if self.replicas is not None:
            safe = await self._replicated([stream for stream, _ in work], read_from)
            if len(safe) < len(work):  # the rest left pending: read again first, next round
                self.retry_own = True
                work = [pair for pair in work if pair[0] in safe]
                if not work:
                    return 0
        # Only then the orders: a held-back stream's must not reach the store this round.
        # An entry deleted after delivery (XDEL) comes back from XAUTOCLAIM without fields.
        orders = [o for _, entries in work for _id, f in entries if f for o in orders_of(f)]
        if orders:
            # The rooms go along: the same transaction queues the webhooks' deliveries.
            await self.store.apply(orders, await self._rooms.of(o.drop_id for o in orders))
            if self.on_settled is not None:
                self.on_settled()
        await asyncio.gather(
            *(self.redis.xack(s, GROUP, *[i for i, _ in entries]) for s, entries in work)
        )
        self.settled += len(orders)
        done = sum(len(entries) for _, entries in work)
        await self.redis.incrby(SETTLED, done)  # counted after the acks: never ahead of them
        return done

    async def _replicated(self, streams: list[str], read_from: dict[str, str | None]) -> set[str]:
        """The streams whose entries a failover can no longer take back: one small write per
        Redis node, then WAIT on that connection, which covers every earlier write on the
        node (the entries included). A node whose replica does not acknowledge in time holds
        back its own streams only; a node with no replica that could be promoted at all
        keeps settling. Each write goes to the node the entries were read from: if that node
        no longer owns the slot, its streams wait for the next round's read."""
        assert self.replicas is not None
        replicas = self.replicas
        by_node: dict[str | None, list[str]] = {}
        for stream in streams:
            by_node.setdefault(read_from.get(stream), []).append(stream)

        async def safe(node: str | None, mine: list[str]) -> bool:
            if node is None:  # no node was known to own it (mid-failover)
                return False
            try:
                await replicas.probe(mine[0], node=node)
                return True
            except ReplicaTimeout as e:
                return not await replicas.promotable(e)
            except (*REDIS_ERRORS, OSError) as e:  # out of reach (a failover): not this round
                log.warning("settlement holds back the drops of a node out of reach: %r", e)
                return False

        nodes = list(by_node.items())
        verdicts = await asyncio.gather(*(safe(node, mine) for node, mine in nodes))
        return {s for (_, mine), ok in zip(nodes, verdicts, strict=True) if ok for s in mine}

    async def trim(self, drop_ids: list[str] | None = None) -> int:
        """Removes from each drop stream (of `drop_ids`, else of every drop it visits) the
        entries every worker has acknowledged (they are in the store), so a long night's
        orders do not pile up in Redis; returns how many.

        Kept: everything pending (a worker holds it, or a dead one did: XAUTOCLAIM needs it)
        and everything not yet delivered. So the cut is at the older of the oldest pending
        entry and the first one after the group's last delivered; entries only ever move
        forward past that point, so a cut computed a moment ago is still safe.
        """
        removed = 0
        for drop_id in await self.drops.ids() if drop_ids is None else drop_ids:
            stream = DropKeys.of(drop_id).events
            group = await group_of(self.redis, stream)
            if group is None:
                continue
            ms, seq = entry_id(group["last-delivered-id"])
            keep_from = (ms, seq + 1)
            if int(group.get("pending") or 0):
                oldest = (await self.redis.xpending(stream, GROUP)).get("min")
                if oldest is not None:
                    keep_from = min(keep_from, entry_id(oldest))
            if keep_from > (0, 1):
                minid = f"{keep_from[0]}-{keep_from[1]}"
                removed += int(await self.redis.xtrim(stream, minid=minid, approximate=False))
        return removed

    async def backlog(self) -> int:
        return await backlog(self.redis, self.drops)

    async def run(self, stop: asyncio.Event, claim_every: float = 1.0) -> None:
        """Settles until `stop` is set, then finishes the batch in hand and returns."""
        loop = asyncio.get_running_loop()
        next_claim = loop.time() + claim_every
        next_trim = loop.time() + self.trim_every
        # A blocking read is the idle wait on a single Redis; a cluster polls with backoff.
        block_ms = None if self.cluster else self.block_ms
        quiet = self.idle_sleep
        while not stop.is_set():
            try:
                idle: int | None = None
                if loop.time() >= next_claim:
                    idle = self.claim_idle_ms
                done = await self.step(idle, block_ms)
                # Each due time counts from the end of its pass: a pass over many drops that
                # takes longer than its period must not leave reads no turn.
                if idle is not None:
                    next_claim = loop.time() + claim_every
                if loop.time() >= next_trim:
                    await self.trim()
                    next_trim = loop.time() + self.trim_every
            except (*REDIS_ERRORS, OSError) as exc:
                log.warning("settlement step failed, will retry: %s", exc)
                done, self.retry_own = 0, True
                await asyncio.sleep(0.5)
            except Exception:
                # The store refused a batch (down, deadlock): nothing was acked, so this
                # worker reads it again (its own pending entries) before anything new; a
                # worker that died instead leaves it to XAUTOCLAIM after claim_idle_ms.
                log.exception("settling a batch failed, will retry")
                done, self.retry_own = 0, True
                await asyncio.sleep(0.5)
            if done:
                quiet = self.idle_sleep
                if done < self.batch:
                    # Group commit: a store commit (and its fsync) costs more than the rows
                    # in it, so while orders trickle in, let a few ms of them gather.
                    await pause(stop, self.linger_s)
            elif block_ms is None:
                await pause(stop, quiet)
                quiet = min(quiet * 2, self.max_idle_sleep)

    async def drain(self, within: float = 30.0) -> bool:
        """Settles until nothing is pending or undelivered; True if it got there in time.
        Redis out of reach for a moment (a failover, a client's stale slot map) is waited
        out as `run` waits it out, until the deadline."""
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            try:
                # Pending entries first (a batch that failed, a dead worker's), then new ones.
                done = await self.step(claim_idle_ms=0) + await self.step()
                if await self.backlog() == 0:
                    return True
            except (*REDIS_ERRORS, OSError) as exc:
                log.warning("draining settlement: Redis out of reach, will retry: %s", exc)
                await asyncio.sleep(0.2)
                continue
            if not done:  # others hold what is left: give them time
                await asyncio.sleep(0.05)
        return False
