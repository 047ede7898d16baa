"""Verifying buyer tokens fast, with PyJWT as the rule.

A flash sale's first taps are mostly first sight of a token, and PyJWT takes 25-30 us to
verify one here (strict base64 checks in Python, stdlib JSON twice, key preparation), more
than the rest of a purchase. Every token flashsale mints (`Auth.mint`, with PyJWT) has one
shape: the header PyJWT writes for HS256 and the claims sub, iat, exp. For exactly that
shape this checks the HMAC in C (hmac.digest) against the canonical signature segment and
reads the claims with msgspec: about 3 us. Anything else, whatever it is, goes to PyJWT,
which accepts or refuses it; so this can only agree with PyJWT or hand it the token, and the
tests hold it to that on valid, tampered, foreign and expired tokens.
"""

from __future__ import annotations

import base64
import hmac
import time

import msgspec

# What PyJWT writes for HS256: {"alg":"HS256","typ":"JWT"}, sorted, compact, base64url.
HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()


class Claims(msgspec.Struct, forbid_unknown_fields=True):
    """The claims we mint, as whole seconds (PyJWT compares int(exp) and int(iat))."""

    sub: str
    exp: int
    iat: int | None = None


_claims = msgspec.json.Decoder(Claims)


class Expired(Exception):
    pass


class FastHS256:
    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def verify(self, token: str) -> Claims | None:
        """The claims of a valid token of our shape; Expired if its exp has passed; None
        for anything else (PyJWT decides those)."""
        head, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if head != HEADER or not payload or not signature.isascii():
            return None
        mac = hmac.digest(self._key, f"{head}.{payload}".encode(), "sha256")
        expected = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        if not hmac.compare_digest(expected, signature):
            return None
        try:
            # Signed by our secret, so these are bytes we minted: base64 leniency is moot.
            claims = _claims.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (msgspec.DecodeError, ValueError):
            return None
        now = time.time()
        if claims.iat is not None and claims.iat > now:
            return None  # PyJWT refuses a token issued in the future; let it say so
        if claims.exp <= now:
            raise Expired
        return claims
