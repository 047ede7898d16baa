"""Which address a request comes from, for the per-address rate limit.

The peer's address, unless the peer is one of the proxies ops trust
(`FLASHSALE_TRUSTED_PROXIES`): then the last address in X-Forwarded-For that is not one of
them. Anything before that in the header was written by the client and proves nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    def __init__(self, trusted: list[str]) -> None:
        self._trusted: list[Network] = [ipaddress.ip_network(t, strict=False) for t in trusted]
        self.is_trusted = lru_cache(maxsize=4096)(self._is_trusted)

    def _is_trusted(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self._trusted)

    def of(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str | None:
        """The client of a request from `peer` carrying these X-Forwarded-For values."""
        if not self._trusted or peer is None or not self.is_trusted(peer):
            return peer
        hops = [h.strip() for line in forwarded_for for h in line.split(",")]
        for hop in reversed(hops):
            if not self.is_trusted(hop):
                return hop if _is_address(hop) else peer
        return peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
