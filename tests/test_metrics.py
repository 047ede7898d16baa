"""GET /metrics (Prometheus text) and the request id on every answer and log line."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flashsale.gateway.auth import Auth
from flashsale.redis_server import free_port
from tests.processes import flashsale_env, spawn_logged, wait_ready
from tests.stack import MakeStack, Reply, Stack

ROOT = Path(__file__).resolve().parent.parent
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(base: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        return samples(await r.text())


def request_id(reply: Reply) -> str:
    return {k.lower(): v for k, v in reply.headers.items()}["x-request-id"]


def purchases(seen: Samples, outcome: str) -> float:
    return seen.get(("flashsale_purchases_total", (("outcome", outcome),)), 0.0)


async def test_purchases_by_outcome_latency_batches_and_what_redis_knows(stack: Stack) -> None:
    drop = await stack.new_drop(stock=3, per_buyer_limit=3)
    before = await scrape(stack.base)
    assert ("flashsale_purchases_total", (("outcome", "sold_out"),)) in before  # from the start
    for i in range(3):
        assert (await stack.buy(drop["id"], f"b{i}", key="k")).status == 201
    assert (await stack.buy(drop["id"], "b0", key="k")).status == 200
    assert (await stack.buy(drop["id"], "late")).code == "sold_out"
    bad = await stack.call("POST", f"/v1/drops/{drop['id']}/purchase", {"quantity": 1})
    assert bad.code == "unauthorized"
    await stack.settle()
    after = await scrape(stack.base)

    for outcome, n in {"created": 3, "replay": 1, "sold_out": 1, "unauthorized": 1}.items():
        assert purchases(after, outcome) - purchases(before, outcome) == n, outcome
    route = (("route", "/v1/drops/{id}/purchase"),)
    timed = ("flashsale_request_seconds_count", route)
    assert after[timed] - before.get(timed, 0) == 6
    batches = after[("flashsale_redis_batch_size_count", ())]
    assert batches - before.get(("flashsale_redis_batch_size_count", ()), 0) >= 1
    assert after[("flashsale_drop_remaining", (("drop", drop["id"]),))] == 0
    assert after[("flashsale_drop_sold", (("drop", drop["id"]),))] == 3
    assert after[("flashsale_settlement_backlog", ())] == 0
    assert after[("flashsale_settlement_lag_seconds", ())] == 0
    assert after[("flashsale_stream_settled_events_total", ())] >= 3


async def test_the_backlog_is_shown_per_redis_node(make_stack: MakeStack) -> None:
    stack = await make_stack(worker=False)  # nothing settles: the backlog stays
    drop = await stack.new_drop(stock=5, per_buyer_limit=5)
    for i in range(3):
        assert (await stack.buy(drop["id"], f"b{i}")).status == 201
    seen = await scrape(stack.base)
    total = seen[("flashsale_settlement_backlog", ())]
    assert total >= 1
    assert seen[("flashsale_settlement_node_backlog", (("node", "redis"),))] == total


async def test_every_answer_carries_a_request_id(stack: Stack) -> None:
    mine = await stack.call("GET", "/v1/drops", headers={"X-Request-Id": "trace-42"})
    assert request_id(mine) == "trace-42"
    made = await stack.call("GET", "/v1/nothing-here")
    assert made.status == 404 and len(request_id(made)) > 4
    forged = await stack.call("GET", "/v1/drops", headers={"X-Request-Id": "x" * 300})
    assert request_id(forged) != "x" * 300  # not echoed: a fresh one


async def test_gateway_processes_add_up_and_log_json_with_request_ids(
    redis_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    secret = "metrics-test-secret-of-at-least-32-bytes"
    env = flashsale_env(
        redis_url, sqlite_url, FLASHSALE_DATA_DIR=str(tmp_path), FLASHSALE_HOST_KEYS="hk",
        FLASHSALE_TOKEN_SECRET=secret, FLASHSALE_BUYER_RATE="0",
    )  # fmt: skip
    log = tmp_path / "serve.log"
    gateway = spawn_logged("--log-format", "json", "serve", "--port", str(port), "--workers",
                           "2", env=env, log=log)  # fmt: skip
    try:
        await wait_ready(base, lambda: gateway.poll() is None, log.read_text)
        async with aiohttp.ClientSession() as http:
            host = {"Authorization": "Bearer hk"}
            spec = {"sku": "S", "title": "蘑菇", "price": 990, "currency": "CNY", "stock": 40}
            async with http.post(f"{base}/v1/drops", json=spec, headers=host) as r:
                drop = (await r.json())["id"]
            async with http.post(f"{base}/v1/drops/{drop}/open", headers=host) as r:
                assert r.status == 200
            auth = Auth(secret, ["hk"])

            async def buy(i: int) -> int:
                headers = {"Authorization": f"Bearer {auth.mint(f'p{i}')}"}
                async with aiohttp.ClientSession() as own:  # own connection: either process
                    url = f"{base}/v1/drops/{drop}/purchase"
                    async with own.post(url, json={}, headers=headers) as r:
                        return r.status

            assert await asyncio.gather(*(buy(i) for i in range(30))) == [201] * 30
            # A scrape reaches one process; each must tell the total of both.
            for _ in range(6):
                async with aiohttp.ClientSession() as own, own.get(f"{base}/metrics") as r:
                    seen = samples(await r.text())
                assert purchases(seen, "created") == 30
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.to_thread(gateway.wait, 30)
    assert gateway.returncode == 0, log.read_text()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, log.read_text()
    assert all({"time", "level", "name", "message", "request_id"} <= line.keys() for line in lines)
    assert any(line["message"].startswith("gateway listening") for line in lines)


async def test_a_log_line_written_for_a_request_carries_its_id(
    make_stack: MakeStack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = await make_stack(redis_url=f"redis://127.0.0.1:{free_port()}", worker=False)
    with caplog.at_level(logging.WARNING):
        reply = await stack.call(
            "GET", "/v1/drops/aaaaaaaaaaaa", headers={"X-Request-Id": "tap-7f3a"}
        )
    assert reply.status == 503 and request_id(reply) == "tap-7f3a"
    assert [r.request_id for r in caplog.records if "unavailable" in r.getMessage()] == ["tap-7f3a"]


async def test_the_dashboard_asks_only_for_metrics_the_gateway_serves(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(webhook_allow_private=True)
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["order.created"]}  # its series exist
    assert (await stack.call("POST", "/v1/webhooks", hook, stack.as_host)).status == 201
    drop = await stack.new_drop(stock=2)
    assert (await stack.buy(drop["id"], "a")).status == 201
    await stack.settle()
    async with aiohttp.ClientSession() as http, http.get(f"{stack.base}/metrics") as r:
        served = {s.name for f in text_string_to_metric_families(await r.text()) for s in f.samples}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "flashsale.json").read_text())
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bflashsale_[a-z_]+", target["expr"])
    }
    assert len(asked) >= 8
    assert asked <= served, f"not served: {sorted(asked - served)}"


async def test_a_scrape_reads_the_active_set_once(stack: Stack) -> None:
    """With the set's feed down every reading is a full pass over all drops: a scrape takes
    all its figures over one reading, and they still count what is there."""
    from flashsale.engine import Engine
    from flashsale.gateway.metrics import from_redis

    await stack.buy((await stack.new_drop(stock=5))["id"], "alice")
    engine = Engine.from_url(stack.settings.redis_url)  # its active set never follows the feed
    try:
        families = {f.name: f for f in await from_redis(engine)}
        assert engine.active.passes == 1
    finally:
        await engine.close()
    assert [s.value for s in families["flashsale_drop_remaining"].samples] == [4]
