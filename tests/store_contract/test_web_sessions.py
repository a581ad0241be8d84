"""Dashboard and portal sessions are recorded in the store, on each backend:
logging out, "log out everywhere", expiry and a changed credential end them
at once, and a cookie replayed afterwards opens nothing and does nothing. On
PostgreSQL, two services (as two processes or hosts) share them: a session
ended on one is ended on the other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.config import Config
from bot.web.keys import clock_key
from bot.web.ui.session import SESSION_SECONDS
from tests.conftest import ADMIN, ADMIN_TOKEN, say
from tests.test_ui_browser import browser  # noqa: F401 (the fixture)
from tests.ui_helpers import ACME_LOGIN, csrf_of, login
from tests.webhook_helpers import Receiver, settled, subscribers_toml

AppClient = Callable[..., Awaitable[TestClient]]
U = "+34600000001"
shared_database = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def cookie_of(client: TestClient, name: str) -> str:
    found = [c.value for c in client.session.cookie_jar if c.key == name]
    assert found, f"no {name} cookie"
    return found[0]


async def replayed(client: TestClient, path: str, cookie: str, value: str) -> int:
    """The status of `path` fetched with only this cookie (as an attacker holding it)."""
    client.session.cookie_jar.clear()
    resp = await client.get(path, headers={"Cookie": f"{cookie}={value}"},
                            allow_redirects=False)
    return resp.status


@pytest.mark.parametrize(("prefix", "cookie", "fields"), [
    ("/ui/", "wagate_ui", None), ("/portal/", "wagate_portal", ACME_LOGIN)])
async def test_logging_out_ends_the_session(aiohttp_client: AppClient, receiver: Receiver,
                                            make_config: Callable[..., Config], prefix: str,
                                            cookie: str, fields: dict[str, str] | None) -> None:
    client = await aiohttp_client(create_app(make_config(subscribers_toml(receiver.base))))
    receiver.script("/acme", *[(500, {}, 0.0)] * 3)
    await say(client, "order 66", sender=U, instance=3)
    failed = (await settled(client, 1, subscriber="acme"))[0]["id"]
    assert (await login(client, prefix, fields)).status == 303
    value = cookie_of(client, cookie)
    token = csrf_of(await (await client.get(f"{prefix}deliveries")).text())
    resp = await client.post(f"{prefix}logout", data={"csrf": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"{prefix}login"
    # The cookie, replayed, opens nothing and replays nothing.
    assert await replayed(client, prefix, cookie, value) == 303
    resp = await client.post(f"{prefix}deliveries/{failed}/retry", data={"csrf": token},
                             headers={"Cookie": f"{cookie}={value}"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith(f"{prefix}login")
    assert (await settled(client, 1, subscriber="acme"))[0]["status"] == "failed"


async def test_log_out_everywhere_ends_every_session_of_the_subject(
        aiohttp_client: AppClient, receiver: Receiver,
        make_config: Callable[..., Config]) -> None:
    client = await aiohttp_client(create_app(make_config(subscribers_toml(receiver.base))))
    beta = {"client_id": "dev@beta.example", "secret": "beta-api-secret"}
    sessions = {}  # as several browsers would hold them
    for name, prefix, fields in [("phone", "/portal/", ACME_LOGIN),
                                 ("tablet", "/portal/", ACME_LOGIN),
                                 ("beta", "/portal/", beta), ("admin", "/ui/", None),
                                 ("laptop", "/portal/", ACME_LOGIN)]:
        client.session.cookie_jar.clear()
        assert (await login(client, prefix, fields)).status == 303
        sessions[name] = cookie_of(client, "wagate_ui" if prefix == "/ui/" else "wagate_portal")
    page = await (await client.get("/portal/")).text()  # the laptop's
    assert "Log out everywhere" in page
    resp = await client.post("/portal/logout/everywhere", data={"csrf": csrf_of(page)},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/portal/login"
    for name in ("laptop", "phone", "tablet"):
        assert await replayed(client, "/portal/", "wagate_portal", sessions[name]) == 303, name
    # Another subscriber's session, and the admin's, go on.
    assert await replayed(client, "/portal/", "wagate_portal", sessions["beta"]) == 200
    assert await replayed(client, "/ui/", "wagate_ui", sessions["admin"]) == 200


def new_admin_token(config_path: Path, token: str) -> None:
    config_path.write_text(config_path.read_text().replace(ADMIN["Authorization"][7:], token))


async def test_expiry_and_a_changed_admin_token_end_sessions(
        aiohttp_client: AppClient, make_config: Callable[..., Config],
        config_path: Path) -> None:
    client = await aiohttp_client(create_app(make_config()))
    assert (await login(client)).status == 303
    value = cookie_of(client, "wagate_ui")
    client.app[clock_key].shift(SESSION_SECONDS + 1)
    assert await replayed(client, "/ui/", "wagate_ui", value) == 303  # the browser kept it
    client.app[clock_key].shift(-SESSION_SECONDS - 1)
    assert (await login(client)).status == 303
    value = cookie_of(client, "wagate_ui")
    assert await replayed(client, "/ui/", "wagate_ui", value) == 200
    new_admin_token(config_path, "a-new-admin-token-0123456789")
    resp = await client.post("/admin/reload", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert await replayed(client, "/ui/", "wagate_ui", value) == 303


async def test_a_cookie_of_anyones_making_is_no_session(aiohttp_client: AppClient,
                                                        make_config: Callable[..., Config]
                                                        ) -> None:
    """The cookie holds a random key, nothing more: a value made up (an old
    signed session claiming to end at Infinity or NaN included) opens nothing."""
    import base64
    import hashlib
    import hmac

    client = await aiohttp_client(create_app(make_config()))
    key = hmac.new(ADMIN_TOKEN.encode(), b"wagate session key", hashlib.sha256).digest()
    made = ["x" * 43, "A" * 20, "e30.AAAA", "." * 3000]
    for ends in ("Infinity", "NaN", "1e400"):
        body = ('{"r":"admin","s":"admin","c":"' + "c" * 32 + '","k":"x","e":' + ends
                + "}").encode()
        mac = hmac.new(key, b"wagate_ui\0" + body, hashlib.sha256).digest()
        made.append(base64.urlsafe_b64encode(body).decode().rstrip("=") + "."
                    + base64.urlsafe_b64encode(mac).decode().rstrip("="))
    for value in made:
        assert await replayed(client, "/ui/", "wagate_ui", value) == 303, value


@shared_database
async def test_a_session_ended_on_one_process_is_ended_on_the_other(
        aiohttp_client: AppClient, make_config: Callable[..., Config]) -> None:
    config = make_config(subscribers_toml("http://127.0.0.1:9"))
    a, b = await aiohttp_client(create_app(config)), await aiohttp_client(create_app(config))
    assert (await login(a, "/portal/", ACME_LOGIN)).status == 303
    value = cookie_of(a, "wagate_portal")
    assert await replayed(b, "/portal/", "wagate_portal", value) == 200  # one session, both
    b.session.cookie_jar.update_cookies({"wagate_portal": value})
    page = await (await b.get("/portal/")).text()
    resp = await b.post("/portal/logout", data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert resp.status == 303
    assert await replayed(a, "/portal/", "wagate_portal", value) == 303
    # And log out everywhere, from the other process.
    assert (await login(a)).status == 303
    admin_cookie = cookie_of(a, "wagate_ui")
    assert (await login(b)).status == 303
    page = await (await b.get("/ui/")).text()
    resp = await b.post("/ui/logout/everywhere", data={"csrf": csrf_of(page)},
                        allow_redirects=False)
    assert resp.status == 303
    assert await replayed(a, "/ui/", "wagate_ui", admin_cookie) == 303


@shared_database
async def test_in_a_browser_logging_out_reaches_the_other_process(
        browser: Any,  # noqa: F811 (the fixture)
        aiohttp_client: AppClient, make_config: Callable[..., Config]) -> None:
    """Chromium, two services on one PostgreSQL database (ports of one host, so
    the browser sends its cookie to both): logging out on one ends the session
    on the other, the old cookie put back opens nothing; "Log out everywhere"
    in one browser ends the session of another browser."""
    from playwright.async_api import expect

    config = make_config(subscribers_toml("http://127.0.0.1:9"))
    a, b = await aiohttp_client(create_app(config)), await aiohttp_client(create_app(config))
    base_a, base_b = (str(c.make_url("")).rstrip("/") for c in (a, b))

    async def logged_in(base: str) -> tuple[Any, Any]:
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(15_000)
        await page.goto(f"{base}/ui/")
        await page.fill("input[name=token]", ADMIN_TOKEN)
        await page.click("button[type=submit]")
        await expect(page.locator("h1")).to_have_text("Overview")
        return context, page

    context, page = await logged_in(base_a)
    await page.goto(f"{base_b}/ui/registrations")  # the same session, on the other process
    await expect(page.locator("h1")).to_have_text("Registrations")
    stolen = [c for c in await context.cookies() if c["name"] == "wagate_ui"]
    assert stolen
    await page.goto(f"{base_a}/ui/")
    await page.click("text=Log out >> nth=0")
    await expect(page.locator("input[name=token]")).to_be_visible()
    await context.add_cookies(stolen)  # the old cookie, put back as a thief would
    await page.goto(f"{base_b}/ui/")
    await expect(page.locator("input[name=token]")).to_be_visible()

    laptop, laptop_page = await logged_in(base_a)
    phone, phone_page = await logged_in(base_b)
    await laptop_page.click("text=Log out everywhere")
    await expect(laptop_page.locator("input[name=token]")).to_be_visible()
    await phone_page.goto(f"{base_b}/ui/deliveries")
    await expect(phone_page.locator("input[name=token]")).to_be_visible()
    for ctx in (context, laptop, phone):
        await ctx.close()
