"""What a webhook sends: an order event, as the contract shapes it, made from an order.

An event is a pure function of the order it is about and its type, so its id and its body
come out the same whoever makes them and however often: the settlement worker that first
records the order, a replay a week later from the store's row, a worker retrying after
another one died. That is what makes "at least once, with one event id" hold across
processes without any of them remembering what the others sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

import msgspec

from flashsale.engine.models import Order, rfc3339

EventType = Literal["order.created", "order.paid", "order.expired"]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
# The type an order's status (after a change) adds to its `created`.
_ENDED: dict[str, EventType] = {"paid": "order.paid", "expired": "order.expired"}


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One order event, ready to send: `rank` orders one order's events (created first)."""

    id: str
    type: EventType
    order_id: str
    drop_id: str
    rank: int  # 0: created; 1: paid or expired, which only ever follow it
    at: int  # ms: when it happened (the order's creation, or its payment or expiry)
    body: str  # the JSON sent, byte for byte the same on every attempt


def event_id(order_id: str, kind: EventType) -> str:
    return f"evt_{order_id}_{kind.removeprefix('order.')}"


def _as_created(order: Order) -> Order:
    """The order as it was when made: a hold (it has an expiry) is `reserved`, else
    `confirmed`. From a row that has moved on since, or the creation event itself."""
    status = "reserved" if order.expires_at is not None else "confirmed"
    return msgspec.structs.replace(order, status=status, ended_at=None)


def event_at(order: Order, kind: EventType) -> int:
    """When the event happened (ms): the order's creation, or its payment or expiry. Cheap:
    what the audit and a replay's cut-off need, without the event's body."""
    return order.created_at if kind == "order.created" else (order.ended_at or order.created_at)


def event(order: Order, kind: EventType) -> Event:
    """The event `kind` of `order` (for paid or expired: the order as it ended)."""
    shown = _as_created(order) if kind == "order.created" else order
    at = event_at(order, kind)
    eid = event_id(order.id, kind)
    payload = {"id": eid, "type": kind, "created_at": rfc3339(at), "order": shown.public()}
    return Event(
        id=eid,
        type=kind,
        order_id=order.id,
        drop_id=order.drop_id,
        rank=0 if kind == "order.created" else 1,
        at=at,
        body=msgspec.json.encode(payload).decode(),
    )


def kinds_of(order: Order) -> list[EventType]:
    """The events an order (as stored, or as one of its stream events) stands for."""
    ended = _ENDED.get(order.status)
    return ["order.created"] if ended is None else ["order.created", ended]


def events_of(orders: Iterable[Order]) -> list[Event]:
    """Each event a batch of order events stands for, once. A `paid` order event also stands
    for the order's `created`: a batch replayed after the first one was trimmed away, or an
    order made and paid within one batch, still sends both, in their order."""
    seen: dict[str, Event] = {}
    for order in orders:
        for kind in kinds_of(order):
            eid = event_id(order.id, kind)
            if eid not in seen:
                seen[eid] = event(order, kind)
    return list(seen.values())


__all__ = [
    "EVENT_TYPES",
    "Event",
    "EventType",
    "event",
    "event_at",
    "event_id",
    "events_of",
    "kinds_of",
]
