"""Webhooks keep invariant 10 through faults, against real receivers: endpoints that answer
500 for a while, time out, close the connection, or are down and come back; a worker
SIGKILLed mid-delivery; two workers at once; deliveries given up and replayed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flashsale.engine import rfc3339
from tests.burst import Fleet, until
from tests.processes import run
from tests.stack import MakeStack, Stack
from tests.test_webhooks import EVERY, FAST, subscribe
from tests.webhooks import Received, Receiver, assert_in_order, assert_signed, outbox_empty

WORKER_ENV = {"FLASHSALE_WEBHOOK_ALLOW_PRIVATE": "1", "FLASHSALE_WEBHOOK_TIMEOUT_S": "1",
              "FLASHSALE_WEBHOOK_RETRY_S": "0.05"}  # fmt: skip


def first_tries(n: int, then: str = "ok") -> Any:
    """A behaviour: each event's first `n` attempts fail, `then` the rest do `then`."""
    tries: Counter[str] = Counter()

    def behave(r: Received) -> str:
        tries[r.event_id] += 1
        return "fail" if tries[r.event_id] <= n else then

    return behave


def per_event(what: str, n: int) -> Any:
    tries: Counter[str] = Counter()

    def behave(r: Received) -> str:
        tries[r.event_id] += 1
        return what if tries[r.event_id] <= n else "ok"

    return behave


async def sell(stack: Stack, buyers: int, pay: int, window_s: int = 2) -> set[str]:
    """A drop sold to `buyers`, `pay` of whom pay; the rest expire: every event's id."""
    drop = await stack.new_drop(stock=buyers, payment_window_s=window_s)
    orders = await asyncio.gather(*(stack.buy(drop["id"], f"w{i}") for i in range(buyers)))
    ids = [o.body["order"]["id"] for o in orders]
    await asyncio.gather(*(
        stack.call("POST", f"/v1/orders/{oid}/pay", None, stack.as_buyer(f"w{i}"))
        for i, oid in enumerate(ids[:pay])
    ))  # fmt: skip
    return ({f"evt_{o}_created" for o in ids} | {f"evt_{o}_paid" for o in ids[:pay]}
            | {f"evt_{o}_expired" for o in ids[pay:]})  # fmt: skip


async def has_all(receiver: Receiver, ids: set[str], within: float = 60) -> None:
    async def done() -> bool:
        return ids <= receiver.ids()

    await until(done, f"{len(ids - receiver.ids())} event(s) still to reach {receiver.url}", within)


async def test_bad_endpoints_get_everything_and_do_not_hold_up_the_others(
    make_stack: MakeStack, store_url: str
) -> None:
    stack = await make_stack(database_url=store_url, **FAST)
    fast = Receiver()
    flaky = Receiver(first_tries(3))  # 500 three times per event
    slow = Receiver(per_event("hang", 1), slow_s=3)  # past the 1 s timeout once per event
    closer = Receiver(per_event("close", 2))  # the connection closed, twice per event
    down = Receiver()  # not listening until later
    up = [fast, flaky, slow, closer]
    for r in up:
        await r.start()
    try:
        hooks = {r.url: await subscribe(stack, r.url) for r in (*up, down)}
        await asyncio.sleep(0.3)  # past the audit's clock margin
        ids = await sell(stack, buyers=30, pay=15)
        await stack.settle()
        created = {x for x in ids if x.endswith("_created")}
        await has_all(fast, created)
        fast_done = max(r.at for r in fast.delivered)
        await has_all(fast, ids)
        # the fast endpoint had every order while the slow one still waited out its timeouts
        await has_all(slow, created)
        assert fast_done < min(r.at for r in slow.delivered)
        report = await stack.audit()
        assert not report.ok and any(f.invariant == 10 and down.url in f.message
                                     for f in report.findings), report.lines()  # fmt: skip
        await down.start()
        for r in (flaky, slow, closer, down):
            await has_all(r, ids)
        await outbox_empty(stack.store)
        report = await stack.audit()
        assert report.ok, report.lines()
        for r in (*up, down):
            assert_signed(r, hooks[r.url]["secret"])
            assert_in_order(r)
            assert r.ids() == ids
        assert len(fast.received) == len(ids)  # a healthy endpoint gets each event once
        stats = {s.webhook_id: s for s in await stack.store.endpoint_stats()}
        assert stats[hooks[flaky.url]["id"]].attempts["retried"] >= 3 * len(ids)
        metrics = (await stack.call("GET", "/metrics")).body
        wid = hooks[fast.url]["id"]
        assert (
            f'flashsale_webhook_deliveries_total{{outcome="delivered",webhook="{wid}"}} {len(ids)}'
            in metrics
        )
        assert f'flashsale_webhook_lag_seconds{{webhook="{wid}"}} 0.0' in metrics
    finally:
        for r in (*up, down):
            await r.stop()


async def test_given_up_deliveries_are_listed_failed_and_replayed(make_stack: MakeStack) -> None:
    stack = await make_stack(**FAST, webhook_give_up_s=0.3)
    broken = Receiver(lambda _r: "fail")
    await broken.start()
    try:
        hook = await subscribe(stack, broken.url, ["order.created"])
        await asyncio.sleep(0.3)
        ids = {x for x in await sell(stack, buyers=5, pay=0, window_s=600) if "_created" in x}
        await stack.settle()

        async def all_failed() -> bool:
            r = await stack.call("GET", f"/v1/webhooks/{hook['id']}/deliveries?status=failed",
                                 None, stack.as_host)  # fmt: skip
            return len(r.body["deliveries"]) == len(ids)

        await until(all_failed, "every delivery to be given up")
        listing = f"/v1/webhooks/{hook['id']}/deliveries?status=failed"
        page = await stack.call("GET", f"{listing}&limit=2",
                                None, stack.as_host)  # fmt: skip
        first = page.body["deliveries"]
        assert len(first) == 2 and page.body["next"]
        assert first[0]["last_status"] == 500 and first[0]["attempts"] >= 2
        assert first[0]["next_attempt_at"] is None and first[0]["delivered_at"] is None
        rest = await stack.call("GET", f"/v1/webhooks/{hook['id']}/deliveries?status=failed&"
                                f"after={page.body['next']}", None, stack.as_host)  # fmt: skip
        assert {d["event_id"] for d in first + rest.body["deliveries"]} == ids
        report = await stack.audit()
        assert any(f.invariant == 10 and "5 failed" in f.message for f in report.findings), (
            report.lines()
        )
        broken.behave = lambda _r: "ok"
        since = rfc3339(int((time.time() - 60) * 1000))
        r = await stack.call("POST", f"/v1/webhooks/{hook['id']}/replay", {"since": since},
                             stack.as_host)  # fmt: skip
        assert r.status == 200 and r.body == {"replayed": len(ids)}
        await has_all(broken, ids)
        await outbox_empty(stack.store)
        assert (await stack.audit()).ok
        bad = await stack.call("POST", f"/v1/webhooks/{hook['id']}/replay", {"since": "yesterday"},
                               stack.as_host)  # fmt: skip
        assert (bad.status, bad.code) == (400, "invalid_request")
        bad = await stack.call("GET", f"/v1/webhooks/{hook['id']}/deliveries?status=lost",
                               None, stack.as_host)  # fmt: skip
        assert (bad.status, bad.code) == (400, "invalid_request")
    finally:
        await broken.stop()


async def test_a_replay_sends_the_same_events_again_from_a_point_in_time(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    stack = await make_stack(**FAST)
    shop = await Receiver().start()
    try:
        hook = await subscribe(stack, shop.url)
        before = await sell(stack, buyers=4, pay=4)
        await has_all(shop, before)
        await asyncio.sleep(0.05)
        since = rfc3339(int(time.time() * 1000))
        await asyncio.sleep(0.05)
        after = await sell(stack, buyers=3, pay=3)
        await has_all(shop, after)
        await outbox_empty(stack.store)
        first = {r.event_id: r.body for r in shop.delivered}
        shop.delivered.clear()
        r = await stack.call("POST", f"/v1/webhooks/{hook['id']}/replay", {"since": since},
                             stack.as_host)  # fmt: skip
        assert r.body == {"replayed": len(after)}
        await has_all(shop, after)
        await outbox_empty(stack.store)
        assert shop.ids() == after  # only what happened since, each with its id and body
        assert all(first[x.event_id] == x.body for x in shop.delivered)
        # A subscription made afterwards gets the past from the store, by the command line.
        late = await Receiver().start()
        try:
            late_hook = await subscribe(stack, late.url, ["order.paid"])
            env = {**stack.settings.to_env(), **WORKER_ENV}
            # In a thread: the stack in this event loop must go on (and commit what it holds).
            args = ("webhooks", "replay", late_hook["id"], "--since", "2020-01-01T00:00:00Z")
            done = await asyncio.to_thread(run, *args, env=env)
            assert done.returncode == 0, done.stdout + done.stderr
            paid = {x for x in before | after if x.endswith("_paid")}
            assert f"{len(paid)} event(s) queued again" in done.stdout
            await has_all(late, paid)
            listed = await asyncio.to_thread(run, "webhooks", "list", env=env)
            assert late_hook["id"] in listed.stdout and "delivered" in listed.stdout
            assert_signed(late, late_hook["secret"])
        finally:
            await late.stop()
    finally:
        await shop.stop()


@pytest.fixture
def fleet(redis_url: str, sqlite_url: str, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(redis_url, sqlite_url, tmp_path, **WORKER_ENV)
    yield f
    f.close()


async def test_a_worker_killed_mid_delivery_loses_nothing(
    fleet: Fleet, make_stack: MakeStack, sqlite_url: str
) -> None:
    stack = await make_stack(worker=False, database_url=sqlite_url, **FAST)
    shop = Receiver(lambda _r: "slow", slow_s=0.6)  # every answer takes a while
    await shop.start()
    try:
        worker = fleet.worker("worker")
        hook = await subscribe(stack, shop.url)
        ids = await sell(stack, buyers=40, pay=20, window_s=600)

        async def in_flight() -> bool:
            return sum(shop.in_flight.values()) > 0 and len(shop.received) >= 10

        await until(in_flight, "deliveries in flight")
        worker.kill()  # holding leases on what it was sending, and outcomes not yet written
        before = Counter(r.event_id for r in shop.received)
        recorded = {d.event_id for d in await stack.store.deliveries(
            hook["id"], "delivered", (-1, ""), 10_000)}  # fmt: skip
        shop.behave = lambda _r: "ok"
        fleet.worker("worker-2")  # takes them over once the dead one's leases run out
        await has_all(shop, ids - {x for x in ids if x.endswith("_expired")})
        await stack.settle()
        assert_signed(shop, hook["secret"])
        assert_in_order(shop)
        after = Counter(r.event_id for r in shop.received)
        again = {e for e in after if after[e] > before[e] and before[e]}
        assert again, "the dead worker's leased deliveries were sent again"
        # What the store had recorded delivered is never sent again; the rest may be.
        assert not again & recorded, "an event recorded delivered came twice"
    finally:
        await shop.stop()


async def test_two_workers_never_send_one_event_at_once(
    redis_url: str, tmp_path: Path, make_stack: MakeStack, store_url: str
) -> None:
    database_url = store_url
    fleet = Fleet(redis_url, database_url, tmp_path, **WORKER_ENV)
    shop = Receiver(lambda _r: "slow", slow_s=0.02)
    await shop.start()
    try:
        stack = await make_stack(worker=False, database_url=database_url, **FAST)
        hook = await subscribe(stack, shop.url, EVERY)
        fleet.worker("worker-a")
        fleet.worker("worker-b")
        ids = await sell(stack, buyers=120, pay=60)
        await has_all(shop, ids)
        await outbox_empty(stack.store)
        assert shop.overlaps == 0
        assert len(shop.received) == len(ids), "each event sent once: nothing failed"
        assert_signed(shop, hook["secret"])
        assert_in_order(shop)
    finally:
        fleet.close()
        await shop.stop()
