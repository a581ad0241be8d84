"""Who is asking and how: the client's address and whether it came over
https, as a proxy in front of the service tells it, when that proxy is one of
`[server] trusted_proxies`; from anyone else those headers are ignored.

X-Forwarded-For is read from its right end: each trusted proxy appends the
address it was reached from, so the first address from the right that is not
a trusted proxy is the client (whatever the client wrote further left).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from bot.web.snapshot import snapshot_of

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip in net for net in proxies)


def _from_proxy(request: web.Request) -> bool:
    proxies = snapshot_of(request).config.server.trusted_proxies
    return bool(proxies) and _trusted(request.remote or "", proxies)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or behind trusted proxies the one
    they name ("unknown" when the transport does not say, as on a Unix socket)."""
    peer = request.remote or "unknown"
    if not _from_proxy(request):
        return peer
    proxies = snapshot_of(request).config.server.trusted_proxies
    hops = [hop.strip() for header in request.headers.getall("X-Forwarded-For", [])
            for hop in header.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # not an address: nothing left of it can be believed
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def is_https(request: web.Request) -> bool:
    """Whether the browser reached the service over https: TLS here, a trusted
    proxy saying so, or a public_url that is https."""
    if request.secure:
        return True
    public = snapshot_of(request).config.server.public_url
    if public is not None and public.startswith("https://"):
        return True
    if not _from_proxy(request):
        return False
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
    return proto == "https"


def public_host(request: web.Request) -> str | None:
    """The host[:port] of `[server] public_url`, as a browser's Origin names it."""
    public = snapshot_of(request).config.server.public_url
    return public.split("://", 1)[1].split("/", 1)[0].lower() if public else None
