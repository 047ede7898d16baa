"""Reserved orders: paid in time, released by the engine when the window ends, paid late."""

from __future__ import annotations

import asyncio

from tests.stack import MakeStack, Stack


async def test_unpaid_hold_is_released_by_the_sweeper(stack: Stack) -> None:
    drop = await stack.new_drop(stock=3, per_buyer_limit=2, payment_window_s=1)
    r = await stack.buy(drop["id"], "alice", 2)
    assert r.status == 201
    order = r.body["order"]
    assert order["status"] == "reserved" and order["expires_at"] is not None
    assert (await stack.buy(drop["id"], "alice")).code == "limit_reached"
    await asyncio.sleep(1.5)  # nobody calls anything: the engine releases it itself
    after = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    assert (after["remaining"], after["sold"]) == (3, 0)
    got = await stack.call("GET", f"/v1/orders/{order['id']}", headers=stack.as_buyer("alice"))
    assert got.body["order"]["status"] == "expired"
    # The buyer's count went down with it: she may buy her two units again.
    assert (await stack.buy(drop["id"], "alice", 2)).status == 201
    await stack.settle()
    stored = await stack.store.get(order["id"])
    assert stored is not None and stored.status == "expired"
    assert (await stack.audit()).ok


async def test_paying_in_time_and_paying_twice(stack: Stack) -> None:
    drop = await stack.new_drop(stock=1, payment_window_s=30)
    order = (await stack.buy(drop["id"], "bob")).body["order"]
    pay = f"/v1/orders/{order['id']}/pay"
    first = await stack.call("POST", pay, headers=stack.as_buyer("bob"))
    assert (first.status, first.body["order"]["status"]) == (200, "paid")
    second = await stack.call("POST", pay, headers=stack.as_buyer("bob"))
    assert (second.status, second.body) == (200, first.body)
    await stack.settle()
    got = await stack.call("GET", f"/v1/orders/{order['id']}", headers=stack.as_buyer("bob"))
    assert got.body["order"]["status"] == "paid" and got.body["order"]["settled"] is True
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["status"] == "sold_out"
    assert (await stack.audit()).ok


async def test_paying_late_is_refused_and_frees_the_units(make_stack: MakeStack) -> None:
    # A sweeper that never comes round: paying late must release the hold by itself.
    stack = await make_stack(sweep_interval=3600)
    drop = await stack.new_drop(stock=1, payment_window_s=1)
    order = (await stack.buy(drop["id"], "carol")).body["order"]
    assert (await stack.buy(drop["id"], "dave")).code == "sold_out"
    await asyncio.sleep(1.2)
    late = await stack.call(
        "POST", f"/v1/orders/{order['id']}/pay", headers=stack.as_buyer("carol")
    )
    assert (late.status, late.code) == (409, "expired")
    assert (await stack.buy(drop["id"], "dave")).status == 201
    await stack.settle()
    assert (await stack.audit()).ok


async def test_the_sweeper_outlives_a_redis_outage() -> None:
    from flashsale.engine import Engine
    from flashsale.redis_server import free_port

    engine = Engine.from_url(f"redis://127.0.0.1:{free_port()}")  # nothing listens there
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.5, stop.set)
    try:
        await engine.sweeper.run(stop)  # logs and retries; must not end with an error
    finally:
        await engine.close()
    assert stop.is_set()
