"""The dashboard's subscribers and audit log, and the portal's credentials,
over HTTP as a browser sends the forms: a managed subscriber created, its
secret shown once, changed, suspended, rotated, deleted; the config file's
subscribers read-only; refusals shown on the form, readable, never a 500."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from tests.ui_helpers import ACME_LOGIN, csrf_of, login, page_csrf
from tests.webhook_helpers import Receiver, subscribers_toml

SECRET = re.compile(r'<code id="secret">([^<]+)</code>')
CLIENT_ID = re.compile(r'<code id="client-id">([^<]+)</code>')


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


async def _post(client: TestClient, path: str, fields: dict[str, str] | list[tuple[str, str]],
                *, page: str | None = None, follow: bool = True) -> tuple[int, str, str]:
    """Send a page's form (with its CSRF token); the status, final URL and text."""
    token = await page_csrf(client, page or "/ui/subscribers")
    data = [("csrf", token), *(fields.items() if isinstance(fields, dict) else fields)]
    resp = await client.post(path, data=data, allow_redirects=follow)
    return resp.status, str(resp.url.path_qs), await resp.text()


async def _create(client: TestClient, sub_id: str, **fields: str) -> tuple[str, str]:
    """Create a subscriber on the dashboard; its CLIENT ID and secret as shown."""
    status, url, text = await _post(client, "/ui/subscribers", {
        "id": sub_id, "plan": "enterprise", "instances": "1", **fields})
    assert status == 200, text
    assert url.startswith(f"/ui/subscribers/{sub_id}?notice=subscriber_created")
    secret, client_id = SECRET.search(text), CLIENT_ID.search(text)
    assert secret and client_id, "the secret is shown on the page after the form"
    return html.unescape(client_id.group(1)), html.unescape(secret.group(1))


def _api(client_id: str, secret: str) -> dict[str, str]:
    return {"X-WM-CLIENT-ID": client_id, "X-WM-CLIENT-SECRET": secret}


async def test_create_shows_the_secret_once_and_it_works(client: TestClient) -> None:
    await login(client)
    form = await client.get("/ui/subscribers/new")
    text = await form.text()
    assert form.status == 200 and 'name="csrf"' in text and "<option>enterprise</option>" in text
    client_id, secret = await _create(client, "shop-7", name="Shop <b>7</b>",
                                      email="ops@shop7.example", keyword="SHOP7",
                                      expires="2030-01-01")
    assert len(secret) >= 43  # 32 random bytes
    # The secret is the API's: the subscriber sees its own account with it.
    resp = await client.get("/v3/account", headers=_api(client_id, secret))
    assert resp.status == 200
    assert (await resp.json())["plan"] == "enterprise"
    # Gone on reload: the page shows the subscriber, not the secret.
    page = await client.get("/ui/subscribers/shop-7")
    text = await page.text()
    assert page.status == 200 and secret not in text and client_id in text
    assert "Shop &lt;b&gt;7&lt;/b&gt;" in text and "<b>7</b>" not in text  # escaped
    listing = await (await client.get("/ui/subscribers")).text()
    assert re.search(r'class="subscriber managed">.*shop-7', listing)
    assert re.search(r'class="subscriber provisioned">.*acme', listing)


async def test_refusals_show_on_the_form_readable_never_a_500(client: TestClient) -> None:
    await login(client)
    status, _, text = await _post(client, "/ui/subscribers", {
        "id": "shop-8", "plan": "platinum", "name": "kept <i>as typed</i>"})
    assert status == 400
    assert "unknown plan &#39;platinum&#39;" in text and "enterprise" in text
    assert 'value="shop-8"' in text and "kept &lt;i&gt;as typed&lt;/i&gt;" in text
    status, _, text = await _post(client, "/ui/subscribers", {
        "id": "shop-8", "plan": "trial", "keyword": "ACME"})
    assert status == 409 and "keyword &#39;ACME&#39; is subscriber &#39;acme&#39;" in text
    status, _, text = await _post(client, "/ui/subscribers", {"id": "acme", "plan": "trial"})
    assert status == 409 and "exists" in text
    status, _, text = await _post(client, "/ui/subscribers", [
        ("id", "shop-8"), ("plan", "trial"), ("instances", "99")])
    assert status == 400 and "instance 99 is not configured" in text
    status, _, text = await _post(client, "/ui/subscribers", {
        "id": "shop-8", "plan": "trial", "since": "2026-05-01", "expires": "2026-01-01"})
    assert status == 400 and "is before since" in text
    status, _, text = await _post(client, "/ui/subscribers", {"id": "no spaces", "plan": "trial"})
    assert status == 400 and "id must be" in text
    # Every form needs the session's CSRF token.
    resp = await client.post("/ui/subscribers", data={"id": "shop-9", "plan": "trial"})
    assert resp.status == 403
    assert "shop-9" not in await (await client.get("/ui/subscribers")).text()


async def test_change_suspend_rotate_and_delete(client: TestClient) -> None:
    await login(client)
    client_id, first = await _create(client, "shop-7")
    page = "/ui/subscribers/shop-7"
    status, url, text = await _post(client, page, [
        ("plan", "trial"), ("since", "2025-01-01"), ("expires", ""), ("instances_shown", "1"),
        ("keyword", "SEVEN"), ("email", ""), ("name", "Seven")], page=page)
    assert status == 200 and "notice=subscriber_saved" in url, text
    assert '<option selected>trial</option>' in text and 'value="SEVEN"' in text
    status, _, text = await _post(client, page, [("plan", "trial"), ("keyword", "SEVEN"),
                                                 ("name", "Seven")], page=page)
    assert "Nothing to change." in text
    status, _, text = await _post(client, page, [("keyword", "BETA")], page=page)
    assert status == 409 and "keyword &#39;BETA&#39; is subscriber &#39;beta&#39;" in text

    status, _, text = await _post(client, f"{page}/suspend", {}, page=page)
    assert 'id="state">suspended<' in text
    resp = await client.post("/v3/whatsapp/single/text/message/1", headers=_api(client_id, first),
                             json={"number": "34600000001", "message": "hi"})
    assert resp.status == 474 and (await resp.json())["error"] == "subscription_suspended"
    status, _, text = await _post(client, f"{page}/resume", {}, page=page)
    assert 'id="state">active<' in text

    # A new secret with two hours' overlap: both work; with 0 the earlier ones end.
    status, url, text = await _post(client, f"{page}/secrets", {"overlap_hours": "2"}, page=page)
    second = html.unescape(SECRET.search(text).group(1))  # type: ignore[union-attr]
    assert "notice=secret_issued" in url and second != first
    assert "one accepted until" in text
    for secret in (first, second):
        assert (await client.get("/v3/account", headers=_api(client_id, secret))).status == 200
    assert second not in await (await client.get(page)).text()
    status, _, text = await _post(client, f"{page}/secrets", {"overlap_hours": "two"}, page=page)
    assert status == 400 and "overlap_hours must be a number" in text
    status, _, text = await _post(client, f"{page}/secrets", {"overlap_hours": "0"}, page=page)
    third = html.unescape(SECRET.search(text).group(1))  # type: ignore[union-attr]
    for secret, works in ((first, False), (second, False), (third, True)):
        resp = await client.get("/v3/account", headers=_api(client_id, secret))
        assert (resp.status == 200) is works

    # Delete: a confirmation first; the wrong id deletes nothing.
    confirm = await client.get(f"{page}/delete")
    assert confirm.status == 200 and "Type" in await confirm.text()
    status, _, text = await _post(client, f"{page}/delete", {"confirm": "shop"}, page=page)
    assert status == 400 and "to confirm" in text
    status, url, text = await _post(client, f"{page}/delete", {"confirm": "shop-7"}, page=page)
    assert url.startswith("/ui/subscribers?notice=subscriber_deleted")
    assert "shop-7" not in text
    assert (await client.get("/v3/account", headers=_api(client_id, third))).status == 474
    assert (await client.get(page)).status == 404


async def test_provisioned_subscribers_are_read_only(client: TestClient) -> None:
    await login(client)
    text = await (await client.get("/ui/subscribers/acme")).text()
    assert "the config file" in text and "/ui/subscribers/acme/secrets" not in text
    assert 'action="/ui/subscribers/acme"' not in text
    for path, fields in (("/ui/subscribers/acme", {"plan": "trial"}),
                         ("/ui/subscribers/acme/suspend", {}),
                         ("/ui/subscribers/acme/delete", {"confirm": "acme"})):
        status, _, text = await _post(client, path, fields, page="/ui/subscribers/acme")
        assert status == 409 and "provisioned by the config file" in text, path
    status, _, text = await _post(client, "/ui/subscribers/acme/secrets", {},
                                  page="/ui/subscribers/acme")
    assert status == 403 and "self_service = true" in text
    assert (await client.get("/ui/subscribers/nobody")).status == 404


async def test_audit_log_filters_and_pages(client: TestClient) -> None:
    await login(client)
    for n in range(3):
        await _create(client, f"shop-{n}")
    page = "/ui/subscribers/shop-1"
    await _post(client, f"{page}/suspend", {}, page=page)
    text = await (await client.get("/ui/audit")).text()
    assert text.count('class="audit-entry"') == 4
    assert "subscriber.suspended" in text and "127.0.0.1" in text
    text = await (await client.get("/ui/audit?target=shop-1")).text()
    assert text.count('class="audit-entry"') == 2
    text = await (await client.get("/ui/audit?actor=subscriber:acme")).text()
    assert "No change recorded." in text
    assert (await client.get("/ui/audit?since=yesterday")).status == 400
    # A subscriber's page lists its own latest changes.
    text = await (await client.get(page)).text()
    assert text.count('class="audit-entry"') == 2


async def test_audit_log_pages_back(client: TestClient) -> None:
    await login(client)
    await _create(client, "shop-1")
    page = "/ui/subscribers/shop-1"
    for _ in range(26):  # 52 changes, and the creation
        await _post(client, f"{page}/suspend", {}, page=page)
        await _post(client, f"{page}/resume", {}, page=page)
    text = await (await client.get("/ui/audit?target=shop-1")).text()
    assert text.count('class="audit-entry"') == 50
    older = re.search(r'<a href="([^"]+)" rel="next">', text)
    assert older
    text = await (await client.get(html.unescape(older.group(1)))).text()
    assert text.count('class="audit-entry"') == 3 and "subscriber.created" in text


async def test_portal_rotates_its_own_secret_and_stays_logged_in(client: TestClient) -> None:
    await login(client)
    client_id, first = await _create(client, "shop-7")
    client.session.cookie_jar.clear()
    resp = await login(client, "/portal/", {"client_id": client_id, "secret": first})
    assert resp.status == 303
    status, url, text = await _post(client, "/portal/secrets", {"overlap_hours": "1"},
                                    page="/portal/credentials")
    assert status == 200 and url == "/portal/credentials?notice=secret_issued", text
    second = html.unescape(SECRET.search(text).group(1))  # type: ignore[union-attr]
    assert second != first
    text = await (await client.get("/portal/credentials")).text()  # still logged in
    assert second not in text and "one accepted until" in text
    for secret in (first, second):
        assert (await client.get("/v3/account", headers=_api(client_id, secret))).status == 200
    client.session.cookie_jar.clear()
    await login(client)
    text = await (await client.get("/ui/audit?actor=subscriber:shop-7")).text()
    assert "secret.rotated" in text and second not in text and first not in text


async def test_portal_refuses_a_provisioned_subscriber_clearly(client: TestClient) -> None:
    await login(client, "/portal/", ACME_LOGIN)
    page = await client.get("/portal/credentials")
    text = await page.text()
    assert page.status == 200 and 'id="not-self-service"' in text
    assert 'action="/portal/secrets"' not in text
    token = csrf_of(text)
    resp = await client.post("/portal/secrets", data={"csrf": token})
    text = await resp.text()
    assert resp.status == 403 and "self_service = true" in text
    assert (await client.get("/portal/")).status == 200  # still logged in


async def test_the_secret_travels_sealed_to_its_one_page(client: TestClient) -> None:
    await login(client)
    status, _, _ = await _post(client, "/ui/subscribers", {"id": "shop-7", "plan": "trial"},
                               follow=False)
    assert status == 303
    cookie = next(c for c in client.session.cookie_jar if c.key == "wagate_once")
    assert cookie["path"] == "/ui/subscribers/shop-7" and cookie["httponly"]
    assert cookie["samesite"] == "Strict" and int(cookie["max-age"]) <= 120
    sealed = cookie.value
    text = await (await client.get("/ui/subscribers/shop-7")).text()
    secret = html.unescape(SECRET.search(text).group(1))  # type: ignore[union-attr]
    assert secret not in sealed and secret.encode() not in sealed.encode()
    # Changed, or sent to another page: nothing shown.
    for path, value in (("/ui/subscribers/shop-7", sealed[:-4] + "AAA="),
                        ("/ui/subscribers/shop-7", sealed[:30]),
                        ("/ui/subscribers/acme", sealed)):
        resp = await client.get(path, headers={"Cookie": f"wagate_once={value}"})
        assert resp.status == 200
        text = await resp.text()
        assert secret not in text and 'id="secret"' not in text, path
