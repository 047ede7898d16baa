"""Drop and order ids.

An order id starts with its drop's id, so any gateway can find the order's Redis slot from
the id alone. The rest is random: the gateway picks it before asking Redis, and it doubles
as the purchase's internal request id (see purchase.lua).
"""

from __future__ import annotations

import base64
import re
import secrets

_DROP_RE = re.compile(r"^[a-z2-7]{12}$")
_ORDER_RE = re.compile(r"^([a-z2-7]{12})-[a-z2-7]{16}$")


def _token(nbytes: int) -> str:
    return base64.b32encode(secrets.token_bytes(nbytes)).decode().lower().rstrip("=")


def new_drop_id() -> str:
    return _token(8)[:12]


def new_order_ids(drop_id: str, n: int) -> list[str]:
    """n order ids at once (one read of the random source): a batch of purchases' ids."""
    chars = _token(10 * n)
    return [f"{drop_id}-{chars[i : i + 16]}" for i in range(0, 16 * n, 16)]


def is_drop_id(value: str) -> bool:
    return bool(_DROP_RE.match(value))


def drop_of_order(order_id: str) -> str | None:
    """The drop an order id belongs to, or None if it is no order id of ours."""
    m = _ORDER_RE.match(order_id)
    return m.group(1) if m else None
