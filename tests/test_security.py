"""Focused security checks: another buyer's order, token algorithms, the `sub` claim and
the Idempotency-Key held to the contract's shapes, and malformed HTTP answered in JSON."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest

from tests.hostile import Client, buyer, signed
from tests.stack import SECRET, Stack

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

# ---------------------------------------------------------------------------------------
# Focused security checks.


def refused(reply: Any, status: int, code: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.body == {"error": {"code": code, "message": reply.body["error"]["message"]}}


async def test_another_buyers_order_is_404_and_stays_unpaid(stack: Stack) -> None:
    drop = await stack.new_drop(payment_window_s=600, per_buyer_limit=2)
    order = (await stack.buy(drop["id"], "owner", 2)).body["order"]
    assert order["status"] == "reserved"
    nowhere = f"{drop['id']}-{'a' * 25}"  # well formed, but no such order
    for thief in ("thief", "Owner", "owner ", "owner\u200b"):
        headers = stack.as_buyer(thief)
        for path in (f"/v1/orders/{order['id']}", f"/v1/orders/{order['id']}/pay"):
            method = "POST" if path.endswith("/pay") else "GET"
            theirs = await stack.call(method, path, headers=headers)
            missing = await stack.call(method, path.replace(order["id"], nowhere), headers=headers)
            refused(theirs, 404, "not_found")
            assert theirs.body == missing.body  # nothing tells it apart from no order at all
    mine = await stack.call("GET", f"/v1/orders/{order['id']}", headers=stack.as_buyer("owner"))
    assert mine.body["order"]["status"] == "reserved"
    paid = await stack.call(
        "POST", f"/v1/orders/{order['id']}/pay", headers=stack.as_buyer("owner")
    )
    assert (paid.status, paid.body["order"]["status"]) == (200, "paid")


ALGS = ["none", "None", "NONE", "", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256",
        "ES384", "PS256", "EdDSA", "hs256", "HS256 ", " HS256", "HS2560"]  # fmt: skip


@pytest.mark.parametrize("alg", ALGS)
async def test_only_hs256_is_taken(stack: Stack, alg: str) -> None:
    """A token under any other alg header is refused, whether its signature is an HMAC-SHA256
    with the real secret (key confusion), that alg's own HMAC, or empty."""
    drop = await stack.new_drop()
    claims = {"sub": "mallory", "exp": int(time.time()) + 600}
    tokens = [signed({"alg": alg, "typ": "JWT"}, claims)]
    tokens.append(tokens[0].rsplit(".", 1)[0] + ".")
    if alg in ("HS384", "HS512"):
        tokens.append(jwt.encode(claims, SECRET, alg))
    for tok in tokens:
        headers = {"Authorization": f"Bearer {tok}"}
        reply = await stack.call("POST", f"/v1/drops/{drop['id']}/purchase", {}, headers)
        refused(reply, 401, "unauthorized")
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["sold"] == 0
    ok = signed({"alg": "HS256", "typ": "JWT"}, claims)  # the control: HS256 is taken
    reply = await stack.call(
        "POST", f"/v1/drops/{drop['id']}/purchase", {}, {"Authorization": f"Bearer {ok}"}
    )
    assert reply.status == 201, reply.body


SUBS = {
    "x": True, "a" * 64: True, "买" * 64: True, "😀" * 64: True, "a b": True, "\u00a0": True,
    "": False, "a" * 65: False, "买" * 65: False, "\x00": False, "a\x1fb": False, "a\x7f": False,
    "alice\n": False, "\tx": False, "\ud800": False, 7: False, None: False, True: False,
    "a" * 1000: False,
}  # fmt: skip


@pytest.mark.parametrize("sub", list(SUBS), ids=[repr(s)[:20] for s in SUBS])
async def test_sub_is_1_to_64_characters_without_control_characters(stack: Stack, sub: Any) -> None:
    drop = await stack.new_drop(stock=5)
    tok = signed({"alg": "HS256", "typ": "JWT"}, {"sub": sub, "exp": int(time.time()) + 600})
    reply = await stack.call(
        "POST", f"/v1/drops/{drop['id']}/purchase", {}, {"Authorization": f"Bearer {tok}"}
    )
    if SUBS[sub]:
        assert reply.status == 201, reply.body
        assert reply.body["order"]["buyer"] == sub
    else:
        refused(reply, 401, "unauthorized")
        assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["sold"] == 0


async def test_idempotency_key_is_1_to_128_printable_ascii(stack: Stack) -> None:
    drop = await stack.new_drop(stock=100, per_buyer_limit=100)
    path = f"/v1/drops/{drop['id']}/purchase"
    printable_ascii = "".join(chr(c) for c in range(0x21, 0x7F))
    good = ["k", "k" * 128, printable_ascii, printable_ascii[::-1][:128]]
    bad = ["k" * 129, "k" * 5000, "a b", "k\u00e9", "ключ", "k\u2028k", "\u00a0k"]
    for i, key in enumerate(good):
        headers = stack.as_buyer(f"good-{i}") | {"Idempotency-Key": key}
        first = await stack.call("POST", path, {"quantity": 1}, headers)
        again = await stack.call("POST", path, {"quantity": 1}, headers)
        assert (first.status, again.status) == (201, 200), (key, first.body, again.body)
        assert first.body == again.body
    host, port = stack.base.removeprefix("http://").rsplit(":", 1)
    client = Client(host, int(port))  # sends the key's UTF-8 bytes as they are
    for key in bad:
        raw_headers = buyer("bad") | {"Idempotency-Key": key.encode()}
        answer = await asyncio.to_thread(client.send, "POST", path, b"{}", raw_headers)
        assert answer.status == 400 and answer.json["error"]["code"] == "invalid_request", (
            key,
            str(answer),
        )
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["sold"] == len(good)


TOO_LONG = (b"414", "uri_too_long")  # RFC 9112: a request target too long to parse
MALFORMED_HTTP = {
    "control character in the path": b"GET /v1/drops/\x01 HTTP/1.1\r\n",
    "raw UTF-8 in the path": "GET /v1/drops/ключ HTTP/1.1\r\n".encode(),
    "raw byte in the query": b"GET /v1/drops?room=\xff HTTP/1.1\r\n",
    "unknown method": b"BREW /v1/drops HTTP/1.1\r\n",
    "control character in a header": b"GET /v1/drops HTTP/1.1\r\nX-A: a\x01b\r\n",
    "request line over 8 KiB": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n",
    "Content-Length not a number": b"POST /v1/drops HTTP/1.1\r\nContent-Length: -1\r\n",
}


@pytest.mark.parametrize("request_head", list(MALFORMED_HTTP.values()), ids=list(MALFORMED_HTTP))
async def test_malformed_http_is_answered_in_the_contract_shape(
    stack: Stack, request_head: bytes
) -> None:
    host, port = stack.base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request_head + b"Host: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status, code = (
        TOO_LONG if request_head.startswith(b"GET /aaaa") else (b"400", "invalid_request")
    )
    assert head.split(b" ")[1] == status, raw[:200]
    assert b"content-type: application/json" in head.lower(), raw[:300]
    assert json.loads(body)["error"]["code"] == code
    assert request_head.split(b" ")[1][:40] not in body  # the request is not echoed back
    assert (await stack.call("GET", "/healthz")).status == 200  # and it lives on
