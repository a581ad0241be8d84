"""Guessing: one address tries wrong credentials as fast as it can on every
surface that takes one (the admin API's bearer token, the dashboard's login,
the send API's CLIENT ID / secret, the portal's login), while another address
uses the right ones throughout. The service must answer the guesser's first
10 failures a minute with their verdict and every later attempt with 429 and
Retry-After, and let the owner in every time. Then guesses at one CLIENT ID
spread over many addresses, one each: once the credential is under attack,
each of those addresses waits before its second guess, and the owner, from an
address of its own, still gets in.

Every client is a real connection from its own loopback address (127.0.0.N)
to the real service (reliability/service.py).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.harness import ADMIN_TOKEN, CLIENT_ID, CLIENT_SECRET
from reliability.common import Row
from reliability.service import Service

SUITE = "guessing"
LIMIT = 10  # failures a minute before an address waits (SPEC §6e)
GUESSER = "127.0.0.2"
OWNER = "127.0.0.3"
SPREAD_BASE = "127.0.1."  # the addresses of the spread guesses: .1, .2, ...
OWNER_EVERY = 10  # the owner comes in once every this many guesses
CSRF = re.compile(r'name="csrf" value="([^"]+)"')

Attempt = Callable[[aiohttp.ClientSession, bool], Awaitable[int]]


def session_from(address: str, base: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(local_addr=(address, 0)),
        timeout=aiohttp.ClientTimeout(total=30))


async def _status(resp: aiohttp.ClientResponse, tally: Tally | None) -> int:
    await resp.read()
    if tally is not None and resp.status == 429:
        tally.with_retry_after += "Retry-After" in resp.headers
    return resp.status


async def admin_api(session: aiohttp.ClientSession, right: bool,
                    tally: Tally | None = None) -> int:
    token = ADMIN_TOKEN if right else "guess-" + str(time.monotonic_ns())
    async with session.get("/admin/registrations?limit=1",
                           headers={"Authorization": f"Bearer {token}"}) as resp:
        return await _status(resp, tally)


async def send_api(session: aiohttp.ClientSession, right: bool,
                   tally: Tally | None = None) -> int:
    secret = CLIENT_SECRET if right else "guess-" + str(time.monotonic_ns())
    async with session.get("/v3/account", headers={"X-WM-CLIENT-ID": CLIENT_ID,
                                                   "X-WM-CLIENT-SECRET": secret}) as resp:
        return await _status(resp, tally)


async def _login(session: aiohttp.ClientSession, prefix: str, fields: dict[str, str],
                 tally: Tally | None) -> int:
    async with session.get(f"{prefix}login") as page:
        found = CSRF.search(await page.text())
    if found is None:
        raise RuntimeError(f"{prefix}login has no CSRF token")
    async with session.post(f"{prefix}login", allow_redirects=False,
                            data={"csrf": found.group(1), "next": prefix, **fields}) as resp:
        return await _status(resp, tally)


async def dashboard(session: aiohttp.ClientSession, right: bool,
                    tally: Tally | None = None) -> int:
    return await _login(session, "/ui/", {"token": ADMIN_TOKEN if right else "guess"}, tally)


async def portal(session: aiohttp.ClientSession, right: bool,
                 tally: Tally | None = None) -> int:
    return await _login(session, "/portal/", {"client_id": CLIENT_ID,
                                              "secret": CLIENT_SECRET if right else "guess"},
                        tally)


# The two families of credentials, each with its two surfaces and what a
# verdict on a wrong guess is (401 or 474), what the right one gets (200 or 303).
FAMILIES = {
    "admin token": ((("admin_api", admin_api), ("dashboard", dashboard)), {401}, {200, 303}),
    "CLIENT ID / secret": ((("send_api", send_api), ("portal", portal)), {401, 474},
                           {200, 303}),
}


@dataclass
class Tally:
    guesses: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    with_retry_after: int = 0
    owner_tries: int = 0
    owner_in: int = 0
    owner_statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    def breakdown(self) -> str:
        return ", ".join(f"{s} ×{n:,}" for s, n in sorted(self.statuses.items()))


async def guess_family(guesser: aiohttp.ClientSession, owner: aiohttp.ClientSession,
                       surfaces: tuple[tuple[str, Callable[..., Awaitable[int]]], ...],
                       attempts: int, right: set[int]) -> Tally:
    tally = Tally()
    started = time.perf_counter()
    for i in range(attempts):
        _name, attempt = surfaces[i % len(surfaces)]
        tally.guesses += 1
        tally.statuses[await attempt(guesser, False, tally)] += 1
        if i % OWNER_EVERY == OWNER_EVERY - 1:
            owner_status = await attempt(owner, True)
            tally.owner_tries += 1
            tally.owner_in += owner_status in right
            tally.owner_statuses[owner_status] += 1
    tally.seconds = time.perf_counter() - started
    return tally


async def spread(base: str, addresses: int) -> tuple[int, int, int, int]:
    """(first guesses answered 474, second guesses answered 429, fresh address with
    a wrong guess answered 474, the owner from a fresh address let in)."""
    sessions = [session_from(f"{SPREAD_BASE}{i + 1}", base) for i in range(addresses)]
    fresh_guess, fresh_owner = session_from("127.0.2.1", base), session_from("127.0.2.2", base)
    try:
        first = [await send_api(s, False) for s in sessions]
        second = [await send_api(s, False) for s in sessions]
        return (first.count(474), second.count(429), int(await send_api(fresh_guess, False) == 474),
                int(await send_api(fresh_owner, True) == 200))
    finally:
        for s in [*sessions, fresh_guess, fresh_owner]:
            await s.close()


async def failures_counted(session: aiohttp.ClientSession) -> dict[str, float]:
    async with session.get("/metrics") as resp:
        text = await resp.text()
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^wagate_auth_failures_total\{surface="(\w+)"\} (\S+)$', text, re.M)}


async def run(small: bool, workdir: Path) -> list[Row]:
    attempts, addresses = (120, 2 * LIMIT) if small else (2_000, 200)
    service = Service(tmp=workdir, quick=small)
    await asyncio.to_thread(service.start_all)
    base = service.url("wagate")
    try:
        guesser, owner = session_from(GUESSER, base), session_from(OWNER, base)
        try:
            tallies = {name: await guess_family(guesser, owner, surfaces, attempts, right)
                       for name, (surfaces, _verdicts, right) in FAMILIES.items()}
            counted = await failures_counted(owner)
        finally:
            await guesser.close()
            await owner.close()
        spread_figures = await spread(base, addresses)
    finally:
        await asyncio.to_thread(service.stop_all)
    return rows(tallies, counted, spread_figures, addresses)


def rows(tallies: dict[str, Tally], counted: dict[str, float],
         spread_figures: tuple[int, int, int, int], addresses: int) -> list[Row]:
    out: list[Row] = []
    for name, tally in tallies.items():
        _surfaces, verdict_statuses, _right = FAMILIES[name]
        verdicts = sum(tally.statuses[s] for s in verdict_statuses)
        minutes = max(1, -(-int(tally.seconds) // 60))
        throttled = tally.statuses[429]
        out += [
            Row(suite=SUITE, measure=f"{name}: wrong guesses from one address answered",
                figure=f"{tally.guesses:,} in {tally.seconds:.1f} s ({tally.breakdown()})"),
            Row(suite=SUITE, measure=f"{name}: guesses that got a verdict",
                figure=f"{verdicts} in {minutes} min", target=f"≤ {LIMIT} a minute",
                met=0 < verdicts <= LIMIT * minutes),
            Row(suite=SUITE, measure=f"{name}: the rest answered 429 with Retry-After",
                figure=f"{tally.with_retry_after:,} of {tally.guesses - verdicts:,}",
                target="all",
                met=throttled == tally.with_retry_after == tally.guesses - verdicts),
            Row(suite=SUITE, measure=f"{name}: the right one from another address let in",
                figure=f"{tally.owner_in} of {tally.owner_tries}"
                       + ("" if tally.owner_in == tally.owner_tries else
                          f" ({dict(tally.owner_statuses)})"),
                target="all", met=tally.owner_in == tally.owner_tries > 0),
        ]
    surfaces = {s for surfaces, _v, _r in FAMILIES.values() for s, _ in surfaces}
    verdicts = sum(sum(t.statuses[s] for s in FAMILIES[n][1]) for n, t in tallies.items())
    shown = sum(counted.get(s, 0.0) for s in surfaces)
    out.append(Row(suite=SUITE, measure="wagate_auth_failures_total (all surfaces)",
                   figure=f"{shown:,.0f} (verdicts given: {verdicts})",
                   target="= verdicts given", met=shown == verdicts))
    first, second, fresh_guess, fresh_owner = spread_figures
    out += [
        Row(suite=SUITE, measure=f"one CLIENT ID guessed from {addresses} addresses: "
                                 "second guesses answered 429",
            figure=f"{second} of {addresses} (first guesses: {first} answered 474)",
            target=f"all past the first {LIMIT}", met=second >= addresses - LIMIT),
        Row(suite=SUITE, measure="…an address that had not guessed: its wrong guess judged, "
                                 "the owner let in",
            figure=f"{fresh_guess}, {fresh_owner}", target="1, 1",
            met=(fresh_guess, fresh_owner) == (1, 1)),
    ]
    return out
