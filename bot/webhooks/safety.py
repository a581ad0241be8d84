"""Where webhooks may go: http(s) URLs whose *resolved* addresses are public.

The check runs on the addresses the connection will use (a resolver wrapped
around aiohttp's own), so a name that resolves to 127.0.0.1 or to a cloud
metadata address is refused however it is spelled. IP literals never reach a
resolver, so they are checked before the request. Networks listed in
`[webhooks] allow_private_networks` are let through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedAddress(OSError):
    """A webhook host resolved only to addresses we do not send to."""


def refusal(ip: IPAddress, allowed: Sequence[Network]) -> str | None:
    """Why `ip` may not receive webhooks, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address are judged by that address:
        # ::ffff:127.0.0.1 (mapped), 2002:7f00:1:: (6to4), Teredo's client.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    for kind in ("loopback", "link_local", "multicast", "private", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:
        return "not public"
    return None


def check_url(url: str, allowed: Sequence[Network]) -> str | None:
    """Refuse a URL before any connection: wrong scheme, or an IP-literal host
    that is not allowed (names are checked by the resolver, once resolved)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL"
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    why = refusal(ip, allowed)
    return None if why is None else (f"address {ip} is {why}; not in "
                                     "[webhooks] allow_private_networks")


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp, then drops every address `refusal` objects to; raises
    RefusedAddress when none is left. `allowed` is read per lookup, so a reload
    of allow_private_networks applies to the next connection."""

    def __init__(self, allowed: Callable[[], Sequence[Network]],
                 inner: AbstractResolver | None = None) -> None:
        self._allowed = allowed
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = self._allowed()
        kept, refused = [], []
        for result in results:
            why = refusal(ipaddress.ip_address(result["host"]), allowed)
            if why is None:
                kept.append(result)
            else:
                refused.append(f"{result['host']} ({why})")
        if not kept:
            raise RefusedAddress(f"{host} resolves to {', '.join(refused) or 'nothing'}; "
                                 "not in [webhooks] allow_private_networks")
        return kept

    async def close(self) -> None:
        await self._inner.close()
