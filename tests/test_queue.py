"""admission: queue. A waiting room at the door: the pre-queue shuffled when the drop goes
live, a door that admits in place order (rate- and stock-bounded), and a purchase that
needs its buyer's pass, checked in purchase.lua's one atomic step."""

from __future__ import annotations

import asyncio
import random
import time

from flashsale.engine import DropKeys
from tests.fair import buy_with, first_admitted, join, queue_drop, ticket, until_called
from tests.invariants import Answer, assert_invariants
from tests.stack import MakeStack, Stack, redis_busy


async def test_tickets_before_live_are_shuffled_then_numbered(stack: Stack) -> None:
    drop = await queue_drop(stack, stock=5)
    did = drop["id"]
    arrived = [f"early{i:02d}" for i in range(40)]
    for buyer in arrived:
        r = await join(stack, did, buyer)
        assert r.status == 201, r.body
        assert r.body["ticket"] == {
            "status": "waiting", "position": None, "pass": None, "pass_expires_at": None,
            "retry_after_s": 5,
        }  # fmt: skip
        assert r.headers["Retry-After"] == "5"
    again = await join(stack, did, arrived[0])
    assert (again.status, again.body["ticket"]["position"]) == (200, None)
    await stack.call("POST", f"/v1/drops/{did}/open", None, stack.as_host)
    late = await join(stack, did, "late")
    assert late.status == 201
    places = {b: (await ticket(stack, did, b))["position"] for b in arrived}
    assert sorted(places.values()) == list(range(1, 41))  # numbered 1..N, each once
    assert late.body["ticket"]["position"] == 41  # later tickets follow, in arrival order
    by_place = sorted(arrived, key=places.__getitem__)
    assert by_place != arrived  # shuffled (1 chance in 40! to fail)


async def test_the_door_admits_in_place_order_within_stock_and_rate(stack: Stack) -> None:
    drop = await queue_drop(stack, stock=3, admit_per_s=20)
    did = drop["id"]
    buyers = [f"b{i}" for i in range(12)]
    for b in buyers:
        await join(stack, did, b)
    created = time.monotonic()
    await stack.call("POST", f"/v1/drops/{did}/open", None, stack.as_host)
    await asyncio.sleep(0.6)
    seen = {b: await ticket(stack, did, b) for b in buyers}
    admitted = sorted(t["position"] for t in seen.values() if t["status"] == "admitted")
    # Never more admitted-but-unused than units remain, and the first places first.
    assert admitted == [1, 2, 3], seen
    live = (await stack.call("GET", f"/v1/drops/{did}")).body
    assert live["remaining"] == 3
    # A purchase takes a unit and a pass: 2 units, 2 passes left, still no room at the door.
    first = next(b for b, t in seen.items() if t["position"] == 1)
    r = await buy_with(stack, did, first, seen[first]["pass"])
    assert r.status == 201, r.body
    assert (await ticket(stack, did, first))["status"] == "used"
    fourth = next(b for b, t in seen.items() if t["position"] == 4)
    await asyncio.sleep(0.3)
    assert (await ticket(stack, did, fourth))["status"] == "waiting"
    # A unit more makes room for one ticket more: the next place.
    await stack.call("POST", f"/v1/drops/{did}/restock", {"quantity": 1}, stack.as_host)
    assert (await until_called(stack, did, fourth))["status"] == "admitted"
    fifth = next(b for b, t in seen.items() if t["position"] == 5)
    assert (await ticket(stack, did, fifth))["status"] == "waiting"

    # The rate: a door of 20 a second, with units for everyone, admits no faster.
    wide = await queue_drop(stack, stock=1000, admit_per_s=20)
    crowd = [f"c{i}" for i in range(200)]
    await asyncio.gather(*(join(stack, wide["id"], b) for b in crowd))
    opened = time.monotonic()
    await stack.call("POST", f"/v1/drops/{wide['id']}/open", None, stack.as_host)
    await asyncio.sleep(1.0)
    polled = await asyncio.gather(*(ticket(stack, wide["id"], b) for b in crowd))
    elapsed = time.monotonic() - min(opened, created)
    n = sum(t["status"] == "admitted" for t in polled)
    # at most admit_per_s a second since the drop was made, plus the quarter second's burst
    assert 0 < n <= 20 * (time.monotonic() - opened + 0.5) + 5, (n, elapsed)
    places = sorted(t["position"] for t in polled if t["status"] == "admitted")
    assert places == list(range(1, n + 1))


async def test_a_pass_is_its_buyers_for_its_drop_and_buys_once(stack: Stack) -> None:
    drop = await queue_drop(stack, open_it=True, stock=10, per_buyer_limit=3)
    other = await queue_drop(stack, open_it=True, stock=10)
    did = drop["id"]
    for b in ("ana", "bo"):
        await join(stack, did, b)
    await join(stack, other["id"], "ana")
    ana = await until_called(stack, did, "ana")
    bo = await until_called(stack, did, "bo")
    mine = await until_called(stack, other["id"], "ana")
    assert ana["status"] == bo["status"] == "admitted" and ana["pass"] != bo["pass"]
    assert ana["pass_expires_at"] is not None

    async def code(buyer: str, pass_: str | None, key: str | None = None) -> str | None:
        return (await buy_with(stack, did, buyer, pass_, key)).code

    assert await code("ana", None) == "not_admitted"
    assert await code("ana", "0" * 32) == "not_admitted"
    assert await code("ana", bo["pass"]) == "not_admitted"  # another buyer's pass
    assert await code("ana", mine["pass"]) == "not_admitted"  # her pass of another drop
    first = await buy_with(stack, did, "ana", ana["pass"], key="k1")
    assert first.status == 201, first.body
    replay = await buy_with(stack, did, "ana", ana["pass"], key="k1")  # same key: replays
    assert (replay.status, replay.body["order"]["id"]) == (200, first.body["order"]["id"])
    assert await code("ana", ana["pass"], key="k2") == "not_admitted"  # used: one order
    assert await code("ana", ana["pass"]) == "not_admitted"
    # not_live comes first: a closed queue drop says so, pass or not
    await stack.call("POST", f"/v1/drops/{did}/close", None, stack.as_host)
    assert await code("bo", bo["pass"]) == "not_live"
    assert await code("bo", None) == "not_live"
    await stack.settle()
    report = await stack.audit(did)
    assert report.ok, report.lines()


async def test_an_expired_pass_hands_its_place_on(stack: Stack) -> None:
    drop = await queue_drop(stack, stock=1, pass_ttl_s=1)
    did = drop["id"]
    for b in ("ana", "bo"):
        await join(stack, did, b)
    await stack.call("POST", f"/v1/drops/{did}/open", None, stack.as_host)
    slow, first = await first_admitted(stack, did, ["ana", "bo"])
    nxt = "bo" if slow == "ana" else "ana"
    # one unit, one pass at a time: the other ticket waits
    assert (await ticket(stack, did, nxt))["status"] == "waiting"
    assert first["position"] == 1
    after = await until_called(stack, did, nxt, within=5)
    assert (after["status"], after["position"]) == ("admitted", 2)
    lapsed = await ticket(stack, did, slow)
    assert (lapsed["status"], lapsed["pass"]) == ("expired", None)
    assert (await buy_with(stack, did, slow, first["pass"])).code == "not_admitted"
    assert (await buy_with(stack, did, nxt, after["pass"])).status == 201
    await stack.settle()
    assert (await stack.audit(did)).ok


async def test_a_sold_out_queue_is_told_at_once_and_reopened_by_a_restock(stack: Stack) -> None:
    drop = await queue_drop(stack, stock=1)
    did = drop["id"]
    buyers = ["w0", "w1", "w2", "w3"]
    for b in buyers:
        await join(stack, did, b)
    await stack.call("POST", f"/v1/drops/{did}/open", None, stack.as_host)
    first, admitted = await first_admitted(stack, did, buyers)
    assert (await buy_with(stack, did, first, admitted["pass"])).status == 201
    rest = [b for b in buyers if b != first]
    told = {b: await ticket(stack, did, b) for b in rest}
    assert {t["status"] for t in told.values()} == {"sold_out"}  # everyone, at once
    assert all(t["retry_after_s"] == 10 for t in told.values())
    places = {b: t["position"] for b, t in told.items()}
    r = await stack.call("POST", f"/v1/drops/{did}/restock", {"quantity": 1}, stack.as_host)
    assert r.status == 200
    back = {b: await ticket(stack, did, b) for b in rest}
    assert {t["status"] for t in back.values()} <= {"waiting", "admitted"}
    assert {b: t["position"] for b, t in back.items()} == places  # in their places
    nxt = min(rest, key=places.__getitem__)
    assert (await until_called(stack, did, nxt))["status"] == "admitted"


async def test_live_shows_the_waiting_room(stack: Stack) -> None:
    drop = await queue_drop(stack, stock=2)
    did = drop["id"]
    for i in range(5):
        await join(stack, did, f"v{i}")
    await stack.call("POST", f"/v1/drops/{did}/open", None, stack.as_host)
    async with stack.http.get(f"{stack.base}/v1/drops/{did}/live") as r:
        seen = []
        async for line in r.content:
            if line.startswith(b"data:"):
                import json

                data = json.loads(line[5:])
                seen.append(data["queue"])
                if data["queue"] == {"waiting": 3, "admitted": 2}:
                    break
    assert seen[-1] == {"waiting": 3, "admitted": 2}
    plain = await stack.new_drop()
    async with stack.http.get(f"{stack.base}/v1/drops/{plain['id']}/live") as r:
        async for line in r.content:
            if line.startswith(b"data:"):
                import json

                assert json.loads(line[5:])["queue"] is None
                break


async def test_a_queue_burst_keeps_every_invariant(make_stack: MakeStack, store_url: str) -> None:
    """600 buyers queue before the start; at the start they all poll and, admitted, buy with
    their pass (some twice, some with another's pass), while 200 bots tap without one."""
    stack = await make_stack(database_url=store_url)
    drop = await queue_drop(stack, stock=150, per_buyer_limit=2, admit_per_s=5000)
    did = drop["id"]
    buyers = [f"q{i}" for i in range(600)]
    await asyncio.gather(*(join(stack, did, b) for b in buyers))
    await stack.call("POST", f"/v1/drops/{did}/open", None, stack.as_host)
    answers: list[Answer] = []
    passes: dict[str, str] = {}
    rng = random.Random(7)

    async def buyer(b: str) -> None:
        while True:
            t = await ticket(stack, did, b)
            if t["status"] == "admitted":
                passes[b] = t["pass"]
                break
            if t["status"] != "waiting":
                return
            await asyncio.sleep(0.05)
        q = rng.choice([1, 2])
        for key in (f"{b}-1", f"{b}-1", f"{b}-2"):  # a retry, then a second order
            r = await buy_with(stack, did, b, t["pass"], key, quantity=q)
            answers.append(Answer(b, q, key, r))

    async def bot(i: int) -> None:
        victim = rng.choice(buyers)
        r = await buy_with(stack, did, f"bot{i}", passes.get(victim))
        answers.append(Answer(f"bot{i}", 1, None, r))

    await asyncio.gather(*(buyer(b) for b in buyers), *(bot(i) for i in range(200)))
    codes = {a.reply.code for a in answers}
    assert codes <= {None, "not_admitted", "sold_out"}, codes
    assert all(a.reply.code == "not_admitted" for a in answers if a.buyer.startswith("bot"))
    orders = await assert_invariants(stack, did, answers)
    assert sum(o.quantity for o in orders if o.live) == 150  # the stock, all of it
    assert len({o.buyer for o in orders}) == len(orders)  # one order per pass


async def test_a_sold_out_queue_drop_refuses_passless_taps_without_redis(stack: Stack) -> None:
    """The status feed answers in purchase.lua's order: no pass is `not_admitted` (before
    `sold_out`), while a tap with a pass still asks Redis, which alone can tell a valid one."""
    drop = await queue_drop(stack, stock=1)
    did = drop["id"]
    for b in ("ana", "bo"):
        await join(stack, did, b)
    await stack.call("POST", f"/v1/drops/{did}/open", None, stack.as_host)
    first, admitted = await first_admitted(stack, did, ["ana", "bo"])
    assert (await buy_with(stack, did, first, admitted["pass"])).status == 201
    for _ in range(200):
        shut = stack.engine.feed.shut.get(did)
        if shut is not None:
            break
        await asyncio.sleep(0.01)
    assert shut is not None and (shut.status, shut.admission) == ("sold_out", "queue")
    async with redis_busy(stack.settings.redis_url, 1.0):
        refused = await asyncio.wait_for(buy_with(stack, did, "bot", None), 0.5)
        assert refused.code == "not_admitted"  # answered while Redis was busy
        asked = asyncio.create_task(buy_with(stack, did, "bot", "f" * 32))
    assert (await asked).code == "not_admitted"  # Redis's answer: not this buyer's pass


async def test_a_wide_door_admits_in_slices(stack: Stack) -> None:
    """A door of a million a second with 5,000 tickets waiting: each call admits a slice
    (a script cannot unpack the writes of all of them at once), so every poll answers and
    the door still empties the queue in place order."""
    drop = await queue_drop(stack, stock=100_000, admit_per_s=1_000_000)
    did = drop["id"]
    keys = DropKeys.of(did)
    pipe = stack.engine.redis.pipeline(transaction=False)
    for i in range(5000):
        pipe.evalsha(stack.engine.scripts.queue.sha, len(keys), *keys, "join", f"w{i}")
    await stack.engine.scripts.queue(keys=keys, args=["join", "w-first"])  # loads the script
    await pipe.execute()
    await asyncio.sleep(0.3)  # the bucket fills: a quarter second of a million a second
    await stack.call("POST", f"/v1/drops/{did}/open", None, stack.as_host)
    seen = []
    for _ in range(20):  # each poll runs the door once
        await ticket(stack, did, "w0")
        seen.append(int(await stack.engine.redis.hget(keys.drop, "q_popped")))
        if seen[-1] == 5001:
            break
    # 1,000 a call at most (the sweeper runs the door too, so a poll may see two calls')
    assert seen[-1] == 5001 and len(seen) >= 3, seen
    await stack.settle()
    assert (await stack.audit(did)).ok
