"""Hostile input: hundreds of generated requests over every endpoint of the contract, as real
HTTP against the real gateway, each held to the contract.

The requests come from hypothesis (a fixed number per family, derandomized, no example
database, so every run sends the same ones). They cover malformed JSON, wrong types, huge,
negative and float numbers, NaN and Infinity literals, deep nesting, unicode and control
characters in bodies, path segments, query strings and the Idempotency-Key header, forged,
expired, `alg: none` and foreign-algorithm tokens, bad `sub` claims, buyer tokens on host
endpoints, host key variants, wrong methods, oversized bodies and unknown paths.

Every answer must be below 500; every error must be exactly {"error": {"code", "message"}}
as application/json with the code its status calls for. Afterwards the gateway still
serves, and nothing was lost: the drops' books (remaining + sold == stock) moved only by the
requests that were answered with success, and the audit holds.

The hypothesis runs are synchronous (http.client, which sends any bytes we ask it to), so
they run in a worker thread while the session's event loop serves the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack import HOST_KEY, SECRET, Stack

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

MAX_BODY = 16 * 1024
MIN_REQUESTS = 200
CODES: dict[int, set[str]] = {
    400: {"invalid_request"},
    401: {"unauthorized"},
    403: {"forbidden"},
    404: {"not_found"},
    405: {"method_not_allowed"},
    409: {"not_live", "sold_out", "limit_reached", "expired", "not_payable"},
    413: {"payload_too_large"},
    422: {"idempotency_conflict"},
    429: {"rate_limited"},
}
BUYER_ID = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]{1,64}")  # the contract's sub: 1..64 chars
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")  # 1..128 printable ASCII characters


def examples(n: int) -> Callable[[Any], Any]:
    """Fixed, reproducible hypothesis runs: n examples, the same ones every time."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# ---------------------------------------------------------------------------------------
# The client: one fresh connection per request, any bytes in path, headers and body.


@dataclass
class Answer:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    def __str__(self) -> str:
        return f"{self.method} {self.path[:200]} -> {self.status} {self.raw[:300]!r}"


@dataclass
class Client:
    host: str
    port: int
    sent: int = 0
    routes: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str | bytes] | None = None,
        *,
        chunked: bool = False,
        route: str | None = None,
        read_body: bool = True,
    ) -> Answer:
        """Sends one request; `path` must already be percent-encoded ASCII."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            elif body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            if body is not None:
                try:
                    if chunked:
                        for i in range(0, len(body), 1024):
                            piece = body[i : i + 1024]
                            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        conn.send(b"0\r\n\r\n")
                    else:
                        conn.send(body)
                except OSError:
                    pass  # the server may answer (413) and close before it read it all
            r = conn.getresponse()
            # An event stream (200 on /live) never ends: only its headers are read.
            streaming = not read_body and r.status == 200
            raw = b"" if streaming or method == "HEAD" else r.read()
            answer = Answer(method, path, r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
        finally:
            conn.close()
        with self.lock:
            self.sent += 1
            self.routes.add(f"{method} {route or path}")
        return answer


def check(answer: Answer, *expected: int) -> Answer:
    """Every answer: no 5xx; an error is the contract's shape and code; the status is one of
    `expected` when given."""
    assert answer.status < 500, str(answer)
    if expected:
        assert answer.status in expected, f"expected {expected}: {answer}"
    if answer.status >= 400:
        assert answer.headers.get("content-type", "").startswith("application/json"), str(answer)
        if answer.method == "HEAD":
            return answer
        body = answer.json
        assert isinstance(body, dict) and set(body) == {"error"}, str(answer)
        assert isinstance(body["error"], dict) and set(body["error"]) == {"code", "message"}
        assert isinstance(body["error"]["code"], str), str(answer)
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert body["error"]["code"] in CODES[answer.status], str(answer)
        if answer.status == 401:
            assert "Bearer" in answer.headers.get("www-authenticate", ""), str(answer)
        if answer.status == 405:
            assert answer.headers.get("allow"), str(answer)
        if answer.status == 429:
            assert int(answer.headers["retry-after"]) >= 1, str(answer)
    return answer


# ---------------------------------------------------------------------------------------
# Tokens and headers.


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(header: Any, payload: Any, *, raw_payload: bytes | None = None) -> str:
    """A token HMAC-SHA256-signed with the real secret, whatever its header and claims say."""
    head = b64(json.dumps(header).encode())
    body = b64(raw_payload if raw_payload is not None else json.dumps(payload).encode())
    mac = hmac.digest(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256)
    return f"{head}.{body}.{b64(mac)}"


def token(sub: Any, ttl: int = 3600) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + ttl}, SECRET, "HS256")


def bearer(value: str | bytes) -> dict[str, str | bytes]:
    """Authorization: Bearer <value>, as UTF-8 bytes (or the very bytes given)."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    return {"Authorization": b"Bearer " + value}


HOST: dict[str, str | bytes] = bearer(HOST_KEY)
NOBODY: dict[str, str | bytes] = {}


def buyer(name: str) -> dict[str, str | bytes]:
    return bearer(token(name))


def forged_tokens() -> st.SearchStrategy[str | bytes]:
    """Tokens no gateway may take: every one of them must be 401."""
    now = int(time.time())
    good = {"sub": "mallory", "exp": now + 3600}
    hs256 = {"alg": "HS256", "typ": "JWT"}
    literal = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"null", b"[]"]
    return st.one_of(
        # alg none, in every spelling, with and without a signature
        st.builds(
            lambda alg, sig: (
                f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}."
                f"{b64(json.dumps(good).encode())}.{sig}"
            ),
            st.sampled_from(["none", "None", "NONE", "nOnE", ""]),
            st.sampled_from(["", "AAAA", b64(b"x" * 32)]),
        ),
        # other algorithms: signed properly with them, or an HMAC under their name
        st.builds(lambda alg: jwt.encode(good, SECRET, alg), st.sampled_from(["HS384", "HS512"])),
        st.builds(
            lambda alg: signed({"alg": alg, "typ": "JWT"}, good),
            st.sampled_from(
                ["HS384", "HS512", "RS256", "RS512", "ES256", "PS256", "EdDSA", "hs256", "HS256 "]
            ),
        ),
        # HS256, but another secret, or expired, or bad claims signed with the real secret
        st.builds(
            lambda secret: jwt.encode(good, secret, "HS256"),
            st.text(min_size=1, max_size=40).filter(lambda s: s != SECRET),
        ),
        st.builds(
            lambda ago: jwt.encode({"sub": "mallory", "exp": now - ago}, SECRET, "HS256"),
            st.integers(min_value=1, max_value=10**9),
        ),
        st.builds(
            lambda exp: signed(hs256, None, raw_payload=b'{"sub":"mallory","exp":' + exp + b"}"),
            st.sampled_from(literal),
        ),
        st.builds(
            lambda sub: signed(hs256, {"sub": sub, "exp": now + 3600}),
            st.one_of(
                st.text(min_size=65, max_size=300),
                st.just(""),
                st.text(min_size=1, max_size=10).map(lambda s: s + "\x00"),
                st.sampled_from(["\x1f", "a\nb", "\x7f", "\ud800", "a\udfffb", "\t"]),
                st.integers(),
                st.floats(allow_nan=False),
                st.booleans(),
                st.none(),
                st.lists(st.integers(), max_size=3),
                st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
            ),
        ),
        st.just(signed(hs256, {"exp": now + 3600})),  # no sub
        st.just(signed(hs256, {"sub": "mallory"})),  # no exp
        st.just(signed(hs256, None, raw_payload=b"[1, 2]")),
        st.just(signed(hs256, None, raw_payload=b"not json")),
        # tampered: a valid token with its payload swapped or its signature changed
        st.builds(
            lambda sub: (
                token("mallory").rsplit(".", 2)[0]
                + "."
                + b64(json.dumps({"sub": sub, "exp": now + 3600}).encode())
                + "."
                + token("mallory").rsplit(".", 1)[1]
            ),
            st.text(min_size=1, max_size=20).filter(lambda s: s != "mallory"),
        ),
        st.builds(lambda t: t[:-3] + ("AAA" if t[-3:] != "AAA" else "BBB"), st.just(token("m"))),
        # garbage, including non-ASCII and bytes that are not UTF-8
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF), min_size=1),
        st.binary(min_size=1, max_size=60).map(
            lambda b: bytes(c for c in b if c >= 0x21 and c != 0x7F) or b"\xff"
        ),
        st.sampled_from(["a.b.c", "..", ".", "e30.e30.", "e30.e30.e30", HOST_KEY + "x"]),
    )


# ---------------------------------------------------------------------------------------
# Path segments, query values, JSON bodies.

RAW_SEGMENTS = [
    "%ff", "%ED%A0%80", "%00", "%0a", "%2F", "a%2Fb", "%zz", "%", "~", "aaaaaaaaaaaa",
    "%E2%80%AE", "%F0%9F%92%A5", "AAAAAAAAAAAA", "0", "-1", "1e3", "null", "%20",
    "a" * 4000, "aaaaaaaaaaaa-aaaaaaaaaaaaaaaaaaaaaaaaa", "{id}", "%7Bid%7D",
]  # fmt: skip


def segments() -> st.SearchStrategy[str]:
    """One percent-encoded path segment: never a real id, never a dot segment."""
    text = st.text(min_size=1, max_size=80).filter(lambda s: s not in (".", ".."))
    return st.one_of(
        text.map(lambda s: urllib.parse.quote(s, safe="")), st.sampled_from(RAW_SEGMENTS)
    )


# Cursors: s1; s + 20 nines (past 64 bits); s + 18 and 19 nines; not base64; s-1; "s1\n".
CURSORS = ["czE", "czk5OTk5OTk5OTk5OTk5OTk5OTk5", "czk5OTk5OTk5OTk5OTk5OTk5OQ",
           "czk5OTk5OTk5OTk5OTk5OTk5OTk", "!!!", "cy0x", "czEK", "", "="]  # fmt: skip


def query_values() -> st.SearchStrategy[str]:
    """One percent-encoded query value."""
    return st.one_of(
        st.text(max_size=60).map(lambda s: urllib.parse.quote(s, safe="")),
        st.sampled_from(
            ["%ff%fe", "%ED%A0%80", "%00", "%", "%zz", "a&b", "1%00", "+", "%2B", "5%0A", "5%0D"]
        ),
    )


OPENS_AT = [
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2030-01-01T00:00:00Z",
    "2030-01-01T00:00:00", "2030-02-30T00:00:00Z", "2030-01-01T00:00:00+25:00",
    "2030-01-01", "2030-01-01T00:00:00.123456789Z", "2030-01-01T00:00:00Z\n",
]  # fmt: skip
OPENS_AT_END = 253_402_300_800  # 10000-01-01T00:00:00Z


def opens_at_is_valid(value: Any) -> bool:
    """RFC 3339 with an offset, and a UTC time between 1970 and 9999."""
    if value is None:
        return True
    if not isinstance(value, str) or not re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", value
    ):
        return False
    try:
        when = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value))
    except ValueError:
        return False
    return 0 <= when.timestamp() < OPENS_AT_END


JSON_LITERALS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"0x10", b"01", b"+1",
                 b"1.", b".5", b"undefined", b"'x'", b"True", b"None"]  # fmt: skip


def hostile_values() -> st.SearchStrategy[Any]:
    """A JSON value for one field: wrong types, extremes, unicode, nesting."""
    return st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, 1, -1, 2**31, 2**53, 2**53 - 1, 2**63, 2**64, 10**9, 10**9 + 1]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([1.0, 1.5, -0.0, 1e308, 5e-324]),
        st.booleans(),
        st.none(),
        st.text(max_size=250),
        st.sampled_from(OPENS_AT),
        st.sampled_from(
            [
                "",
                "CNY",
                "cny",
                "CNY\n",
                "a\n",
                "\uff23\uff2e\uff39",
                "C\x00Y",
                "\u202eCNY",
                "a" * 65,
                "x\ty",
            ]
        ),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    )


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def malformed_bodies() -> st.SearchStrategy[bytes]:
    """Bodies that are not one JSON object at all, or not valid JSON."""
    return st.one_of(
        st.binary(max_size=200).filter(lambda b: b.strip() and not json_object(b)),
        st.sampled_from(
            [
                b"",
                b" ",
                b"{",
                b"}",
                b"[]",
                b"null",
                b"1",
                b'"x"',
                b"{,}",
                b'{"a":1,}',
                b"{'a': 1}",
                b'{"a" 1}',
                b"\xef\xbb\xbf{}",
                b"{}{}",
                b'{"quantity": 1} x',
                b"/* c */ {}",
                b'{"\\ud800": 1}',
                b'{"a": "\\x41"}',
                b"\xff\xfe{\x00}\x00",
                b"\x00",
            ]
        ),
        st.builds(lambda lit: b'{"quantity": ' + lit + b"}", st.sampled_from(JSON_LITERALS)),
        st.builds(
            lambda depth, opener: (
                b'{"quantity": '
                + opener * depth
                + (b"]" if opener == b"[" else b"}") * depth
                + b"}"
            ),
            st.integers(min_value=10, max_value=8000),
            st.sampled_from([b"["]),
        ),
        st.builds(
            lambda depth: b'{"a":' * depth + b"1" + b"}" * depth,
            st.integers(min_value=10, max_value=2500),
        ),
        st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(1, 8000)),
    ).filter(lambda b: b.strip())  # an empty body is a purchase of 1


def create_cases() -> st.SearchStrategy[tuple[str, str, Any]]:
    """(what, field, value): set a field to a hostile value, leave one out, or send junk."""
    return st.one_of(
        st.tuples(
            st.just("set"), st.sampled_from([*DROP_FIELDS, "id", "sold", "buyer"]), hostile_values()
        ),
        st.tuples(st.just("drop"), st.sampled_from(DROP_FIELDS), st.none()),
        st.tuples(st.just("body"), st.just(""), malformed_bodies()),
    )


# ---------------------------------------------------------------------------------------
# Oracles: what the contract says each body must get.

DROP_FIELDS = ("sku", "title", "price", "currency", "stock", "per_buyer_limit", "room",
               "opens_at", "payment_window_s")  # fmt: skip
MAX_EXACT = 2**53 - 1


def is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def printable(v: Any, high: int) -> bool:
    return isinstance(v, str) and 1 <= len(v) <= high and not re.search(r"[\x00-\x1f\x7f]", v)


def drop_is_valid(spec: dict[str, Any]) -> bool:
    """The contract's limits at creation (and the documented 2^53 cap on amounts)."""
    if not set(spec) <= set(DROP_FIELDS):
        return False
    if not {"sku", "title", "price", "currency", "stock"} <= set(spec):
        return False
    limit = spec.get("per_buyer_limit", 1)
    window = spec.get("payment_window_s", 0)
    room = spec.get("room")
    return (
        printable(spec["sku"], 64)
        and printable(spec["title"], 200)
        and is_int(spec["price"])
        and 0 <= spec["price"] <= MAX_EXACT
        and isinstance(spec["currency"], str)
        and re.fullmatch(r"[A-Z]{3}", spec["currency"]) is not None
        and is_int(spec["stock"])
        and 1 <= spec["stock"] <= 10**9
        and is_int(limit)
        and 1 <= limit <= 10**9
        and spec["price"] * limit <= MAX_EXACT
        and (room is None or printable(room, 64))
        and opens_at_is_valid(spec.get("opens_at"))
        and is_int(window)
        and 0 <= window <= 7 * 86400
    )


def quantity_of(body: Any, default: int | None) -> int | None:
    """The quantity a purchase (default 1) or restock (required) body asks for, or None if
    the body is not valid."""
    if not isinstance(body, dict) or set(body) - {"quantity"}:
        return None
    q = body.get("quantity", default)
    return q if is_int(q) and 1 <= q <= 10**9 else None


def json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------
# The world the battery runs in.


@dataclass
class World:
    client: Client
    live: dict[str, Any]  # the ledger drop: purchases and restocks move it
    pending: dict[str, Any]
    windowed: dict[str, Any]
    reserved: dict[str, Any]  # an order of buyer "owner", reserved until paid
    bought: list[tuple[str, int]] = field(default_factory=list)  # (order id, quantity)
    restocked: int = 0
    created: list[str] = field(default_factory=list)


async def drop_view(stack: Stack, drop_id: str) -> dict[str, Any]:
    reply = await stack.call("GET", f"/v1/drops/{drop_id}")
    assert reply.status == 200, reply.body
    view: dict[str, Any] = reply.body
    return view


@pytest.fixture
async def world(stack: Stack) -> World:
    host, port = stack.base.removeprefix("http://").rsplit(":", 1)
    live = await stack.new_drop(stock=5000, per_buyer_limit=10**6, price=7, room="hall")
    pending = await stack.new_drop(open_it=False, stock=50, room="hall")
    windowed = await stack.new_drop(stock=20, per_buyer_limit=5, payment_window_s=3600)
    reply = await stack.buy(windowed["id"], "owner", 2)
    assert reply.status == 201, reply.body
    assert reply.body["order"]["status"] == "reserved"
    return World(Client(host, int(port)), live, pending, windowed, reply.body["order"])


# ---------------------------------------------------------------------------------------
# The families. Each is a synchronous hypothesis run; the battery runs them in a thread.


def family_drop_paths(w: World) -> None:
    """Hostile drop ids on every drop endpoint, as nobody, a buyer and a host."""
    endpoints = {
        "GET /v1/drops/{id}": (None, {"anyone"}),
        "POST /v1/drops/{id}/open": (None, {"host"}),
        "POST /v1/drops/{id}/close": (None, {"host"}),
        "POST /v1/drops/{id}/restock": (b'{"quantity": 1}', {"host"}),
        "GET /v1/drops/{id}/orders": (None, {"host"}),
        "POST /v1/drops/{id}/purchase": (b'{"quantity": 1}', {"buyer"}),
    }
    who = {"nobody": NOBODY, "buyer": buyer("fuzzer"), "host": HOST}

    @examples(60)
    @given(st.sampled_from(sorted(endpoints)), segments(), st.sampled_from(sorted(who)))
    def run(route: str, seg: str, as_who: str) -> None:
        body, roles = endpoints[route]
        method, template = route.split(" ")
        query = "?format=csv" if seg.endswith("a") and template.endswith("orders") else ""
        path = template.replace("{id}", seg) + query
        if "anyone" in roles or as_who in roles:
            expected = 404
        elif as_who == "nobody":
            expected = 401
        else:
            expected = 403
        # A segment with a brace or a slash in it matches no route at all: 404 before auth.
        unroutable = re.search(r"[{}/]", seg + urllib.parse.unquote(seg)) is not None
        answer = w.client.send(method, path, body, who[as_who], route=template)
        check(answer, *({expected, 404} if unroutable else {expected}))

    run()


def family_order_paths(w: World) -> None:
    """Hostile order ids on reading and paying orders; another buyer's order is 404 too."""
    mine = w.reserved["id"]

    @examples(30)
    @given(
        st.one_of(segments(), st.just(urllib.parse.quote(mine))),
        st.sampled_from(["GET", "POST"]),
        st.sampled_from(["nobody", "buyer", "host"]),
    )
    def run(seg: str, method: str, as_who: str) -> None:
        template = "/v1/orders/{id}" if method == "GET" else "/v1/orders/{id}/pay"
        headers = {"nobody": NOBODY, "buyer": buyer("not-the-owner"), "host": HOST}[as_who]
        path = template.replace("{id}", seg)
        answer = w.client.send(method, path, None, headers, route=template)
        if re.search(r"[{}/]", seg + urllib.parse.unquote(seg)):
            check(answer, 401, 403, 404)  # may match no route at all: 404 before auth
        elif as_who == "nobody":
            check(answer, 401)
        elif as_who == "host" and method == "POST":
            check(answer, 403)
        elif as_who == "host" and seg == mine:
            check(answer, 200)  # a host key reads any order
        else:
            check(answer, 404)

    run()


def family_create_bodies(w: World) -> None:
    """POST /v1/drops: a good spec with one field replaced, extra fields, or not JSON."""
    base = {"sku": "S", "title": "T", "price": 1, "currency": "EUR", "stock": 5}

    @examples(70)
    @given(create_cases())
    def run(case: tuple[str, str, Any]) -> None:
        what, name, value = case
        if what == "body":
            check(w.client.send("POST", "/v1/drops", value, HOST, route="/v1/drops"), 400)
            return
        spec = dict(base)
        if what == "drop":
            spec.pop(name, None)
        else:
            spec[name] = value
        expected = 201 if drop_is_valid(spec) else 400
        answer = check(
            w.client.send("POST", "/v1/drops", encode(spec), HOST, route="/v1/drops"), expected
        )
        if answer.status == 201:
            drop = answer.json
            w.created.append(drop["id"])
            assert drop["sold"] == 0 and drop["remaining"] == drop["stock"] == spec["stock"]
            assert {k: drop[k] for k in spec if k != "opens_at"} == {
                k: v for k, v in spec.items() if k != "opens_at"
            }
            opens = spec.get("opens_at")
            if opens is None:
                assert drop["status"] == "pending" and drop["opens_at"] is None
            else:
                assert drop["opens_at"] is not None
                past = datetime.fromisoformat(str(opens)).timestamp() <= time.time()
                assert drop["status"] == ("live" if past else "pending"), drop

    run()


def family_restock_bodies(w: World) -> None:
    """POST restock on the ledger drop with hostile bodies; a valid one moves the books."""
    path = f"/v1/drops/{w.live['id']}/restock"

    @examples(30)
    @given(
        st.one_of(
            st.builds(lambda v: {"quantity": v}, hostile_values()),
            st.builds(lambda v: {"quantity": 1, "x": v}, hostile_values()),
            st.just({}),
            malformed_bodies(),
        )
    )
    def run(body: Any) -> None:
        raw = body if isinstance(body, bytes) else encode(body)
        q = None if isinstance(body, bytes) else quantity_of(body, None)
        answer = check(
            w.client.send("POST", path, raw, HOST, route="/v1/drops/{id}/restock"),
            200 if q is not None else 400,
        )
        if answer.status == 200:
            assert q is not None
            w.restocked += q

    run()


def family_purchase_bodies(w: World) -> None:
    """Purchases on the ledger drop: hostile bodies and Idempotency-Keys."""
    path = f"/v1/drops/{w.live['id']}/purchase"
    keys = st.one_of(
        st.none(),
        st.text(min_size=0, max_size=140),
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=130),
        st.sampled_from(["k" * 128, "k" * 129, "a b", "ключ", "\t", "k\u00a0", "k\u2028"]),
        st.binary(min_size=1, max_size=10).map(lambda b: bytes(c | 0x80 for c in b)),
    )
    bodies = st.one_of(
        st.builds(lambda v: {"quantity": v}, hostile_values()),
        st.builds(lambda v: {"quantity": v}, st.integers(min_value=1, max_value=5)),
        st.builds(lambda v: {"quantity": 1, "buyer": v}, hostile_values()),
        st.just({}),
        malformed_bodies(),
    )

    @examples(70)
    @given(bodies, keys, st.integers(min_value=0, max_value=4))
    def run(body: Any, key: str | bytes | None, n: int) -> None:
        headers = buyer(f"fuzz-buyer-{n}")
        if isinstance(key, str) and re.search(r"[\x00-\x08\x0a-\x1f\x7f]", key):
            key = re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", "", key)  # the HTTP parser's, not ours
        if key is not None:
            headers["Idempotency-Key"] = key.encode() if isinstance(key, str) else key
        raw = body if isinstance(body, bytes) else encode(body)
        q = None if isinstance(body, bytes) else quantity_of(body, 1)
        text_key = key.strip(" \t") if isinstance(key, str) else None  # OWS is not the value
        key_ok = key is None or (text_key is not None and IDEMPOTENCY_KEY.fullmatch(text_key))
        route = "/v1/drops/{id}/purchase"
        if q is None or not key_ok:
            check(w.client.send("POST", path, raw, headers, route=route), 400)
            return
        answer = check(w.client.send("POST", path, raw, headers, route=route), 200, 201, 409, 422)
        if answer.status == 201:
            order = answer.json["order"]
            assert order["quantity"] == q and order["buyer"] == f"fuzz-buyer-{n}"
            w.bought.append((order["id"], q))

    run()


def family_order_queries(w: World) -> None:
    """GET orders with hostile limit, after and format."""
    path = f"/v1/drops/{w.live['id']}/orders"

    @examples(40)
    @given(
        st.one_of(st.none(), query_values(), st.integers(-5, 20_000).map(str)),
        st.one_of(st.none(), query_values(), st.sampled_from(CURSORS)),
        st.one_of(st.none(), st.sampled_from(["json", "csv", "CSV", "xml", "", "csv%00"])),
    )
    def run(limit: str | None, after: str | None, fmt: str | None) -> None:
        params = [(k, v) for k, v in (("limit", limit), ("after", after), ("format", fmt)) if v]
        query = "&".join(f"{k}={v}" for k, v in params)
        answer = w.client.send(
            "GET", path + ("?" + query if query else ""), None, HOST, route="/v1/drops/{id}/orders"
        )
        check(answer, 200, 400)
        decoded = {k: urllib.parse.unquote(v) for k, v in params}
        fmt_value = decoded.get("format", "json")
        lim = decoded.get("limit")
        bad_limit = lim is not None and not (
            re.fullmatch(r"[0-9]{1,12}", lim) and 1 <= int(lim) <= 10_000
        )
        if fmt_value not in ("json", "csv") or bad_limit:
            assert answer.status == 400, str(answer)  # the CSV's query is checked too
        elif answer.status == 200 and fmt_value == "csv":
            assert answer.headers["content-type"].startswith("text/csv"), str(answer)
        elif answer.status == 200:
            assert set(answer.json) == {"orders", "next"}

    run()


def family_room_queries(w: World) -> None:
    """GET /v1/drops?room= with hostile rooms: a room as the spec has it (1..64 characters,
    no control characters) lists only that room's drops; any other is 400."""

    @examples(30)
    @given(query_values())
    def run(room: str) -> None:
        answer = check(w.client.send("GET", f"/v1/drops?room={room}", route="/v1/drops"), 200, 400)
        wanted = urllib.parse.unquote_plus(room)  # as the gateway decodes a query
        valid = 1 <= len(wanted) <= 64 and not re.search(r"[\x00-\x1f\x7f]", wanted)
        assert (answer.status == 200) == valid, (wanted, str(answer))
        if valid:
            assert all(d["room"] == wanted for d in answer.json["drops"]), str(answer)

    run()


def family_forged_tokens(w: World) -> None:
    """Forged, expired, alg none and foreign-algorithm tokens, on buyer and host endpoints."""
    live, order = w.live["id"], w.reserved["id"]
    targets = [
        ("POST", f"/v1/drops/{live}/purchase", b'{"quantity": 1}', "/v1/drops/{id}/purchase"),
        ("POST", f"/v1/orders/{order}/pay", None, "/v1/orders/{id}/pay"),
        ("GET", f"/v1/orders/{order}", None, "/v1/orders/{id}"),
        ("POST", "/v1/drops", b"{}", "/v1/drops"),
        ("POST", f"/v1/drops/{live}/close", None, "/v1/drops/{id}/close"),
        ("GET", f"/v1/drops/{live}/orders", None, "/v1/drops/{id}/orders"),
    ]

    @examples(80)
    @given(forged_tokens(), st.sampled_from(range(len(targets))))
    def run(tok: str | bytes, i: int) -> None:
        method, path, body, route = targets[i]
        check(w.client.send(method, path, body, bearer(tok), route=route), 401)

    run()


def family_subs(w: World) -> None:
    """Signed tokens whose sub is anything: 1..64 characters, no control characters, or 401."""
    path = f"/v1/drops/{w.live['id']}/purchase"
    subs = st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                "",
                "a" * 64,
                "a" * 65,
                "买" * 64,
                "买" * 65,
                "\x00",
                "a\x1f",
                "a\x7f",
                "\ud800",
                "ok\udc80",
                "\x85",
                "\u202e",
                "😀" * 64,
                " ",
                "alice\n",
                "a\r",
                "\n",
            ]
        ),
        st.integers(),
        st.none(),
        st.lists(st.text(max_size=3), max_size=2),
    )

    @examples(40)
    @given(subs)
    def run(sub: Any) -> None:
        headers = bearer(signed({"alg": "HS256", "typ": "JWT"}, {"sub": sub, "exp": 2**33}))
        valid = isinstance(sub, str) and BUYER_ID.fullmatch(sub) is not None
        answer = w.client.send("POST", path, b"", headers, route="/v1/drops/{id}/purchase")
        check(answer, *((201, 409) if valid else (401,)))
        if answer.status == 201:
            assert answer.json["order"]["buyer"] == sub
            w.bought.append((answer.json["order"]["id"], 1))

    run()


def family_host_keys(w: World) -> None:
    """Host key variants on a host endpoint (open of a live drop: a no-op) and buyer tokens on
    every host endpoint (403)."""
    live = w.live["id"]
    variants = st.one_of(
        st.builds(
            lambda scheme, sep, key: f"{scheme}{sep}{key}",
            st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", "", "Bearer:"]),
            st.sampled_from([" ", "  ", "\t", ""]),
            st.one_of(
                st.just(HOST_KEY),
                st.sampled_from(
                    [
                        HOST_KEY.upper(),
                        HOST_KEY[:-1],
                        HOST_KEY + "x",
                        "x" + HOST_KEY,
                        HOST_KEY + " x",
                        HOST_KEY.replace("_", "-"),
                        "",
                    ]
                ),
                st.text(
                    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40
                ),
            ),
        ),
    )
    host_routes = [
        ("POST", "/v1/drops", b"{}", "/v1/drops"),
        ("POST", f"/v1/drops/{live}/open", None, "/v1/drops/{id}/open"),
        ("POST", f"/v1/drops/{live}/close", None, "/v1/drops/{id}/close"),
        ("POST", f"/v1/drops/{live}/restock", b'{"quantity": 1}', "/v1/drops/{id}/restock"),
        ("GET", f"/v1/drops/{live}/orders", None, "/v1/drops/{id}/orders"),
        ("GET", f"/v1/drops/{live}/orders?format=csv", None, "/v1/drops/{id}/orders"),
    ]

    @examples(40)
    @given(variants)
    def run(header: str) -> None:
        scheme, _, value = header.partition(" ")
        is_host = scheme.lower() == "bearer" and value.strip() == HOST_KEY
        answer = w.client.send(
            "POST", f"/v1/drops/{live}/open", None, {"Authorization": header},
            route="/v1/drops/{id}/open",
        )  # fmt: skip
        check(answer, 200 if is_host else 401)

    @examples(20)
    @given(st.sampled_from(range(len(host_routes))), st.text(min_size=1, max_size=64))
    def buyers(i: int, name: str) -> None:
        if not BUYER_ID.fullmatch(name):
            name = "buyer"
        method, path, body, route = host_routes[i]
        check(w.client.send(method, path, body, buyer(name), route=route), 403)

    run()
    buyers()


def family_unknown_paths(w: World) -> None:
    """Paths that are no route: 404, JSON."""
    known = {"healthz", "readyz", "metrics", "v1", "console"}  # "console": a page

    @examples(30)
    @given(
        st.sampled_from(["/", "/v1/", "/v1/drops/aaaaaaaaaaaa/", "/v1/orders/x/", "/v2/"]),
        segments().filter(
            lambda s: (
                s
                not in known
                | {"drops", "orders", "live", "open", "close", "restock", "purchase", "pay"}
            )
        ),
        st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    )
    def run(prefix: str, seg: str, method: str) -> None:
        check(w.client.send(method, prefix + seg, None, HOST, route="<unknown>"), 404)

    run()


ROUTES: dict[str, set[str]] = {
    "/v1/drops": {"GET", "POST"},
    "/v1/drops/{id}": {"GET"},
    "/v1/drops/{id}/open": {"POST"},
    "/v1/drops/{id}/close": {"POST"},
    "/v1/drops/{id}/restock": {"POST"},
    "/v1/drops/{id}/orders": {"GET"},
    "/v1/drops/{id}/purchase": {"POST"},
    "/v1/orders/{id}": {"GET"},
    "/v1/orders/{id}/pay": {"POST"},
    "/healthz": {"GET"},
    "/readyz": {"GET"},
}


def wrong_methods(w: World) -> None:
    """Every route with every method it does not take: 405 with Allow."""
    ids = {"/v1/drops/{id}": w.live["id"], "/v1/orders/{id}": w.reserved["id"]}
    for route, allowed in ROUTES.items():
        path = route
        for prefix, real in ids.items():
            path = path.replace(prefix, prefix.replace("{id}", real))
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"):
            if method in allowed or (method == "HEAD" and "GET" in allowed):
                continue
            answer = check(w.client.send(method, path, None, HOST, route=route), 405)
            assert set(answer.headers["allow"].replace(" ", "").split(",")) >= allowed


def oversized(w: World) -> None:
    """Bodies over 16 KiB on every POST endpoint, with a length and chunked: 413."""
    live, order = w.live["id"], w.reserved["id"]
    posts = [
        (f"/v1/drops/{live}/purchase", buyer("big"), "/v1/drops/{id}/purchase", True),
        ("/v1/drops", HOST, "/v1/drops", True),
        (f"/v1/drops/{live}/restock", HOST, "/v1/drops/{id}/restock", True),
        (f"/v1/drops/{live}/open", HOST, "/v1/drops/{id}/open", False),
        (f"/v1/drops/{live}/close", HOST, "/v1/drops/{id}/close", False),
        (f"/v1/orders/{order}/pay", buyer("owner"), "/v1/orders/{id}/pay", False),
        ("/v1/drops/nope/nothing", NOBODY, "<unknown>", False),
    ]
    for path, headers, route, reads_body in posts:
        for size in (MAX_BODY + 1, 64 * 1024, 1024 * 1024):
            body = b'{"quantity": "' + b"x" * (size - 16) + b'"}'
            check(w.client.send("POST", path, body, headers, route=route), 413)
        if reads_body:
            body = b'{"quantity": "' + b"x" * (20 * 1024) + b'"}'
            check(w.client.send("POST", path, body, headers, route=route, chunked=True), 413)
            # Exactly at the limit: read, and refused for what it says, not for its size.
            body = b'{"quantity": "' + b"x" * (MAX_BODY - 16) + b'"}'
            assert len(body) == MAX_BODY
            check(w.client.send("POST", path, body, headers, route=route), 400)


def probes(w: World) -> None:
    """Health, readiness, metrics and the live feed, plus hostile queries on them."""
    check(w.client.send("GET", "/healthz", route="/healthz"), 200)
    check(w.client.send("GET", "/readyz", route="/readyz"), 200)
    check(w.client.send("GET", "/healthz?x=%ff%00&y", route="/healthz"), 200)
    check(w.client.send("GET", "/readyz?%zz", route="/readyz"), 200)
    metrics = check(w.client.send("GET", "/metrics", route="/metrics"), 200, 404)
    if metrics.status == 200:
        assert metrics.headers["content-type"].startswith("text/plain")
        assert b"flashsale_purchases_total" in metrics.raw
    for seg in (w.live["id"], "nope", "%ff"):
        live = w.client.send(
            "GET",
            f"/v1/drops/{seg}/live",
            route="/v1/drops/{id}/live",
            read_body=seg != w.live["id"],
        )
        if seg == w.live["id"]:
            check(live, 200, 404)
            if live.status == 200:
                assert live.headers["content-type"].startswith("text/event-stream")
        else:
            check(live, 404)


def regressions(w: World) -> None:
    """Requests that once got a 500 or were wrongly taken, sent every run whatever hypothesis
    draws: opens_at outside 1970..9999 UTC (500, and a drop left in Redis), a cursor past 64
    bits (500 from SQLite), Authorization bytes that are not UTF-8 or not ASCII (500), a
    signed sub with a lone surrogate (500 in Redis), and values with a final newline, which
    `$`-anchored patterns took ("CNY\\n" as a currency, "alice\\n" as a buyer, 5\\n as a limit)."""
    live = w.live["id"]
    base = {"sku": "S", "title": "T", "price": 1, "currency": "EUR", "stock": 5}
    for opens_at in OPENS_AT:
        spec = base | {"opens_at": opens_at}
        answer = w.client.send("POST", "/v1/drops", encode(spec), HOST, route="/v1/drops")
        check(answer, 201 if opens_at_is_valid(opens_at) else 400)
        if answer.status == 201:
            w.created.append(answer.json["id"])
    for name, value in (("currency", "CNY\n"), ("sku", "a\n"), ("title", "t\n"), ("room", "r\n")):
        spec = base | {name: value}
        check(w.client.send("POST", "/v1/drops", encode(spec), HOST, route="/v1/drops"), 400)
    orders = f"/v1/drops/{live}/orders"
    for cursor in CURSORS:
        valid = cursor in ("czE", "czk5OTk5OTk5OTk5OTk5OTk5OQ")  # s1, s + 18 nines
        answer = w.client.send("GET", f"{orders}?after={cursor}", None, HOST, route=orders)
        check(answer, 200 if valid else 400)
    for limit in ("5%0A", "5%0D", "%205", "5%00"):
        check(w.client.send("GET", f"{orders}?limit={limit}", None, HOST, route=orders), 400)
    purchase = f"/v1/drops/{live}/purchase"
    for raw in (b"\xff\xfe", "ключ".encode(), b"\x80" + HOST_KEY.encode(), b"e30.\xff.e30"):
        for path, body in ((purchase, b"{}"), (f"/v1/drops/{live}/open", None)):
            check(w.client.send("POST", path, body, bearer(raw), route=path), 401)
    for sub in ("\ud800", "a\udfffb", "alice\n", "bob\r\n", "\n"):
        tok = signed({"alg": "HS256", "typ": "JWT"}, {"sub": sub, "exp": 2**33})
        check(w.client.send("POST", purchase, b"{}", bearer(tok), route=purchase), 401)


FAMILIES: tuple[Callable[[World], None], ...] = (
    family_drop_paths, family_order_paths, family_create_bodies, family_restock_bodies,
    family_purchase_bodies, family_order_queries, family_room_queries,
    family_forged_tokens, family_subs, family_host_keys, family_unknown_paths,
    wrong_methods, oversized, probes, regressions,
)  # fmt: skip


async def test_hostile_battery(stack: Stack, world: World) -> None:
    started = time.monotonic()
    w = world
    before = {d["id"]: await drop_view(stack, d["id"]) for d in (w.live, w.pending, w.windowed)}
    for family in FAMILIES:
        await asyncio.to_thread(family, w)

    # Every endpoint of the contract was hit.
    hit = {r.split(" ", 1)[1] for r in w.client.routes}
    assert set(ROUTES) | {"/metrics", "/v1/drops/{id}/live", "<unknown>"} <= hit, hit

    # Alive: a normal purchase after all that.
    fresh = await stack.new_drop(stock=3)
    assert (await stack.buy(fresh["id"], "after-the-storm")).status == 201
    assert (await stack.call("GET", "/healthz")).status == 200

    # Nothing lost: the books moved by exactly what was answered with success.
    live = await drop_view(stack, w.live["id"])
    sold = sum(q for _, q in w.bought)
    assert live["stock"] == before[w.live["id"]]["stock"] + w.restocked
    assert live["sold"] == sold
    assert live["remaining"] + live["sold"] == live["stock"]
    assert live["status"] in ("live", "sold_out")
    assert await drop_view(stack, w.pending["id"]) == before[w.pending["id"]]
    assert await drop_view(stack, w.windowed["id"]) == before[w.windowed["id"]]
    owner = await stack.call(
        "GET", f"/v1/orders/{w.reserved['id']}", headers=stack.as_buyer("owner")
    )
    assert owner.body["order"]["status"] == "reserved"  # no one else paid it
    for drop_id in w.created:
        view = await drop_view(stack, drop_id)
        assert view["remaining"] + view["sold"] == view["stock"] and view["sold"] == 0

    await stack.settle()
    listed = await stack.call(
        "GET", f"/v1/drops/{w.live['id']}/orders?limit=10000", headers=stack.as_host
    )
    stored = {o["id"]: o["quantity"] for o in listed.body["orders"]}
    assert stored == dict(w.bought)  # no lost order, no phantom order
    report = await stack.audit()
    assert report.ok, report.lines()

    assert w.client.sent >= MIN_REQUESTS, w.client.sent  # the battery cannot silently shrink
    print(f"hostile battery: {w.client.sent} requests in {time.monotonic() - started:.1f} s")


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
