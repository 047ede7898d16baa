"""Settlement: idempotent writes, any number of workers, and a worker killed mid-stream."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec
import pytest

from flashsale.engine import (
    GROUP,
    DropKeys,
    Order,
    SettlementWorker,
    entry_id,
    iter_orders,
    oldest_unsettled_ms,
    open_store,
    orders_of,
)
from tests.processes import flashsale_env, run, spawn
from tests.stack import MakeStack, Stack


def _order(status: str, **kw: object) -> Order:
    base = dict(id="aaaaaaaaaaaa-bbbbbbbbbbbbbbbb", drop_id="aaaaaaaaaaaa", seq=1, buyer="b",
                quantity=2, amount=200, currency="EUR", status="reserved", created_at=1,
                expires_at=1000)  # fmt: skip
    return Order(**(base | kw | {"status": status}))  # type: ignore[arg-type]


async def test_store_writes_are_idempotent_and_move_forward_only(store_url: str) -> None:
    store = open_store(store_url)
    await store.open()
    try:
        reserved, paid = _order("reserved"), _order("paid", ended_at=500)
        # A second worker may commit the `paid` event before the first commits `created`.
        await store.apply([paid])
        await store.apply([reserved, reserved])
        assert await store.get(reserved.id) == paid
        await store.apply([_order("expired", ended_at=900)])  # cannot undo a payment
        assert await store.get(reserved.id) == paid
        other = _order("reserved", id="aaaaaaaaaaaa-cccccccccccccccc", seq=2, buyer="ünïcødé 买家")
        await store.apply([other, _order("expired", id=other.id, seq=2, buyer=other.buyer)])
        page = await store.page("aaaaaaaaaaaa", 0, 10)
        assert [(o.seq, o.status, o.buyer) for o in page] == [
            (1, "paid", "b"), (2, "expired", "ünïcødé 买家")]  # fmt: skip
        assert await store.page("aaaaaaaaaaaa", 1, 10) == page[1:]
    finally:
        await store.close()


ENDED_AT = {"reserved": None, "paid": 500, "expired": 900}


def _event(order_id: str, status: str) -> Order:
    return _order(status, id=order_id, ended_at=ENDED_AT[status])


async def test_a_batch_ends_where_its_events_one_by_one_would(store_url: str) -> None:
    """Every sequence of up to three events, over no row or a row in each status: written as
    one batch (collapsed, COPY on PostgreSQL), the row ends as one transaction per event."""
    store = open_store(store_url)
    await store.open()
    try:
        cases = [
            (start, events)
            for start in (None, *ENDED_AT)
            for n in (1, 2, 3)
            for events in itertools.product(ENDED_AT, repeat=n)
        ]
        for case, (start, events) in enumerate(cases):
            one_by_one, batched = f"aaaaaaaaaaaa-1{case:015d}", f"aaaaaaaaaaaa-2{case:015d}"
            for order_id in (one_by_one, batched):
                if start is not None:
                    await store.apply([_event(order_id, start)])
            for event in events:
                await store.apply([_event(one_by_one, event)])
            await store.apply([_event(batched, e) for e in events])
            expected, got = await store.get(one_by_one), await store.get(batched)
            assert expected is not None and got is not None
            assert got == msgspec.structs.replace(expected, id=batched), (start, events)
    finally:
        await store.close()


async def test_one_batch_with_created_and_paid_or_expired_settles_to_the_end(
    make_stack: MakeStack, store_url: str
) -> None:
    stack = await make_stack(worker=False, database_url=store_url)
    redis = stack.engine.redis
    short = await stack.new_drop(stock=5, per_buyer_limit=5, payment_window_s=1)
    long = await stack.new_drop(stock=5, per_buyer_limit=5, payment_window_s=60)
    paid, expired = [(await stack.buy(short["id"], b)).body["order"]["id"] for b in ("al", "bo")]
    held = (await stack.buy(long["id"], "cy")).body["order"]["id"]
    pay = await stack.call("POST", f"/v1/orders/{paid}/pay", headers=stack.as_buyer("al"))
    assert pay.status == 200
    await asyncio.sleep(1.2)
    assert await stack.engine.sweeper.sweep_once() == 1
    await redis.config_resetstat()

    worker = SettlementWorker(redis, stack.store, stack.engine.drops)
    # All five events (created x2, paid, expired; created) in one batch, one read for both
    # drops' streams.
    assert await worker.step(block_ms=100) == 5
    assert (await redis.info("commandstats"))["cmdstat_xreadgroup"]["calls"] == 1
    stored = {i: await stack.store.get(i) for i in (paid, expired, held)}
    assert {i: o.status if o else None for i, o in stored.items()} == {
        paid: "paid", expired: "expired", held: "reserved"}  # fmt: skip
    assert await oldest_unsettled_ms(redis, stack.engine.drops) is None
    report = await stack.audit()
    assert report.ok and report.orders == 3, "\n".join(report.lines())


async def _redis_ms(stack: Stack) -> int:
    seconds, micros = await stack.engine.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_settlement_lag_is_the_age_of_the_oldest_unacknowledged_event(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(worker=False)
    redis, drops = stack.engine.redis, stack.engine.drops
    first, second = [await stack.new_drop(stock=9, per_buyer_limit=9) for _ in range(2)]
    assert await oldest_unsettled_ms(redis, drops) is None  # streams with nothing in them

    async def buy(drop: dict[str, Any]) -> bytes:
        assert (await stack.buy(drop["id"], "ann")).status == 201
        await asyncio.sleep(0.02)  # each event in a millisecond of its own
        stream = DropKeys.of(drop["id"]).events
        return cast(bytes, (await redis.xrevrange(stream, count=1))[0][0])

    async def assert_oldest(oldest: bytes) -> None:
        before = await _redis_ms(stack)
        lag = await oldest_unsettled_ms(redis, drops)
        after = await _redis_ms(stack)
        appended = entry_id(oldest)[0]
        assert lag is not None and before - appended <= lag <= after - appended
        assert lag >= 20

    a0, a1, a2 = [await buy(first) for _ in range(3)]
    b0 = await buy(second)
    await assert_oldest(a0)  # none delivered yet
    # A consumer takes the first drop's three and acknowledges one: two wait pending, and a
    # later event waits undelivered.
    events = DropKeys.of(first["id"]).events
    assert len((await redis.xreadgroup(GROUP, "holder", {events: ">"}))[0][1]) == 3
    await redis.xack(events, GROUP, a0)
    await buy(first)
    await assert_oldest(a1)
    await redis.xack(events, GROUP, a1, a2)
    await assert_oldest(b0)  # the oldest across streams
    assert await SettlementWorker(redis, stack.store, drops).drain(within=10)
    assert await oldest_unsettled_ms(redis, drops) is None


async def _fill(stack: Stack, drop_id: str, n: int, per_call: int) -> set[str]:
    """Decides n purchases straight through the engine, `per_call` in each script call (and
    so in each stream entry)."""
    ids: set[str] = set()
    for start in range(0, n, per_call):
        requests = [
            (f"{drop_id}-{_id16(i)}", f"b{i}", 1, "")
            for i in range(start, min(n, start + per_call))
        ]
        for d in await stack.engine.purchaser.decide_once(drop_id, 0, requests):
            assert d.outcome == "created"
            ids.add(d.order.id)
    return ids


def _id16(i: int) -> str:
    """A deterministic order-id suffix (16 base32 letters), so the test knows every id."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "".join(alphabet[(i >> (5 * k)) & 31] for k in range(16))


@pytest.mark.parametrize("total", [30_000])
async def test_worker_killed_mid_stream_loses_and_duplicates_nothing(
    make_stack: MakeStack, redis_url: str, sqlite_url: str, total: int
) -> None:
    stack = await make_stack(worker=False)
    drop = await stack.new_drop(stock=total, per_buyer_limit=1)
    ids = await _fill(stack, drop["id"], total, per_call=10)
    events = DropKeys.of(drop["id"]).events
    env = flashsale_env(redis_url, sqlite_url, FLASHSALE_CLAIM_IDLE_MS="500")

    async def until(condition: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + 60
        while not await condition():
            if first.poll() is not None:  # read only once it exited: read() waits for EOF
                raise AssertionError(first.stdout.read())
            assert time.monotonic() < deadline, "the worker never got there"
            await asyncio.sleep(0.002)

    async def some_settled() -> bool:
        return bool(await stack.store.page(drop["id"], 0, 1))

    first = spawn("worker", env=env)
    await until(some_settled)
    # Hold the store's write lock: the worker reads its next batch and waits in its commit,
    # so it is certain to die holding a batch that is neither stored nor acknowledged.
    lock = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        frozen = len(await stack.store.page(drop["id"], 0, total))
        counted, last_stored = 0, (0, 0)
        for raw_id, fields in await stack.engine.redis.xrange(events, count=frozen):
            if counted >= frozen:
                break
            counted += len(orders_of(fields))
            last_stored = entry_id(raw_id)

        async def batch_in_hand() -> bool:
            summary = await stack.engine.redis.xpending(events, GROUP)
            return summary["pending"] > 0 and entry_id(summary["min"]) > last_stored

        await until(batch_in_hand)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    left_pending = (await stack.engine.redis.xpending(events, GROUP))["pending"]
    settled_before = len(await stack.store.page(drop["id"], 0, total))
    print(f"\nkilled with {settled_before} settled and {left_pending} entries in hand")
    assert 0 < settled_before < total and left_pending > 0

    second = spawn("worker", env=env)
    try:
        deadline = time.monotonic() + 60
        while len(await stack.store.page(drop["id"], 0, total)) < total:
            assert time.monotonic() < deadline, "the second worker did not finish"
            await asyncio.sleep(0.1)
        audited = run("audit", env=env)
        assert audited.returncode == 0, audited.stdout + audited.stderr
        assert "all invariants hold" in audited.stdout
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    stored = [o async for o in iter_orders(stack.store, drop["id"])]
    assert len(stored) == total and {o.id for o in stored} == ids  # nothing lost, no double
    assert (await stack.engine.redis.xpending(events, GROUP))["pending"] == 0


async def test_two_workers_share_the_streams(make_stack: MakeStack) -> None:
    stack = await make_stack()  # has one worker already; add a second consumer
    other = SettlementWorker(stack.engine.redis, stack.store, stack.engine.drops)
    task = asyncio.create_task(other.run(stack.stop))
    drops = [await stack.new_drop(stock=500, per_buyer_limit=500) for _ in range(3)]
    for d in drops:
        await asyncio.gather(*(stack.buy(d["id"], f"b{i % 50}", 1) for i in range(400)))
    await stack.settle()
    stack.stop.set()
    await task
    assert other.settled > 0 and stack.worker is not None and stack.worker.settled > 0
    report = await stack.audit()
    assert report.ok and report.orders == 1200, "\n".join(report.lines())


async def test_trimming_drops_only_what_every_worker_acknowledged(make_stack: MakeStack) -> None:
    """600 orders: 300 settled, 100 held unacknowledged by a consumer that died, 200 settled
    after them. A trim removes the first 300 only; the dead consumer's entries survive, are
    taken over, and the store ends with all 600."""
    stack = await make_stack(worker=False)
    drop = await stack.new_drop(stock=600, per_buyer_limit=1)
    ids = await _fill(stack, drop["id"], 600, per_call=1)  # an entry per order
    redis = stack.engine.redis
    events = DropKeys.of(drop["id"]).events
    worker = SettlementWorker(redis, stack.store, stack.engine.drops, batch=300)
    assert await worker.step() == 300
    held = await redis.xreadgroup(GROUP, "dead-worker", {events: ">"}, count=100)
    held_ids = [i for i, _ in held[0][1]]
    worker.batch = 1000
    assert await worker.step() == 200

    assert await worker.trim() == 300
    left = await redis.xrange(events)
    assert [i for i, _ in left] == held_ids + [i for i, _ in left[100:]]  # the dead's first
    assert len(left) == 300
    assert await worker.trim() == 0  # nothing more is safe to remove

    await worker.step(claim_idle_ms=0)  # taken over, settled, acknowledged
    stored = {o.id async for o in iter_orders(stack.store, drop["id"])}
    assert stored == ids
    assert await worker.trim() == 300  # now everything is in the store
    assert await redis.xlen(events) == 0
    assert (await stack.audit()).ok
