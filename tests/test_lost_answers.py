"""A purchase whose answer is lost is found out, never guessed: the gateway runs the decision
again under the same request id, and a first attempt still in flight can never add an order."""

from __future__ import annotations

import pytest

from tests.conftest import MakeStack
from tests.proxy import Proxy


@pytest.mark.parametrize("forward_first", [True, False], ids=["answer-lost", "request-lost"])
async def test_a_severed_purchase_is_answered_with_what_redis_decided(
    make_stack: MakeStack, proxy: Proxy, forward_first: bool
) -> None:
    stack = await make_stack(redis_url=proxy.url)
    drop = await stack.new_drop(stock=5, per_buyer_limit=5)
    # Warm the script cache, so the severed EVALSHA really runs (no NOSCRIPT detour).
    warm = await stack.buy(drop["id"], "warm-up")
    proxy.sever_on(b"EVALSHA", forward_first=forward_first)
    reply = await stack.buy(drop["id"], "alice", 2)
    assert proxy.severed == 1, (reply.status, reply.body)
    assert reply.status == 201, reply.body
    after = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    assert after["sold"] == 3  # decided once, whichever way the break fell
    await stack.settle()
    stored = await stack.store.page(drop["id"], 0, 10)
    assert [o.id for o in stored] == [warm.body["order"]["id"], reply.body["order"]["id"]]
    assert (await stack.audit()).ok


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
