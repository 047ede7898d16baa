"""Reading request input strictly: JSON bodies into specs, query numbers, header values."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TypeVar

import msgspec
from aiohttp import web

from flashsale.gateway.errors import ApiError

T = TypeVar("T")
# \Z, not $: $ also matches before a final newline, so "?limit=5%0A" was taken as 5.
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}\Z")
DIGITS = re.compile(r"^[0-9]{1,12}\Z")


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


async def read_json(request: web.Request, spec: type[T], *, empty_ok: bool = False) -> T:
    return decode_json(await request.read(), spec, empty_ok=empty_ok)  # too big: 413


def decode_json(body: bytes, spec: type[T], *, empty_ok: bool = False) -> T:
    if empty_ok and not body.strip():
        body = b"{}"
    try:
        return msgspec.json.decode(body, type=spec)
    except msgspec.ValidationError as e:
        raise invalid(str(e)) from None
    except msgspec.DecodeError as e:
        raise invalid(f"the body is not valid JSON: {e}") from None


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not DIGITS.match(raw) or not low <= int(raw) <= high:
        raise invalid(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def idempotency_key(key: str | None) -> str | None:
    """The Idempotency-Key header's value, checked (None when none was sent)."""
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise invalid("Idempotency-Key must be 1 to 128 printable ASCII characters")
    return key


# Cursors are opaque (CONTRACT): base64url of a text only this API writes, in the shape its
# listing reads back; anything else is 400.
NOT_A_CURSOR = "after is not a cursor this API gave out"


def encode_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: re.Pattern[str]) -> re.Match[str]:
    """A cursor's text, if it is one this API gave out (base64url of `shape`); else 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid(NOT_A_CURSOR) from None
    m = shape.fullmatch(raw)
    if m is None:
        raise invalid(NOT_A_CURSOR)
    return m
