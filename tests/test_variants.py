"""Drops of several variants (pack sizes, colours), each with its own price, stock and
deposit: decided per variant in the same script call, with the per-buyer limit over all of
them, and the invariants per variant as well as per drop."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import sqlite3
from typing import Any

from tests.invariants import Answer, assert_invariants
from tests.stack import MakeStack, Stack, redis_busy

LOTUS = [
    {"code": "1KG", "title": "莲藕 1 kg", "price": 1290, "stock": 300},
    {"code": "2KG", "title": "莲藕 2 kg", "price": 2390, "stock": 200},
    {"code": "5KG", "title": "莲藕 5 kg box", "price": 4990, "stock": 40},
]


async def variant_drop(stack: Stack, variants: list[dict[str, Any]], **fields: Any) -> Any:
    spec = {"sku": "LOTUS", "title": "Lotus root", "currency": "CNY", "variants": variants}
    r = await stack.call("POST", "/v1/drops", spec | fields, stack.as_host)
    assert r.status == 201, r.body
    r = await stack.call("POST", f"/v1/drops/{r.body['id']}/open", None, stack.as_host)
    assert r.status == 200, r.body
    return r.body


def by_code(drop: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["code"]: v for v in drop["variants"]}


async def test_a_variant_drop_shows_each_variant_and_their_sums(stack: Stack) -> None:
    drop = await variant_drop(stack, LOTUS, per_buyer_limit=3)
    assert [v["code"] for v in drop["variants"]] == ["1KG", "2KG", "5KG"]  # as given
    assert drop["variants"][0] == {
        "code": "1KG", "title": "莲藕 1 kg", "price": 1290, "deposit": None, "stock": 300,
        "remaining": 300, "sold": 0,
    }  # fmt: skip
    assert (drop["price"], drop["deposit"], drop["stock"], drop["remaining"]) == (
        None, None, 540, 540,
    )  # fmt: skip
    r = await stack.buy(drop["id"], "mei", 2, variant="2KG")
    assert r.status == 201, r.body
    order = r.body["order"]
    assert (order["variant"], order["amount"], order["balance"]) == ("2KG", 4780, None)
    # The limit counts over every variant: 2 of 2 kg and 1 of 1 kg is all of mei's 3.
    assert (await stack.buy(drop["id"], "mei", 1, variant="1KG")).status == 201
    assert (await stack.buy(drop["id"], "mei", 1, variant="5KG")).code == "limit_reached"
    after = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    assert (after["remaining"], after["sold"]) == (537, 3)
    assert {c: (v["remaining"], v["sold"]) for c, v in by_code(after).items()} == {
        "1KG": (299, 1), "2KG": (198, 2), "5KG": (40, 0),
    }  # fmt: skip
    # Without variants the drop says so: null, and its order has no variant or balance.
    plain = await stack.new_drop()
    assert plain["variants"] is None
    plain_order = (await stack.buy(plain["id"], "mei")).body["order"]
    assert (plain_order["variant"], plain_order["balance"]) == (None, None)


async def test_each_variant_mistake_is_a_clear_400(stack: Stack) -> None:
    one = [{"code": "A", "title": "a", "price": 100, "stock": 5}]

    async def create(**spec: Any) -> tuple[int, str | None, str]:
        body = {"sku": "S", "title": "T", "currency": "EUR"} | spec
        r = await stack.call("POST", "/v1/drops", body, stack.as_host)
        return r.status, r.code, r.body.get("error", {}).get("message", "")

    bad_drops = {
        "a top-level price beside variants": {"variants": one, "price": 100},
        "a top-level stock beside variants": {"variants": one, "stock": 5},
        "a top-level deposit beside variants": {"variants": one, "deposit": 5},
        "a deposit above the price": {"variants": [one[0] | {"deposit": 101}],
                                      "payment_window_s": 60},
        "a deposit without a payment window": {"variants": [one[0] | {"deposit": 50}]},
        "a top-level deposit above the price": {"price": 10, "stock": 1, "deposit": 11,
                                                "payment_window_s": 60},
        "a deposit of 0": {"price": 10, "stock": 1, "deposit": 0, "payment_window_s": 60},
        "the same code twice": {"variants": [one[0], one[0] | {"title": "b"}]},
        "no variants at all": {"variants": []},
        "51 variants": {"variants": [one[0] | {"code": f"V{i}"} for i in range(51)]},
        "a code with a space": {"variants": [one[0] | {"code": "1 KG"}]},
        "a code of 33 characters": {"variants": [one[0] | {"code": "K" * 33}]},
        "a title of 101 characters": {"variants": [one[0] | {"title": "t" * 101}]},
        "a variant without stock": {"variants": [{"code": "A", "title": "a", "price": 1}]},
        "neither price nor variants": {"stock": 5},
    }  # fmt: skip
    for why, spec in bad_drops.items():
        status, code, message = await create(**spec)
        assert (status, code) == (400, "invalid_request"), (why, status, message)
        assert message, why
    assert (await create(variants=[one[0] | {"code": "a-Z_9."}]))[0] == 201
    assert (await create(price=10, stock=1, deposit=10, payment_window_s=60))[0] == 201

    with_variants = await variant_drop(stack, one)
    plain = await stack.new_drop()
    refused = {
        "a variant on a drop without": (plain, "A"),
        "an unknown code": (with_variants, "B"),
        "no variant on a drop with them": (with_variants, None),
        "a code the contract's alphabet refuses": (with_variants, "a/b"),
    }
    for why, (drop, variant) in refused.items():
        r = await stack.buy(drop["id"], "ana", variant=variant)
        assert (r.status, r.code) == (400, "invalid_request"), (why, r.body)
        r = await stack.call(
            "POST", f"/v1/drops/{drop['id']}/restock",
            {"quantity": 1} | ({"variant": variant} if variant else {}), stack.as_host,
        )  # fmt: skip
        assert (r.status, r.code) == (400, "invalid_request"), (why, r.body)
    # Each refused purchase took nothing, on a closed drop too (the request's fault first).
    await stack.call("POST", f"/v1/drops/{with_variants['id']}/close", None, stack.as_host)
    assert (await stack.buy(with_variants["id"], "ana", variant="B")).status == 400
    assert (await stack.buy(with_variants["id"], "ana", variant="A")).code == "not_live"
    assert (await stack.call("GET", f"/v1/drops/{with_variants['id']}")).body["sold"] == 0


async def test_a_key_reused_with_another_variant_is_a_conflict(stack: Stack) -> None:
    drop = await variant_drop(stack, LOTUS, per_buyer_limit=4)
    first = await stack.buy(drop["id"], "li", 1, key="k1", variant="1KG")
    assert first.status == 201
    again = await stack.buy(drop["id"], "li", 1, key="k1", variant="1KG")
    assert (again.status, again.body) == (200, first.body)
    other = await stack.buy(drop["id"], "li", 1, key="k1", variant="2KG")
    assert (other.status, other.code) == (422, "idempotency_conflict")


async def test_a_sold_out_variant_is_refused_without_redis_while_the_rest_sell(
    stack: Stack,
) -> None:
    drop = await variant_drop(stack, [*LOTUS[:2], LOTUS[2] | {"stock": 3}], per_buyer_limit=5)
    assert (await stack.buy(drop["id"], "wu", 3, variant="5KG")).status == 201
    assert (await stack.buy(drop["id"], "zhao", 1, variant="5KG")).code == "sold_out"
    view = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    assert view["status"] == "live" and by_code(view)["5KG"]["remaining"] == 0
    # Every gateway hears the 5 kg box go: its taps no longer need Redis.
    feed = stack.engine.feed
    for _ in range(200):
        shut = feed.shut.get(drop["id"])
        if shut is not None and "5KG" in shut.sold_out:
            break
        await asyncio.sleep(0.01)
    assert shut is not None and shut.status == "live" and shut.sold_out == {"5KG"}
    async with redis_busy(stack.settings.redis_url, 1.0):
        refused = await asyncio.wait_for(stack.buy(drop["id"], "qian", variant="5KG"), 0.5)
        assert refused.code == "sold_out"  # answered while Redis was busy
        wrong = await asyncio.wait_for(stack.buy(drop["id"], "qian", variant="9KG"), 0.5)
        assert wrong.status == 400  # the same rule as Redis's
        selling = asyncio.create_task(stack.buy(drop["id"], "qian", 2, variant="1KG"))
    assert (await selling).status == 201  # the 1 kg still sells: it needed Redis
    # The buyer's own retry under the key of a 5 kg order still reaches Redis and replays.
    await stack.call("POST", f"/v1/drops/{drop['id']}/restock",
                     {"quantity": 1, "variant": "5KG"}, stack.as_host)  # fmt: skip
    kept = await stack.buy(drop["id"], "sun", 1, key="box", variant="5KG")
    assert kept.status == 201
    for _ in range(200):
        if "5KG" in getattr(feed.shut.get(drop["id"]), "sold_out", ()):
            break
        await asyncio.sleep(0.01)
    replay = await stack.buy(drop["id"], "sun", 1, key="box", variant="5KG")
    assert (replay.status, replay.body) == (200, kept.body)
    await stack.settle()
    assert (await stack.audit(drop["id"])).ok


async def test_a_restock_of_one_variant(stack: Stack) -> None:
    drop = await variant_drop(
        stack, [LOTUS[0] | {"stock": 2}, LOTUS[1] | {"stock": 1}], per_buyer_limit=10
    )
    assert (await stack.buy(drop["id"], "a", 2, variant="1KG")).status == 201
    assert (await stack.buy(drop["id"], "b", 1, variant="2KG")).status == 201
    sold_out = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    assert sold_out["status"] == "sold_out"  # every variant at 0
    assert (await stack.buy(drop["id"], "c", variant="2KG")).code == "sold_out"
    r = await stack.call(
        "POST", f"/v1/drops/{drop['id']}/restock", {"quantity": 5, "variant": "2KG"},
        stack.as_host,
    )  # fmt: skip
    assert r.status == 200, r.body
    assert (r.body["status"], r.body["stock"], r.body["remaining"]) == ("live", 8, 5)
    assert {c: (v["stock"], v["remaining"]) for c, v in by_code(r.body).items()} == {
        "1KG": (2, 0), "2KG": (6, 5),
    }  # fmt: skip
    # At once, on this gateway: its own restock is heard before the answer.
    assert (await stack.buy(drop["id"], "c", 5, variant="2KG")).status == 201
    assert (await stack.buy(drop["id"], "d", variant="1KG")).code == "sold_out"
    await stack.settle()
    assert (await stack.audit(drop["id"])).ok


async def test_deposits_paid_in_time_and_late(make_stack: MakeStack) -> None:
    stack = await make_stack(sweep_interval=3600)  # paying late releases the hold itself
    cars = [
        {"code": "SEDAN", "title": "Sedan", "price": 15_990_000, "stock": 2, "deposit": 500_000},
        {"code": "SUV", "title": "SUV", "price": 21_990_000, "stock": 1, "deposit": 800_000},
    ]
    drop = await variant_drop(stack, cars, payment_window_s=1, per_buyer_limit=2)
    assert by_code(drop)["SEDAN"]["deposit"] == 500_000
    r = await stack.buy(drop["id"], "farmer-1", 2, variant="SEDAN")
    order = r.body["order"]
    assert (order["status"], order["amount"], order["balance"]) == (
        "reserved", 1_000_000, 30_980_000,
    )  # fmt: skip
    paid = await stack.call(
        "POST", f"/v1/orders/{order['id']}/pay", headers=stack.as_buyer("farmer-1")
    )
    assert (paid.status, paid.body["order"]["status"]) == (200, "paid")
    assert (paid.body["order"]["amount"], paid.body["order"]["balance"]) == (1_000_000, 30_980_000)

    late = (await stack.buy(drop["id"], "farmer-2", variant="SUV")).body["order"]
    assert (late["amount"], late["balance"]) == (800_000, 21_190_000)
    assert (await stack.buy(drop["id"], "farmer-3", variant="SUV")).code == "sold_out"
    await asyncio.sleep(1.2)
    r = await stack.call("POST", f"/v1/orders/{late['id']}/pay", headers=stack.as_buyer("farmer-2"))
    assert (r.status, r.code) == (409, "expired")
    back = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    assert (by_code(back)["SUV"]["remaining"], back["status"]) == (1, "live")
    assert (await stack.buy(drop["id"], "farmer-3", variant="SUV")).status == 201

    # A drop without variants takes a deposit at the top.
    plain = await stack.new_drop(price=990, deposit=100, payment_window_s=60)
    assert plain["deposit"] == 100
    o = (await stack.buy(plain["id"], "farmer-4")).body["order"]
    assert (o["amount"], o["balance"], o["variant"]) == (100, 890, None)

    await stack.settle()
    csv_reply = await stack.call(
        "GET", f"/v1/drops/{drop['id']}/orders?format=csv", headers=stack.as_host
    )
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(csv_reply.body))}
    assert (rows[order["id"]]["variant"], rows[order["id"]]["balance"]) == ("SEDAN", "30980000")
    assert rows[order["id"]]["status"] == "paid" and rows[late["id"]]["status"] == "expired"
    listed = await stack.call("GET", f"/v1/drops/{drop['id']}/orders", headers=stack.as_host)
    assert {o["variant"] for o in listed.body["orders"]} == {"SEDAN", "SUV"}
    assert (await stack.audit()).ok


async def test_a_burst_across_variants_keeps_every_invariant(
    make_stack: MakeStack, store_url: str
) -> None:
    """3,000 concurrent taps from 800 buyers over three variants of 540 units (limit 3 over
    all of them), a share retried with the same key: each variant sells out exactly."""
    stack = await make_stack(database_url=store_url)
    drop = await variant_drop(stack, LOTUS, per_buyer_limit=3)
    rng = random.Random(18)
    buyers = [f"buyer-{i}" for i in range(800)]
    tokens = {b: stack.as_buyer(b) for b in buyers}
    plans = []
    for i in range(2400):
        variant = rng.choices(["1KG", "2KG", "5KG"], weights=[5, 4, 1])[0]
        key = f"tap-{i}" if rng.random() < 0.5 else None
        plans.append((rng.choice(buyers), rng.choice((1, 1, 2)), key, variant))
    plans += rng.sample([p for p in plans if p[2] is not None], 600)
    rng.shuffle(plans)

    async def attempt(buyer: str, quantity: int, key: str | None, variant: str) -> Answer:
        headers = dict(tokens[buyer]) | ({"Idempotency-Key": key} if key else {})
        reply = await stack.call(
            "POST", f"/v1/drops/{drop['id']}/purchase",
            {"quantity": quantity, "variant": variant}, headers,
        )  # fmt: skip
        return Answer(buyer, quantity, key, reply, variant)

    answers = await asyncio.gather(*(attempt(*p) for p in plans))
    statuses = {(a.reply.status, a.reply.code) for a in answers}
    assert statuses <= {(201, None), (200, None), (409, "sold_out"), (409, "limit_reached")}
    stored = await assert_invariants(stack, drop["id"], answers)
    final = (await stack.call("GET", f"/v1/drops/{drop['id']}")).body
    sold = {c: v["sold"] for c, v in by_code(final).items()}
    assert sold == {"1KG": 300, "2KG": 200, "5KG": 40}, sold  # oversubscribed: all sold
    assert sum(o.quantity for o in stored if o.live) == 540
    assert final["status"] == "sold_out"


async def test_the_audit_checks_each_variant(stack: Stack, sqlite_url: str) -> None:
    """Units moved from one variant to another leave the drop's sums right: only the
    per-variant checks can see it."""
    drop = await variant_drop(stack, [LOTUS[0], LOTUS[2] | {"stock": 2}], per_buyer_limit=3)
    for buyer in ("a", "b", "c"):
        assert (await stack.buy(drop["id"], buyer, variant="1KG")).status == 201
    await stack.settle()
    assert (await stack.audit(drop["id"])).ok
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE orders SET variant = '5KG'")
    report = await stack.audit(drop["id"])
    found = {(f.invariant, f.message.split(":")[0]) for f in report.findings}
    assert (1, "variant 5KG") in found  # 3 units of a stock of 2
    assert (2, "variant 1KG") in found and (2, "variant 5KG") in found
