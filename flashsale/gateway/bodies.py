"""Reading request input strictly: JSON bodies into specs, query numbers, header values."""

from __future__ import annotations

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
    body = await request.read()  # over the size limit: 413 from aiohttp
    if not body.strip() and empty_ok:
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


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise invalid("Idempotency-Key must be 1 to 128 printable ASCII characters")
    return key
