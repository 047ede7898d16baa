"""A purchase whose answer is lost is found out, never guessed: the gateway runs the batch
again under the same request ids, and a first attempt still in flight can never add an order."""

from __future__ import annotations

import asyncio

import pytest

from tests.invariants import Answer, assert_invariants
from tests.proxy import Proxy
from tests.stack import MakeStack


@pytest.mark.parametrize("forward_first", [True, False], ids=["answer-lost", "request-lost"])
async def test_a_severed_batch_answers_each_request_with_what_redis_decided(
    make_stack: MakeStack, proxy: Proxy, forward_first: bool
) -> None:
    """The recheck finds what the lost call made and decides nothing new: a request it finds
    no order for is 503 (no purchase was made, and none can be made under its id now)."""
    stack = await make_stack(redis_url=proxy.url)
    drop = await stack.new_drop(stock=30, per_buyer_limit=1)
    warm = await stack.buy(drop["id"], "warm-up")  # cached script: the severed call runs
    proxy.sever_on(b"EVALSHA", forward_first=forward_first)
    replies = await asyncio.gather(*(stack.buy(drop["id"], f"b{i}", key="k") for i in range(40)))
    assert proxy.severed == 1
    codes = [(r.status, r.code) for r in replies]
    # The severed call's requests: 201 if it ran (the recheck found their orders), else
    # 503. Batches sent after it on a new connection were decided as usual.
    assert set(codes) <= {(201, None), (503, "unavailable"), (409, "sold_out")}, codes
    if forward_first:
        assert (201, None) in codes, codes  # the call ran: its orders are found
    else:
        assert (503, "unavailable") in codes, codes  # it never reached Redis: none made
    # Each buyer taps again with the same key: the order made (200), or a new decision.
    retries = await asyncio.gather(*(stack.buy(drop["id"], f"b{i}", key="k") for i in range(40)))
    for first, again in zip(replies, retries, strict=True):
        if first.status == 201:
            assert again.status == 200 and again.body["order"]["id"] == first.body["order"]["id"]
        else:
            assert again.status in (201, 409), again.body
    answers = [Answer("warm-up", 1, None, warm)]
    answers += [Answer(f"b{i}", 1, "k", r) for i, r in enumerate(retries)]
    assert len(await assert_invariants(stack, drop["id"], answers)) == 30


async def test_redis_gone_after_a_lost_answer_is_504_undecided_in_time(
    make_stack: MakeStack, proxy: Proxy
) -> None:
    """No answer waits without bound: the recheck gives up after `undecided_after`, each
    buyer is told 504 `undecided` (retry with the same key), and that retry finds out."""
    stack = await make_stack(redis_url=proxy.url)
    stack.engine.purchaser.undecided_after = 1.5
    drop = await stack.new_drop(stock=30, per_buyer_limit=1)
    warm = await stack.buy(drop["id"], "warm-up")
    proxy.sever_on(b"EVALSHA", forward_first=True)  # the call runs, its answer is lost
    buying = [asyncio.create_task(stack.buy(drop["id"], f"b{i}", key="k")) for i in range(10)]
    await asyncio.sleep(0.02)
    await proxy.close()  # and Redis stays out of reach
    start = asyncio.get_running_loop().time()
    replies = await asyncio.gather(*buying)
    took = asyncio.get_running_loop().time() - start
    assert {(r.status, r.code, r.headers.get("Retry-After")) for r in replies} == {
        (504, "undecided", "1")
    }
    assert took < 3.0, f"answered after {took:.1f} s"
    await proxy.start(port=proxy.port)
    await asyncio.sleep(0.3)  # past the fast 503s of a node that refused to connect
    retries = await asyncio.gather(*(stack.buy(drop["id"], f"b{i}", key="k") for i in range(10)))
    # A 504 promised nothing: the retry finds the order the lost call made (200), or, for a
    # request that never reached Redis, makes it now (201). Each buyer holds one either way.
    statuses = [r.status for r in retries]
    assert set(statuses) <= {200, 201} and 200 in statuses, statuses
    answers = [Answer("warm-up", 1, None, warm)]
    answers += [Answer(f"b{i}", 1, "k", r) for i, r in enumerate(retries)]
    stored = await assert_invariants(stack, drop["id"], answers)
    assert sorted(o.buyer for o in stored) == sorted(["warm-up"] + [f"b{i}" for i in range(10)])


async def test_a_refused_recheck_voids_the_request_for_good(make_stack: MakeStack) -> None:
    stack = await make_stack()
    drop = await stack.new_drop(stock=1)
    assert (await stack.buy(drop["id"], "first")).status == 201
    decide = stack.engine.purchaser.decide_once
    request = (f"{drop['id']}-aaaaaaaaaaaaaaaaaaaaaaaaa", "late", 1, "")
    # The gateway rechecks a lost request: no order, so the buyer is told none was made.
    assert [d.outcome for d in await decide(drop["id"], 1, [request])] == ["unavailable"]
    await stack.call("POST", f"/v1/drops/{drop['id']}/restock", {"quantity": 1}, stack.as_host)
    # The original attempt arrives late, after a restock: it must not create an order.
    assert [d.outcome for d in await decide(drop["id"], 0, [request])] == ["unavailable"]
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["sold"] == 1


async def test_the_scripts_come_back_after_script_flush(make_stack: MakeStack) -> None:
    stack = await make_stack()
    drop = await stack.new_drop(stock=2)
    await stack.engine.redis.script_flush()  # as after a Redis restart
    assert (await stack.buy(drop["id"], "a")).status == 201
