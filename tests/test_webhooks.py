"""Webhooks through the API, delivered to real receivers: subscriptions, the events and
their signatures (checked by the README's own snippet), rooms and event types, replays."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from flashsale.engine import signature
from tests.burst import until
from tests.stack import MakeStack, Stack
from tests.webhooks import (
    Receiver,
    assert_in_order,
    assert_signed,
    outbox_empty,
    readme_verifier,
)

EVERY = ["order.created", "order.paid", "order.expired"]
FAST = {"webhook_allow_private": True, "webhook_retry_s": 0.05, "webhook_timeout_s": 1.0}


async def subscribe(stack: Stack, url: str, events: list[str] = EVERY,
                    room: str | None = None) -> dict[str, Any]:  # fmt: skip
    r = await stack.call("POST", "/v1/webhooks", {"url": url, "events": events, "room": room},
                         stack.as_host)  # fmt: skip
    assert r.status == 201, r.body
    return r.body["webhook"]


async def delivered(stack: Stack, receiver: Receiver, n: int, within: float = 30) -> None:
    await stack.settle()

    async def enough() -> bool:
        return len(receiver.ids()) >= n

    await until(enough, f"{n} deliveries (have {len(receiver.ids())})", within)


async def test_subscriptions_are_made_listed_and_ended(make_stack: MakeStack) -> None:
    stack = await make_stack(**FAST)
    hook = await subscribe(stack, "http://127.0.0.1:9/x", ["order.paid", "order.created"], "live")
    assert hook["secret"].startswith("whsec_") and hook["id"].startswith("wh_")
    assert hook["events"] == ["order.created", "order.paid"]  # once each, in a fixed order
    listed = (await stack.call("GET", "/v1/webhooks", None, stack.as_host)).body["webhooks"]
    assert [w["id"] for w in listed] == [hook["id"]]
    assert "secret" not in listed[0]  # shown once
    one = await stack.call("GET", f"/v1/webhooks/{hook['id']}", None, stack.as_host)
    assert one.status == 200 and one.body["webhook"]["room"] == "live"
    gone = await stack.call("DELETE", f"/v1/webhooks/{hook['id']}", None, stack.as_host)
    assert gone.status == 200
    again = await stack.call("DELETE", f"/v1/webhooks/{hook['id']}", None, stack.as_host)
    assert again.status == 404 and again.code == "not_found"
    assert (await stack.call("GET", "/v1/webhooks", None, stack.as_host)).body["webhooks"] == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"url": "https://shop.example/x", "events": ["order.shipped"]}, "order.shipped"),
        ({"url": "https://shop.example/x", "events": []}, "events"),
        ({"url": "ftp://shop.example/x", "events": ["order.paid"]}, "https://"),
        ({"url": "http://shop.example/x", "events": ["order.paid"]}, "https://"),
        ({"url": "https://10.1.2.3/x", "events": ["order.paid"]}, "private"),
        ({"url": "https://169.254.169.254/latest", "events": ["order.paid"]}, "private"),
        ({"url": "https://[::ffff:192.168.0.1]/", "events": ["order.paid"]}, "private"),
        ({"url": "http://127.0.0.1:8/x", "events": ["order.paid"]}, "ALLOW_PRIVATE"),
        ({"url": "https://localhost/x", "events": ["order.paid"]}, "ALLOW_PRIVATE"),
        ({"url": "https://no-such-host.invalid/x", "events": ["order.paid"]}, "resolve"),
        ({"url": "https://shop.example/x", "events": ["order.paid"], "secret": "x"}, "secret"),
        ({"url": "https://shop.example/x#frag", "events": ["order.paid"]}, "fragment"),
        ({"url": "https://shop.example:99999/x", "events": ["order.paid"]}, "not a URL"),
    ],
)
async def test_a_destination_outside_the_rules_is_refused(
    stack: Stack, body: dict[str, Any], says: str
) -> None:
    r = await stack.call("POST", "/v1/webhooks", body, stack.as_host)
    assert (r.status, r.code) == (400, "invalid_request"), r.body
    assert says in r.body["error"]["message"]


async def test_webhooks_are_for_hosts(stack: Stack) -> None:
    r = await stack.call("GET", "/v1/webhooks", None, stack.as_buyer("bob"))
    assert (r.status, r.code) == (403, "forbidden")
    r = await stack.call("POST", "/v1/webhooks", {"url": "https://a.example", "events": EVERY})
    assert (r.status, r.code) == (401, "unauthorized")
    r = await stack.call("GET", "/v1/webhooks/wh_nope/deliveries", None, stack.as_host)
    assert (r.status, r.code) == (404, "not_found")


async def test_every_event_arrives_signed_in_order(make_stack: MakeStack) -> None:
    stack = await make_stack(**FAST)
    shop = await Receiver().start()
    try:
        hook = await subscribe(stack, shop.url)
        await asyncio.sleep(0.3)  # past the audit's clock margin: it checks every event
        drop = await stack.new_drop(stock=20, per_buyer_limit=5, payment_window_s=2)
        orders = [(await stack.buy(drop["id"], f"b{i}")).body["order"] for i in range(6)]
        for o in orders[:3]:
            r = await stack.call(
                "POST", f"/v1/orders/{o['id']}/pay", None, stack.as_buyer(o["buyer"])
            )
            assert r.status == 200, r.body
        # 6 created, 3 paid, and the other 3 expire when their 2 s hold runs out
        await delivered(stack, shop, 12)
        assert_signed(shop, hook["secret"])
        assert_in_order(shop)
        by_id = {r.event_id: r.event for r in shop.delivered}
        paid = by_id[f"evt_{orders[0]['id']}_paid"]
        assert paid["type"] == "order.paid" and paid["order"]["status"] == "paid"
        created = by_id[f"evt_{orders[0]['id']}_created"]
        assert created["order"] | {"status": "paid"} == paid["order"]
        assert (
            created["order"]["status"] == "reserved"
            and created["id"] == f"evt_{orders[0]['id']}_created"
        )
        assert by_id[f"evt_{orders[5]['id']}_expired"]["order"]["status"] == "expired"
        await outbox_empty(stack.store)
        report = await stack.audit()
        assert report.ok, report.lines()
        assert "ok   10. webhooks delivered" in "\n".join(report.lines())
        # one delivery per event: nothing failed, nothing sent twice
        assert len(shop.received) == 12
    finally:
        await shop.stop()


async def test_a_forged_or_stale_signature_is_refused_by_the_readme_snippet(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(**FAST)
    shop = await Receiver().start()
    try:
        hook = await subscribe(stack, shop.url, ["order.created"])
        drop = await stack.new_drop()
        await stack.buy(drop["id"], "ann")
        await delivered(stack, shop, 1)
        verify = readme_verifier()
        real = shop.delivered[0]
        assert verify(hook["secret"], real.body, real.signature)
        tampered = real.body.replace(b'"quantity":1', b'"quantity":9')
        assert tampered != real.body and not verify(hook["secret"], tampered, real.signature)
        assert not verify("whsec_someone_else", real.body, real.signature)
        forged = signature("whsec_guess", real.body)
        assert not verify(hook["secret"], real.body, forged)
        stale = signature(hook["secret"], real.body, int(time.time()) - 3600)
        assert not verify(hook["secret"], real.body, stale)  # replayed an hour later
        assert not verify(hook["secret"], real.body, "v1=" + real.signature.split("v1=")[1])
        assert not verify(hook["secret"], real.body, "")
    finally:
        await shop.stop()


async def test_rooms_and_types_pick_what_a_subscription_gets(make_stack: MakeStack) -> None:
    stack = await make_stack(**FAST)
    every, garden, paid_only = Receiver(), Receiver(), Receiver()
    for r in (every, garden, paid_only):
        await r.start()
    try:
        await subscribe(stack, every.url)
        await subscribe(stack, garden.url, room="garden")
        await subscribe(stack, paid_only.url, ["order.paid"])
        in_garden = await stack.new_drop(room="garden", payment_window_s=60)
        elsewhere = await stack.new_drop(room="kitchen", payment_window_s=60)
        a = (await stack.buy(in_garden["id"], "ann")).body["order"]
        b = (await stack.buy(elsewhere["id"], "ben")).body["order"]
        await stack.call("POST", f"/v1/orders/{b['id']}/pay", None, stack.as_buyer("ben"))
        await delivered(stack, every, 3)
        await delivered(stack, garden, 1)
        await delivered(stack, paid_only, 1)
        await asyncio.sleep(0.3)  # time for anything that should not come
        assert every.ids() == {
            f"evt_{a['id']}_created",
            f"evt_{b['id']}_created",
            f"evt_{b['id']}_paid",
        }
        assert garden.ids() == {f"evt_{a['id']}_created"}
        assert paid_only.ids() == {f"evt_{b['id']}_paid"}
    finally:
        for r in (every, garden, paid_only):
            await r.stop()
