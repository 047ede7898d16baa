"""Helpers for the drops that decide who gets scarce units: queue tickets, draw entries,
waitlist entries, over the HTTP API as a buyer sees them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.invariants import Answer
from tests.stack import Reply, Stack


async def queue_drop(stack: Stack, open_it: bool = False, **fields: Any) -> dict[str, Any]:
    return await stack.new_drop(open_it=open_it, admission="queue", **fields)


async def draw_drop(stack: Stack, in_s: float = 1.0, **fields: Any) -> dict[str, Any]:
    at = (datetime.now(UTC) + timedelta(seconds=in_s)).isoformat()
    fields.setdefault("payment_window_s", 60)
    return await stack.new_drop(admission="draw", draws_at=at, **fields)


async def join(stack: Stack, drop_id: str, buyer: str) -> Reply:
    return await stack.call("POST", f"/v1/drops/{drop_id}/queue", None, stack.as_buyer(buyer))


async def ticket(stack: Stack, drop_id: str, buyer: str) -> dict[str, Any]:
    r = await stack.call("GET", f"/v1/drops/{drop_id}/queue", None, stack.as_buyer(buyer))
    assert r.status == 200, r.body
    return dict(r.body["ticket"])


async def until_called(
    stack: Stack, drop_id: str, buyer: str, within: float = 20.0
) -> dict[str, Any]:
    """Polls the buyer's ticket until it is no longer waiting (admitted, sold out...)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        t = await ticket(stack, drop_id, buyer)
        if t["status"] != "waiting":
            return t
        assert asyncio.get_running_loop().time() < deadline, f"{buyer} still waiting: {t}"
        await asyncio.sleep(0.05)


async def first_admitted(
    stack: Stack, drop_id: str, buyers: list[str], within: float = 20.0
) -> tuple[str, dict[str, Any]]:
    """Polls every buyer's ticket until one is admitted: that buyer, and the ticket."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        for b in buyers:
            t = await ticket(stack, drop_id, b)
            if t["status"] == "admitted":
                return b, t
        assert asyncio.get_running_loop().time() < deadline, "nobody was admitted"
        await asyncio.sleep(0.05)


async def buy_with(
    stack: Stack, drop_id: str, buyer: str, pass_: str | None, key: str | None = None, **body: Any
) -> Reply:
    headers = stack.as_buyer(buyer)
    if pass_ is not None:
        headers["Flashsale-Pass"] = pass_
    if key is not None:
        headers["Idempotency-Key"] = key
    return await stack.call(
        "POST", f"/v1/drops/{drop_id}/purchase", {"quantity": 1} | body, headers
    )


async def enter(stack: Stack, drop_id: str, buyer: str, **body: Any) -> Reply:
    return await stack.call(
        "POST", f"/v1/drops/{drop_id}/entries", body or None, stack.as_buyer(buyer)
    )


async def entries(stack: Stack, drop_id: str) -> list[dict[str, Any]]:
    r = await stack.call("GET", f"/v1/drops/{drop_id}/entries", None, stack.as_host)
    assert r.status == 200, r.body
    return list(r.body["entries"])


async def until_drawn(stack: Stack, drop_id: str, within: float = 20.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        drop = (await stack.call("GET", f"/v1/drops/{drop_id}")).body
        if drop["draw_seed"] is not None:
            return dict(drop)
        assert asyncio.get_running_loop().time() < deadline, "the draw did not happen"
        await asyncio.sleep(0.05)


async def wait_join(stack: Stack, drop_id: str, buyer: str, **body: Any) -> Reply:
    return await stack.call(
        "POST", f"/v1/drops/{drop_id}/waitlist", body or None, stack.as_buyer(buyer)
    )


async def wait_entry(stack: Stack, drop_id: str, buyer: str) -> Reply:
    return await stack.call("GET", f"/v1/drops/{drop_id}/waitlist/me", None, stack.as_buyer(buyer))


async def told_by_entry(stack: Stack, buyer: str, order_id: str) -> Answer:
    """An order the engine made for an entry (a draw's winner, a waitlist's), as its buyer
    learns it (the entry's order_id, then the order): an answer, for the invariants."""
    r = await stack.call("GET", f"/v1/orders/{order_id}", None, stack.as_buyer(buyer))
    assert r.status == 200, r.body
    order = {k: v for k, v in r.body["order"].items() if k != "settled"}
    return Answer(buyer, order["quantity"], None, Reply(201, {"order": order}, {}),
                  order["variant"] or "")  # fmt: skip
