"""The sold-out fast path: what every gateway knows about drops that refuse every purchase.

Once a drop has sold out, nine taps in ten are for nothing, and each would cost a Redis round
trip to be told so. The scripts publish every change of a drop's status on STATUS_CHANNEL
(lib.lua `set_status`), so each gateway process learns within milliseconds that a drop is
sold out or closed and answers its purchases itself: 409 `sold_out` or `not_live`.

One kind of purchase must still reach Redis: a retry under an Idempotency-Key that already
made an order, which gets that order again (200). So on sell-out a gateway reads the drop's
used keys once; no key can be added while nothing remains. Any change of status (a restock,
a reopen, a released hold) clears the drop at once, and so does a lost subscription: a
gateway that may have missed a message asks Redis again. A check every `verify_every`
seconds catches what pub/sub could still miss, and forgets a drop nobody has tapped for
`idle_s`: a season of closed drops must not keep every one's keys in every gateway (the
next tap on it asks Redis, and it is learnt again).

Variants. A live drop whose 2 kg pack is gone still sells its 1 kg: purchase.lua publishes
"<drop> live variants" when a variant sells out (and lib.lua when one comes back), and the
gateway refuses that variant's taps itself, learning the drop's codes and sold-out variants
with its used keys. It also knows the drop's codes, so a tap with a variant the drop does
not take gets the same 400 here as from Redis. One answer may differ: a key first used on
another variant after the snapshot, sent again with the sold-out variant's body, is told
409 `sold_out` here where Redis would say 422 `idempotency_conflict`: both refuse, and
neither makes an order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any, NamedTuple, cast

from flashsale.engine.errors import REDIS_ERRORS
from flashsale.engine.keys import STATUS_CHANNEL, DropKeys
from flashsale.engine.models import (
    DropStatus,
    Outcome,
    VariantRefusal,
    variant_codes,
    variant_field,
)
from flashsale.engine.redis import RedisClient, subscriber, text
from flashsale.engine.stopping import pause

log = logging.getLogger(__name__)

# The outcome a purchase of a drop in each refusing status gets (purchase.lua's order).
REFUSING: dict[DropStatus, Outcome] = {"sold_out": "sold_out", "closed": "not_live"}
# ... and what else the feed may answer of a sold-out drop, by its admission (purchase.lua's
# order: not_live, then draw_only or not_admitted, then sold_out)
OTHER_REFUSALS: tuple[Outcome, ...] = ("draw_only", "not_admitted")
IDLE_S = 60.0  # a drop refused here for nobody this long is forgotten


class Shut(NamedTuple):
    status: DropStatus  # `live` when only some variants refuse
    used_keys: frozenset[str] | None  # "buyer\nkey" fields with an order; None: too many
    codes: frozenset[str] | None = None  # the drop's variants (None: it has none)
    sold_out: frozenset[str] = frozenset()  # its variants with nothing left
    admission: str = "first_come"


def variant_refusal(codes: frozenset[str] | None, variant: str | None) -> VariantRefusal | None:
    """What a request's variant gets on a drop with these codes: purchase.lua's rule."""
    if codes is None:
        return None if variant is None else "no_variants"
    if variant is None:
        return "variant_required"
    return None if variant in codes else "unknown_variant"


class StatusFeed:
    def __init__(
        self,
        redis: RedisClient,
        *,
        max_keys: int = 1_000_000,
        verify_every: float = 1.0,
        idle_s: float = IDLE_S,
    ) -> None:
        self._redis = redis
        self.max_keys = max_keys
        self.verify_every = verify_every
        self.idle_s = idle_s
        self._tapped: dict[str, float] = {}  # drop -> monotonic time of its last refusal here
        self.shut: dict[str, Shut] = {}
        self._generation: dict[str, int] = {}  # bumped by every message about a drop
        self._learning: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def refusal(
        self,
        drop_id: str,
        buyer: str,
        key: str | None,
        variant: str | None = None,
        pass_: str | None = None,
    ) -> Outcome | None:
        """The outcome to answer without Redis, or None when Redis must decide."""
        shut = self.shut.get(drop_id)
        if shut is None:
            return None
        self._tapped[drop_id] = time.monotonic()
        wrong = variant_refusal(shut.codes, variant)
        if wrong is not None:
            return wrong  # the request's own fault: refused before anything else
        if shut.status == "closed":
            outcome = REFUSING["closed"]
        elif shut.status != "sold_out" and variant not in shut.sold_out:
            return None
        elif shut.admission == "draw":
            outcome = "draw_only"
        elif shut.admission == "queue":
            if pass_ is not None:
                return None  # a valid pass is told sold_out, another not_admitted: Redis knows
            outcome = "not_admitted"
        else:
            outcome = "sold_out"
        if key is not None and (shut.used_keys is None or f"{buyer}\n{key}" in shut.used_keys):
            return None  # perhaps a replay
        return outcome

    def forget(self, drop_id: str) -> None:
        """A change this process made itself (restock, open, close): ask Redis from now on."""
        self._generation[drop_id] = self._generation.get(drop_id, 0) + 1
        self.shut.pop(drop_id, None)
        self._tapped.pop(drop_id, None)

    def heard(self, drop_id: str, status: str, variants: bool = False) -> None:
        """A change of the drop's status, or (`variants`) of which of its variants sold out."""
        self.forget(drop_id)
        if status in REFUSING or variants:
            self._spawn(self._learn(drop_id, self._generation[drop_id]))

    def refused(self, drop_id: str) -> None:
        """Redis refused a purchase as sold out or not live: a drop that sold out before this
        process subscribed is learnt this way too (once; Redis's status decides)."""
        if drop_id not in self.shut and drop_id not in self._learning:
            self._spawn(self._learn(drop_id, self._generation.get(drop_id, 0)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _learn(self, drop_id: str, generation: int) -> None:
        self._learning.add(drop_id)
        try:
            await self._read(drop_id, generation)
        finally:
            self._learning.discard(drop_id)

    async def _read(self, drop_id: str, generation: int) -> None:
        keys = DropKeys.of(drop_id)
        try:
            raw, compacted, listed, admission = await self._redis.hmget(
                keys.drop, "status", "compacted", "variants", "admission"
            )
            status = text(raw)
            codes = variant_codes(text(listed) if listed else None)
            sold_out: frozenset[str] = frozenset()
            if codes:
                left = await self._redis.hmget(
                    keys.drop, [variant_field(c, "remaining") for c in codes]
                )
                sold_out = frozenset(c for c, n in zip(codes, left, strict=True) if n == b"0")
            if status not in REFUSING and not sold_out:
                return
            used: frozenset[str] | None = None  # a compacted drop's keys are in the store
            if not compacted and await self._redis.hlen(keys.idem) <= self.max_keys:
                used = frozenset(
                    [text(f) async for f, _ in self._redis.hscan_iter(keys.idem, count=10_000)]
                )
        except REDIS_ERRORS as e:
            log.warning("could not read drop %s for the fast path: %s", drop_id, e)
            return
        if self._generation.get(drop_id, 0) == generation:
            frozen = None if codes is None else frozenset(codes)
            self.shut[drop_id] = Shut(
                cast(DropStatus, status), used, frozen, sold_out, text(admission or b"first_come")
            )
            self._tapped[drop_id] = time.monotonic()

    async def _verify(self) -> None:
        now = time.monotonic()
        for drop_id, shut in list(self.shut.items()):
            if now - self._tapped.get(drop_id, now) > self.idle_s:
                self.forget(drop_id)  # untapped a while: its keys are not worth holding
                continue
            names = ["status", *(variant_field(c, "remaining") for c in sorted(shut.sold_out))]
            status, *left = await self._redis.hmget(DropKeys.of(drop_id).drop, names)
            if status is None or text(status) != shut.status or any(n != b"0" for n in left):
                self.forget(drop_id)

    async def run(self, stop: asyncio.Event, redis_url: str) -> None:
        """Follows the channel until `stop`; on any break forgets everything and resubscribes."""
        while not stop.is_set():
            client = subscriber(redis_url)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(STATUS_CHANNEL)
                    self.subscribed.set()
                    next_verify = asyncio.get_running_loop().time() + self.verify_every
                    while not stop.is_set():
                        message = await pubsub.get_message(timeout=0.2)
                        if message is not None:
                            drop_id, status, *more = text(message["data"]).split(" ")
                            self.heard(drop_id, status, more == ["variants"])
                        if asyncio.get_running_loop().time() >= next_verify:
                            await self._verify()
                            next_verify = asyncio.get_running_loop().time() + self.verify_every
            except (*REDIS_ERRORS, OSError) as e:
                if self.subscribed.is_set():  # once per outage, not once per retry
                    log.warning("status feed lost, asking Redis about every drop: %s", e)
            finally:
                self.subscribed.clear()
                for drop_id in list(self.shut):
                    self.forget(drop_id)
                with contextlib.suppress(*REDIS_ERRORS, OSError):
                    await client.aclose()
            await pause(stop, 0.5)
        for task in list(self._tasks):
            task.cancel()
