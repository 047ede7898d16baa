"""Redis key layout.

Every key one script touches carries the drop id as its hash tag, so a whole drop lives in
one Redis Cluster slot and every script runs there unchanged. The few global keys (the drop
index, rooms) are only ever touched by plain commands, never inside a script.
"""

from __future__ import annotations

from typing import NamedTuple

PREFIX = "fs"
GROUP = "settle"  # the settlement workers' consumer group on every drop stream
DROP_INDEX = f"{PREFIX}:drops"  # zset: drop id scored by creation time (ms)
# pub/sub: "<drop id> <status>" on every change of a drop's status (lib.lua set_status)
STATUS_CHANNEL = f"{PREFIX}:status"
# pub/sub: LIVE_CHANNEL + drop id gets "<remaining> <sold> <status>" after every script
# that changed them (lib.lua publish_live), for /live
LIVE_CHANNEL = f"{PREFIX}:live:"
# counter: order stream entries every settlement worker has acknowledged, ever (/metrics);
# one plain INCRBY per batch, never touched inside a script
SETTLED = f"{PREFIX}:settled"


def probe_key(key: str) -> str:
    """A key in the slot of `key` (same hash tag), for the small write whose WAIT proves that
    a replica has every earlier write of the node that owns it (replicas.py)."""
    tag = key[key.index("{") : key.index("}") + 1]
    return f"{PREFIX}:{tag}:replicated"


def rate_window(shard: int, window: int) -> str:
    """One shard of the shared rate-limit counts of one window (rate.lua): its own hash tag,
    so a cluster spreads the shards over its nodes."""
    return f"{PREFIX}:rl:{{rl{shard}}}:{window}"


def room_index(room: str) -> str:
    return f"{PREFIX}:room:{room}"


class DropKeys(NamedTuple):
    """The keys of one drop, in the order every Lua script receives them as KEYS."""

    drop: str  # hash: the drop's fields and counters
    buyers: str  # hash: buyer -> units held by their live orders
    idem: str  # hash: "buyer\\nkey" -> order id
    orders: str  # hash: order id -> msgpack order
    events: str  # stream: order events for the settlement workers
    holds: str  # zset: reserved order id -> hold expiry (ms)
    void: str  # hash: request ids that must never create an order (see purchase.lua)
    # Who gets scarce units (lines.lua, queue.lua, draw.lua, waitlist.lua): a queue drop's
    # waiting room, a draw's entries, a first-come drop's waitlist.
    queue: str  # zset: waiting ticket's buyer -> place (a pre-live one's: a keyed hash < 1)
    tickets: str  # hash: buyer -> msgpack ticket, once admitted (admitted, used, expired)
    passes: str  # zset: buyer holding an unused pass -> when it expires (ms)
    entries: str  # hash: buyer -> msgpack entry (a draw's or a waitlist's)
    line: str  # zset: buyer of an entry still to serve -> its order (draw rank, position)

    @classmethod
    def of(cls, drop_id: str) -> DropKeys:
        tag = f"{PREFIX}:{{{drop_id}}}"
        return cls(*(f"{tag}:{name}" for name in cls._fields))
