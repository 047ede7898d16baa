"""The purchase path: one call of purchase.lua decides limit, stock and the order event.

Batching. The purchases of one drop that arrive in one event-loop tick share one script
call, so a burst costs a round trip per tick rather than per tap (ticks.py, at most
MAX_BATCH purchases a call). While BATCHES_IN_FLIGHT batches of a drop are on their way, the
next one fills up and goes when one of them lands (group commit): taps that trickle in
share a call too, at the cost of at most one round trip of waiting. The script is atomic,
so a batch is decided whole or not at all: a failed batch answers all of its requests 503
and made no order. Each batch runs as a task of its own, and one whose answer was lost gives
up its place at once, so a batch stuck in a recheck never holds up the next one.

A lost answer is the one hard case. Each request's order id is chosen here, before Redis is
asked, and the script is idempotent by that id; so when the connection breaks after the
script was sent, the batch is run again with the same ids (recheck) until Redis answers,
however long that takes, and each buyer is told what was really decided: a 503 promises
that no purchase was made, which nobody can promise of a script that may have run. A
recheck that refuses voids the id for good (see purchase.lua). A batch that could not even
connect was never sent: it is answered 503 at once, and for the next DOWN_S so is every
purchase of a drop on that Redis node, without trying, until a batch gets through again.

Before all that, a drop every gateway knows to be sold out or closed is refused at once,
without Redis (status_feed.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import msgspec
from redis.exceptions import NoScriptError

from flashsale.engine.errors import AMBIGUOUS, REDIS_ERRORS, Unavailable, Undecided, never_sent
from flashsale.engine.ids import is_drop_id, new_order_ids
from flashsale.engine.keys import DropKeys
from flashsale.engine.models import Order, Outcome, VariantRefusal, decode_order
from flashsale.engine.pipe import Pipe, bulks
from flashsale.engine.redis import RedisClient, node_name
from flashsale.engine.replicas import ReplicaAcks, ReplicaTimeout
from flashsale.engine.scripts import Scripts
from flashsale.engine.status_feed import OTHER_REFUSALS, REFUSING, StatusFeed
from flashsale.engine.store import STORE_ERRORS
from flashsale.engine.ticks import PerTick
from flashsale.metrics import metrics

log = logging.getLogger(__name__)

RECHECK_DELAYS = (0.05, 0.2, 0.5, 1.0)  # then every RECHECK_DELAYS[-1] until Redis answers
# ... or until this long after the batch began: then each of its requests is told 504
# `undecided` (retry with the same key). With a call's own 5 s time-out on either side, every
# purchase is answered within 30 s whatever Redis does.
UNDECIDED_AFTER_S = 20.0
MAX_BATCH = 256  # purchases per script call: Redis runs nothing else while a script runs
BATCHES_IN_FLIGHT = 2  # batches of one drop on their way to Redis at once, per process
DOWN_S = 0.25  # after a failed connect, purchases are refused this long without trying

# order id, buyer, quantity, idempotency key, variant, pass ("" = none, for the last three)
Request = tuple[str, str, int, str, str, str]
_pack = msgspec.msgpack.Encoder().encode


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    order: Order | None = None


NOT_FOUND = Decision("not_found")
UNDECIDED = Decision("undecided")
# What the status feed refuses without Redis (status_feed.py), made once.
REFUSED: dict[Outcome, Decision] = {
    outcome: Decision(outcome)
    for outcome in (*REFUSING.values(), *OTHER_REFUSALS, *get_args(VariantRefusal))
}


# Called once with what was decided: a Decision, or the exception that stands for none
# (Unavailable; CancelledError when the process stops mid-batch).
Done = Callable[[Decision | BaseException], None]
Waiting = tuple[str, int, str, str, str, Done]  # buyer, quantity, key, variant, pass, whom to tell
Replays = Callable[[str, str, str], Awaitable[Order | None]]  # drop, buyer, key -> order


class Purchaser:
    """Every purchase of this process goes through `submit` (or `purchase`, its future):
    refused at once when that needs no Redis, else batched per drop and decided by one call
    of purchase.lua per batch.

    Read in this order: `submit` queues the request -> the drop's batch goes at the end of
    the tick, or at once when full (ticks.py) -> `_send` starts the batch's task ->
    `_run_batch` gives each request its order id and tells each its answer -> `decide` asks
    again while the answer is lost -> `decide_once`, one script call (replicated, piped or
    plain)."""

    def __init__(
        self,
        redis: RedisClient,
        scripts: Scripts,
        feed: StatusFeed | None = None,
        replicas: ReplicaAcks | None = None,
        pipe: Pipe | None = None,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self.feed = feed
        self.replicas = replicas  # acks=replica: decisions count once a replica has them
        self._pipe = pipe  # a connection of batches' own (pipe.py); else redis-py's
        # a compacted drop's same-key replays, from the order store (compaction.py); the
        # gateway sets it, a process without a store leaves them `not_live`
        self.replays: Replays | None = None
        self._heads: dict[str, bytes] = {}  # drop id -> its batches' RESP command head
        self.undecided_after = UNDECIDED_AFTER_S
        self.batches: PerTick[Waiting] = PerTick(self._send, MAX_BATCH, BATCHES_IN_FLIGHT)
        self._batches: set[asyncio.Task[None]] = set()
        # Redis node (name; "" for a single Redis) -> loop time until which it is taken to be
        # unreachable: on a cluster one dead primary must not refuse the others' drops.
        self._down: dict[str, float] = {}

    def purchase(
        self,
        drop_id: str,
        buyer: str,
        quantity: int,
        idempotency_key: str | None = None,
        variant: str | None = None,
        pass_: str | None = None,
    ) -> asyncio.Future[Decision]:
        """`submit`, with the decision in a future."""
        answer: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()

        def done(result: Decision | BaseException) -> None:
            if answer.done():
                return
            if isinstance(result, Decision):
                answer.set_result(result)
            elif isinstance(result, asyncio.CancelledError):
                answer.cancel()
            else:
                answer.set_exception(result)

        self.submit(drop_id, buyer, quantity, idempotency_key, variant, pass_, done)
        return answer

    def submit(
        self,
        drop_id: str,
        buyer: str,
        quantity: int,
        idempotency_key: str | None,
        variant: str | None,
        pass_: str | None,
        done: Done,
    ) -> None:
        """Queues one purchase for this tick's batch; `done` hears the decision (at once,
        before this returns, when no Redis is needed)."""
        if not is_drop_id(drop_id):
            done(NOT_FOUND)
            return
        if self._down and asyncio.get_running_loop().time() < self._down.get(
            self._node(drop_id), 0.0
        ):
            done(Unavailable("Redis is unreachable"))
            return
        if self.feed is not None:
            refused = self.feed.refusal(drop_id, buyer, idempotency_key, variant, pass_)
            if refused is not None:
                done(REFUSED[refused])
                return
        self.batches.add(
            drop_id, (buyer, quantity, idempotency_key or "", variant or "", pass_ or "", done)
        )

    def _node(self, drop_id: str) -> str:
        return node_name(self._redis, DropKeys.of(drop_id).drop) or "?"

    def _send(self, drop_id: str, queue: list[Waiting]) -> None:
        task = asyncio.get_running_loop().create_task(self._run_batch(drop_id, queue))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _run_batch(self, drop_id: str, queue: list[Waiting]) -> None:
        ids = new_order_ids(drop_id, len(queue))
        requests = [
            (oid, b, q, k, v, p) for oid, (b, q, k, v, p, _) in zip(ids, queue, strict=True)
        ]
        try:
            # the first call over, answered or not, the drop's next batch may go
            decisions = await self.decide(drop_id, requests, lambda: self.batches.landed(drop_id))
            if self.replays is not None and any(d.outcome == "compacted" for d in decisions):
                decisions = await self._from_store(drop_id, queue, decisions)
        except Undecided as e:
            _tell(queue, [e] * len(queue))
            return
        except (*REDIS_ERRORS, Unavailable) as e:
            _tell(queue, [Unavailable(str(e))] * len(queue))
            return
        except asyncio.CancelledError as e:
            _tell(queue, [e] * len(queue))
            raise
        except Exception as e:  # a bug: each request gets it, none hangs
            _tell(queue, [e] * len(queue))
            raise
        _tell(queue, decisions)
        # Redis refused the batch's last purchase as sold out or not live: perhaps a
        # message this process missed (the feed asks Redis once).
        if self.feed is not None and decisions[-1].outcome in REFUSING.values():
            self.feed.refused(drop_id)

    async def _from_store(
        self, drop_id: str, queue: list[Waiting], decisions: list[Decision]
    ) -> list[Decision]:
        """Keyed requests of a compacted drop: a replay if the store has the key's order."""
        assert self.replays is not None
        out = []
        for (buyer, _, key, *_), d in zip(queue, decisions, strict=True):
            if d.outcome == "compacted":
                try:
                    order = await self.replays(drop_id, buyer, key)
                except STORE_ERRORS as e:
                    raise Unavailable(f"the order store is unreachable: {e!r}") from e
                d = Decision("replay", order) if order is not None else REFUSED["not_live"]
            out.append(d)
        return out

    async def decide(
        self, drop_id: str, requests: list[Request], landed: Callable[[], None] = lambda: None
    ) -> list[Decision]:
        """Decides one batch, finding out what Redis did if the answer is lost; `landed` is
        called when the first call is over, before any recheck."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            try:
                decisions = await self.decide_once(drop_id, 0, requests)
            finally:
                landed()
        except AMBIGUOUS as e:
            if never_sent(e):
                self._down[self._node(drop_id)] = loop.time() + DOWN_S
                raise Unavailable(f"Redis is unreachable: {e}") from e
            # sent or not, nobody knows: ask again under the same ids
        else:
            if self._down:
                self._down.pop(self._node(drop_id), None)
            return decisions
        delays = itertools.chain(RECHECK_DELAYS, itertools.repeat(RECHECK_DELAYS[-1]))
        while True:
            delay = next(delays)
            if loop.time() + delay > started + self.undecided_after:
                raise Undecided(f"Redis did not answer for {self.undecided_after:g}s")
            await asyncio.sleep(delay)
            try:
                return await self.decide_once(drop_id, 1, requests)
            except REDIS_ERRORS as e:
                if never_sent(e):  # still down: spare new purchases the attempt
                    self._down[self._node(drop_id)] = loop.time() + DOWN_S
                log.warning("purchase batch of %s still undecided, rechecking: %r", drop_id, e)

    async def _decide_replicated(
        self, drop_id: str, recheck: int, packed: bytes
    ) -> tuple[Any, bool]:
        """The script, then WAIT for a replica on the same connection (replicas.py); returns
        its reply and whether what it made is safe from a failover.

        A node that just lost its replica makes no new order: its batches run as rechecks
        do, finding orders that exist (a same-key retry gets its order) and answering the
        rest 503. What no replica acknowledged in time is not safe, unless the node has no
        replica left that could be promoted: then nothing can take it back.

        A reply with no order in it promises nothing a failover could take back, so it is
        answered without waiting: a refusal, or a recheck's 503. That 503 stays true even if
        its void mark is lost: a primary replicates in order, so a lost mark means that
        whatever the node did after it is lost too, and a first attempt that ran before it
        is found."""
        assert self.replicas is not None
        keys = DropKeys.of(drop_id)
        if not recheck and self.replicas.refuses(keys.drop):
            recheck = 1
        script = self._scripts.purchase
        command = ("EVALSHA", script.sha, len(keys), *keys, recheck, packed)
        safe = True
        try:
            (flat,) = await self.replicas.run(
                keys.drop, [command], {script.sha: script.script}, needs_ack=_makes_orders
            )
        except ReplicaTimeout as e:
            (flat,) = e.replies
            safe = not await self.replicas.promotable(e)
        if isinstance(flat, Exception):
            raise flat
        return flat, safe

    async def _decide_piped(self, drop_id: str, recheck: int, packed: bytes) -> Any:
        assert self._pipe is not None
        head = self._heads.get(drop_id)
        if head is None:  # EVALSHA, the script, its keys: the same for every batch of a drop
            if len(self._heads) >= 10_000:
                self._heads.clear()
            keys = DropKeys.of(drop_id)
            script = self._scripts.purchase
            fixed = ("EVALSHA", script.sha, len(keys), *keys)
            head = self._heads[drop_id] = b"*%d\r\n" % (len(fixed) + 2) + bulks(fixed)
        command = head + bulks((recheck, packed))
        try:
            return await self._pipe.send(command)
        except NoScriptError:  # a new or restarted Redis: nothing ran; load it, send again
            await self._redis.script_load(self._scripts.purchase.script)
            return await self._pipe.send(command)

    async def decide_once(
        self, drop_id: str, recheck: int, requests: list[Request]
    ) -> list[Decision]:
        """Runs one batch of purchases of one drop in a single script call (`recheck` 1: a
        recheck, which decides nothing new), with no recheck of its own if the answer is
        lost: `decide` does that. Public for benches and tests that drive the script."""
        packed = _pack(requests)
        start = time.perf_counter()
        safe = True
        if self.replicas is not None:
            flat, safe = await self._decide_replicated(drop_id, recheck, packed)
        elif self._pipe is not None:
            flat = await self._decide_piped(drop_id, recheck, packed)
        else:
            flat = await Scripts.call(self._scripts.purchase, drop_id, recheck, packed)
        measured = metrics()
        measured.batch_seconds.observe(time.perf_counter() - start)
        measured.batch_size.observe(len(requests))
        decisions = [
            Decision(flat[i].decode(), decode_order(flat[i + 1]) if flat[i + 1] else None)
            for i in range(0, len(flat), 2)
        ]
        if not safe:  # an order a failover could still take back is promised to nobody yet
            decisions = [UNDECIDED if d.order is not None else d for d in decisions]
        return decisions


def _makes_orders(replies: list[Any]) -> bool:
    """Whether a purchase script's reply holds any order (made or found); an error reply
    promises nothing either."""
    (flat,) = replies
    return not isinstance(flat, Exception) and any(flat[1::2])


def _tell(queue: list[Waiting], results: Sequence[Decision | BaseException]) -> None:
    """Each waiting request its result; one whose callback fails does not keep the rest
    from theirs."""
    for (*_, done), result in zip(queue, results, strict=True):
        try:
            done(result)
        except Exception:
            log.exception("a purchase's answer failed")
