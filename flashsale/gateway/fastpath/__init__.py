"""The buyer's fast path: the gateway's port read with httptools, the hot calls (a purchase,
a drop's view) answered without aiohttp's request machinery, everything else handed to
aiohttp on the same connection. See connection.py."""

from flashsale.gateway.fastpath.site import FastSite
from flashsale.gateway.fastpath.wire import Limits

__all__ = ["FastSite", "Limits"]
