"""Guessing is slowed down: past 10 failures a minute an address gets 429 with
Retry-After on the admin API, the send API and the dashboard and portal
logins, while the right credential from another address still works. Each
client here is a real connection from its own loopback address (127.0.0.N)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.web.throttle import LIMIT, throttle_key
from tests.conftest import ADMIN_TOKEN
from tests.ui_helpers import ACME_API, ACME_LOGIN, csrf_of
from tests.webhook_helpers import Receiver, subscribers_toml

From = Callable[[int], Awaitable[aiohttp.ClientSession]]


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


@pytest.fixture
async def from_address(client: TestClient) -> AsyncIterator[From]:
    """A client session whose connections come from 127.0.0.<n>."""
    sessions: list[aiohttp.ClientSession] = []

    async def make(n: int) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(
            base_url=str(client.make_url("")), cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(local_addr=(f"127.0.0.{n}", 0)))
        sessions.append(session)
        return session
    yield make
    for session in sessions:
        await session.close()


def retry_after(resp: aiohttp.ClientResponse) -> int:
    wait = int(resp.headers["Retry-After"])
    assert 1 <= wait <= 60, wait
    return wait


async def metric(client: TestClient, name: str, surface: str) -> float:
    text = await (await client.get("/metrics")).text()
    found = re.search(rf'^{name}{{surface="{surface}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def admin(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_token_guessing_from_one_address(client: TestClient,
                                                     from_address: From) -> None:
    guesser, owner = await from_address(2), await from_address(3)
    for i in range(LIMIT):
        resp = await guesser.get("/admin/registrations", headers=admin(f"guess-{i}"))
        assert resp.status == 401
    # The guesser waits, even with the right token (else it would learn it guessed right).
    for token in ("guess-x", ADMIN_TOKEN):
        resp = await guesser.get("/admin/registrations", headers=admin(token))
        assert resp.status == 429, await resp.text()
        assert (await resp.json())["error"] == "too_many_failures"
        retry_after(resp)
    # The owner, elsewhere, is not locked out.
    assert (await owner.get("/admin/registrations", headers=admin(ADMIN_TOKEN))).status == 200
    assert await metric(client, "wagate_auth_failures_total", "admin_api") == LIMIT
    assert await metric(client, "wagate_auth_throttled_total", "admin_api") == 2
    # A minute on, the guesser may try again.
    client.app[throttle_key].clock = lambda: time.monotonic() + 61
    assert (await guesser.get("/admin/registrations", headers=admin(ADMIN_TOKEN))).status == 200


async def test_send_api_guessing_and_a_credential_under_attack(client: TestClient,
                                                               from_address: From) -> None:
    wrong = {**ACME_API, "X-WM-CLIENT-SECRET": "nope"}
    guesser = await from_address(2)
    for _ in range(LIMIT):
        assert (await guesser.get("/v3/account", headers=wrong)).status == 474
    resp = await guesser.get("/v3/account", headers=ACME_API)
    assert resp.status == 429
    retry_after(resp)
    owner = await from_address(3)
    assert (await owner.get("/v3/account", headers=ACME_API)).status == 200
    # Spread over many addresses, one guess each: the credential is under attack,
    # so an address that guessed wrong waits before its next guess...
    spread = [await from_address(10 + i) for i in range(LIMIT)]
    for session in spread:
        assert (await session.get("/v3/account", headers=wrong)).status == 474
    resp = await spread[0].get("/v3/account", headers=wrong)
    assert resp.status == 429
    retry_after(resp)
    # ...while an address that did not guess still tries (and the owner gets in).
    assert (await (await from_address(40)).get("/v3/account", headers=wrong)).status == 474
    assert (await (await from_address(41)).get("/v3/account", headers=ACME_API)).status == 200
    # Another subscriber's credential is not under attack.
    beta_wrong = {"X-WM-CLIENT-ID": "dev@beta.example", "X-WM-CLIENT-SECRET": "nope"}
    assert (await spread[1].get("/v3/account", headers=beta_wrong)).status == 474
    assert await metric(client, "wagate_auth_failures_total", "send_api") == 2 * LIMIT + 2


async def login_from(session: aiohttp.ClientSession, prefix: str,
                     fields: dict[str, str]) -> aiohttp.ClientResponse:
    page = await session.get(f"{prefix}login")
    assert page.status == 200
    return await session.post(f"{prefix}login", allow_redirects=False,
                              data={"csrf": csrf_of(await page.text()), "next": prefix,
                                    **fields})


@pytest.mark.parametrize(("prefix", "right", "wrong", "surface"), [
    ("/ui/", {"token": ADMIN_TOKEN}, {"token": "guess"}, "dashboard"),
    ("/portal/", ACME_LOGIN, {**ACME_LOGIN, "secret": "guess"}, "portal")])
async def test_login_pages_throttle_an_address_not_the_owner(
        client: TestClient, from_address: From, prefix: str, right: dict[str, str],
        wrong: dict[str, str], surface: str) -> None:
    guesser, owner = await from_address(2), await from_address(3)
    for _ in range(LIMIT):
        assert (await login_from(guesser, prefix, wrong)).status == 401
    resp = await login_from(guesser, prefix, right)
    assert resp.status == 429
    retry_after(resp)
    assert "Too many failed attempts from your address" in await resp.text()
    resp = await login_from(owner, prefix, right)
    assert resp.status == 303 and resp.headers["Location"] == prefix
    assert (await owner.get(prefix)).status == 200
    assert await metric(client, "wagate_auth_failures_total", surface) == LIMIT
