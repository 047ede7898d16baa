"""The contract's six invariants of orders, checked from outside: from what the buyers were
answered and what the host API lists. Independent of `flashsale audit`, which reads Redis
and the store directly (and checks 7-9 too, which only Redis can tell); a run passes only
if both agree that every invariant holds."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flashsale.engine import LIVE_ORDER_STATUSES as LIVE
from flashsale.engine import ORDER_INVARIANTS as INVARIANTS
from flashsale.loadtest.firing import LOST, PAY, TIMEOUT
from flashsale.loadtest.plan import Attempt
from flashsale.loadtest.results import Answer

SHOWN = 5  # examples per failed check


@dataclass(frozen=True)
class Check:
    number: int
    name: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        head = f"{'ok  ' if self.ok else 'FAIL'} {self.number}. {self.name}"
        if self.ok:
            return head
        more = f" (and {len(self.problems) - SHOWN} more)" if len(self.problems) > SHOWN else ""
        return head + ": " + "; ".join(self.problems[:SHOWN]) + more


def check(
    attempts: Iterable[Attempt],
    answers: Iterable[Answer],
    drop: dict[str, Any],
    orders: list[dict[str, Any]],
    ours: Callable[[str], bool] = lambda buyer: True,
) -> list[Check]:
    """`orders` is every order of the drop the API lists; `ours` tells this run's buyers
    from anyone else's (a drop that was already selling)."""
    by_index = {a.index: a for a in attempts}
    problems: dict[int, list[str]] = {n: [] for n in INVARIANTS}
    listed = {o["id"]: o for o in orders}
    live = [o for o in orders if o["status"] in LIVE]
    live_units = sum(o["quantity"] for o in live)

    # 1. No oversell.
    if live_units > drop["stock"]:
        problems[1].append(f"live orders hold {live_units} units of a stock of {drop['stock']}")
    # 2. Exact accounting.
    if drop["remaining"] + drop["sold"] != drop["stock"]:
        problems[2].append(
            f"remaining {drop['remaining']} + sold {drop['sold']} != stock {drop['stock']}"
        )
    if drop["sold"] != live_units:
        problems[2].append(f"sold is {drop['sold']} but listed live orders hold {live_units}")
    _check_variants(drop, live, problems)

    answered: defaultdict[int, set[str]] = defaultdict(set)  # attempt -> order ids
    created: Counter[int] = Counter()  # attempt -> 201s
    unresolved: set[int] = set()  # attempts with a lost answer and no definite one
    definite: set[int] = set()
    for a in answers:
        attempt = by_index.get(a.attempt)
        if attempt is None:
            continue
        if a.kind == PAY:
            _check_payment(a, listed, problems[3])
            continue
        if a.status in (LOST, TIMEOUT, 504):  # 504 `undecided` promised nothing either way
            unresolved.add(a.attempt)
            continue
        if a.status == 503:
            # This request made nothing, but it says nothing of what an earlier send of the
            # attempt, lost or undecided, may have made: that one stays unresolved.
            continue
        definite.add(a.attempt)
        order = a.order
        if order is None:
            continue
        answered[a.attempt].add(order["id"])
        created[a.attempt] += a.status == 201
        # 3. No lost order: answered, so listed, with its buyer and quantity.
        got = listed.get(order["id"])
        if got is None:
            problems[3].append(f"order {order['id']} was answered {a.status} but is not listed")
        elif (got["buyer"], got["quantity"], got.get("variant") or "") != (
            attempt.buyer,
            attempt.quantity,
            attempt.variant,
        ):
            problems[3].append(
                f"order {order['id']} is listed as ({got['buyer']}, {got['quantity']}, "
                f"{got.get('variant')}), bought as ({attempt.buyer}, {attempt.quantity}, "
                f"{attempt.variant or None})"
            )
    unresolved -= definite

    # 4. No phantom order: every listed order of ours was answered to its buyer, or is
    # one whose answer the load tool itself lost on the way.
    owner: dict[str, int] = {}
    for index, ids in answered.items():
        for oid in ids:
            owner.setdefault(oid, index)
    unknown = [o for o in orders if ours(o["buyer"]) and o["id"] not in owner]
    lost_buyers = Counter(by_index[i].buyer for i in unresolved)
    for o in unknown:
        if lost_buyers[o["buyer"]] > 0:
            lost_buyers[o["buyer"]] -= 1
        else:
            problems[4].append(f"order {o['id']} ({o['buyer']}) was never answered to anyone")

    # 5. Per-buyer limit.
    held: Counter[str] = Counter()
    for o in live:
        held[o["buyer"]] += o["quantity"]
    for buyer, units in held.items():
        if units > drop["per_buyer_limit"]:
            problems[5].append(f"{buyer} holds {units}, limit {drop['per_buyer_limit']}")

    # 6. Idempotency: one key, one order, created once.
    for index, ids in answered.items():
        if len(ids) > 1:
            problems[6].append(f"key {by_index[index].key} was answered {len(ids)} orders")
        if created[index] > 1:
            problems[6].append(f"key {by_index[index].key} was answered 201 {created[index]}x")
    claimed = Counter(oid for ids in answered.values() for oid in ids)
    problems[6].extend(f"order {oid} answered to {n} keys" for oid, n in claimed.items() if n > 1)

    return [Check(n, name, problems[n]) for n, name in INVARIANTS.items()]


def _check_variants(
    drop: dict[str, Any], live: list[dict[str, Any]], problems: dict[int, list[str]]
) -> None:
    """Invariants 1 and 2 for each of the drop's variants, from the listed live orders."""
    held: Counter[str | None] = Counter()
    for o in live:
        held[o.get("variant")] += o["quantity"]
    for v in drop.get("variants") or ():
        code, units = v["code"], held[v["code"]]
        if units > v["stock"]:
            problems[1].append(f"variant {code}: live orders hold {units} units of {v['stock']}")
        if v["remaining"] + v["sold"] != v["stock"]:
            problems[2].append(
                f"variant {code}: remaining {v['remaining']} + sold {v['sold']} != "
                f"stock {v['stock']}"
            )
        if v["sold"] != units:
            problems[2].append(f"variant {code}: sold is {v['sold']} but live orders hold {units}")


def _check_payment(a: Answer, listed: dict[str, dict[str, Any]], out: list[str]) -> None:
    """A payment answered 200 left a paid order; one refused as expired, an expired one."""
    if a.status == 200 and a.order is not None:
        got = listed.get(a.order["id"])
        if got is None or got["status"] != "paid":
            status = got["status"] if got else "missing"
            out.append(f"order {a.order['id']} was paid (200) but is listed {status}")
