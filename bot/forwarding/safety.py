"""Where webhooks may go: http(s) URLs whose addresses are public.

A URL's host is judged exactly as the HTTP client will use it: parsed by yarl,
as aiohttp parses it (IDNA/NFKC folding turns `１２７．０．０．１` into
`127.0.0.1`, IPv6 is normalized). Then:
- an IPv4 address in any spelling but the dotted quad (`127.1`, `2130706433`,
  `0x7f.0.0.1`, `0177.0.0.1`, `127.0.0.1.`) is refused: resolvers and browsers
  read these as addresses, aiohttp refuses to connect to some of them, and one
  spelling per address keeps the rule simple to check;
- an IP literal is refused when `refusal` objects to it;
- a name is left to the resolver: `GuardedResolver`, wrapped around aiohttp's
  own, drops the addresses `refusal` objects to, so a name pointing at
  127.0.0.1 or 169.254.169.254 is refused however it is spelled.
Networks listed in `[webhooks] allow_private_networks` are let through.
Config load refuses with `check_url` too, so a URL that can never be
delivered never gets in; the deliverer checks again before each attempt.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import string
import unicodedata
from collections.abc import Callable, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _table(*rows: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(net), why) for net, why in rows)


# The IANA special-purpose registries' blocks that are not globally reachable,
# written out rather than read from `ipaddress.is_global`, whose answer differs
# between Python releases (3.11.7 calls 192.0.0.8 global). Where a block holds a
# few globally reachable anycast services, none of them a webhook receiver, the
# whole block is refused. First match wins.
REFUSED_V4 = _table(
    ("0.0.0.0/8", "this network"),        # RFC 791; Linux connects 0.0.0.0 to itself
    ("10.0.0.0/8", "private"),            # RFC 1918
    ("100.64.0.0/10", "shared address space"),  # RFC 6598, carrier-grade NAT
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),     # RFC 3927; cloud metadata at 169.254.169.254
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),  # RFC 6890: DS-Lite, 192.0.0.8, NAT64 discovery
    ("192.0.2.0/24", "documentation"),    # TEST-NET-1
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),  # RFC 7526
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),    # RFC 2544
    ("198.51.100.0/24", "documentation"),  # TEST-NET-2
    ("203.0.113.0/24", "documentation"),  # TEST-NET-3
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),          # RFC 1112, and 255.255.255.255 broadcast
)
REFUSED_V6 = _table(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),  # RFC 8215
    ("100::/64", "discard-only"),         # RFC 6666
    ("2001::/23", "IETF protocol assignments"),  # Teredo, benchmarking, ORCHID, AMT
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),       # RFC 9637
    ("fc00::/7", "unique local"),         # RFC 4193
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),          # deprecated by RFC 3879
    ("ff00::/8", "multicast"),
)
# Only 2000::/3 is allocated as global unicast; IPv6 outside it is refused, except
# the forms that carry an IPv4 address, which are judged by that address.
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
NAT64_V6 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the NAT64 reaches the IPv4 inside


class RefusedAddress(OSError):
    """A webhook host resolved only to addresses we do not send to."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches: mapped (::ffff:a.b.c.d), 6to4
    (2002:AABB:CCDD::), or NAT64's well-known prefix (64:ff9b::a.b.c.d)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_V6:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _special(ip: IPAddress) -> str | None:
    """The special-purpose block `ip` is in, or None when it is global unicast."""
    for net, why in REFUSED_V4 if ip.version == 4 else REFUSED_V6:
        if ip in net:
            return why
    if isinstance(ip, ipaddress.IPv6Address) and ip not in GLOBAL_UNICAST_V6:
        return "not global unicast"
    return None


def refusal(ip: IPAddress, allowed: Sequence[Network]) -> str | None:
    """Why `ip` may not receive webhooks, or None when it may."""
    inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    # A listed network admits the address itself, or the IPv4 one it is mapped
    # from (the same socket); 6to4 and NAT64 go through a relay, elsewhere.
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if any(a is not None and a.version == net.version and a in net
           for a in (ip, mapped) for net in allowed):
        return None
    if inner is not None:
        why = _special(inner)
        return None if why is None else f"{why} (IPv4 {inner})"
    return _special(ip)


_IDNA_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _labels(host: str) -> list[str]:
    """`host`'s labels after Unicode folding, without the trailing dots of a FQDN."""
    labels = unicodedata.normalize("NFKC", host).translate(_IDNA_DOTS).casefold().split(".")
    while labels and not labels[-1]:
        labels.pop()
    return labels


def _is_number(label: str) -> bool:
    """A decimal, octal or hex number (`0x` alone is zero), in any script's digits."""
    if label.startswith("0x"):
        return all(c in string.hexdigits for c in label[2:])
    return label.isdigit()


def _inet_aton(labels: list[str]) -> ipaddress.IPv4Address | None:
    """The address inet_aton and browsers (WHATWG's IPv4 parser) read, or None."""
    if not 1 <= len(labels) <= 4:
        return None
    numbers = []
    for label in labels:
        if not label.isascii() or not _is_number(label):
            return None
        if label.startswith("0x"):
            digits, base = label[2:] or "0", 16
        else:
            digits, base = label, 8 if len(label) > 1 and label[0] == "0" else 10
        try:
            numbers.append(int(digits, base))
        except ValueError:  # 08, 09: no octal number
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def check_url(url: str, allowed: Sequence[Network]) -> str | None:
    """Why `url` can never receive webhooks (checked before any connection), or
    None: not an http(s) URL, an IPv4 address spelled other than as a dotted
    quad, or an IP literal that `refusal` objects to. A name passes: the resolver
    judges what it resolves to. The message starts with the URL."""
    # The answer depends on the config alone: judged once per endpoint and
    # reload, not once per delivery (it was 6 % of a delivery's CPU).
    return _check_url(url, tuple(allowed))


@functools.lru_cache(maxsize=4096)
def _check_url(url: str, allowed: tuple[Network, ...]) -> str | None:
    try:
        parsed = URL(url)  # exactly as aiohttp's ClientSession parses it
        host = parsed.raw_host
    except ValueError as exc:  # UnicodeError (IDNA) included
        return f"{url!r} is not a valid URL: {exc}"
    if parsed.scheme not in ("http", "https") or not host:
        return f"{url!r} is not an http(s) URL"
    why = host_refusal(host, allowed)
    return None if why is None else f"{url!r} is refused: {why}"


def host_refusal(host: str, allowed: Sequence[Network]) -> str | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        why = refusal(ip, allowed)
        return None if why is None else (f"address {ip} is {why}; not in "
                                         "[webhooks] allow_private_networks")
    if ":" in host:  # aiohttp takes it for an IPv6 literal: never a name
        return f"host {host!r} is not a valid IPv6 address"
    labels = _labels(host)
    if labels and _is_number(labels[-1]):  # WHATWG: a host ending in a number is IPv4
        meant = _inet_aton(labels)
        if meant is None:
            return f"host {host!r} is not a canonical IPv4 address: it is no address at all"
        why = refusal(meant, allowed)
        return (f"host {host!r} is not a canonical IPv4 address: it means {meant}"
                f"{f' ({why})' if why else ''}; write it as {meant}")
    return None


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
