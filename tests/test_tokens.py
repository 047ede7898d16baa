"""The fast HS256 path takes only the tokens flashsale mints, and says of each exactly what
PyJWT says; everything else is PyJWT's to decide."""

from __future__ import annotations

import base64
import json
import random
import time

import jwt
import pytest

from flashsale.gateway.auth import Auth
from flashsale.gateway.tokens import HEADER, Expired, FastHS256

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
SECRET = "a-token-secret-of-at-least-thirty-two-bytes"
NONE_HEADER = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()


def pyjwt(token: str) -> tuple[str, object]:
    try:
        claims = jwt.decode(
            token, SECRET, algorithms=["HS256"], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        return ("expired", None)
    except jwt.PyJWTError as e:
        return ("invalid", type(e).__name__)
    return ("ok", claims["sub"])


def fast(token: str) -> tuple[str, object] | None:
    try:
        claims = FastHS256(SECRET).verify(token)
    except Expired:
        return ("expired", None)
    return None if claims is None else ("ok", claims.sub)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tokens(rng: random.Random) -> list[tuple[str, str]]:
    """(kind, token): ours, and every way a token can differ from ours."""
    now = int(time.time())
    out: list[tuple[str, str]] = []
    for i in range(40):
        sub = rng.choice([f"buyer-{i}", "买家-" + str(i), "a" * 64, "x"])
        ours = Auth(SECRET, []).mint(sub, rng.randint(60, 86400))
        head, payload, sig = ours.split(".")
        other_sig = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
        forged = b64(json.dumps({"sub": "someone-else", "exp": now + 60}).encode())
        out += [
            ("ours", ours),
            ("expired", jwt.encode({"sub": sub, "iat": now - 99, "exp": now - 9}, SECRET)),
            ("no iat", jwt.encode({"sub": sub, "exp": now + 60}, SECRET)),
            ("signature changed", f"{head}.{payload}.{other_sig}"),
            ("payload swapped", f"{head}.{forged}.{sig}"),
            ("signature padded", f"{ours}="),
            ("other secret", jwt.encode({"sub": sub, "exp": now + 60}, SECRET + "x")),
            ("HS512", jwt.encode({"sub": sub, "exp": now + 60}, SECRET, algorithm="HS512")),
            ("alg none", f"{NONE_HEADER}.{payload}."),
            ("kid header", jwt.encode({"sub": sub, "exp": now + 60}, SECRET, headers={"kid": "1"})),
            ("nbf later", jwt.encode({"sub": sub, "exp": now + 60, "nbf": now + 30}, SECRET)),
            ("aud", jwt.encode({"sub": sub, "exp": now + 60, "aud": "x"}, SECRET)),
            ("iat later", jwt.encode({"sub": sub, "exp": now + 90, "iat": now + 60}, SECRET)),
            ("float exp", jwt.encode({"sub": sub, "exp": now + 60.5}, SECRET)),
            ("sub a number", jwt.encode({"sub": 12, "exp": now + 60}, SECRET)),
            ("no exp", jwt.encode({"sub": sub}, SECRET)),
            ("two parts", f"{head}.{payload}"),
            ("garbage", "".join(rng.choice("abc.-_=+/") for _ in range(rng.randint(0, 80)))),
        ]
    return out


def test_the_fast_path_agrees_with_pyjwt_on_every_token_it_takes() -> None:
    taken: dict[str, int] = {}
    for kind, token in tokens(random.Random(5)):
        said = fast(token)
        if said is not None:
            assert said == pyjwt(token), (kind, token)
            taken[kind] = taken.get(kind, 0) + 1
    # It takes what we mint (valid or expired) and nothing else.
    assert set(taken) == {"ours", "expired", "no iat"}
    assert taken["ours"] == 40


def test_our_header_is_what_pyjwt_writes() -> None:
    assert jwt.encode({"sub": "a", "exp": 1}, SECRET).split(".")[0] == HEADER


@pytest.mark.parametrize("kind", ["signature changed", "payload swapped", "alg none", "HS512"])
def test_what_it_leaves_to_pyjwt_is_refused_there(kind: str) -> None:
    for k, token in tokens(random.Random(6)):
        if k == kind:
            assert fast(token) is None
            assert pyjwt(token)[0] == "invalid"
