"""What the hostile tests send and how they judge it: a client that sends any bytes, forged
tokens, hypothesis strategies for paths, queries and bodies, and the contract's oracles."""

from __future__ import annotations

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
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.stack import HOST_KEY, SECRET

MAX_BODY = 16 * 1024
MIN_REQUESTS = 200
CODES: dict[int, set[str]] = {
    400: {"invalid_request"},
    401: {"unauthorized"},
    403: {"forbidden"},
    404: {"not_found"},
    405: {"method_not_allowed"},
    409: {
        "not_live",
        "sold_out",
        "limit_reached",
        "expired",
        "not_payable",
        "not_admitted",
        "draw_only",
        "no_queue",
        "no_draw",
        "no_waitlist",
        "entries_closed",
        "not_sold_out",
    },
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
               "opens_at", "payment_window_s", "deposit", "variants")  # fmt: skip
VARIANT_FIELDS = ("code", "title", "price", "stock", "deposit")
VARIANT_CODE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MAX_EXACT = 2**53 - 1


def is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def printable(v: Any, high: int) -> bool:
    return isinstance(v, str) and 1 <= len(v) <= high and not re.search(r"[\x00-\x1f\x7f]", v)


def priced_is_valid(price: Any, deposit: Any, limit: Any, window: Any) -> bool:
    """One SKU's price and deposit: the 2^53 cap, and a deposit of 1..price with a window."""
    return (
        is_int(price)
        and 0 <= price <= MAX_EXACT
        and (not is_int(limit) or price * limit <= MAX_EXACT)
        and (deposit is None or (is_int(deposit) and 1 <= deposit <= price and window != 0))
    )


def variants_are_valid(variants: Any, limit: Any, window: Any) -> bool:
    """1..50 variants of the contract's shape, codes unique, stock summing to 10^9 at most."""
    if not isinstance(variants, list) or not 1 <= len(variants) <= 50:
        return False
    for v in variants:
        if not isinstance(v, dict) or not set(v) <= set(VARIANT_FIELDS):
            return False
        if not {"code", "title", "price", "stock"} <= set(v):
            return False
        if not (isinstance(v["code"], str) and VARIANT_CODE.fullmatch(v["code"])):
            return False
        if not (printable(v["title"], 100) and is_int(v["stock"]) and 1 <= v["stock"] <= 10**9):
            return False
        if not priced_is_valid(v["price"], v.get("deposit"), limit, window):
            return False
    codes = [v["code"] for v in variants]
    return len(set(codes)) == len(codes) and sum(v["stock"] for v in variants) <= 10**9


def drop_is_valid(spec: dict[str, Any]) -> bool:
    """The contract's limits at creation (and the documented 2^53 cap on amounts)."""
    if not set(spec) <= set(DROP_FIELDS):
        return False
    nullable = ("price", "stock", "deposit", "variants", "room", "opens_at")  # null: left out
    spec = {k: v for k, v in spec.items() if v is not None or k not in nullable}
    limit = spec.get("per_buyer_limit", 1)
    window = spec.get("payment_window_s", 0)
    room = spec.get("room")
    if not {"sku", "title", "currency"} <= set(spec):
        return False
    if "variants" in spec:
        shaped = not {"price", "stock", "deposit"} & set(spec) and variants_are_valid(
            spec["variants"], limit, window
        )
    else:
        shaped = (
            {"price", "stock"} <= set(spec)
            and priced_is_valid(spec["price"], spec.get("deposit"), limit, window)
            and is_int(spec["stock"])
            and 1 <= spec["stock"] <= 10**9
        )
    return (
        shaped
        and printable(spec["sku"], 64)
        and printable(spec["title"], 200)
        and isinstance(spec["currency"], str)
        and re.fullmatch(r"[A-Z]{3}", spec["currency"]) is not None
        and is_int(limit)
        and 1 <= limit <= 10**9
        and (room is None or printable(room, 64))
        and opens_at_is_valid(spec.get("opens_at"))
        and is_int(window)
        and 0 <= window <= 7 * 86400
    )


def quantity_of(body: Any, default: int | None, codes: frozenset[str] | None = None) -> int | None:
    """The quantity a purchase (default 1) or restock (required) body asks for, or None if
    the body is not valid for a drop of these variant codes (None: a drop without)."""
    if not isinstance(body, dict) or set(body) - {"quantity", "variant"}:
        return None
    variant = body.get("variant")
    if codes is None and variant is not None:
        return None
    if codes is not None and not (isinstance(variant, str) and variant in codes):
        return None
    q = body.get("quantity", default)
    return q if is_int(q) and 1 <= q <= 10**9 else None


def json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False
