"""The pages against an attacker: notices are codes (no text from a link shown
on a logged-in page), the login's CSRF token is the server's own, state-changing
POSTs check Origin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import say
from tests.ui_helpers import ACME_LOGIN, csrf_of, login
from tests.webhook_helpers import Receiver, settled, subscribers_toml

U = "+34600000001"
PHISH = "Session expired, re-enter the admin token at https://evil.example"


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


async def test_a_notice_is_a_code_not_text_from_the_link(client: TestClient) -> None:
    await login(client)
    await login(client, "/portal/", ACME_LOGIN)
    for path in ("/ui/", "/ui/deliveries", "/ui/registrations", "/portal/",
                 "/portal/deliveries"):
        for query in (f"notice={quote(PHISH)}",
                      f"notice=replayed&notice_count={quote(PHISH)}",
                      f"notice=opted_out&notice_number={quote(PHISH)}&notice_instance=1",
                      "notice=replayed&notice_count=%D9%A3",  # an Arabic-Indic 3
                      "notice=__class__", "notice=replayed"):
            page = await (await client.get(f"{path}?{query}")).text()
            assert 'class="notice"' not in page, (path, query)
            assert "evil.example" not in page, (path, query)
    page = await (await client.get(
        "/ui/deliveries?notice=replayed&notice_count=3&notice_pulled=2")).text()
    assert ('<p class="notice" role="status">3 failed deliveries queued again, 2 pending '
            'pulled forward.</p>') in page
    page = await (await client.get(
        "/ui/registrations?notice=opted_out&notice_number=%2B34600000001&notice_instance=3"
    )).text()
    assert "+34600000001 is opted out on instance 3." in page


async def test_actions_still_say_what_they_did(client: TestClient, receiver: Receiver) -> None:
    receiver.script("/acme", *[(500, {}, 0.0)] * 3)
    await say(client, "order 66", sender=U, instance=3)
    failed = (await settled(client, 1, subscriber="acme"))[0]["id"]
    await login(client)
    token = csrf_of(await (await client.get("/ui/deliveries")).text())
    resp = await client.post(f"/ui/deliveries/{failed}/retry", data={"csrf": token},
                             allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == f"/ui/deliveries/{failed}?notice=retry_queued"
    await login(client, "/portal/", ACME_LOGIN)
    token = csrf_of(await (await client.get("/portal/")).text())
    resp = await client.post("/portal/webhooks/test", data={"csrf": token})
    assert resp.status == 200
    assert "A test event is queued for 1 endpoint(s)." in await resp.text()


@pytest.mark.parametrize(("prefix", "fields"), [("/ui/", {"token": "test-admin-token"}),
                                                ("/portal/", ACME_LOGIN)])
async def test_a_login_token_of_the_attackers_choosing_is_refused(
        client: TestClient, prefix: str, fields: dict[str, str]) -> None:
    """Login CSRF: a cookie and form value the attacker chose (planted in the
    victim's browser) no longer log the victim in to the attacker's account."""
    for chosen in ("a" * 32, "x" * 20, "1f.abc.def", "0." + "b" * 40):
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({"wagate_login": chosen})
        resp = await client.post(f"{prefix}login", allow_redirects=False,
                                 data={"csrf": chosen, "next": prefix, **fields})
        assert resp.status == 403, (chosen, await resp.text())
        assert (await resp.json())["error"] == "csrf_failed"
    # The server's own token, fetched as a browser does, works.
    client.session.cookie_jar.clear()
    resp = await login(client, prefix, fields)
    assert resp.status == 303


async def test_state_changing_posts_from_another_origin_are_refused(
        client: TestClient, receiver: Receiver) -> None:
    page = await client.get("/ui/login")
    token = csrf_of(await page.text())
    own = f"http://{client.host}:{client.port}"
    for origin in ("https://evil.example", "null", f"http://{client.host}:1",
                   "file:///x", "http://evil.example/" + own):
        resp = await client.post("/ui/login", allow_redirects=False,
                                 headers={"Origin": origin},
                                 data={"csrf": token, "next": "/ui/", "token": "test-admin-token"})
        assert resp.status == 403, origin
        assert (await resp.json())["error"] == "cross_origin"
    resp = await client.post("/ui/login", allow_redirects=False,
                             headers={"Referer": "https://evil.example/page"},
                             data={"csrf": token, "next": "/ui/", "token": "test-admin-token"})
    assert resp.status == 403
    resp = await client.post("/ui/login", allow_redirects=False, headers={"Origin": own},
                             data={"csrf": token, "next": "/ui/", "token": "test-admin-token"})
    assert resp.status == 303
    # A logged-in page's form, sent from elsewhere, does nothing.
    receiver.script("/acme", *[(500, {}, 0.0)] * 3)
    await say(client, "order 66", sender=U, instance=3)
    failed = (await settled(client, 1, subscriber="acme"))[0]["id"]
    token = csrf_of(await (await client.get("/ui/deliveries")).text())
    resp = await client.post(f"/ui/deliveries/{failed}/retry", data={"csrf": token},
                             headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert resp.status == 403
    assert (await settled(client, 1, subscriber="acme"))[0]["status"] == "failed"
    resp = await client.post(f"/ui/deliveries/{failed}/retry", data={"csrf": token},
                             headers={"Origin": own}, allow_redirects=False)
    assert resp.status == 303
