"""Behind a proxy: `[server] trusted_proxies` are the only peers whose
X-Forwarded-For / X-Forwarded-Proto are believed (for the client's address in
logs and the login throttle, and for Secure cookies); `[server] public_url` is
the address the service is reached at (Secure cookies when https, the Origin
pages are posted from, the base Twilio signs and fetches media at); and the
admin token is long enough that no one guesses it."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.config.load import load_config, parse_config
from bot.config.types import Config, ConfigError
from bot.web.throttle import LIMIT
from tests.conftest import ADMIN_TOKEN, ROOT, base_config
from tests.ui_helpers import csrf_of

MakeClient = Callable[..., Awaitable[TestClient]]
PROXIED = textwrap.dedent("""
    [server]
    public_url = "https://gw.example/"
    trusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]
""")


def with_server(config_path: Path, server: str) -> Config:
    """The test config with keys added to its [server] table."""
    config_path.write_text(config_path.read_text().replace("[server]\n", server.lstrip(), 1))
    return load_config(config_path)


async def client_for(config: Config) -> TestClient:
    client = TestClient(TestServer(create_app(config)), cookie_jar=CookieJar(unsafe=True))
    await client.start_server()
    return client


@pytest.fixture
async def proxied(make_client: MakeClient, config_path: Path) -> TestClient:
    await make_client()  # writes the test config
    return await client_for(with_server(config_path, PROXIED))


def admin(token: str, forwarded_for: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return headers


async def test_a_trusted_proxy_names_the_client(proxied: TestClient,
                                                caplog: pytest.LogCaptureFixture) -> None:
    try:
        with caplog.at_level(logging.WARNING, logger="wagate.admin"):
            # The client wrote its own X-Forwarded-For; the proxy (10.1.1.1, trusted)
            # appended the client's real address, and the last proxy its own.
            for _ in range(LIMIT):
                resp = await proxied.get("/admin/registrations", headers=admin(
                    "guess", "1.2.3.4, 203.0.113.9, 10.1.1.1"))
                assert resp.status == 401
        assert "from 203.0.113.9" in caplog.text and "1.2.3.4" not in caplog.text
        resp = await proxied.get("/admin/registrations",
                                 headers=admin(ADMIN_TOKEN, "203.0.113.9"))
        assert resp.status == 429  # that client is throttled...
        # ...another client behind the same proxy is not, nor the proxy itself.
        resp = await proxied.get("/admin/registrations",
                                 headers=admin(ADMIN_TOKEN, "198.51.100.7"))
        assert resp.status == 200
        assert (await proxied.get("/admin/registrations", headers=admin(ADMIN_TOKEN))).status \
            == 200
    finally:
        await proxied.close()


async def test_an_untrusted_peer_cannot_choose_its_address(client: TestClient) -> None:
    for i in range(LIMIT):
        resp = await client.get("/admin/registrations",
                                headers=admin("guess", f"203.0.113.{i}"))
        assert resp.status == 401
    # Every guess counted against the peer itself, whatever it claimed to be.
    resp = await client.get("/admin/registrations", headers=admin(ADMIN_TOKEN, "198.51.100.7"))
    assert resp.status == 429


async def login_cookies(client: TestClient, headers: dict[str, str]) -> dict[str, bool]:
    """Whether the login form's and the session's cookies are Secure. (The test
    talks plain http, over which a client keeps Secure cookies to itself: the
    login cookie is sent by hand, as a browser on https would.)"""
    page = await client.get("/ui/login", headers=headers)
    cookie = page.cookies["wagate_login"]
    resp = await client.post("/ui/login", allow_redirects=False,
                             headers={**headers, "Cookie": f"wagate_login={cookie.value}"},
                             data={"csrf": csrf_of(await page.text()), "next": "/ui/",
                                   "token": ADMIN_TOKEN})
    assert resp.status == 303, await resp.text()
    return {name: bool(resp.cookies[name]["secure"]) for name in resp.cookies} | {
        "wagate_login": bool(page.cookies["wagate_login"]["secure"])}


async def test_secure_cookies_behind_a_tls_proxy(make_client: MakeClient,
                                                 config_path: Path) -> None:
    plain = await make_client()
    assert await login_cookies(plain, {"X-Forwarded-Proto": "https"}) == {
        "wagate_ui": False, "wagate_login": False}  # not from a trusted proxy
    trusting = await client_for(with_server(
        config_path, '[server]\ntrusted_proxies = ["127.0.0.1/32"]\n'))
    try:
        assert await login_cookies(trusting, {"X-Forwarded-Proto": "https"}) == {
            "wagate_ui": True, "wagate_login": True}
        trusting.session.cookie_jar.clear()
        assert await login_cookies(trusting, {"X-Forwarded-Proto": "http"}) == {
            "wagate_ui": False, "wagate_login": False}
    finally:
        await trusting.close()


async def test_an_https_public_url_makes_cookies_secure_and_is_an_own_origin(
        proxied: TestClient) -> None:
    try:
        assert await login_cookies(proxied, {"Origin": "https://gw.example"}) == {
            "wagate_ui": True, "wagate_login": True}
        proxied.session.cookie_jar.clear()
        page = await proxied.get("/ui/login")
        resp = await proxied.post("/ui/login", headers={"Origin": "https://evil.example"},
                                  data={"csrf": csrf_of(await page.text()), "next": "/ui/",
                                        "token": ADMIN_TOKEN}, allow_redirects=False)
        assert resp.status == 403
    finally:
        await proxied.close()


TWILIO = ('\n[twilio]\naccount_sid = "AC' + "0123456789abcdef" * 2 + '"\nauth_token = "t"\n'
          '\n[[instances]]\nid = 9\nnumber = "+15550004444"\nprovider = "twilio"\n')


def test_public_url_is_twilios_base_unless_it_has_its_own(tmp_path: Path) -> None:
    base = base_config(tmp_path / "x.db")
    config = parse_config(base.replace("[server]\n", PROXIED.lstrip(), 1) + TWILIO, env={})
    assert config.server.public_url == "https://gw.example"
    assert config.providers["twilio"].public_url == "https://gw.example"
    own = TWILIO.replace('auth_token = "t"\n',
                         'auth_token = "t"\npublic_url = "https://tw.example"\n')
    config = parse_config(base.replace("[server]\n", PROXIED.lstrip(), 1) + own, env={})
    assert config.providers["twilio"].public_url == "https://tw.example"
    with pytest.raises(ConfigError, match="public_url: is required"):
        parse_config(base + TWILIO, env={})


@pytest.mark.parametrize(("server", "words"), [
    ('public_url = "gw.example"', "not an http(s) URL"),
    ('public_url = "https://gw.example/?a=1"', "without ?query"),
    ('trusted_proxies = ["10.0.0.0/33"]', "is not an address or network"),
    ('trusted_proxies = "10.0.0.0/8"', "trusted_proxies"),
])
def test_server_keys_are_checked(tmp_path: Path, server: str, words: str) -> None:
    text = base_config(tmp_path / "x.db").replace("[server]\n", f"[server]\n{server}\n", 1)
    with pytest.raises(ConfigError, match=words.replace("?", r"\?").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse_config(text, env={})


def test_the_admin_token_must_be_long(tmp_path: Path) -> None:
    text = base_config(tmp_path / "x.db")
    for short in ("change-me", "x" * 15):
        with pytest.raises(ConfigError, match=r"admin\.token: must be at least 16 characters"):
            parse_config(text.replace(ADMIN_TOKEN, short), env={})
    assert parse_config(text.replace(ADMIN_TOKEN, "x" * 16), env={}).admin_token == "x" * 16


def test_check_config_says_how_long_the_admin_token_must_be(tmp_path: Path) -> None:
    path = tmp_path / "wagate.toml"
    path.write_text(base_config(tmp_path / "x.db").replace(ADMIN_TOKEN, "short-token"))
    done = subprocess.run([sys.executable, "-m", "bot", "check-config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "admin.token: must be at least 16 characters" in done.stderr
    assert "openssl rand -base64 24" in done.stderr
