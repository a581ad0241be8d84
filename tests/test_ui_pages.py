"""The dashboard (/ui/) and the portal (/portal/) over HTTP: every page and
permission, sessions and CSRF, and hostile text rendered inert."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from bot.web.keys import clock_key
from bot.web.ui.session import SESSION_SECONDS
from tests.conftest import ADMIN, say
from tests.ui_helpers import ACME_LOGIN, BETA_API, BETA_LOGIN, csrf_of, login, page_csrf
from tests.webhook_helpers import Receiver, deliveries, settled, subscribers_toml

U = "+34600000001"
ADMIN_PAGES = ["/ui/", "/ui/live", "/ui/registrations", "/ui/messages", "/ui/deliveries",
               "/ui/subscribers"]
PORTAL_PAGES = ["/portal/", "/portal/messages", "/portal/deliveries"]


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


async def _failed_acme_delivery(client: TestClient, receiver: Receiver) -> str:
    receiver.script("/acme", *[(500, {}, 0.0)] * 3)
    await say(client, "order 66", sender=U, instance=3)
    rows = await settled(client, 1, subscriber="acme")
    assert rows[0]["status"] == "failed"
    return str(rows[0]["id"])


async def _beta_delivery(client: TestClient) -> str:
    await say(client, "Hi BETA", sender="+34600000002")  # registers, naming beta
    rows = await settled(client, 1, subscriber="beta")
    return str(rows[0]["id"])


async def test_pages_need_a_session_and_send_to_login(client: TestClient) -> None:
    for path in ADMIN_PAGES + PORTAL_PAGES + ["/ui/deliveries/x", "/portal/messages/x"]:
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        prefix = "/ui/" if path.startswith("/ui/") else "/portal/"
        assert resp.headers["Location"].startswith(f"{prefix}login?next="), path
    resp = await client.post("/ui/deliveries/replay", data={"since": "0"},
                             allow_redirects=False)
    assert resp.status == 303
    for bare in ("/ui", "/portal"):
        resp = await client.get(bare, allow_redirects=False)
        assert resp.status == 301 and resp.headers["Location"] == f"{bare}/"


async def test_admin_login_session_cookie_and_every_page(client: TestClient) -> None:
    resp = await login(client, fields={"token": "wrong"})
    assert resp.status == 401 and "not the admin token" in await resp.text()
    assert "wagate_ui" not in {c.key for c in client.session.cookie_jar}
    resp = await login(client)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/"
    cookie = resp.cookies["wagate_ui"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ui/"
    assert not cookie["secure"]  # plain http here; Secure on an https connection
    for path in ADMIN_PAGES:
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert "https://" not in await resp.text(), path  # nothing from elsewhere
    # logout needs the CSRF token too, then the session is gone
    token = await page_csrf(client, "/ui/")
    resp = await client.post("/ui/logout", data={"csrf": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/login"
    assert (await client.get("/ui/", allow_redirects=False)).status == 303


async def test_login_form_without_its_csrf_token_is_refused(client: TestClient) -> None:
    await client.get("/ui/login")
    resp = await client.post("/ui/login", data={"token": "test-admin-token"},
                             allow_redirects=False)
    assert resp.status == 403 and (await resp.json())["error"] == "csrf_failed"
    resp = await client.post("/portal/login", data={"csrf": "x" * 32, **ACME_LOGIN},
                             allow_redirects=False)
    assert resp.status == 403


async def test_forms_without_the_csrf_token_are_refused(client: TestClient,
                                                        receiver: Receiver) -> None:
    failed = await _failed_acme_delivery(client, receiver)
    await say(client, "Hola", sender="+34600000009")
    await login(client)
    for data in ({}, {"csrf": ""}, {"csrf": "not-the-token"}):
        resp = await client.post(f"/ui/deliveries/{failed}/retry", data=data,
                                 allow_redirects=False)
        assert resp.status == 403, data
        assert (await resp.json())["error"] == "csrf_failed"
        resp = await client.post("/ui/registrations/%2B34600000009/opt-out",
                                 data={**data, "instance": "1"}, allow_redirects=False)
        assert resp.status == 403, data
        resp = await client.post("/ui/deliveries/replay", data={**data, "since": "0"},
                                 allow_redirects=False)
        assert resp.status == 403
    assert (await deliveries(client))[0]["status"] == "failed"  # nothing was retried
    regs = await (await client.get("/admin/registrations/+34600000009", headers=ADMIN)).json()
    assert {r["status"] for r in regs["registrations"]} == {"active"}
    # a JSON body is no form either
    token = await page_csrf(client, "/ui/deliveries")
    resp = await client.post(f"/ui/deliveries/{failed}/retry", json={"csrf": token},
                             allow_redirects=False)
    assert resp.status in (400, 403)


async def test_an_expired_session_is_sent_to_login(client: TestClient) -> None:
    await login(client)
    assert (await client.get("/ui/registrations")).status == 200
    client.app[clock_key].shift(SESSION_SECONDS + 1)
    resp = await client.get("/ui/registrations", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/ui/login?next=/ui/registrations"
    resp = await client.get("/ui/live", allow_redirects=False)  # the overview's poll too
    assert resp.status == 303
    resp = await client.get("/ui/login?next=%2Fui%2Fregistrations")
    assert resp.status == 200 and "Admin token" in await resp.text()


async def test_a_session_of_a_changed_credential_ends(make_client: Callable[..., Awaitable[
        TestClient]], receiver: Receiver, config_path) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(subscribers_toml(receiver.base))
    await login(client, "/portal/", ACME_LOGIN)
    assert (await client.get("/portal/", allow_redirects=False)).status == 200
    config_path.write_text(config_path.read_text().replace('"acme-api-secret"',
                                                           '"acme-new-secret"'))
    assert (await client.post("/admin/reload", headers=ADMIN)).status == 200
    assert (await client.get("/portal/", allow_redirects=False)).status == 303


async def test_admin_pages_refuse_a_subscriber_session(client: TestClient) -> None:
    resp = await login(client, "/portal/", ACME_LOGIN)
    assert resp.status == 303 and resp.headers["Location"] == "/portal/"
    portal_cookie = resp.cookies["wagate_portal"]
    assert portal_cookie["path"] == "/portal/" and portal_cookie["samesite"] == "Strict"
    assert (await client.get("/portal/")).status == 200
    for path in ADMIN_PAGES:
        # The browser does not send the portal's cookie here; presented anyway,
        # under the dashboard's name, it is no admin session either.
        resp = await client.get(path, allow_redirects=False,
                                headers={"Cookie": f"wagate_ui={portal_cookie.value}"})
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/ui/login")
    resp = await client.post("/ui/registrations/%2B34600000001/opt-out", allow_redirects=False,
                             headers={"Cookie": f"wagate_ui={portal_cookie.value}"},
                             data={"instance": "1"})
    assert resp.status == 303
    # and a forged or mangled cookie is no session
    for value in ("x", portal_cookie.value + "x", "e30.AAAA", "." * 3000):
        resp = await client.get("/ui/", allow_redirects=False,
                                headers={"Cookie": f"wagate_ui={value}"})
        assert resp.status == 303, value


async def test_portal_pages_and_wrong_login(client: TestClient) -> None:
    resp = await login(client, "/portal/", {"client_id": "dev@acme.example", "secret": "no"})
    assert resp.status == 401 and "wrong secret" in await resp.text()
    await login(client, "/portal/", ACME_LOGIN)
    for path in PORTAL_PAGES:
        resp = await client.get(path)
        assert resp.status == 200, path
        assert "/ui/registrations" not in await resp.text()
    text = await (await client.get("/portal/")).text()
    assert "enterprise" in text and "/acme" in text and "Send a test event" in text


async def test_a_subscriber_cannot_read_anothers_message_or_delivery(
        client: TestClient, receiver: Receiver) -> None:
    beta_delivery = await _beta_delivery(client)
    resp = await client.post("/v3/whatsapp/single/text/message/1", headers=BETA_API,
                             json={"number": "+34600000002", "message": "for beta only"})
    assert resp.status == 200, await resp.text()
    beta_message = (await resp.json())["id"]
    await login(client, "/portal/", ACME_LOGIN)
    for path in (f"/portal/messages/{beta_message}", f"/portal/deliveries/{beta_delivery}"):
        resp = await client.get(path)
        assert resp.status == 404, path
    token = await page_csrf(client, "/portal/deliveries")
    resp = await client.post(f"/portal/deliveries/{beta_delivery}/retry",
                             data={"csrf": token}, allow_redirects=False)
    assert resp.status == 404
    listed = await (await client.get("/portal/messages")).text()
    assert beta_message not in listed and "for beta only" not in listed
    assert beta_delivery not in await (await client.get("/portal/deliveries")).text()
    # the filter of another subscriber is not the portal's to choose
    listed = await (await client.get("/portal/deliveries?subscriber=beta")).text()
    assert beta_delivery not in listed
    # beta sees its own
    client.session.cookie_jar.clear()
    await login(client, "/portal/", BETA_LOGIN)
    assert (await client.get(f"/portal/messages/{beta_message}")).status == 200
    assert (await client.get(f"/portal/deliveries/{beta_delivery}")).status == 200


async def test_retry_and_replay_from_the_dashboard(client: TestClient,
                                                   receiver: Receiver) -> None:
    failed = await _failed_acme_delivery(client, receiver)
    await login(client)
    page = await (await client.get(f"/ui/deliveries/{failed}")).text()
    assert "answer 500" in page and "Retry now" in page  # the endpoint's answer, per attempt
    resp = await client.post(f"/ui/deliveries/{failed}/retry", data={"csrf": csrf_of(page)},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith(f"/ui/deliveries/{failed}")
    rows = await settled(client, 1)
    assert rows[0]["status"] == "delivered"
    # replay since a time: a second failure, replayed from the list page
    receiver.script("/acme", *[(500, {}, 0.0)] * 3)
    await say(client, "order 67", sender=U, instance=3)
    rows = await settled(client, 2)
    assert [r["status"] for r in rows] == ["failed", "delivered"]
    token = await page_csrf(client, "/ui/deliveries")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 600))
    resp = await client.post("/ui/deliveries/replay", data={"csrf": token, "since": since})
    assert resp.status == 200 and ("1 failed deliveries queued again, 0 pending pulled forward."
                                   in await resp.text())
    rows = await settled(client, 2)
    assert {r["status"] for r in rows} == {"delivered"}
    resp = await client.post("/ui/deliveries/replay", data={"csrf": token, "since": "soon"})
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_since"


async def test_opt_out_from_the_dashboard(client: TestClient, receiver: Receiver) -> None:
    await say(client, "Hola", sender=U, instance=3)
    await login(client)
    page = await (await client.get("/ui/registrations?number=600 000&status=active")).text()
    assert U in page
    resp = await client.post(f"/ui/registrations/{U.replace('+', '%2B')}/opt-out",
                             data={"csrf": csrf_of(page), "instance": "3"})
    assert resp.status == 200 and "is opted out on instance 3" in await resp.text()
    regs = await (await client.get(f"/admin/registrations/{U}", headers=ADMIN)).json()
    assert [r["status"] for r in regs["registrations"]] == ["opted_out"]
    # as the admin API's opt-out: the subscriber hears user.unregistered
    rows = await settled(client, 2, subscriber="acme")
    assert rows[0]["type"] == "user.unregistered"
    resp = await client.post(f"/ui/registrations/{U.replace('+', '%2B')}/opt-out",
                             data={"csrf": csrf_of(page), "instance": "99"})
    assert resp.status == 404
    for query in ("status=nope", "number=" + "9" * 50):
        assert (await client.get(f"/ui/registrations?{query}")).status == 400, query
    page = await (await client.get("/ui/registrations?locale=es&status=opted_out")).text()
    assert U in page
    page = await (await client.get("/ui/registrations?locale=fr")).text()
    assert U not in page


async def test_hostile_text_renders_inert(client: TestClient) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'
    await say(client, "Hola " + hostile, sender=U)
    await login(client)
    for path in ("/ui/messages", "/ui/messages?direction=in",
                 f"/ui/messages?subscriber={hostile}", f"/ui/deliveries?endpoint={hostile}",
                 f"/ui/registrations?locale={hostile[:30]}"):
        body = await (await client.get(path)).text()
        assert "<script>alert" not in body and "<img src=x" not in body, path
    body = await (await client.get("/ui/messages")).text()
    assert html.escape(hostile, quote=False)[:40] in body.replace("&#34;", '"').replace(
        "&#39;", "'")


async def test_overview_shows_instances_queues_and_failing_endpoints(
        client: TestClient, receiver: Receiver) -> None:
    await _failed_acme_delivery(client, receiver)
    await login(client)
    body = await (await client.get("/ui/")).text()
    assert 'data-live="/ui/live"' in body
    live = await (await client.get("/ui/live")).text()
    for number in ("+15550001111", "+15550002222", "+15550003333"):
        assert number in live
    card = live[live.index("Instance 3"):]
    assert re.search(r"1 in the last minute", card)
    assert card.count("<svg") >= 2 and "<rect" in card  # the hour's chart, drawn here
    assert "failing" in live and "/acme" in live


async def test_subscribers_and_message_pages(client: TestClient) -> None:
    await say(client, "Hola", sender=U)
    resp = await client.post("/v3/whatsapp/single/text/message/1", headers=BETA_API,
                             json={"number": U, "message": "hello"})
    msg = (await resp.json())["id"]
    await login(client)
    page = await (await client.get("/ui/subscribers")).text()
    for sub in ("acme", "beta", "gamma"):
        assert f'<a href="/ui/subscribers/{sub}">{sub}</a>' in page
    assert "1 / 1000" in page  # beta's quota used / limit (enterprise)
    page = await (await client.get("/ui/messages?subscriber=beta")).text()
    assert msg in page and "hello" in page
    page = await (await client.get(f"/ui/messages/{msg}")).text()
    assert '<tr class="status queued">' in page  # the recorded history's first row
    # A page that cannot be shown is a page (with the error's code and a way
    # back), not the API's JSON.
    missing = await client.get("/ui/messages/nope")
    assert missing.status == 404 and missing.content_type == "text/html"
    body = await missing.text()
    assert "<h1>Not Found</h1>" in body and "<code>message_not_found</code>" in body
    assert '<a href="/ui/messages">' in body
    wrong = await client.get("/ui/messages?error_code=x")
    assert wrong.status == 400 and wrong.content_type == "text/html"
    body = await wrong.text()
    assert "query parameter error_code must be an integer" in body
    assert "<code>invalid_query</code>" in body and '<a href="/ui/messages">' in body


async def test_a_portal_page_that_cannot_be_shown_is_a_page(client: TestClient) -> None:
    await login(client, "/portal/", ACME_LOGIN)
    wrong = await client.get("/portal/deliveries?status=lost")
    assert wrong.status == 400 and wrong.content_type == "text/html"
    body = await wrong.text()
    assert "status must be" in body and '<a href="/portal/deliveries">' in body
    assert 'href="/portal/credentials"' in body  # the portal's own frame
    # A form still answers as it does: refused, not turned into this page.
    assert (await client.post("/portal/secrets", data={})).status in (400, 403)


async def test_login_goes_back_only_to_a_page_of_its_own(client: TestClient) -> None:
    page = await client.get("/ui/login")
    token = csrf_of(await page.text())
    for target, expected in (("/ui/deliveries", "/ui/deliveries"), ("//evil.example/", "/ui/"),
                             ("https://evil.example/", "/ui/"), ("/portal/", "/ui/"),
                             ("/ui/\\evil", "/ui/")):
        resp = await client.post("/ui/login", data={"csrf": token, "next": target,
                                                    "token": "test-admin-token"},
                                 allow_redirects=False)
        assert resp.headers["Location"] == expected, target


async def test_the_root_url_shows_where_to_go(client: TestClient) -> None:
    resp = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*"})
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    links = re.findall(r'<a href="([^"]+)">', page)
    assert links == ["/ui/", "/portal/", "/docs", "/openapi.json", "/healthz", "/readyz",
                     "/metrics"]
    for path in links:  # each goes somewhere real (the pages ask to log in)
        assert (await client.get(path, allow_redirects=False)).status in (200, 303), path
    # curl's */* gets the page too; a client that asks for JSON gets the links as JSON
    assert (await client.get("/", headers={"Accept": "*/*"})).content_type == "text/html"
    resp = await client.get("/", headers={"Accept": "application/json"})
    assert resp.status == 200
    body = await resp.json()
    assert [link["href"] for link in body["links"]] == links
