"""admission: draw. A commitment published at creation, entries until draws_at, winners
picked by a documented order anyone can recompute from the revealed seed, and expired holds
backfilled down the same order."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import subprocess
import sys

from flashsale.engine import DropKeys, draw_order
from tests.fair import draw_drop, enter, entries, told_by_entry, until_drawn
from tests.invariants import assert_invariants
from tests.stack import MakeStack, Stack


async def test_a_draw_from_commitment_to_winners(stack: Stack) -> None:
    drop = await draw_drop(stack, in_s=1.5, stock=3)
    did = drop["id"]
    assert drop["admission"] == "draw" and drop["draw_seed"] is None
    assert len(drop["draw_commitment"]) == 64
    buyers = ["阿明", "bo", "chen", "dana", "eli", "fang"]
    for b in buyers:
        r = await enter(stack, did, b)
        assert r.status == 201, r.body
        assert r.body["entry"] == {
            "buyer": b, "quantity": 1, "variant": None, "status": "entered", "order_id": None
        }  # fmt: skip
    assert (await enter(stack, did, "bo")).status == 200  # the same entry
    assert (await enter(stack, did, "zed", quantity=2)).code == "limit_reached"
    assert (await stack.buy(did, "bo")).code == "draw_only"  # no tap gets a unit
    mine = await stack.call("GET", f"/v1/drops/{did}/entries/me", None, stack.as_buyer("bo"))
    assert mine.body["entry"]["status"] == "entered"
    drawn = await until_drawn(stack, did)
    seed = bytes.fromhex(drawn["draw_seed"])
    assert hashlib.sha256(seed).hexdigest() == drop["draw_commitment"]
    # The documented order: HMAC-SHA256(seed, buyer id in UTF-8), ascending as bytes.
    ordered = sorted(buyers, key=lambda b: hmac.new(seed, b.encode(), "sha256").digest())
    assert draw_order(seed, buyers) == ordered
    listed = await entries(stack, did)
    assert [e["buyer"] for e in listed] == ordered
    assert [e["status"] for e in listed] == ["won"] * 3 + ["lost"] * 3
    await stack.settle()
    for e in listed[:3]:
        r = await stack.call("GET", f"/v1/orders/{e['order_id']}", None, stack.as_buyer(e["buyer"]))
        assert (r.body["order"]["status"], r.body["order"]["settled"]) == ("reserved", True)
    assert (await stack.call("GET", f"/v1/drops/{did}")).body["status"] == "sold_out"
    assert (await enter(stack, did, "late")).code in ("entries_closed", "not_live")
    report = await stack.audit(did)
    assert report.ok, report.lines()
    verify = _verify_draw(stack, did)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # Tampered: a lost entry marked won is caught by the audit and by verify-draw.
    keys = DropKeys.of(did)
    raw = await stack.engine.redis.hget(keys.entries, ordered[-1])
    import msgspec

    e = msgspec.msgpack.decode(raw)
    e["won_at_draw"] = True
    await stack.engine.redis.hset(keys.entries, ordered[-1], msgspec.msgpack.encode(e))
    report = await stack.audit(did)
    assert not report.ok and {f.invariant for f in report.findings} == {8}
    assert _verify_draw(stack, did).returncode == 1


def _verify_draw(stack: Stack, drop_id: str) -> subprocess.CompletedProcess[str]:
    s = stack.settings
    return subprocess.run(
        [sys.executable, "-m", "flashsale", "--redis-url", s.redis_url,
         "--database-url", s.database_url, "verify-draw", "--drop", drop_id],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_a_draw_refuses_what_does_not_belong(stack: Stack) -> None:
    pending = await stack.new_drop(
        open_it=False, admission="draw", draws_at="2999-01-01T00:00:00Z", payment_window_s=60
    )
    assert (await enter(stack, pending["id"], "ana")).code == "not_live"
    plain = await stack.new_drop()
    assert (await enter(stack, plain["id"], "ana")).code == "no_draw"
    for bad in (
        {"admission": "draw", "payment_window_s": 60},  # no draws_at
        {"admission": "draw", "draws_at": "2999-01-01T00:00:00Z"},  # no payment window
        {"draws_at": "2999-01-01T00:00:00Z"},  # draws_at on a first-come drop
        {"admission": "raffle"},
    ):
        spec = {"sku": "S", "title": "T", "price": 1, "currency": "CNY", "stock": 1} | bad
        r = await stack.call("POST", "/v1/drops", spec, stack.as_host)
        assert r.code == "invalid_request", (bad, r.body)
    drop = await draw_drop(stack, in_s=60, stock=2)
    r = await enter(stack, drop["id"], "ana", quantity=0)
    assert r.code == "invalid_request"
    r = await stack.call("GET", f"/v1/drops/{drop['id']}/entries", None, stack.as_buyer("ana"))
    assert r.code == "forbidden"


async def test_winners_who_never_pay_backfill_to_the_end(stack: Stack) -> None:
    """Every winner lets the hold lapse: each lapse goes to the next entry in the draw's
    order, until the entries run out; an entry of 2 with 1 unit back is passed over."""
    drop = await draw_drop(stack, in_s=1.0, stock=2, payment_window_s=1, per_buyer_limit=2)
    did = drop["id"]
    wants = {"a": 1, "b": 1, "c": 2, "d": 1, "e": 1, "f": 1}
    for b, q in wants.items():
        assert (await enter(stack, did, b, quantity=q)).status == 201
    await until_drawn(stack, did)
    for _ in range(200):  # 6 entries, 2 units, 1 s holds: about 4 s of lapses
        listed = await entries(stack, did)
        if all(e["status"] == "won" for e in listed):
            break
        await asyncio.sleep(0.1)
    assert all(e["status"] == "won" for e in listed), listed
    await stack.settle()
    orders = {e["buyer"]: e["order_id"] for e in listed}
    stored = {o.id: o async for o in _orders(stack, did)}
    assert {stored[oid].buyer for oid in orders.values()} == set(wants)
    # Served down the order: each winner's order came after those of the entries before it
    # that fitted (the entry of 2 waits for two units, so may come later).
    singles = [e["buyer"] for e in listed if wants[e["buyer"]] == 1]
    seqs = [stored[orders[b]].seq for b in singles]
    assert seqs == sorted(seqs), (singles, seqs)
    report = await stack.audit(did)
    assert report.ok, report.lines()


async def _orders(stack: Stack, drop_id: str):  # type: ignore[no-untyped-def]
    from flashsale.engine import iter_orders

    async for o in iter_orders(stack.store, drop_id):
        yield o


async def test_a_draw_burst_keeps_every_invariant(make_stack: MakeStack, store_url: str) -> None:
    """800 buyers enter at once (some twice, some for 2 units, over two variants), the draw
    picks, a third of the winners pay, the rest lapse and backfill."""
    stack = await make_stack(database_url=store_url)
    variants = [
        {"code": "S", "title": "small", "price": 500, "stock": 60},
        {"code": "L", "title": "large", "price": 900, "stock": 40},
    ]
    drop = await draw_drop(stack, in_s=2.0, variants=variants, per_buyer_limit=2,
                           payment_window_s=1, price=None, stock=None)  # fmt: skip
    did = drop["id"]
    rng = random.Random(3)
    wants = {f"p{i}": (rng.choice("SL"), rng.choice([1, 1, 2])) for i in range(800)}

    async def one(b: str) -> None:
        v, q = wants[b]
        for _ in range(rng.choice([1, 2])):
            r = await enter(stack, did, b, quantity=q, variant=v)
            assert r.status in (200, 201), r.body

    await asyncio.gather(*(one(b) for b in wants))
    await until_drawn(stack, did)
    listed = await entries(stack, did)
    assert len(listed) == 800
    won = [e for e in listed if e["status"] == "won"]
    assert sum(wants[e["buyer"]][1] for e in won if wants[e["buyer"]][0] == "S") <= 60
    payers = won[::3]
    for e in payers:
        r = await stack.call(
            "POST", f"/v1/orders/{e['order_id']}/pay", None, stack.as_buyer(e["buyer"])
        )
        assert r.status == 200, r.body
    await asyncio.sleep(1.5)  # lapses reach the line (and lapse again)
    # Then the clock stops (no more lapses, so no more orders for the line) and the books
    # are read: whatever is in them must hold.
    stack.engine.sweeper.interval = 3600
    await asyncio.sleep(0.3)
    answers = [
        await told_by_entry(stack, e["buyer"], e["order_id"])
        for e in await entries(stack, did)
        if e["status"] == "won"
    ]
    await assert_invariants(stack, did, answers)  # the audit's 7 and 8 among them
    after = (await stack.call("GET", f"/v1/drops/{did}")).body
    assert after["remaining"] + after["sold"] == after["stock"] == 100
