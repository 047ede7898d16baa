"""A purchase whose answer is lost is found out, never guessed: the gateway runs the batch
again under the same request ids, and a first attempt still in flight can never add an order."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import MakeStack
from tests.invariants import Answer, assert_invariants
from tests.proxy import Proxy


@pytest.mark.parametrize("forward_first", [True, False], ids=["answer-lost", "request-lost"])
async def test_a_severed_batch_answers_each_request_with_what_redis_decided(
    make_stack: MakeStack, proxy: Proxy, forward_first: bool
) -> None:
    stack = await make_stack(redis_url=proxy.url)
    drop = await stack.new_drop(stock=30, per_buyer_limit=1)
    warm = await stack.buy(drop["id"], "warm-up")  # cached script: the severed call runs
    proxy.sever_on(b"EVALSHA", forward_first=forward_first)
    replies = await asyncio.gather(*(stack.buy(drop["id"], f"b{i}", key="k") for i in range(40)))
    assert proxy.severed == 1
    codes = sorted((r.status, r.code) for r in replies)
    assert codes == [(201, None)] * 29 + [(409, "sold_out")] * 11
    answers = [Answer("warm-up", 1, None, warm)]
    answers += [Answer(f"b{i}", 1, "k", r) for i, r in enumerate(replies)]
    assert len(await assert_invariants(stack, drop["id"], answers)) == 30


async def test_a_refused_recheck_voids_the_request_for_good(make_stack: MakeStack) -> None:
    stack = await make_stack()
    drop = await stack.new_drop(stock=1)
    assert (await stack.buy(drop["id"], "first")).status == 201
    decide = stack.engine.purchaser._decide
    request = (f"{drop['id']}-aaaaaaaaaaaaaaaaaaaaaaaaa", "late", 1, "")
    # The gateway rechecks a lost request: sold out, so the buyer is told no.
    assert [d.outcome for d in await decide(drop["id"], 1, [request])] == ["sold_out"]
    await stack.call("POST", f"/v1/drops/{drop['id']}/restock", {"quantity": 1}, stack.as_host)
    # The original attempt arrives late, after a restock: it must not create an order.
    assert [d.outcome for d in await decide(drop["id"], 0, [request])] == ["unavailable"]
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["sold"] == 1


async def test_the_scripts_come_back_after_script_flush(make_stack: MakeStack) -> None:
    stack = await make_stack()
    drop = await stack.new_drop(stock=2)
    await stack.engine.redis.script_flush()  # as after a Redis restart
    assert (await stack.buy(drop["id"], "a")).status == 201
