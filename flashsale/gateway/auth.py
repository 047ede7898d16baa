"""Who is asking: a host (bearer host key) or a buyer (bearer HS256 JWT; the buyer is `sub`)."""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass
from typing import Literal

import jwt
from aiohttp import web

from flashsale.gateway.errors import ApiError
from flashsale.gateway.tokens import Expired, FastHS256

# No control characters, and no lone surrogates (they cannot be written as UTF-8, so a
# signed token whose sub held one passed here and failed later, in Redis, as a 500). \Z,
# not $, which also matches before a final newline and let "alice\n" through.
BUYER_ID = re.compile(r"^[^\x00-\x1f\x7f\ud800-\udfff]{1,64}\Z")
# Verifying a JWT costs more than the rest of a purchase: a buyer tapping again presents
# the same token, so each process keeps the ones it verified, with their expiry.
VERIFIED_MAX = 100_000


Role = Literal["host", "buyer"]


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    id: str  # the buyer id; "host" for hosts


HOST = Principal("host", "host")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


class Auth:
    def __init__(self, token_secret: str, host_keys: list[str]) -> None:
        self._secret = token_secret
        self._host_keys = [k.encode() for k in host_keys]
        self._fast = FastHS256(token_secret)
        # token -> (buyer, exp); a token is exactly the bytes that were verified
        self._verified: dict[str, tuple[Principal, int]] = {}

    def _is_host_key(self, token: str) -> bool:
        # aiohttp keeps header bytes that are not UTF-8 as lone surrogates: such a token is
        # no host key (and no JWT either), so compare its raw bytes rather than fail on them.
        given = token.encode("utf-8", "surrogateescape")
        # Compare with every key, always: how long it takes says nothing about any key.
        found = False
        for key in self._host_keys:
            found |= hmac.compare_digest(given, key)
        return found

    def mint(self, buyer: str, ttl_s: int = 3600) -> str:
        if not BUYER_ID.match(buyer):
            raise ValueError("a buyer id is 1 to 64 characters, no control characters")
        now = int(time.time())
        return jwt.encode({"sub": buyer, "iat": now, "exp": now + ttl_s}, self._secret, "HS256")

    def identify(self, authorization: str | None) -> Principal:
        """Who sends this Authorization header value (either HTTP path hands it over as
        aiohttp does: UTF-8, with undecodable bytes kept as lone surrogates)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("send Authorization: Bearer <host key or buyer token>")
        known = self._verified.get(token)  # first: most requests are buyers tapping again
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            del self._verified[token]
            raise _unauthorized("the buyer token has expired")
        if self._is_host_key(token):
            return HOST
        if not token.isascii():
            # A JWT is base64url and dots. Anything else (UTF-8, or bytes aiohttp kept as
            # surrogates) made the HMAC input or PyJWT raise UnicodeEncodeError: a 500.
            raise _unauthorized("invalid credentials")
        try:
            fast = self._fast.verify(token)
        except Expired:
            raise _unauthorized("the buyer token has expired") from None
        sub, exp = (fast.sub, fast.exp) if fast is not None else self._decode(token)
        if not isinstance(sub, str) or not BUYER_ID.match(sub):
            raise _unauthorized("the token's sub must be a buyer id of 1 to 64 characters")
        who = Principal("buyer", sub)
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()  # cheaper than an LRU, and rare: it only costs re-verifying
        self._verified[token] = (who, exp)
        return who

    def _decode(self, token: str) -> tuple[object, int]:
        """PyJWT, for every token the fast path does not take."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the buyer token has expired") from None
        except jwt.PyJWTError:
            raise _unauthorized("invalid credentials") from None
        return claims.get("sub"), int(claims["exp"])  # as PyJWT compares it

    def require(self, role: Role, authorization: str | None) -> Principal:
        who = self.identify(authorization)
        if who.role != role:
            raise ApiError(403, "forbidden", f"this needs a {_NEEDS[role]}")
        return who

    def host(self, request: web.Request) -> Principal:
        return self.require("host", request.headers.get("Authorization"))

    def buyer(self, request: web.Request) -> Principal:
        return self.require("buyer", request.headers.get("Authorization"))


_NEEDS: dict[Role, str] = {"host": "host key", "buyer": "buyer token"}
