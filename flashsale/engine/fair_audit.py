"""Invariants 7-9 (CONTRACT "Who gets scarce units"), checked against Redis: queues admit,
draws and waitlists serve, in their order; a draw's seed hashes to its commitment and its
winners are those its order picks; on a queue drop every order was made with a valid pass,
one order per pass."""

from __future__ import annotations

from itertools import pairwise
from typing import cast

import msgspec

from flashsale.engine.draws import draw_findings, passed_over
from flashsale.engine.keys import DropKeys
from flashsale.engine.models import Drop, Order, decode_entry
from flashsale.engine.redis import RedisClient, text

FAIR_INVARIANTS = {
    7: "fair order (queue, draw, waitlist)",
    8: "draw matches its commitment",
    9: "one order per valid pass",
}


class _Ticket(msgspec.Struct):
    status: str
    position: int
    admitted_at: int
    pass_expires_at: int
    order_id: str | None = None


_tickets = msgspec.msgpack.Decoder(_Ticket)


async def fairness_findings(
    redis: RedisClient, drop: Drop, decided: dict[str, Order]
) -> list[tuple[int, str]]:
    keys = DropKeys.of(drop.id)
    if drop.admission == "queue":
        return await _queue(redis, keys, decided)
    raw = await redis.hvals(keys.entries)
    if not raw:
        return []
    entries = [decode_entry(cast(bytes, p)) for p in raw]
    bad: list[tuple[int, str]] = []
    served = "won" if drop.admission == "draw" else "served"
    for e in entries:
        if e.status != served:
            continue
        o = decided.get(e.order_id or "")
        if o is None or (o.buyer, o.quantity, o.variant) != (e.buyer, e.quantity, e.variant):
            bad.append((7, f"{e.buyer!r}'s entry was {served} without its order"))
    if drop.admission == "draw":
        seed, promised, stock = await redis.hmget(keys.drop, "seed", "commitment", "drawn_stock")
        if drop.draw_seed is not None:
            bad += draw_findings(text(seed), text(promised), text(stock or b""), entries)
        elif any(e.status != "entered" for e in entries):
            bad.append((8, "entries were decided before the draw"))
    else:
        line = sorted(entries, key=lambda e: e.position or 0)
        bad += [(7, p) for p in passed_over(line, "served")]
    return bad


async def _queue(
    redis: RedisClient, keys: DropKeys, decided: dict[str, Order]
) -> list[tuple[int, str]]:
    bad: list[tuple[int, str]] = []
    raw = await redis.hgetall(keys.tickets)
    tickets = {text(b): _tickets.decode(cast(bytes, p)) for b, p in raw.items()}
    popped = int(await redis.hget(keys.drop, "q_popped") or 0)
    positions = sorted(t.position for t in tickets.values())
    if positions != list(range(1, popped + 1)):
        bad.append((7, f"admitted positions are not 1..{popped} each once"))
    by_place = sorted(tickets.values(), key=lambda t: t.position)
    for a, b in pairwise(by_place):
        if a.admitted_at > b.admitted_at:
            bad.append((7, f"place {b.position} was admitted before place {a.position}"))
            break
    waiting = {text(b) for b in await redis.zrange(keys.queue, 0, -1)}
    if waiting & tickets.keys():
        bad.append((7, f"{len(waiting & tickets.keys())} buyer(s) both waiting and admitted"))
    for oid, o in decided.items():
        t = tickets.get(o.buyer)
        if t is None:
            bad.append((9, f"order {oid} of {o.buyer!r} was made without a pass"))
        elif t.order_id != oid:
            bad.append((9, f"order {oid} of {o.buyer!r} is not its pass's order"))
        elif not t.admitted_at <= o.created_at < t.pass_expires_at:
            bad.append((9, f"order {oid} was made while its pass was not valid"))
    return bad
