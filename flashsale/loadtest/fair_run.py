"""A rehearsal of a drop that decides who gets its units (`--admission queue` or `draw`).

The people come first: every buyer takes a ticket (or enters) before the start, in order.
Then the bots: `--bots` accounts that arrive after the start with `--bot-connections`
connections each, tapping buy without a pass as fast as answers come and polling without
waiting for Retry-After. Afterwards it measures what fairness means for the mode (a queue:
were the early buyers' places uniform, whatever their arrival; a draw: are the winners the
ones the revealed seed picks) and checks every invariant, from outside (checks.py, the
answers and the API) and inside (`flashsale audit`, 7-9 among them).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from flashsale.config import Settings
from flashsale.engine import Entry, check_draw
from flashsale.gateway.auth import Auth
from flashsale.loadtest.checks import Check, check
from flashsale.loadtest.fairness import ks_uniform, spearman
from flashsale.loadtest.firing import FIRST, PAY
from flashsale.loadtest.plan import Attempt
from flashsale.loadtest.results import Answer
from flashsale.loadtest.run import REHEARSAL_ROOM, Api, RunError
from flashsale.loadtest.scenario import Scenario
from flashsale.run import audit as engine_audit

POLL_CAP_S = 1.0  # a rehearsal's buyers honour Retry-After, up to this (runs stay short)


@dataclass
class FairOutcome:
    lines: list[str]
    checks: list[Check]
    audit_lines: list[str] | None
    audit_ok: bool
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every invariant, and what no fairness may allow: a purchase without a pass, a
        draw that the revealed seed does not reproduce."""
        unfair = self.measured.get("passless_sold", 0) or self.measured.get("draw_mismatches", 0)
        return all(c.ok for c in self.checks) and self.audit_ok and not unfair


class _Crowd:
    """The run's buyers and bots, their tokens, and everything they were answered."""

    def __init__(self, sc: Scenario, api: Api, secret: str, run: str, drop: dict[str, Any]):
        self.sc, self.api, self.run, self.drop = sc, api, run, drop
        auth = Auth(secret, [])
        self.people = [f"lt-{run}-{i}" for i in range(sc.total_buyers)]
        self.bots = [f"lt-{run}-bot{i}" for i in range(sc.bots)]
        self.tokens = {b: auth.mint(b, 24 * 3600) for b in self.people + self.bots}
        self.attempts: list[Attempt] = []
        self.answers: list[Answer] = []
        self.rng = random.Random(sc.seed)
        self.gate = asyncio.Semaphore(sc.connections)
        self.passless: set[int] = set()  # attempts sent without a pass
        self.polls = 0
        self.poll_s: list[float] = []

    def path(self, suffix: str = "") -> str:
        return f"/v1/drops/{self.drop['id']}{suffix}"

    async def send(
        self, method: str, path: str, buyer: str, body: Any = None, **headers: str
    ) -> tuple[int, Any]:
        h = {"Authorization": f"Bearer {self.tokens[buyer]}", **headers}
        async with self.gate:
            for sent in range(self.sc.resends + 1):
                try:
                    async with self.api.http.request(method, path, json=body, headers=h) as r:
                        data = await r.json(content_type=None)
                        if r.status not in (429, 503) or sent == self.sc.resends:
                            return r.status, data
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.2)
        raise RunError(f"{method} {path}: no answer after {self.sc.resends} resends")

    def attempt(self, buyer: str, quantity: int, key: str, variant: str = "") -> Attempt:
        a = Attempt(len(self.attempts), buyer, quantity, key, 0.0, False, variant)
        self.attempts.append(a)
        return a

    def answered(self, a: Attempt, status: int, body: Any, kind: int = FIRST) -> None:
        self.answers.append(Answer(a.index, kind, status, time.perf_counter(), body))

    async def buy(self, buyer: str, pass_: str | None) -> tuple[int, Any]:
        q = self.rng.choice([q for q, _ in self.sc.mix])
        key = f"{self.run}-{len(self.attempts)}"
        a = self.attempt(buyer, q, key)
        headers = {"Idempotency-Key": key}
        if pass_ is not None:
            headers["Flashsale-Pass"] = pass_
        else:
            self.passless.add(a.index)
        status, body = await self.send("POST", self.path("/purchase"), buyer,
                                       {"quantity": q}, **headers)  # fmt: skip
        self.answered(a, status, body)
        if status == 201 and body["order"]["status"] == "reserved":
            await self.maybe_pay(a, body["order"])
        return status, body

    async def maybe_pay(self, a: Attempt, order: dict[str, Any]) -> None:
        if self.rng.random() >= self.sc.pay:
            return  # walks away: the hold lapses
        status, body = await self.send("POST", f"/v1/orders/{order['id']}/pay", a.buyer)
        self.answered(a, status, body, PAY)


async def run_fair(
    sc: Scenario, *, host_key: str, token_secret: str, settings: Settings | None
) -> FairOutcome:
    run = secrets.token_hex(3)
    timeout = aiohttp.ClientTimeout(total=sc.timeout)
    connector = aiohttp.TCPConnector(limit=sc.connections + sc.bots * sc.bot_connections)
    async with aiohttp.ClientSession(sc.url, timeout=timeout, connector=connector) as http:
        api = Api(http, host_key)
        spec: dict[str, Any] = {
            "room": REHEARSAL_ROOM, "sku": f"loadtest-{run}", "title": f"Load test {run}",
            "currency": sc.currency, "per_buyer_limit": sc.limit, "price": sc.price,
            "stock": sc.stock, "payment_window_s": sc.payment_window,
            "admission": sc.admission,
        }  # fmt: skip
        if sc.admission == "queue":
            spec["admit_per_s"] = sc.admit_per_s
        else:
            if not sc.payment_window:
                raise RunError("a draw needs --payment-window (its winners pay within it)")
            spec["draws_at"] = (datetime.now(UTC) + timedelta(seconds=sc.draw_in)).isoformat()
        try:
            drop = await api.call("POST", "/v1/drops", spec)
        except aiohttp.ClientError as e:
            raise RunError(f"cannot reach {sc.url}: {e}") from None
        crowd = _Crowd(sc, api, token_secret, run, drop)
        if sc.admission == "queue":
            lines, measured = await _queue(crowd)
        else:
            lines, measured = await _draw(crowd)
        final = await api.call("GET", crowd.path())
        orders = await api.orders(drop["id"])
        await api.call("POST", crowd.path("/close"))
    checks = check(crowd.attempts, crowd.answers, final, orders)
    audit_lines, audit_ok = None, True
    if settings is not None:
        report = await engine_audit(settings, drop["id"], sc.settle_wait)
        audit_lines, audit_ok = report.lines(), report.ok
    return FairOutcome(lines, checks, audit_lines, audit_ok, measured)


async def _queue(crowd: _Crowd) -> tuple[list[str], dict[str, float]]:
    sc, api = crowd.sc, crowd.api

    # The people queue before the start, in order (connections at a time).
    async def take(b: str) -> None:
        status, body = await crowd.send("POST", crowd.path("/queue"), b)
        if status != 201:
            raise RunError(f"taking a ticket: {status} {body}")

    for i in range(0, len(crowd.people), sc.connections):
        await asyncio.gather(*(take(b) for b in crowd.people[i : i + sc.connections]))
    await api.call("POST", crowd.path("/open"))
    t0 = time.perf_counter()
    places: dict[str, int] = {}
    admitted_at: list[float] = []
    passless = 0
    bought: dict[str, int] = {}

    async def wait_turn(b: str, polite: bool) -> None:
        """Polls the ticket (a person as Retry-After says, a bot every 50 ms) until the
        buyer's turn, then buys with the pass."""
        while True:
            start = time.perf_counter()
            _, body = await crowd.send("GET", crowd.path("/queue"), b)
            crowd.polls += 1
            crowd.poll_s.append(time.perf_counter() - start)
            t = body["ticket"]
            if polite and t["position"] is not None:
                places.setdefault(b, t["position"])
            if t["status"] == "admitted":
                admitted_at.append(time.perf_counter() - t0)
                status, answer = await crowd.buy(b, t["pass"])
                if status == 201:
                    bought[b] = answer["order"]["quantity"]
                return
            if t["status"] != "waiting":
                return
            await asyncio.sleep(min(POLL_CAP_S, t["retry_after_s"] or 1) if polite else 0.05)

    async def person(b: str) -> None:
        await wait_turn(b, polite=True)

    async def bot(b: str) -> None:
        nonlocal passless

        async def hammer() -> None:
            nonlocal passless
            for _ in range(5):  # taps without a pass, as fast as answers come
                await crowd.buy(b, None)
                passless += 1

        await asyncio.gather(*(hammer() for _ in range(sc.bot_connections)))
        await crowd.send("POST", crowd.path("/queue"), b)  # late: behind every person
        await wait_turn(b, polite=False)

    await asyncio.gather(*(person(b) for b in crowd.people), *(bot(b) for b in crowd.bots))
    n = len(crowd.people)
    order = [places[b] for b in crowd.people if b in places]
    early = order[: n // 2]
    d, p = ks_uniform([(x - 0.5) / n for x in early])
    rho, p_rho = spearman([float(i) for i in range(len(order))], [float(x) for x in order])
    bot_units = sum(q for b, q in bought.items() if "bot" in b)
    people_units = sum(q for b, q in bought.items() if "bot" not in b)
    passless_sold = sum(1 for a in crowd.answers if a.attempt in crowd.passless and a.status == 201)
    door = max(admitted_at) if admitted_at else 0.0
    lines = [
        f"admission queue: {n:,} people queued before the start; {len(crowd.bots)} bots x "
        f"{sc.bot_connections} connections came after it",
        f"  units: {people_units:,} to people, {bot_units:,} to bots; {passless:,} taps "
        f"without a pass, {passless_sold} bought",
        f"  fairness: the early half's places vs uniform: KS D={d:.4f} (p={p:.2f}); "
        f"Spearman rho(arrival, place)={rho:+.4f} (p={p_rho:.2f})",
        f"  door: {len(admitted_at):,} admitted in {door:.2f} s "
        f"({len(admitted_at) / door if door else 0:,.0f}/s; admit_per_s {sc.admit_per_s})",
        f"  polls: {crowd.polls:,} ({crowd.polls / max(1, n + len(crowd.bots)):.1f} a buyer), "
        f"p50 {_pct(crowd.poll_s, 50):.1f} ms, p99 {_pct(crowd.poll_s, 99):.1f} ms",
    ]
    measured = {"ks_d": d, "ks_p": p, "spearman_rho": rho, "bot_units": float(bot_units),
                "passless_sold": float(passless_sold)}  # fmt: skip
    return lines, measured


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    xs = sorted(values)
    return 1000 * xs[min(len(xs) - 1, int(len(xs) * q / 100))]


async def _draw(crowd: _Crowd) -> tuple[list[str], dict[str, float]]:
    sc, api = crowd.sc, crowd.api
    await api.call("POST", crowd.path("/open"))
    wants: dict[str, int] = {}

    async def enter(b: str, times: int = 1) -> None:
        q = crowd.rng.choice([q for q, _ in sc.mix])
        for _ in range(times):
            status, body = await crowd.send("POST", crowd.path("/entries"), b, {"quantity": q})
            if status not in (200, 201):
                raise RunError(f"entering: {status} {body}")
            wants[b] = body["entry"]["quantity"]

    async def bot(b: str) -> None:  # many connections: entries, and taps that get nothing
        await asyncio.gather(*(enter(b, 3) for _ in range(sc.bot_connections)))
        for _ in range(sc.bot_connections):
            await crowd.buy(b, None)

    await asyncio.gather(*(enter(b) for b in crowd.people), *(bot(b) for b in crowd.bots))
    deadline = time.monotonic() + sc.draw_in + sc.settle_wait
    while True:
        drop = await api.call("GET", crowd.path())
        if drop["draw_seed"] is not None:
            break
        if time.monotonic() > deadline:
            raise RunError("the draw did not happen by its moment")
        await asyncio.sleep(0.1)
    # Winners pay (the --pay share); the others let the hold lapse, and it goes down the
    # order to the next entries, until no hold is left.
    told: set[str] = set()
    while True:
        entries = (await api.call("GET", crowd.path("/entries")))["entries"]
        for e in entries:
            if e["status"] == "won" and e["order_id"] not in told:
                told.add(e["order_id"])
                a = crowd.attempt(e["buyer"], e["quantity"], f"entry-{e['order_id']}")
                _, body = await crowd.send("GET", f"/v1/orders/{e['order_id']}", e["buyer"])
                body["order"].pop("settled", None)
                crowd.answered(a, 201, body)
                await crowd.maybe_pay(a, body["order"])
        orders = await api.orders(drop["id"])
        if not any(o["status"] == "reserved" for o in orders) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    listed = [
        Entry(buyer=e["buyer"], quantity=e["quantity"], status=e["status"],
              variant=e["variant"], order_id=e["order_id"], rank=i + 1)
        for i, e in enumerate(entries)
    ]  # fmt: skip
    problems = check_draw(drop["draw_seed"], drop["draw_commitment"], {None: drop["stock"]},
                          listed, at_draw_known=False)  # fmt: skip
    won = [e for e in entries if e["status"] == "won"]
    bot_wins = sum(1 for e in won if "bot" in e["buyer"])
    lines = [
        f"admission draw: {len(crowd.people):,} people and {len(crowd.bots)} bots x "
        f"{sc.bot_connections} connections entered; {len(entries):,} entries (one a buyer)",
        f"  winners: {len(won):,}, {bot_wins} of them bots "
        f"({bot_wins / max(1, len(won)):.1%}; bots are {len(crowd.bots) / len(entries):.1%} "
        "of the entries)",
        "  recomputed from the revealed seed: "
        + ("the commitment, the order and every winner match" if not problems
           else f"MISMATCH: {'; '.join(problems[:3])}"),
    ]  # fmt: skip
    return lines, {"draw_mismatches": float(len(problems)), "bot_wins": float(bot_wins)}
