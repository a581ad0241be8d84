"""Failed authentication, slowed down: an address that keeps guessing is told
to wait, the right credential from elsewhere never is.

Two counts, each over the last minute, per family of credentials (the admin
token, which the admin API and the dashboard share; a subscriber's CLIENT ID
and secret, which the send API and the portal share):

- per client address: past `LIMIT` failures, every attempt from that address
  is answered 429 with `Retry-After`, the right credential included (else a
  guesser would learn when it guessed right);
- per credential (the admin token; a CLIENT ID): past `LIMIT` failures from
  anywhere, the credential is under attack, and an address that itself failed
  against it in that minute waits before its next try. An address that has
  not failed against it tries as usual, so someone else's guessing never locks
  the owner out.

An IPv6 client counts by its /64 (one subscriber's whole network), an IPv4
client by its address.

A success resets nothing (a guesser with an account of its own could
otherwise clear its count between guesses). Counts are kept in memory, per
process, and bounded; failures and refusals are counted in /metrics
(`wagate_auth_failures_total`, `wagate_auth_throttled_total`, by surface).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from bot.metrics import Metrics

LIMIT = 10  # failures a minute before the next attempt waits
WINDOW = 60.0
MAX_TRACKED = 50_000  # addresses and credentials remembered at once, per process

Family = Literal["admin", "subscriber"]
Surface = Literal["admin_api", "dashboard", "portal", "send_api"]
FAMILY: dict[Surface, Family] = {"admin_api": "admin", "dashboard": "admin",
                                 "portal": "subscriber", "send_api": "subscriber"}


@dataclass
class Throttle:
    metrics: Metrics
    clock: Callable[[], float] = time.monotonic
    _addresses: dict[tuple[Family, str], deque[float]] = field(default_factory=dict)
    _credentials: dict[tuple[Family, str], deque[float]] = field(default_factory=dict)
    # (family, credential, address) -> when that address last failed against it
    _pairs: dict[tuple[Family, str, str], float] = field(default_factory=dict)

    def wait(self, surface: Surface, address: str, credential: str) -> int | None:
        """Seconds `address` must wait before trying `credential` (counted as
        refused), or None: it may try now."""
        family, address = FAMILY[surface], _network(address)
        now = self.clock()
        wait = 0.0
        failures = _recent(self._addresses, (family, address), now)
        if len(failures) >= LIMIT:
            wait = failures[-LIMIT] + WINDOW - now
        else:
            last = self._pairs.get((family, credential, address))
            if (last is not None and now - last < WINDOW
                    and len(_recent(self._credentials, (family, credential), now)) >= LIMIT):
                wait = last + WINDOW - now
        if wait <= 0:
            return None
        self.metrics.auth_throttled.labels(surface).inc()
        return max(1, math.ceil(wait))

    def failed(self, surface: Surface, address: str, credential: str) -> None:
        family, address = FAMILY[surface], _network(address)
        now = self.clock()
        self.metrics.auth_failures.labels(surface).inc()
        for table, key in ((self._addresses, (family, address)),
                           (self._credentials, (family, credential))):
            times = table.get(key)
            if times is None:
                times = table[key] = deque(maxlen=LIMIT)  # only the last LIMIT matter
            times.append(now)
            _bound(table)
        self._pairs[(family, credential, address)] = now
        _bound(self._pairs)


_NONE: deque[float] = deque()


def _recent(table: dict[tuple[Family, str], deque[float]], key: tuple[Family, str],
            now: float) -> deque[float]:
    """The failures of the last minute under `key` (the older ones dropped)."""
    times = table.get(key, _NONE)
    while times and now - times[0] >= WINDOW:
        times.popleft()
    return times


def _network(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


def _bound(table: dict) -> None:  # type: ignore[type-arg]
    """Forget the oldest entries of a table that grew past its bound."""
    excess = len(table) - MAX_TRACKED
    if excess > 0:
        for key in list(table)[:excess + MAX_TRACKED // 10]:
            del table[key]


throttle_key = web.AppKey("auth_throttle", Throttle)


def refused_for(seconds: int) -> str:
    return f"too many failed attempts from this address: try again in {seconds} s"
