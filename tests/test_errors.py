"""Every error code of the contract, each from a real request, each in the contract's shape."""

from __future__ import annotations

import time

import jwt
import pytest

from flashsale.redis_server import free_port
from tests.stack import SECRET, MakeStack, Reply, Stack


def error(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert set(reply.body) == {"error"}
    assert reply.body["error"]["code"] == code
    assert isinstance(reply.body["error"]["message"], str) and reply.body["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"sku": "x"',  # malformed JSON
        b"[]",
        b'{"sku": "x", "title": "t", "price": 1, "currency": "CNY"}',  # stock missing
        b'{"sku": "x", "title": "t", "price": -1, "currency": "CNY", "stock": 1}',
        b'{"sku": "x", "title": "t", "price": 1, "currency": "cny", "stock": 1}',
        b'{"sku": "x", "title": "t", "price": 1, "currency": "CNY", "stock": 0}',
        b'{"sku": "x", "title": "t", "price": 1, "currency": "CNY", "stock": 1000000001}',
        b'{"sku": "", "title": "t", "price": 1, "currency": "CNY", "stock": 1}',
        b'{"sku": "x", "title": "t", "price": 1.5, "currency": "CNY", "stock": 1}',
        b'{"sku": "x", "title": "t", "price": 1, "currency": "CNY", "stock": 1, "limit": 2}',
        b'{"sku": "x", "title": "t", "price": 1, "currency": "CNY", "stock": 1, '
        b'"opens_at": "tomorrow"}',
        b'{"sku": "x", "title": "t", "price": 1, "currency": "CNY", "stock": 1, '
        b'"per_buyer_limit": 0}',
        b'{"sku": "x", "title": "t\\u0000", "price": 1, "currency": "CNY", "stock": 1}',
        b"\xff\xfe",
    ],
)
async def test_bad_drop_bodies_are_400(stack: Stack, body: bytes) -> None:
    error(
        await stack.call("POST", "/v1/drops", data=body, headers=stack.as_host),
        400,
        "invalid_request",
    )
    assert (await stack.call("GET", "/v1/drops")).body == {"drops": [], "next": None}  # none made


async def test_bad_purchase_input_is_400(stack: Stack) -> None:
    drop = await stack.new_drop()
    path = f"/v1/drops/{drop['id']}/purchase"
    buyer = stack.as_buyer("a")
    for body in (
        b'{"quantity": 0}',
        b'{"quantity": "1"}',
        b'{"quantity": 1e3}',
        b"{",
        b'{"quantity": 1, "buyer": "someone-else"}',
    ):
        error(await stack.call("POST", path, data=body, headers=buyer), 400, "invalid_request")
    for key in ("", "k" * 129, "with space", "ключ"):
        headers = buyer | {"Idempotency-Key": key}
        error(await stack.call("POST", path, {"quantity": 1}, headers), 400, "invalid_request")
    restock = f"/v1/drops/{drop['id']}/restock"
    error(
        await stack.call("POST", restock, {"quantity": -5}, stack.as_host), 400, "invalid_request"
    )
    orders = f"/v1/drops/{drop['id']}/orders"
    for query in ("?limit=0", "?limit=10001", "?limit=x", "?after=nonsense!", "?format=xml"):
        error(
            await stack.call("GET", orders + query, headers=stack.as_host), 400, "invalid_request"
        )
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["sold"] == 0


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_credentials(stack: Stack) -> None:
    drop = await stack.new_drop()
    path = f"/v1/drops/{drop['id']}/purchase"
    now = int(time.time())
    forged = {
        "none": None,
        "garbage": "not-a-token",
        "expired": jwt.encode({"sub": "a", "exp": now - 10}, SECRET, "HS256"),
        "other secret": jwt.encode({"sub": "a", "exp": now + 60}, "x" * 40, "HS256"),
        "no exp": jwt.encode({"sub": "a"}, SECRET, "HS256"),
        "sub too long": jwt.encode({"sub": "a" * 65, "exp": now + 60}, SECRET, "HS256"),
        "alg none": jwt.encode({"sub": "a", "exp": now + 60}, None, "none"),
        "HS512": jwt.encode({"sub": "a", "exp": now + 60}, SECRET, "HS512"),
    }
    for name, token in forged.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = await stack.call("POST", path, {"quantity": 1}, headers)
        error(reply, 401, "unauthorized")
        assert name and "Bearer" in reply.headers.get("WWW-Authenticate", "")
    error(
        await stack.call("POST", "/v1/drops", {}, {"Authorization": "Basic eDp5"}),
        401,
        "unauthorized",
    )
    # Valid credentials of the wrong role.
    error(await stack.call("POST", "/v1/drops", {}, stack.as_buyer("a")), 403, "forbidden")
    error(
        await stack.call("POST", f"/v1/drops/{drop['id']}/close", None, stack.as_buyer("a")),
        403,
        "forbidden",
    )
    error(await stack.call("POST", path, {"quantity": 1}, stack.as_host), 403, "forbidden")
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["status"] == "live"


async def test_not_found_and_wrong_methods(stack: Stack) -> None:
    drop = await stack.new_drop()
    error(await stack.call("GET", "/v1/nothing-here"), 404, "not_found")
    error(await stack.call("GET", "/v1/drops/aaaaaaaaaaaa"), 404, "not_found")
    error(await stack.call("GET", "/v1/drops/../etc"), 404, "not_found")
    error(await stack.buy("aaaaaaaaaaaa", "a"), 404, "not_found")
    error(await stack.buy("{bad}", "a"), 404, "not_found")
    error(
        await stack.call("POST", "/v1/drops/aaaaaaaaaaaa/open", None, stack.as_host),
        404,
        "not_found",
    )
    order = (await stack.buy(drop["id"], "owner")).body["order"]
    error(
        await stack.call("GET", f"/v1/orders/{order['id']}", headers=stack.as_buyer("other")),
        404,
        "not_found",
    )
    error(
        await stack.call("POST", f"/v1/orders/{order['id']}/pay", headers=stack.as_buyer("other")),
        404,
        "not_found",
    )
    error(
        await stack.call("GET", "/v1/orders/nope", headers=stack.as_buyer("owner")),
        404,
        "not_found",
    )
    host_view = await stack.call("GET", f"/v1/orders/{order['id']}", headers=stack.as_host)
    assert host_view.body["order"]["id"] == order["id"]  # a host reads any order
    reply = await stack.call("DELETE", f"/v1/drops/{drop['id']}")
    error(reply, 405, "method_not_allowed")
    assert "POST" in reply.headers.get("Allow", "") or "GET" in reply.headers.get("Allow", "")
    error(await stack.call("GET", f"/v1/drops/{drop['id']}/purchase"), 405, "method_not_allowed")


async def test_refusals_in_contract_order(stack: Stack) -> None:
    pending = await stack.new_drop(open_it=False)
    error(await stack.buy(pending["id"], "a"), 409, "not_live")
    drop = await stack.new_drop(stock=3, per_buyer_limit=2)
    error(await stack.buy(drop["id"], "a", 3), 409, "limit_reached")
    assert (await stack.buy(drop["id"], "a", 2)).status == 201
    error(await stack.buy(drop["id"], "a", 1), 409, "limit_reached")
    error(await stack.buy(drop["id"], "b", 2), 409, "sold_out")  # sold_out is checked first
    confirmed = (await stack.buy(drop["id"], "b", 1)).body["order"]
    error(
        await stack.call("POST", f"/v1/orders/{confirmed['id']}/pay", headers=stack.as_buyer("b")),
        409,
        "not_payable",
    )
    await stack.call("POST", f"/v1/drops/{drop['id']}/close", None, stack.as_host)
    error(await stack.buy(drop["id"], "c"), 409, "not_live")


async def test_idempotency_conflict_is_422(stack: Stack) -> None:
    drop = await stack.new_drop(per_buyer_limit=2)
    first = await stack.buy(drop["id"], "a", 1, key="k-1")
    assert first.status == 201
    error(await stack.buy(drop["id"], "a", 2, key="k-1"), 422, "idempotency_conflict")
    replay = await stack.buy(drop["id"], "a", 1, key="k-1")
    assert (replay.status, replay.body) == (200, first.body)
    other_buyer = await stack.buy(drop["id"], "b", 2, key="k-1")  # keys are per buyer
    assert other_buyer.status == 201
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["sold"] == 3


async def test_oversized_bodies_are_413(stack: Stack) -> None:
    big = b'{"sku": "' + b"x" * 17_000 + b'"}'
    error(
        await stack.call("POST", "/v1/drops", data=big, headers=stack.as_host),
        413,
        "payload_too_large",
    )

    async def chunked():  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b"x" * 1024

    async with stack.http.post(
        stack.base + "/v1/drops", data=chunked(), headers=stack.as_host
    ) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "payload_too_large"


async def test_rate_limited_with_retry_after(make_stack: MakeStack) -> None:
    stack = await make_stack(buyer_rate=0.01, buyer_burst=2)
    drop = await stack.new_drop(stock=10, per_buyer_limit=10)
    assert (await stack.buy(drop["id"], "bot")).status == 201
    assert (await stack.buy(drop["id"], "bot")).status == 201
    reply = await stack.buy(drop["id"], "bot")
    error(reply, 429, "rate_limited")
    assert int(reply.headers["Retry-After"]) >= 1
    assert (await stack.buy(drop["id"], "human")).status == 201  # others are not held back
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["sold"] == 3


async def test_redis_unreachable_is_503_with_retry_after(make_stack: MakeStack) -> None:
    stack = await make_stack(redis_url=f"redis://127.0.0.1:{free_port()}", worker=False)
    token = stack.as_buyer("a")
    started = time.monotonic()
    reply = await stack.call("POST", "/v1/drops/aaaaaaaaaaaa/purchase", {"quantity": 1}, token)
    error(reply, 503, "unavailable")
    assert reply.headers["Retry-After"] == "1"
    assert time.monotonic() - started < 5
    error(await stack.call("GET", "/v1/drops/aaaaaaaaaaaa"), 503, "unavailable")
    error(await stack.call("GET", "/readyz"), 503, "unavailable")
    assert (await stack.call("GET", "/healthz")).status == 200
