"""Which requests the fast path answers itself: exactly the buyer's hot calls. Anything else,
and anything these patterns do not match to the letter (percent-escapes, dot segments, an
absolute URL, another method), goes to aiohttp, whose router decides it as it always has."""

from __future__ import annotations

import re
from typing import Literal

Route = Literal["purchase", "view", "poll", "aiohttp"]
PURCHASE_ROUTE = "/v1/drops/{id}/purchase"  # aiohttp's names for them, as /metrics shows
VIEW_ROUTE = "/v1/drops/{id}"
POLL_ROUTE = "/v1/drops/{id}/queue"  # GET: a queue ticket's poll (POST, taking one: aiohttp)
ROUTE_NAMES: dict[Route, str] = {"purchase": PURCHASE_ROUTE, "view": VIEW_ROUTE,
                                 "poll": POLL_ROUTE}  # fmt: skip

# The path, then any query (ignored, as aiohttp's router ignores it).
_HOT = re.compile(rb"/v1/drops/([A-Za-z0-9_-]{1,64})(/purchase|/queue)?(?:\?[^#]*)?")


def route_of(method: bytes, target: bytes) -> tuple[Route, str]:
    """The route of a request and the drop id it names ("" for aiohttp's)."""
    m = _HOT.fullmatch(target)
    if m is None:
        return "aiohttp", ""
    if m.group(2) == b"/purchase":
        return ("purchase", m.group(1).decode()) if method == b"POST" else ("aiohttp", "")
    if m.group(2) == b"/queue":
        return ("poll", m.group(1).decode()) if method == b"GET" else ("aiohttp", "")
    return ("view", m.group(1).decode()) if method == b"GET" else ("aiohttp", "")
