"""`flashsale loadtest` against a real gateway, worker and store: its counts add up, its
open-loop latency shows queueing, its audit catches what is wrong, and its exit code, JSON
and HTML report say so."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flashsale.engine import Order
from flashsale.loadtest.checks import check
from flashsale.loadtest.firing import FIRST, LOST, RESEND, Job, Shard, Shot
from flashsale.loadtest.http import request_bytes
from flashsale.loadtest.plan import make_plan
from flashsale.loadtest.results import Latency
from flashsale.loadtest.run import Outcome, run
from flashsale.loadtest.scenario import Scenario, load
from flashsale.loadtest.thresholds import Threshold
from flashsale.redis_server import free_port
from tests.processes import flashsale_env
from tests.stack import HOST_KEY, SECRET, MakeStack, Stack


async def _run(stack: Stack, **fields: object) -> Outcome:
    sc = Scenario(url=stack.base, settle_wait=30.0, **fields)  # type: ignore[arg-type]
    return await run(
        sc, host_key=HOST_KEY, token_secret=SECRET, settings=stack.settings, thresholds=[]
    )


async def test_a_burst_adds_up(make_stack: MakeStack) -> None:
    stack = await make_stack()
    o = await _run(
        stack, stock=300, attempts=3000, limit=2, quantities="1:70,2:30", repeat=0.2,
        connections=32, processes=2,
    )  # fmt: skip
    s, plan = o.summary, make_plan(o.scenario, o.run)
    repeats = sum(a.repeat for a in plan.attempts)
    assert [c.line() for c in o.checks if not c.ok] == [] and o.audit_ok and o.settled, o
    assert s.purchases == 3000 + repeats  # every attempt once, the chosen ones twice
    assert sum(s.answers.values()) == s.requests == s.purchases  # no payment window
    assert set(s.answers) <= {"201", "200", "409 sold_out", "409 limit_reached"}
    assert s.answers["201"] + s.answers["200"] > 0 and s.answers["409 sold_out"] > 0
    # Oversubscribed ten times: every unit is sold, and the answers account for each one.
    assert (o.drop["sold"], o.drop["remaining"], o.drop["status"]) == (300, 0, "sold_out")
    assert s.units_created == 300 and s.sellout_s is not None and s.sellout_s <= s.span_s
    assert sum(s.throughput) == s.requests and sum(s.created) == 300
    assert s.latency.count == s.purchases
    assert s.latency.percentiles[50.0] <= s.latency.percentiles[99.0] <= s.latency.max
    assert o.ok


async def test_payment_window_pays_in_time_late_or_never(make_stack: MakeStack) -> None:
    stack = await make_stack()
    o = await _run(
        stack, stock=60, attempts=60, buyers=60, limit=1, payment_window=1, pay=0.5,
        pay_late=0.3, connections=8,
    )  # fmt: skip
    s = o.summary
    assert o.ok, [c.line() for c in o.checks] + (o.audit_lines or [])
    # Buyers are drawn at random, so some tap twice and meet their limit of 1.
    assert s.answers["201"] + s.answers["409 limit_reached"] == 60
    assert s.payments == s.answers["pay 200"] + s.answers["pay 409 expired"]
    assert s.answers["pay 200"] > 5 and s.answers["pay 409 expired"] > 3
    orders = [o async for o in _orders(stack, o.drop["id"])]
    assert sum(x.status == "paid" for x in orders) == s.answers["pay 200"]
    # Late payers and those who walked away gave their units back.
    assert o.drop["sold"] == s.answers["pay 200"]


async def _orders(stack: Stack, drop_id: str):  # type: ignore[no-untyped-def]
    from flashsale.engine import iter_orders

    async for order in iter_orders(stack.store, drop_id):
        yield order


async def test_open_loop_latency_counts_the_queue() -> None:
    """A server that takes 20 ms a request, one connection, 200 attempts a second: closed
    loop sees about 20 ms; open loop sees each request wait its turn, as buyers would."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_post("/", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    req = request_bytes("POST", "/", f"127.0.0.1:{port}", {}, b"")
    try:

        async def measure(closed: bool) -> Latency:
            job = Job("127.0.0.1", port, 1, time.perf_counter() + 0.1, closed_loop=closed)
            shots = (Shot(i / 200, i, req) for i in range(40))
            records = await Shard(job, shots).run()
            assert list(records.status) == [200] * 40
            return Latency.of(list(records.latency_us))

        closed, opened = await measure(True), await measure(False)
    finally:
        await runner.cleanup()
    assert closed.percentiles[99.0] < 150_000
    # The 40th request was due at 0.195 s and could start only after 39 x 20 ms.
    assert opened.max > 500_000
    assert opened.percentiles[50.0] > 5 * closed.percentiles[50.0]


async def test_a_server_that_refuses_fails_each_request_and_the_run_ends() -> None:
    job = Job("127.0.0.1", free_port(), 4, time.perf_counter() + 0.05, resends=1)
    shots = (Shot(0.0, i, b"never sent") for i in range(50))
    records = await asyncio.wait_for(Shard(job, shots).run(), 20)
    assert set(records.status) == {LOST}
    assert sorted(records.kind) == [FIRST] * 50 + [RESEND] * 50  # each resent once, same key


async def test_the_audit_catches_a_violation(make_stack: MakeStack) -> None:
    stack = await make_stack()
    o = await _run(stack, stock=50, attempts=400, limit=2, quantities="1:50,2:50", repeat=0.3)
    assert o.ok
    plan = make_plan(o.scenario, o.run)
    orders = [x.public() async for x in _orders(stack, o.drop["id"])]
    answers = o.answers

    def failed(drop: dict[str, object], listed: list[dict[str, object]], ans=answers) -> set[int]:  # type: ignore[no-untyped-def]
        return {c.number for c in check(plan.attempts, ans, drop, listed) if not c.ok}

    assert failed(o.drop, orders) == set()
    assert failed(o.drop, orders[1:]) >= {2, 3}  # an answered order went missing
    ghost = orders[0] | {"id": f"{o.drop['id']}-ghostghostghost0"}
    assert failed(o.drop, [*orders, ghost]) >= {4}  # an order no one was answered
    greedy = copy.deepcopy(orders)
    greedy[0]["quantity"] = 3
    assert 5 in failed(o.drop | {"sold": o.drop["sold"] + 3}, greedy)
    assert 1 in failed(o.drop | {"stock": o.drop["sold"] - 1}, orders)
    twice = [*answers, answers[next(i for i, a in enumerate(answers) if a.status == 201)]]
    assert 6 in failed(o.drop, orders, twice)  # a retry answered 201 a second time

    # An attempt whose order was made but answered 504, then 503 to every resend (a failover
    # in between): still unresolved, so its order is no phantom. Answered only 503, it is.
    made = next(a for a in answers if a.status == 201)
    others = [a for a in answers if a.attempt != made.attempt]
    undecided, refused = (replace(made, status=s, body=None) for s in (504, 503))
    assert failed(o.drop, orders, [*others, undecided, refused]) == set()
    assert 4 in failed(o.drop, orders, [*others, refused])

    # And through the whole tool: an order slipped into the store, never decided.
    phantom = Order(
        id=f"{o.drop['id']}-phantomphantom00", drop_id=o.drop["id"], seq=10**6, buyer="ghost",
        quantity=1, amount=100, currency="EUR", status="confirmed", created_at=0,
    )  # fmt: skip
    await stack.store.apply([phantom])
    again = await _run(stack, drop=o.drop["id"], attempts=20)
    assert not again.ok and not again.audit_ok
    assert not next(c for c in again.checks if c.number == 2).ok  # sold != listed live units


@pytest.fixture
def cli_env(make_stack: MakeStack, redis_url: str, sqlite_url: str) -> dict[str, str]:
    return flashsale_env(
        redis_url, sqlite_url, FLASHSALE_TOKEN_SECRET=SECRET, FLASHSALE_HOST_KEYS=HOST_KEY
    )


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flashsale", "loadtest", "--quiet", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_cli_thresholds_json_and_report(
    make_stack: MakeStack, cli_env: dict[str, str], tmp_path: Path,
    make_context: Callable[..., Awaitable[Any]],
) -> None:  # fmt: skip
    """The outputs land in the data dir's reports/ (relative paths), the drop in the
    rehearsal room, closed afterwards; the HTML report fits a phone."""
    stack = await make_stack()
    scenario = tmp_path / "drop.toml"
    scenario.write_text('stock = 100\nattempts = 800\nquantities = "1:80,2:20"\n')
    common = ["--url", stack.base, "--scenario", str(scenario), "--connections", "16"]
    data_dir = tmp_path / "data"
    env = cli_env | {"FLASHSALE_DATA_DIR": str(data_dir)}
    code, out = await _cli(
        env, *common, "--threshold", "errors<0.1%", "--threshold", "p99<60s",
        "--json", "run.json", "--report", "run.html",
    )  # fmt: skip
    assert code == 0, out
    report, out_json = data_dir / "reports" / "run.html", data_dir / "reports" / "run.json"
    assert report.is_file() and out_json.is_file(), out
    assert re.search(r"p99<60s\s*│\s*[\d.,]+ (ms|s)\s*│ pass", out), out  # with its unit
    data = json.loads(out_json.read_text())
    assert data["ok"] and data["drop"]["sold"] == 100 and data["scenario"]["stock"] == 100
    assert sum(data["answers"].values()) == data["requests"] >= 800
    assert [t["ok"] for t in data["thresholds"]] == [True, True]
    assert data["audit"]["ok"] and all(c["ok"] for c in data["checks"])
    page = report.read_text()
    assert 'id="throughput"' in page and 'id="latency"' in page
    assert "remaining stock" in page and "answers/s" in page and "Latency by percentile" in page
    assert "<script src=" not in page.replace('<script src="data:', "")  # self-contained
    assert "plotly" in page.lower()
    made = (await stack.call("GET", f"/v1/drops/{data['drop']['id']}")).body
    assert (made["room"], made["status"]) == ("rehearsal", "closed")
    phone = await (await make_context(viewport={"width": 390, "height": 844})).new_page()
    await phone.goto(report.as_uri())
    await phone.wait_for_selector("#latency .main-svg")
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
    for chart in ("#throughput", "#latency"):
        box = await phone.locator(chart).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (chart, box)

    code, out = await _cli(cli_env, *common, "--threshold", "p50<1us")
    assert code == 1 and "MISSED" in out, out
    code, out = await _cli(cli_env, *common, "--threshold", "p99 is small")
    assert code == 2 and "threshold" in out, out


def test_thresholds_parse_and_judge() -> None:
    metrics = {"p99": 12.0, "p50": 3.0, "errors": 0.0005, "rps": 4000.0, "sellout": 1.4}
    judged = {
        t: Threshold.parse(t).passes(metrics)
        for t in ("p99<10ms", "p99<0.02s", "p50<=3ms", "errors<0.1%", "errors<0.0001",
                  "rps>5000", "rps>=4000", "sellout<1.5s", "sellout<1000ms", "p99.9<1s")
    }  # fmt: skip
    assert judged == {
        "p99<10ms": False, "p99<0.02s": True, "p50<=3ms": True, "errors<0.1%": True,
        "errors<0.0001": False, "rps>5000": False, "rps>=4000": True, "sellout<1.5s": True,
        "sellout<1000ms": False, "p99.9<1s": False,  # not measured: never passes
    }  # fmt: skip
    for bad in ("p99<10%", "errors<5ms", "latency<1s", "rps>10ms"):
        with pytest.raises(ValueError):
            Threshold.parse(bad)


def test_scenario_file_and_flags(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('stock = 38000\nattempts = 380000\nlimit = 2\narrival = "ramp"\nduration = "5s"\n')
    sc = load(f, {"limit": 3, "stock": None})
    assert (sc.stock, sc.total_attempts, sc.limit, sc.duration) == (38000, 380000, 3, 5.0)
    assert sc.offset(0, 100) == 0 and sc.offset(100, 100) == 5.0
    assert sc.offset(25, 100) == 2.5  # the rate climbs: a quarter of them in half the time
    f.write_text("stok = 5\n")
    with pytest.raises(ValueError, match="stok"):
        load(f, {})
    with pytest.raises(ValueError, match="rate"):
        load(None, {"arrival": "rate"})
    plan = make_plan(Scenario(attempts=1000, quantities="1:3,2:1", seed=3), "r")
    assert plan == make_plan(Scenario(attempts=1000, quantities="1:3,2:1", seed=3), "r")
    assert 150 < sum(a.quantity == 2 for a in plan.attempts) < 350
    assert sorted(a.index for share in plan.shards(3) for a in share) == list(range(1000))


async def test_bench_prints_both_rates_and_their_ratio(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flashsale", "bench", "--generator", "own", "--duration", "1",
        "--processes", "1",
        "--no-seed", "--connections", "8", "--rates", "500", "--scale-buyers", "500,2000",
        "--settle-orders", "5000", "--past-drops", "0,30", "--idle-s", "1", "--quiet-s", "1",
        "--night", "4000", "--soak", "0", cwd=tmp_path, env=os.environ | {"COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    assert proc.returncode == 0, text
    rates = {
        target: float(rate.replace(",", ""))
        for target, rate in re.findall(r"│ \((a|b)\)[^│]*│[^│]*│\s*([0-9,]+) │", text)
    }
    assert rates["a"] > 0 and rates["b"] > 0, text
    ratio = float(re.search(r"purchase / hello world \([^)]*\): ([0-9.]+)x", text)[1])  # type: ignore[index]
    assert abs(ratio - rates["b"] / rates["a"]) < 0.02, text
    # the held rate, the scale runs with Redis's growth per purchase, settlement per store
    assert re.search(r"│ \(c\) 500 purchases/s held", text), text
    assert len(re.findall(r"│ \(d\) 1,000 purchases, stock", text)) == 2, text
    held = r"\(d\) ([0-9,]+) buyers: the drop's keys in Redis hold ([0-9,]+) bytes"
    grown = re.findall(held, text)
    assert [b for b, _ in grown] == ["500", "2,000"] and all(
        int(n.replace(",", "")) > 0 for _, n in grown
    ), text
    assert re.search(r"sqlite\s+[0-9,]+ orders/s \(5,000 in", text), text
    # (f) the season: both sizes read, and compaction leaves a few hundred bytes per drop
    assert re.search(r"\s0 past drops: idle worker\s+[0-9.]+% of a core", text), text
    assert re.search(r"\s30 past drops: idle worker\s+[0-9.]+% of a core", text), text
    per_order = re.search(r"the keys alone ([0-9,]+)\)", text)
    per_drop = re.search(r"\(100 compacted\).*the keys alone ([0-9,]+) bytes per drop", text)
    assert per_order and per_drop, text
    assert int(per_drop[1].replace(",", "")) < 1_000 < 40 * int(per_order[1].replace(",", ""))


async def test_a_burst_at_variants_audits_each_one(make_stack: MakeStack, tmp_path: Path) -> None:
    """`--variants` with a mix: each variant sells out exactly, and the load tool's checks
    and the engine's audit hold per variant. The same drop from a TOML table."""
    stack = await make_stack()
    o = await _run(
        stack, variants="1KG:200:1290,2KG:120:2390:390", variant_mix="1KG:60,2KG:40",
        payment_window=30, attempts=2500, limit=3, quantities="1:70,2:30", connections=32,
    )  # fmt: skip
    assert o.ok, [c.line() for c in o.checks] + (o.audit_lines or [])
    sold = {v["code"]: (v["sold"], v["remaining"]) for v in o.drop["variants"]}
    assert sold == {"1KG": (200, 0), "2KG": (120, 0)} and o.drop["status"] == "sold_out"
    orders = [x async for x in _orders(stack, o.drop["id"])]
    assert {x.variant for x in orders} == {"1KG", "2KG"}
    deposits = {x.variant: (x.amount // x.quantity, x.balance) for x in orders if x.live}
    assert deposits["2KG"][0] == 390 and deposits["1KG"] == (1290, None)
    plan = make_plan(o.scenario, o.run, {"1KG": 0.6, "2KG": 0.4})
    picked = sum(a.variant == "1KG" for a in plan.attempts) / len(plan.attempts)
    assert 0.55 < picked < 0.65, picked

    toml = tmp_path / "cars.toml"
    toml.write_text(
        'payment_window = 60\nvariant_mix = "SUV:1"\n'
        '[[variants]]\ncode = "SEDAN"\nstock = 10\nprice = 15990000\ndeposit = 500000\n'
        '[[variants]]\ncode = "SUV"\nstock = 5\nprice = 21990000\ntitle = "SUV 7 seats"\n',
        encoding="utf-8",
    )
    sc = load(toml, {})
    assert [v.spec() for v in sc.planned_variants] == [
        {"code": "SEDAN", "title": "SEDAN", "price": 15990000, "stock": 10, "deposit": 500000},
        {"code": "SUV", "title": "SUV 7 seats", "price": 21990000, "stock": 5},
    ]
    assert sc.total_stock == 15 and sc.total_attempts == 150
    for bad in ({"variants": "1KG:20000"}, {"variants": "1KG:x:1"},
                {"variants": "A:1:1", "variant_mix": "B:1"}, {"variant_mix": "A:1"}):  # fmt: skip
        with pytest.raises(ValueError, match="variant"):
            load(None, bad)
