"""Checks the contract's ten invariants (1 and 2 per variant too; 7-9 in fair_audit.py, 10 in
webhook_audit.py) against Redis (what was decided and answered) and the order store (what
was recorded).
Used by `flashsale audit`, the tests and the load tool.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from flashsale.engine.backlog import backlog
from flashsale.engine.drops import Drops
from flashsale.engine.fair_audit import FAIR_INVARIANTS, fairness_findings
from flashsale.engine.keys import DropKeys
from flashsale.engine.models import Drop, Order, decode_order
from flashsale.engine.redis import RedisClient, text
from flashsale.engine.store import OrderStore
from flashsale.engine.store.base import iter_orders
from flashsale.engine.webhook_audit import DELIVERY_INVARIANTS, delivery_findings

# The six every drop keeps (the load tool checks these from outside too), then the three of
# the drops that decide who gets scarce units (only Redis can tell those).
ORDER_INVARIANTS = {
    1: "no oversell",
    2: "exact accounting",
    3: "no lost order",
    4: "no phantom order",
    5: "per-buyer limit",
    6: "idempotency",
}
INVARIANTS = {**ORDER_INVARIANTS, **FAIR_INVARIANTS, **DELIVERY_INVARIANTS}


@dataclass(frozen=True)
class Finding:
    invariant: int  # 0: a precondition (settlement not caught up)
    drop_id: str
    message: str


@dataclass
class AuditReport:
    drops: int = 0
    orders: int = 0
    backlog: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def lines(self) -> list[str]:
        out = [
            f"audited {self.drops} drop(s), {self.orders} order(s); settlement backlog "
            f"{self.backlog}"
        ]
        for number, name in INVARIANTS.items():
            bad = [f for f in self.findings if f.invariant == number]
            out.append(f"  {'FAIL' if bad else 'ok  '} {number}. {name}")
            out.extend(f"       drop {f.drop_id}: {f.message}" for f in bad[:20])
            if len(bad) > 20:
                out.append(f"       ... and {len(bad) - 20} more")
        out.extend(f"  FAIL {f.message}" for f in self.findings if f.invariant == 0)
        out.append("all invariants hold" if self.ok else "INVARIANTS VIOLATED")
        return out


async def _redis_orders(redis: RedisClient, drop_id: str) -> dict[str, Order]:
    orders: dict[str, Order] = {}
    async for oid, packed in redis.hscan_iter(DropKeys.of(drop_id).orders, count=1000):
        orders[text(oid)] = decode_order(packed)
    return orders


def _units_by_buyer(orders: dict[str, Order]) -> Counter[str]:
    held: Counter[str] = Counter()
    for o in orders.values():
        if o.live:
            held[o.buyer] += o.quantity
    return held


def _units_by_variant(orders: dict[str, Order]) -> Counter[str | None]:
    held: Counter[str | None] = Counter()
    for o in orders.values():
        if o.live:
            held[o.variant] += o.quantity
    return held


def _variant_findings(
    drop: Drop, decided: dict[str, Order], stored: dict[str, Order]
) -> list[tuple[int, str]]:
    """Invariants 1 and 2 for each variant, and the drop's counters as their sums."""
    if drop.variants is None:
        strays = {o.variant for o in stored.values() if o.variant is not None}
        return [(2, f"orders of variant(s) {sorted(strays)} on a drop without")] if strays else []
    out: list[tuple[int, str]] = []
    in_store, in_redis = _units_by_variant(stored), _units_by_variant(decided)
    for v in drop.variants:
        units = in_store[v.code]
        if units > v.stock:
            out.append((1, f"variant {v.code}: live orders hold {units} units of {v.stock}"))
        if v.remaining + v.sold != v.stock:
            out.append((2, f"variant {v.code}: remaining {v.remaining} + sold {v.sold} != "
                           f"stock {v.stock}"))  # fmt: skip
        for where, held in (("the store", units), ("Redis", in_redis[v.code])):
            if held != v.sold:
                out.append((2, f"variant {v.code}: sold is {v.sold} but live orders in {where} "
                               f"hold {held}"))  # fmt: skip
    for name in ("stock", "remaining", "sold"):
        total = sum(getattr(v, name) for v in drop.variants)
        if total != getattr(drop, name):
            out.append((2, f"the drop's {name} {getattr(drop, name)} is not its variants' {total}"))
    codes: set[str | None] = {v.code for v in drop.variants}
    wrong = {o.variant for o in stored.values()} - codes
    if wrong:
        out.append((2, f"orders of variant(s) {sorted(map(str, wrong))} the drop does not have"))
    return out


def _check_drop(
    drop: Drop,
    decided: dict[str, Order],
    stored: dict[str, Order],
    counts: dict[str, int],
    idem: dict[str, str],
) -> list[Finding]:
    bad: list[Finding] = []

    def fail(invariant: int, message: str) -> None:
        bad.append(Finding(invariant, drop.id, message))

    stored_held = _units_by_buyer(stored)
    decided_held = _units_by_buyer(decided)
    stored_units = sum(stored_held.values())
    if stored_units > drop.stock:
        fail(1, f"live orders hold {stored_units} units of a stock of {drop.stock}")
    if drop.remaining + drop.sold != drop.stock:
        fail(2, f"remaining {drop.remaining} + sold {drop.sold} != stock {drop.stock}")
    for where, units in (("the store", stored_units), ("Redis", sum(decided_held.values()))):
        if units != drop.sold:
            fail(2, f"sold is {drop.sold} but live orders in {where} hold {units}")
    if dict(decided_held) != {b: n for b, n in counts.items() if n}:
        fail(2, "per-buyer unit counts in Redis disagree with the buyers' live orders")
    for invariant, message in _variant_findings(drop, decided, stored):
        fail(invariant, message)

    for oid, o in decided.items():
        s = stored.get(oid)
        if s is None:
            fail(3, f"order {oid} ({o.buyer}, {o.quantity}) is not in the store")
        elif (s.buyer, s.quantity) != (o.buyer, o.quantity):
            fail(
                3,
                f"order {oid} is in the store as ({s.buyer}, {s.quantity}), "
                f"decided as ({o.buyer}, {o.quantity})",
            )
        elif s.status != o.status:
            fail(3, f"order {oid} is {s.status} in the store but {o.status} in Redis")
    for oid, s in stored.items():
        if oid not in decided:
            fail(4, f"order {oid} ({s.buyer}, {s.quantity}) in the store was never decided")

    for buyer, units in stored_held.items():
        if units > drop.per_buyer_limit:
            fail(5, f"buyer {buyer!r} holds {units} units, limit {drop.per_buyer_limit}")

    keyed: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for oid, s in stored.items():
        if s.idempotency_key is not None:
            keyed[(s.buyer, s.idempotency_key)].append(oid)
    for (buyer, key), oids in keyed.items():
        if len(oids) > 1:
            fail(6, f"buyer {buyer!r} key {key!r} has {len(oids)} orders: {', '.join(oids)}")
        if idem.get(f"{buyer}\n{key}") != oids[0]:
            fail(6, f"buyer {buyer!r} key {key!r}: Redis maps it to another order")
    return bad


async def audit(
    redis: RedisClient, store: OrderStore, drops: Drops, drop_id: str | None = None
) -> AuditReport:
    report = AuditReport()
    report.backlog = await backlog(redis, drops, drop_id)
    if report.backlog:
        report.findings.append(
            Finding(
                0,
                "*",
                f"settlement has {report.backlog} event(s) "
                "to catch up: the invariants hold only after it has",
            )
        )
    known = await drops.ids()
    ids = [drop_id] if drop_id else known
    webhooks = await store.webhooks()
    for did in ids:
        drop = await drops.get(did)
        if drop is None:
            report.findings.append(Finding(4, did, "no such drop in Redis"))
            continue
        keys = DropKeys.of(did)
        stored = {o.id: o async for o in iter_orders(store, did)}
        if await drops.is_compacted(did):
            # Only the record is left in Redis: the store's orders answer for the rest, and
            # the drop's counts and limits are checked against them.
            decided = stored
            counts = dict(_units_by_buyer(stored))
            idem = {f"{o.buyer}\n{o.idempotency_key}": o.id
                    for o in sorted(stored.values(), key=lambda o: o.seq, reverse=True)
                    if o.idempotency_key is not None}  # fmt: skip
        else:
            decided = await _redis_orders(redis, did)
            counts = {text(b): int(n) for b, n in (await redis.hgetall(keys.buyers)).items()}
            idem = {text(k): text(v) for k, v in (await redis.hgetall(keys.idem)).items()}
        report.drops += 1
        report.orders += len(stored)
        report.findings.extend(_check_drop(drop, decided, stored, counts, idem))
        delivered = await delivery_findings(store, drop, stored.values(), webhooks)
        report.findings.extend(Finding(n, did, message) for n, message in delivered)
        if not await drops.is_compacted(did):  # a compacted drop's tickets and line are gone
            found = await fairness_findings(redis, drop, decided)
            report.findings.extend(Finding(n, did, message) for n, message in found)
    if drop_id is None:
        for orphan in set(await store.drop_ids()) - set(known):
            n = sum([1 async for _ in iter_orders(store, orphan)])
            report.findings.append(Finding(4, orphan, f"{n} stored order(s) of an unknown drop"))
    return report
