"""Faults mid-burst: a process killed or stopped, Redis restarted, the order store gone for
30 s. Each test fires a few thousand purchases with Idempotency-Keys at a drop with less
stock than demand, injects its fault while they are being answered, and afterwards checks
every invariant of the contract from the answers, the store and the audit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
import pytest

from flashsale.engine import GROUP, DropKeys, backlog, iter_orders, orders_of, text
from flashsale.redis_server import RedisServer, free_port
from tests.burst import LOST, Burst, Fleet, Service, assert_contract, plan_taps, until
from tests.processes import run
from tests.proxy import Proxy
from tests.stack import HOST_KEY, MakeStack, Stack

# A drop: 3,000 taps from 800 buyers (a fifth of them resends of an earlier tap), 1 or 2
# units each, limit 3 a buyer, 1,500 units: demand passes both the stock and the limits.
TAPS, BUYERS, STOCK, LIMIT = 3000, 800, 1500, 3


@pytest.fixture
def fleet_factory() -> Iterator[list[Fleet]]:
    fleets: list[Fleet] = []
    yield fleets
    for fleet in fleets:
        fleet.close()


def _fleet(fleets: list[Fleet], redis_url: str, database_url: str, tmp: Path) -> Fleet:
    fleet = Fleet(redis_url, database_url, tmp)
    fleets.append(fleet)
    return fleet


async def _drop(stack: Stack) -> str:
    drop = await stack.new_drop(stock=STOCK, per_buyer_limit=LIMIT)
    return cast(str, drop["id"])


@dataclass
class FailOver:
    """Gateway A and gateway B as processes, with a worker; a burst aimed at A whose
    broken requests are sent again, same key and body, to B."""

    a: Service
    b: Service
    stack: Stack
    drop_id: str
    burst: Burst


async def _fail_over(
    fleet: Fleet, make_stack: MakeStack, seed: str
) -> tuple[FailOver, asyncio.Task[None]]:
    a, b = fleet.gateway("gateway-a"), fleet.gateway("gateway-b")
    fleet.worker("worker")
    stack = await make_stack(worker=False)
    await asyncio.gather(a.ready(), b.ready())
    drop_id = await _drop(stack)
    burst = Burst(drop_id, plan_taps(seed, taps=TAPS, buyers=BUYERS),
                  lambda tries: a.base if tries == 0 else b.base)  # fmt: skip
    return FailOver(a, b, stack, drop_id, burst), asyncio.create_task(burst.run())


async def _consumers(stack: Stack, drop_id: str) -> dict[str, int]:
    """Each settlement consumer of the drop's stream -> the entries it holds unacknowledged."""
    infos = await stack.engine.redis.xinfo_consumers(DropKeys.of(drop_id).events, GROUP)
    return {text(c["name"]): int(c["pending"]) for c in infos}


def _report(name: str, burst: Burst, **figures: Any) -> None:
    shown = ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\n[{name}] sends by status {dict(sorted(burst.statuses().items()))}; {shown}")


async def test_a_worker_killed_holding_a_batch_is_taken_over(
    make_stack: MakeStack, redis_url: str, pg_url: str, tmp_path: Path, fleet_factory: list[Fleet]
) -> None:
    """A worker SIGKILLed mid-burst with a batch read but not committed (PostgreSQL holds it
    at a table lock): a second worker claims the dead one's entries (XAUTOCLAIM after 500 ms
    idle) and every order ends in the store once."""
    fleet = _fleet(fleet_factory, redis_url, pg_url, tmp_path)
    gateway = fleet.gateway("gateway")
    first = fleet.worker("worker-1", FLASHSALE_CLAIM_IDLE_MS="500")
    stack = await make_stack(worker=False, database_url=pg_url)
    await gateway.ready()
    drop_id = await _drop(stack)
    events = DropKeys.of(drop_id).events
    burst = Burst(drop_id, plan_taps("kw", taps=TAPS, buyers=BUYERS), gateway.base, spread=5)
    firing = asyncio.create_task(burst.run())

    async def some_settled() -> bool:
        return bool(await stack.store.page(drop_id, 0, 1))

    await until(some_settled, "the first worker to settle")
    # Two lock holders in turn: the worker's commit waits at the first; while it waits,
    # orders pile up in the stream; the first lets go, the worker commits that batch, reads
    # the pile and waits at the second. It is certain to die holding a batch of many
    # entries, neither stored nor acknowledged.
    first_lock, second_lock = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        waiting = (
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'orders'::regclass"
        )

        def waiters(n: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return int(await first_lock.fetchval(waiting)) >= n

            return check

        first_tx, second_tx = first_lock.transaction(), second_lock.transaction()
        await first_tx.start()
        await first_lock.execute("LOCK TABLE orders IN EXCLUSIVE MODE")
        await until(waiters(1), "the worker to wait at the first lock")
        await asyncio.sleep(0.3)  # the pile grows (a fault's timing, not an assertion)
        await second_tx.start()
        locking = asyncio.create_task(second_lock.execute("LOCK TABLE orders IN EXCLUSIVE MODE"))
        await until(waiters(2), "the second lock to queue behind the worker")
        await first_tx.rollback()
        await locking
        await until(waiters(1), "the worker to wait at the second lock")
        (dead, held), *others = (await _consumers(stack, drop_id)).items()
        assert not others and held > 0
        in_hand = await stack.engine.redis.xpending_range(events, GROUP, "-", "+", held, dead)
        first.kill()
        killed_at = time.monotonic()
        await second_tx.rollback()
    finally:
        await first_lock.close()
        await second_lock.close()
    entries = [await stack.engine.redis.xrange(events, p["message_id"], p["message_id"])
               for p in in_hand]  # fmt: skip
    held_orders = {o.id for e in entries for o in orders_of(e[0][1])}
    assert not {o for o in held_orders if await stack.store.get(o)}  # none of them stored

    second = fleet.worker("worker-2", FLASHSALE_CLAIM_IDLE_MS="500")
    await firing
    stored = await assert_contract(stack, drop_id, burst)
    assert burst.statuses(since=killed_at)[201] > 0  # the kill was mid-burst
    assert burst.statuses()[LOST] == 0
    assert held_orders <= {o.id for o in stored}
    consumers = await _consumers(stack, drop_id)
    assert consumers[dead] == 0 and sum(consumers.values()) == 0  # taken over, acknowledged
    audited = run("audit", "--drop", drop_id, env=fleet.env)
    assert audited.returncode == 0 and "all invariants hold" in audited.stdout, audited.stdout
    code, took = await second.terminate()
    assert code == 0 and took < 15, second.output()
    _report("worker SIGKILL", burst, held_by_the_dead=len(held_orders), orders=len(stored))


async def test_a_gateway_killed_mid_burst_loses_no_answered_order(
    make_stack: MakeStack, redis_url: str, sqlite_url: str, tmp_path: Path,
    fleet_factory: list[Fleet],
) -> None:  # fmt: skip
    """Gateway A SIGKILLed mid-burst; every buyer whose request broke sends it again, same
    key and body, to gateway B: the order A made (200) or a fresh decision."""
    fleet = _fleet(fleet_factory, redis_url, sqlite_url, tmp_path)
    failover, firing = await _fail_over(fleet, make_stack, "kg")
    a, b, stack, drop_id, burst = (
        failover.a,
        failover.b,
        failover.stack,
        failover.drop_id,
        failover.burst,
    )
    await burst.until(0.3)
    a.kill()
    killed_at = time.monotonic()
    await firing

    lost = [s for s in burst.sent if s.status == LOST]
    assert lost and all(s.base == a.base for s in lost)
    assert all(burst.final[s.tap].base == b.base for s in lost)
    stored = await assert_contract(stack, drop_id, burst, replays_of_lost_answers=True)
    assert burst.statuses(since=killed_at)[201] > 0
    _report("gateway SIGKILL", burst, broken_requests=len({s.tap for s in lost}),
            made_by_a_answered_by_b=len(burst.replayed_only()), orders=len(stored))  # fmt: skip


async def test_redis_killed_and_restarted_comes_back_from_its_aof(
    make_stack: MakeStack, sqlite_url: str, tmp_path: Path, fleet_factory: list[Fleet]
) -> None:
    """Redis SIGKILLed mid-burst, down 2.5 s, started again on its port and dir (appendonly,
    fsync always, as `up` runs it): every order answered 201 is back from the AOF and
    settled; the gateway and the worker, never restarted, recover by themselves; meanwhile
    purchases get 503 with Retry-After, never a 500, and a 503 never made an order."""
    server = RedisServer(tmp_path / "redis", port=free_port(), appendonly=True)
    await asyncio.to_thread(server.start)
    try:
        fleet = _fleet(fleet_factory, server.url, sqlite_url, tmp_path)
        gateway, worker = fleet.gateway("gateway"), fleet.worker("worker")
        stack = await make_stack(worker=False, redis_url=server.url)
        await gateway.ready()
        drop_id = await _drop(stack)
        burst = Burst(drop_id, plan_taps("rr", taps=TAPS, buyers=BUYERS), gateway.base,
                      spread=4.0)  # fmt: skip
        firing = asyncio.create_task(burst.run())
        await burst.until(0.25)
        server.kill()
        killed_at = time.monotonic()
        await asyncio.sleep(2.5)  # the outage
        await asyncio.to_thread(server.start)
        back_at = time.monotonic()
        await firing

        assert gateway.alive() and worker.alive()
        # The test's own client (reads and audit) lost its connections with Redis too.
        await stack.engine.redis.connection_pool.disconnect()

        async def caught_up() -> bool:
            return await backlog(stack.engine.redis, stack.engine.drops) == 0

        await until(caught_up, "settlement to catch up", within=60)
        caught_up_s = time.monotonic() - back_at
        outage = burst.statuses(killed_at, back_at)
        assert outage[503] > 0 and set(outage) <= {201, 200, 409, 503}, outage
        assert burst.statuses()[LOST] == 0  # the gateway answered everything, 503 at worst
        after = [s for s in burst.sent if s.at >= back_at and s.status == 201]
        assert after, "no purchase made once Redis was back"
        stored = await assert_contract(stack, drop_id, burst)
        _report("redis restart", burst, answered_503=burst.statuses()[503],
                during_outage=dict(outage), taps_503=len({s.tap for s in burst.sent
                                                          if s.status == 503}),
                first_201_after_restart_s=round(min(s.at for s in after) - back_at, 3),
                settled_all_s_after_restart=round(caught_up_s, 2), orders=len(stored))  # fmt: skip
    finally:
        await asyncio.to_thread(server.stop)


async def test_the_order_store_unreachable_for_30_s(
    make_stack: MakeStack, pg_url: str, tmp_path: Path, fleet_factory: list[Fleet],
    redis_url: str,
) -> None:  # fmt: skip
    """PostgreSQL behind a proxy that goes away for 30 s mid-burst: purchases go on being
    answered 201/409 (Redis decides, the store only records), and once it is back
    settlement catches up by itself."""
    proxy = await Proxy("127.0.0.1", 5432).start()
    behind = pg_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    assert behind != pg_url
    fleet = _fleet(fleet_factory, redis_url, behind, tmp_path)
    gateway, worker = fleet.gateway("gateway"), fleet.worker("worker")
    stack = await make_stack(worker=False, database_url=pg_url)  # the test reads directly
    await gateway.ready()
    drop_id = await _drop(stack)
    burst = Burst(drop_id, plan_taps("pg", taps=TAPS, buyers=BUYERS), gateway.base, spread=20)
    firing = asyncio.create_task(burst.run())
    try:
        await burst.until(0.1)
        assert proxy.server is not None
        proxy.server.close()
        await proxy.cut()
        cut_at = time.monotonic()
        await asyncio.sleep(1)
        stored_then = len(await stack.store.page(drop_id, 0, 10 * TAPS))
        async with aiohttp.ClientSession() as http, http.get(f"{gateway.base}/readyz") as r:
            assert r.status == 503  # the store is really gone
        await asyncio.sleep(cut_at + 30 - time.monotonic())
        assert len(await stack.store.page(drop_id, 0, 10 * TAPS)) == stored_then
        behind_by = await backlog(stack.engine.redis, stack.engine.drops)
        await proxy.start(proxy.port)
        back_at = time.monotonic()
    finally:
        await firing

    outage = burst.statuses(cut_at, back_at)
    assert set(burst.statuses()) <= {200, 201, 409}  # never a 503, never a lost answer
    assert outage[201] > 0 and outage[409] > 0, outage
    # Taps were answered through the whole outage, not only at its start.
    assert any(s.at > back_at - 15 for s in burst.sent)

    async def caught_up() -> bool:
        return await backlog(stack.engine.redis, stack.engine.drops) == 0

    await until(caught_up, "settlement to catch up", within=60)
    caught_up_s = time.monotonic() - back_at
    # The worker retries its own failed batch, not waiting FLASHSALE_CLAIM_IDLE_MS (30 s).
    assert caught_up_s < 10
    assert worker.alive() and gateway.alive()
    stored = await assert_contract(stack, drop_id, burst)
    await proxy.close()
    _report("store outage", burst, answered_during_outage=dict(outage),
            backlog_at_return=behind_by, catch_up_s=round(caught_up_s, 2),
            orders=len(stored))  # fmt: skip


async def test_sigterm_on_a_gateway_answers_what_it_has(
    make_stack: MakeStack, redis_url: str, sqlite_url: str, tmp_path: Path,
    fleet_factory: list[Fleet],
) -> None:  # fmt: skip
    """`flashsale serve` SIGTERMed mid-burst exits 0 within 15 s having answered every
    purchase it decided: no order of its reaches a buyer only as a replay from gateway B."""
    fleet = _fleet(fleet_factory, redis_url, sqlite_url, tmp_path)
    failover, firing = await _fail_over(fleet, make_stack, "tg")
    a, stack, drop_id, burst = failover.a, failover.stack, failover.drop_id, failover.burst
    signalled_at = await burst.until(0.3)
    code, took = await a.terminate()
    await firing
    assert code == 0 and took < 15, a.output()
    in_flight = [s for s in burst.sent if s.base == a.base and s.at >= signalled_at]
    stored = await assert_contract(stack, drop_id, burst)  # no replays of lost answers
    _report("serve SIGTERM", burst, exit_s=round(took, 2),
            answered_by_a_after_sigterm=sum(s.status != LOST for s in in_flight),
            refused_connections=sum(s.status == LOST for s in burst.sent),
            orders=len(stored))  # fmt: skip


async def test_sigterm_on_a_worker_settles_its_batch_first(
    make_stack: MakeStack, redis_url: str, sqlite_url: str, tmp_path: Path,
    fleet_factory: list[Fleet],
) -> None:  # fmt: skip
    """`flashsale worker` SIGTERMed mid-burst exits 0 within 15 s leaving nothing in hand
    (every entry it read is stored and acknowledged); a second worker settles the rest."""
    fleet = _fleet(fleet_factory, redis_url, sqlite_url, tmp_path)
    gateway, first = fleet.gateway("gateway"), fleet.worker("worker-1")
    stack = await make_stack(worker=False)
    await gateway.ready()
    drop_id = await _drop(stack)
    burst = Burst(drop_id, plan_taps("tw", taps=TAPS, buyers=BUYERS), gateway.base)
    firing = asyncio.create_task(burst.run())
    await burst.until(0.2)

    async def some_settled() -> bool:
        return bool(await stack.store.page(drop_id, 0, 1))

    await until(some_settled, "the worker to settle")
    signalled_at = time.monotonic()
    code, took = await first.terminate()
    assert code == 0 and took < 15, first.output()
    assert sum((await _consumers(stack, drop_id)).values()) == 0  # nothing left in hand
    settled_by_first = len(await stack.store.page(drop_id, 0, 10 * TAPS))
    second = fleet.worker("worker-2")
    await firing
    assert burst.statuses(since=signalled_at)[201] > 0  # signalled mid-burst
    assert burst.statuses()[LOST] == 0
    stored = await assert_contract(stack, drop_id, burst)
    code, took = await second.terminate()
    assert code == 0 and took < 15, second.output()
    _report("worker SIGTERM", burst, exit_s=round(took, 2), settled_by_first=settled_by_first,
            orders=len(stored))  # fmt: skip


async def test_sigterm_on_up_drains_everything(
    make_stack: MakeStack, tmp_path: Path, fleet_factory: list[Fleet]
) -> None:
    """`flashsale up` (two gateway processes, its own Redis and SQLite) SIGTERMed mid-burst
    exits 0 within 15 s with every 201 in SQLite and nothing left in the streams; started
    again from its AOF, the taps it never answered are sent again and every invariant
    holds."""
    data = tmp_path / "up"
    fleet = _fleet(fleet_factory, "", "", tmp_path)
    del fleet.env["FLASHSALE_REDIS_URL"], fleet.env["FLASHSALE_DATABASE_URL"]
    port = free_port()
    up = fleet.start("up", "--data-dir", str(data), "up", "--port", str(port), "--workers", "2")
    up.port = port
    await up.ready()
    host = {"Authorization": f"Bearer {HOST_KEY}"}
    async with aiohttp.ClientSession(headers=host) as http:
        spec = {"sku": "CRAY-9", "title": "Crayfish", "price": 3500, "currency": "CNY",
                "stock": STOCK, "per_buyer_limit": LIMIT}  # fmt: skip
        async with http.post(f"{up.base}/v1/drops", json=spec) as r:
            drop_id = (await r.json())["id"]
        async with http.post(f"{up.base}/v1/drops/{drop_id}/open") as r:
            assert r.status == 200
    burst = Burst(drop_id, plan_taps("tu", taps=TAPS, buyers=BUYERS), up.base, retry_for=60)
    firing = asyncio.create_task(burst.run())
    await burst.until(0.3)
    code, took = await up.terminate()
    burst.retrying = False  # nobody is listening any more: what failed stays unanswered
    await firing
    assert code == 0 and took < 15, up.output()
    assert "nothing left behind" in up.output()

    # Every 201 is in SQLite the moment `up` has exited.
    with sqlite3.connect(data / "orders.db") as db:
        rows = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, buyer, quantity FROM orders")}
    created = burst.created()
    answered = {o: (t.buyer, t.quantity) for o, t in created.items()}
    assert answered and answered.items() <= rows.items()

    server = RedisServer(data / "redis")  # as `up` runs it: its dir, its socket, its AOF
    await asyncio.to_thread(server.start)
    try:
        stack = await make_stack(redis_url=server.url, database_url=f"sqlite:///{data}/orders.db")
        assert await backlog(stack.engine.redis, stack.engine.drops) == 0
        unanswered = len(burst.unresolved())
        await burst.resolve(stack.base)
        stored = await assert_contract(stack, drop_id, burst)  # no replays of lost answers
        _report("up SIGTERM", burst, exit_s=round(took, 2), stored_at_exit=len(rows),
                unanswered_at_exit=unanswered, orders=len(stored))  # fmt: skip
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_purchase_redis_ran_before_dying_is_never_answered_503(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """The purchase script reaches Redis and runs (its effect in the AOF), the answer is cut
    off, and Redis dies and stays down 3 s. The contract: a 503 means no purchase was made,
    and a gateway that cannot tell finds out before it answers."""
    server = RedisServer(tmp_path / "redis", port=free_port(), appendonly=True)
    await asyncio.to_thread(server.start)
    assert server.port is not None
    proxy = await Proxy("127.0.0.1", server.port).start()
    try:
        stack = await make_stack(redis_url=proxy.url)
        drop_id = await _drop(stack)
        assert (await stack.buy(drop_id, "warm-up")).status == 201  # the script is loaded
        proxy.sever_on(drop_id.encode(), forward_first=True)
        buying = asyncio.create_task(stack.buy(drop_id, "al", key="tap-1"))

        async def sent() -> bool:
            return proxy.severed > 0

        await until(sent, "the script to reach Redis")
        await asyncio.sleep(0.03)  # Redis runs it, the answer is cut off (the proxy waits 50 ms)
        server.kill()
        await asyncio.sleep(3)  # the outage
        await asyncio.to_thread(server.start)
        answer = await buying
        await stack.engine.redis.connection_pool.disconnect()  # connections of the dead one
        await stack.settle()
        made = [o.id async for o in iter_orders(stack.store, drop_id) if o.buyer == "al"]
        if answer.status == 503:
            assert made == [], f"answered 503, yet order {made} was made"
        else:
            assert answer.status == 201 and made == [answer.body["order"]["id"]]
    finally:
        await proxy.close()
        await asyncio.to_thread(server.stop)
