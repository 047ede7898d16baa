"""A drop's life: scheduled open, open, close, restock after selling out, rooms."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from flashsale.engine import DropKeys
from tests.stack import Stack


async def test_scheduled_drop_goes_live_by_itself(stack: Stack) -> None:
    opens = datetime.now(UTC) + timedelta(seconds=1)
    drop = await stack.new_drop(open_it=False, opens_at=opens.isoformat())
    assert drop["status"] == "pending"
    assert drop["opens_at"].startswith(opens.strftime("%Y-%m-%dT%H:%M:%S"))
    assert (await stack.buy(drop["id"], "early")).code == "not_live"
    await asyncio.sleep(1.4)
    # Read the raw hash, not the API (which would promote it on read): the sweeper did it.
    raw = await stack.engine.redis.hget(DropKeys.of(drop["id"]).drop, "status")
    assert raw == b"live"
    assert (await stack.buy(drop["id"], "on-time")).status == 201


async def test_open_close_restock_statuses(stack: Stack) -> None:
    drop = await stack.new_drop(open_it=False, stock=2, per_buyer_limit=2)
    path = f"/v1/drops/{drop['id']}"
    assert (await stack.call("POST", f"{path}/close", None, stack.as_host)).body[
        "status"
    ] == "closed"
    opened = await stack.call("POST", f"{path}/open", None, stack.as_host)
    assert (opened.status, opened.body["status"]) == (200, "live")
    again = await stack.call("POST", f"{path}/open", None, stack.as_host)
    assert (again.status, again.body) == (200, opened.body)  # repeated open is a no-op

    assert (await stack.buy(drop["id"], "a", 2)).status == 201
    sold_out = (await stack.call("GET", path)).body
    assert (sold_out["status"], sold_out["remaining"], sold_out["sold"]) == ("sold_out", 0, 2)
    assert (await stack.buy(drop["id"], "b")).code == "sold_out"

    restocked = await stack.call("POST", f"{path}/restock", {"quantity": 3}, stack.as_host)
    assert restocked.status == 200
    assert {k: restocked.body[k] for k in ("status", "stock", "remaining", "sold")} == {
        "status": "live", "stock": 5, "remaining": 3, "sold": 2,
    }  # fmt: skip
    assert (await stack.buy(drop["id"], "b", 2)).status == 201

    closed = await stack.call("POST", f"{path}/close", None, stack.as_host)
    assert closed.body["status"] == "closed"
    twice = await stack.call("POST", f"{path}/close", None, stack.as_host)
    assert (twice.status, twice.body["status"]) == (200, "closed")
    assert (await stack.buy(drop["id"], "c")).code == "not_live"
    # Restocking a closed drop adds stock but does not open it.
    more = await stack.call("POST", f"{path}/restock", {"quantity": 1}, stack.as_host)
    assert (more.body["status"], more.body["remaining"]) == ("closed", 2)
    reopened = await stack.call("POST", f"{path}/open", None, stack.as_host)
    assert reopened.body["status"] == "live"


async def test_open_with_nothing_left_is_sold_out(stack: Stack) -> None:
    drop = await stack.new_drop(stock=1)
    assert (await stack.buy(drop["id"], "a")).status == 201
    path = f"/v1/drops/{drop['id']}"
    await stack.call("POST", f"{path}/close", None, stack.as_host)
    assert (await stack.call("POST", f"{path}/open", None, stack.as_host)).body[
        "status"
    ] == "sold_out"


async def test_rooms_list_their_drops_newest_first(stack: Stack) -> None:
    a = await stack.new_drop(room="farm-7", title="莲藕 lotus root")
    b = await stack.new_drop(room="farm-7")
    c = await stack.new_drop(room="crayfish")
    room = (await stack.call("GET", "/v1/drops?room=farm-7")).body
    assert [d["id"] for d in room["drops"]] == [b["id"], a["id"]] and room["next"] is None
    assert room["drops"][1]["title"] == "莲藕 lotus root"
    every = (await stack.call("GET", "/v1/drops")).body["drops"]
    assert [d["id"] for d in every] == [c["id"], b["id"], a["id"]]
    assert (await stack.call("GET", "/v1/drops?room=empty")).body == {"drops": [], "next": None}


async def test_the_drop_list_pages_with_a_cursor(stack: Stack) -> None:
    made = [(await stack.new_drop(room="paged"))["id"] for _ in range(7)]
    seen: list[str] = []
    after = ""
    while True:
        page = (await stack.call("GET", f"/v1/drops?room=paged&limit=3{after}")).body
        seen += [d["id"] for d in page["drops"]]
        if page["next"] is None:
            break
        await stack.new_drop(room="paged")  # made meanwhile: at the top, shifting nothing
        after = f"&after={page['next']}"
    assert seen == made[::-1]  # every drop once, newest first
    for bad in ("limit=0", "limit=1001", "after=bm90LWEtY3Vyc29y", "after=%00"):
        r = await stack.call("GET", f"/v1/drops?{bad}")
        assert r.status == 400 and r.body["error"]["code"] == "invalid_request", (bad, r.body)


async def test_drop_object_has_the_contract_fields(stack: Stack) -> None:
    drop = await stack.new_drop(open_it=False, payment_window_s=60, per_buyer_limit=3)
    assert set(drop) == {
        "id", "sku", "title", "price", "currency", "stock", "remaining", "sold",
        "per_buyer_limit", "room", "status", "opens_at", "payment_window_s", "deposit",
        "variants", "admission", "admit_per_s", "pass_ttl_s", "draws_at", "draw_commitment",
        "draw_seed",
    }  # fmt: skip
    assert (drop["room"], drop["opens_at"], drop["sold"]) == (None, None, 0)
    assert (drop["deposit"], drop["variants"]) == (None, None)


async def test_a_schedule_already_past_is_live_at_once(stack: Stack) -> None:
    past = datetime.now(UTC) - timedelta(minutes=5)
    drop = await stack.new_drop(open_it=False, opens_at=past.isoformat())
    assert drop["status"] == "live"
    assert (await stack.buy(drop["id"], "a")).status == 201


async def test_queries_are_held_to_the_spec(stack: Stack) -> None:
    """Found by schemathesis against docs/openapi.yaml: a room the spec refuses, and the CSV
    export taking a limit and cursor the JSON listing refuses."""
    drop = await stack.new_drop(room="farm-7")
    for room in ("", "a\x01b", "x" * 65, "farm\n"):
        reply = await stack.call("GET", f"/v1/drops?room={quote(room)}")
        assert (reply.status, reply.code) == (400, "invalid_request"), (room, reply.body)
    assert (await stack.call("GET", "/v1/drops?room=" + "x" * 64)).status == 200
    orders = f"/v1/drops/{drop['id']}/orders"
    for query in ("format=csv&limit=abc&after=", "format=csv&limit=0", "format=csv&after=zz"):
        reply = await stack.call("GET", f"{orders}?{query}", headers=stack.as_host)
        assert (reply.status, reply.code) == (400, "invalid_request"), (query, reply.body)
    ok = await stack.call("GET", f"{orders}?format=csv&limit=5", headers=stack.as_host)
    assert ok.status == 200 and ok.body.startswith("id,buyer")
