"""Where a webhook may send: the rules that keep it from being turned against the network
it runs in (a subscription pointed at 169.254.169.254 or at the shop's own database port).

Checked twice. When a subscription is made, so a host hears at once why a URL is refused.
And at every connection, on the address the connection really goes to: a name that
resolved to a public address yesterday may resolve to 10.0.0.5 today.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp import DefaultResolver
from aiohttp.abc import AbstractResolver, ResolveResult

MAX_URL = 2048
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1", "[::1]"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(ValueError):
    """A destination the rules do not allow; the message says which rule and why."""


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return address


def public(address: IPAddress) -> bool:
    """Routable on the internet: not private, loopback, link-local, shared (CGNAT), reserved,
    multicast or unspecified."""
    return address.is_global and not address.is_multicast


def check_address(host: str, address: IPAddress, allow_private: bool) -> None:
    if not allow_private and not public(address):
        raise DestinationRefused(
            f"{host} resolves to {address}, a private, loopback or link-local address: "
            "webhooks go to the internet unless ops set FLASHSALE_WEBHOOK_ALLOW_PRIVATE=1"
        )


def _loopback(host: str) -> bool:
    address = _address(host)
    return host.lower() in LOOPBACK_NAMES or (address is not None and address.is_loopback)


def check_url(url: str) -> tuple[str, int]:
    """The host and port of a URL a webhook may have, by its form alone: http(s), a host,
    and HTTPS anywhere but on this machine's loopback."""
    if len(url) > MAX_URL:
        raise DestinationRefused(f"url is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise DestinationRefused(f"url is not a URL: {e}") from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise DestinationRefused("url must be an http:// or https:// URL with a host")
    if parts.scheme == "http" and not _loopback(host):
        raise DestinationRefused(
            "url must use https:// (plain http:// only to this machine's loopback)"
        )
    if parts.fragment:
        raise DestinationRefused("url must not have a #fragment")
    return host, port or (443 if parts.scheme == "https" else 80)


async def check_destination(url: str, allow_private: bool) -> None:
    """`check_url`, then every address the host resolves to now."""
    host, port = check_url(url)
    literal = _address(host)
    if literal is not None:
        check_address(host, literal, allow_private)
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise DestinationRefused(f"{host} does not resolve: {e}") from None
    for *_, sockaddr in found:
        address = _address(str(sockaddr[0]))
        if address is not None:
            check_address(host, address, allow_private)


class GuardedResolver(AbstractResolver):
    """A resolver for the delivery client: only the addresses the rules allow come back, so
    the connection is made to an address that was checked (no second lookup to race)."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self._allowed(host, r)]
        if not allowed:
            raise OSError(f"{host} resolves to no address webhooks may reach")
        return allowed

    def _allowed(self, host: str, result: dict[str, Any] | ResolveResult) -> bool:
        address = _address(str(result["host"]))
        if address is None:
            return False
        try:
            check_address(host, address, self._allow_private)
        except DestinationRefused:
            return False
        return True

    async def close(self) -> None:
        await self._inner.close()


def check_literal(url: str, allow_private: bool) -> None:
    """At delivery: a URL whose host is an IP address never reaches the resolver."""
    host, _ = check_url(url)
    literal = _address(host)
    if literal is not None:
        check_address(host, literal, allow_private)


__all__ = [
    "DestinationRefused",
    "GuardedResolver",
    "check_destination",
    "check_literal",
    "check_url",
    "public",
]
