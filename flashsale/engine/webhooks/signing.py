"""The signature every delivery carries: `t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

The time is signed with the body so that a delivery captured once cannot be sent again
later as if new: a receiver refuses a `t` too far from its own clock (the README's helper
takes five minutes). A retry is signed afresh, with its own `t`, over the same body.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "Flashsale-Signature"
EVENT_ID_HEADER = "Flashsale-Event-Id"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    """Whether `header` signs `body` with `secret`, at a time within `tolerance_s` of now."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance_s:
        return False
    expected = signature(secret, body, t).split(",v1=")[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


__all__ = ["EVENT_ID_HEADER", "SIGNATURE_HEADER", "new_secret", "signature", "verify"]
