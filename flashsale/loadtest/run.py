"""One rehearsal, start to end: set the drop up through the host API, fire from N
processes while watching the stock fall, wait for settlement, then audit it three ways (the
answers, the API, `flashsale audit`) and judge the thresholds."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from flashsale.config import Settings
from flashsale.loadtest import fleet
from flashsale.loadtest.checks import Check, check
from flashsale.loadtest.firing import PAY, Job, Progress
from flashsale.loadtest.http import split_url
from flashsale.loadtest.plan import make_plan
from flashsale.loadtest.results import Answer, Summary, decode, summarize
from flashsale.loadtest.scenario import Scenario
from flashsale.loadtest.thresholds import Threshold
from flashsale.loadtest.traffic import Traffic
from flashsale.run import audit as engine_audit

POLL_S = 0.1
PAGE = 10_000


class RunError(Exception):
    """The run could not start or finish (the API refused, the drop is missing...)."""


@dataclass
class Live:
    """What the progress display shows, updated while the run goes."""

    attempts: int = 0
    sent: int = 0
    answered: int = 0
    remaining: int | None = None
    started: float | None = None  # perf_counter at t0
    rate: float = 0.0
    _last: tuple[float, int] = (0.0, 0)

    def progress(self, p: Progress) -> None:
        now = time.perf_counter()
        if now - self._last[0] >= 0.5:
            if self._last[0]:
                self.rate = (p.answered - self._last[1]) / (now - self._last[0])
            self._last = (now, p.answered)
        self.sent, self.answered = p.sent, p.answered


@dataclass
class Outcome:
    scenario: Scenario
    run: str
    drop: dict[str, Any]
    started_at: str
    summary: Summary
    checks: list[Check]
    audit_lines: list[str] | None  # None: not run (asked not to)
    audit_ok: bool
    thresholds: list[tuple[Threshold, float | None, bool]] = field(default_factory=list)
    settled: bool = True
    answers: list[Answer] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            all(c.ok for c in self.checks)
            and self.audit_ok
            and self.settled
            and all(ok for _, _, ok in self.thresholds)
        )


class Api:
    def __init__(self, http: aiohttp.ClientSession, host_key: str) -> None:
        self.http = http
        self.host = {"Authorization": f"Bearer {host_key}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, path, json=body, headers=self.host) as r:
            data = await r.json(content_type=None)
            if r.status >= 300:
                raise RunError(f"{method} {path}: {r.status} {data}")
            return data

    async def orders(self, drop_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            q = f"?limit={PAGE}" + (f"&after={after}" if after else "")
            page = await self.call("GET", f"/v1/drops/{drop_id}/orders{q}")
            out += page["orders"]
            after = page["next"]
            if not after:
                return out


# The room of the drops the tool makes: the console lists them only when asked, so a
# rehearsal on the host's own flashsale does not bury the real drops.
REHEARSAL_ROOM = "rehearsal"


async def _drop(api: Api, sc: Scenario, run: str) -> dict[str, Any]:
    if sc.drop:
        return await api.call("GET", f"/v1/drops/{sc.drop}")
    spec: dict[str, Any] = {
        "room": REHEARSAL_ROOM,
        "sku": f"loadtest-{run}",
        "title": f"Load test {run}",
        "currency": sc.currency,
        "per_buyer_limit": sc.limit,
        "payment_window_s": sc.payment_window,
    }
    if sc.planned_variants:
        spec["variants"] = [v.spec() for v in sc.planned_variants]
    else:
        spec.update(price=sc.price, stock=sc.stock)
    drop = await api.call("POST", "/v1/drops", spec)
    return await api.call("POST", f"/v1/drops/{drop['id']}/open")


async def _watch(api: Api, drop_id: str, live: Live, series: list[tuple[float, int]]) -> None:
    while True:
        try:
            d = await api.call("GET", f"/v1/drops/{drop_id}")
        except (aiohttp.ClientError, RunError):
            pass
        else:
            live.remaining = d["remaining"]
            if live.started is not None:
                series.append((time.perf_counter() - live.started, d["remaining"]))
        await asyncio.sleep(POLL_S)


async def _settled(
    api: Api, drop_id: str, ids: set[str], paid: set[str], within: float
) -> tuple[bool, dict[str, Any], list[dict[str, Any]]]:
    """Waits until the store has caught up, and returns the drop and its orders read as one
    picture: every answered order is listed, every order paid (200) is listed paid, the
    drop did not change while its orders were read, and no listed hold is past its end
    (Redis released it, the store not yet). Otherwise a hold expiring mid-read would look
    like broken accounting, and a payment not yet settled like a lost one: a payment
    changes no count of the drop, so the drop's picture alone cannot tell it is settled."""
    deadline = time.monotonic() + within
    while True:
        drop = await api.call("GET", f"/v1/drops/{drop_id}")
        orders = await api.orders(drop_id)
        again = await api.call("GET", f"/v1/drops/{drop_id}")
        now = datetime.now(UTC)
        overdue = any(
            o["status"] == "reserved" and datetime.fromisoformat(o["expires_at"]) < now
            for o in orders
        )
        listed = {o["id"] for o in orders}
        paid_listed = {o["id"] for o in orders if o["status"] == "paid"}
        if ids <= listed and paid <= paid_listed and drop == again and not overdue:
            return True, again, orders
        if time.monotonic() >= deadline:
            return False, again, orders
        await asyncio.sleep(0.25)


async def run(
    sc: Scenario,
    *,
    host_key: str,
    token_secret: str,
    settings: Settings | None,
    thresholds: list[Threshold],
    live: Live | None = None,
) -> Outcome:
    """`settings` reach Redis and the store for `flashsale audit`; None skips it."""
    live = live or Live()
    run_name = secrets.token_hex(3)
    host, port, host_header = split_url(sc.url)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(sc.url, timeout=timeout) as http:
        api = Api(http, host_key)
        try:
            drop = await _drop(api, sc, run_name)
        except aiohttp.ClientError as e:
            raise RunError(f"cannot reach {sc.url}: {e}") from None
        try:
            shares = sc.variant_shares(drop.get("variants"))
        except ValueError as e:
            raise RunError(str(e)) from None
        plan = make_plan(sc, run_name, shares)
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        live.attempts, live.remaining = len(plan.attempts), drop["remaining"]
        traffics = [
            Traffic(
                host_header,
                drop["id"],
                token_secret,
                share,
                sc.pay if sc.payment_window else 0.0,
                sc.pay_late if sc.payment_window else 0.0,
                sc.seed + i,
            )
            for i, share in enumerate(plan.shards(sc.processes))
        ]
        job = Job(
            host, port, sc.connections, 0.0, sc.arrival == "closed", None, sc.timeout, sc.resends
        )
        series: list[tuple[float, int]] = []

        def on_start(t0: float) -> None:
            live.started = t0

        watcher = asyncio.create_task(_watch(api, drop["id"], live, series))
        try:
            records = await fleet.fire(job, traffics, live.progress, on_start)
        finally:
            watcher.cancel()
        answers = decode(records)
        summary = summarize(records, answers, drop["remaining"])
        summary.stock = series

        ids = {o["id"] for a in answers if (o := a.order) is not None}
        paid = {
            o["id"]
            for a in answers
            if a.kind == PAY and a.status == 200 and (o := a.order) is not None
        }
        settled, final, orders = await _settled(api, drop["id"], ids, paid, sc.settle_wait)
    checks = check(plan.attempts, answers, final, orders, plan.ours if sc.drop else lambda b: True)
    audit_lines: list[str] | None = None
    audit_ok = True
    if settings is not None:
        try:
            report = await engine_audit(settings, drop["id"], sc.settle_wait)
            audit_lines, audit_ok = report.lines(), report.ok
        except Exception as e:  # any reason the audit could not run fails it
            import traceback

            traceback.print_exc()
            audit_lines = [f"could not run: {e!r} (--no-engine-audit away from the stores)"]
            audit_ok = False
    if not sc.drop:  # the rehearsal's own drop: closed, it is compacted after retention
        async with aiohttp.ClientSession(sc.url, timeout=timeout) as http:
            with contextlib.suppress(aiohttp.ClientError, RunError):
                await Api(http, host_key).call("POST", f"/v1/drops/{drop['id']}/close")
    metrics = summary.metrics()
    judged = [(t, metrics.get(t.metric), t.passes(metrics)) for t in thresholds]
    return Outcome(
        sc,
        plan.run,
        final,
        started_at,
        summary,
        checks,
        audit_lines,
        audit_ok,
        judged,
        settled,
        answers,
    )
