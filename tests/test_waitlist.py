"""The waitlist of a first-come drop with a payment window: units that come back (a released
hold, a restock) go to waiting entries first, in position order, before the open sale."""

from __future__ import annotations

import asyncio
import random

from tests.fair import told_by_entry, wait_entry, wait_join
from tests.invariants import Answer, assert_invariants
from tests.stack import MakeStack, Stack


async def test_joining_reading_and_leaving(stack: Stack) -> None:
    drop = await stack.new_drop(stock=1, payment_window_s=60)
    did = drop["id"]
    assert (await wait_join(stack, did, "ana")).code == "not_sold_out"  # buy it instead
    assert (await stack.buy(did, "first")).status == 201
    r = await wait_join(stack, did, "ana")
    assert r.status == 201, r.body
    assert r.body["entry"] == {
        "status": "waiting", "position": 1, "quantity": 1, "variant": None, "order_id": None
    }  # fmt: skip
    assert (await wait_join(stack, did, "ana")).status == 200
    assert (await wait_join(stack, did, "bo")).body["entry"]["position"] == 2
    assert (await wait_entry(stack, did, "bo")).body["entry"]["status"] == "waiting"
    assert (await wait_entry(stack, did, "cy")).code == "not_found"
    left = await stack.call("DELETE", f"/v1/drops/{did}/waitlist/me", None, stack.as_buyer("ana"))
    assert (left.status, left.body["entry"]["status"]) == (200, "left")
    assert (await wait_join(stack, did, "cy", quantity=2)).code == "limit_reached"
    plain = await stack.new_drop(stock=1)  # no payment window: no waitlist
    assert (await wait_join(stack, plain["id"], "ana")).code == "no_waitlist"
    queue = await stack.new_drop(admission="queue", payment_window_s=60)
    assert (await wait_join(stack, queue["id"], "ana")).code == "no_waitlist"


async def test_units_that_come_back_go_to_the_line_in_order(stack: Stack) -> None:
    """An entry of 2 with 1 unit back is passed over, not dropped: the next entry of 1 is
    served, and the entry of 2 keeps its place until 2 units come back (a restock)."""
    drop = await stack.new_drop(stock=2, payment_window_s=1, per_buyer_limit=2)
    did = drop["id"]
    a = await stack.buy(did, "a")
    b = await stack.buy(did, "b")
    assert a.status == b.status == 201
    assert (await wait_join(stack, did, "big", quantity=2)).status == 201
    assert (await wait_join(stack, did, "small")).status == 201
    paid = await stack.call(
        "POST", f"/v1/orders/{b.body['order']['id']}/pay", None, stack.as_buyer("b")
    )
    assert paid.status == 200
    small = await _until_served(stack, did, "small")  # a's unit, after its hold lapsed
    big = (await wait_entry(stack, did, "big")).body["entry"]
    assert (big["status"], big["position"]) == ("waiting", 1)
    # nothing reached the open sale: the unit went to the line
    assert (await stack.buy(did, "walk_in")).code == "sold_out"
    order = await stack.call(
        "GET", f"/v1/orders/{small['order_id']}", None, stack.as_buyer("small")
    )
    assert order.body["order"]["status"] == "reserved"
    await stack.call("POST", f"/v1/drops/{did}/restock", {"quantity": 3}, stack.as_host)
    big = await _until_served(stack, did, "big")
    after = (await stack.call("GET", f"/v1/drops/{did}")).body
    assert (after["remaining"], after["status"]) == (1, "live")  # the rest is on sale
    assert (await stack.buy(did, "walk_in")).status == 201
    await stack.settle()
    report = await stack.audit(did)
    assert report.ok, report.lines()


async def _until_served(stack: Stack, drop_id: str, buyer: str) -> dict:  # type: ignore[type-arg]
    for _ in range(100):
        entry = (await wait_entry(stack, drop_id, buyer)).body["entry"]
        if entry["status"] == "served":
            return dict(entry)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{buyer} was not served: {entry}")


async def test_a_waitlist_burst_keeps_every_invariant(
    make_stack: MakeStack, store_url: str
) -> None:
    """500 buyers tap for 120 units with 1 s holds; those refused join the waitlist; half the
    winners pay, the rest lapse and go to the line; served entries pay or lapse in turn."""
    stack = await make_stack(database_url=store_url)
    drop = await stack.new_drop(stock=120, payment_window_s=1, per_buyer_limit=2)
    did = drop["id"]
    rng = random.Random(11)
    answers: list[Answer] = []

    async def buyer(i: int) -> None:
        b, q = f"w{i}", rng.choice([1, 1, 2])
        r = await stack.buy(did, b, q, key=f"k{i}")
        answers.append(Answer(b, q, f"k{i}", r))
        if r.status == 201:
            if rng.random() < 0.5:
                await stack.call(
                    "POST", f"/v1/orders/{r.body['order']['id']}/pay", None, stack.as_buyer(b)
                )
        elif r.code == "sold_out":
            joined = await wait_join(stack, did, b, quantity=q)
            assert joined.status in (200, 201, 409), joined.body

    await asyncio.gather(*(buyer(i) for i in range(500)))
    await asyncio.sleep(1.6)  # lapses reach the line (and lapse again)
    # Then the clock stops (no more lapses, so no more orders for the line) and the books
    # are read: whatever is in them must hold.
    stack.engine.sweeper.interval = 3600
    await asyncio.sleep(0.3)
    # Orders the engine made for the line were answered through the entries, not a tap.
    served = []
    for i in range(500):
        r = await wait_entry(stack, did, f"w{i}")
        if r.status == 200 and r.body["entry"]["status"] == "served":
            served.append(r.body["entry"] | {"buyer": f"w{i}"})
    assert served, "no entry was served"
    for entry in served:
        answers.append(await told_by_entry(stack, entry["buyer"], entry["order_id"]))

    await assert_invariants(stack, did, answers)
