"""Webhook endpoints on the pages, over HTTP as a browser sends the forms:
the portal's own and the dashboard's for a subscriber. Added, shown once,
tested against a real receiver, rotated with both signatures during the
overlap, changed, switched off, deleted; refusals readable on the form."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from standardwebhooks import Webhook

from tests.brokers import REDIS, RedisBroker, require
from tests.conftest import ADMIN, wait_for
from tests.ui_helpers import ACME_LOGIN, csrf_of, login, page_csrf
from tests.webhook_helpers import Receiver, subscribers_toml, verify

SECRET = re.compile(r'<code id="secret">([^<]+)</code>')


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


async def _post(client: TestClient, path: str, fields: list[tuple[str, str]], *,
                page: str) -> tuple[int, str, str]:
    token = await page_csrf(client, page)
    resp = await client.post(path, data=[("csrf", token), *fields])
    return resp.status, str(resp.url.path_qs), await resp.text()


def _endpoint_form(url: str, *events: str, description: str = "",
                   fmt: str = "standard") -> list[tuple[str, str]]:
    return [("url", url), ("format", fmt), ("events_shown", "1"),
            *(("events", e) for e in events), ("enabled_shown", "1"), ("enabled", "1"),
            ("description", description)]


async def _portal_as_new_subscriber(client: TestClient, sub_id: str = "shop-7") -> None:
    resp = await client.post("/admin/subscribers", headers=ADMIN,
                             json={"id": sub_id, "plan": "enterprise", "instances": [1]})
    assert resp.status == 201
    body = await resp.json()
    assert (await login(client, "/portal/", {"client_id": body["client_id"],
                                             "secret": body["secret"]})).status == 303


async def _tests_on(receiver: Receiver, path: str, count: int) -> list[Any]:
    async def arrived() -> list[Any] | None:
        hits = [h for h in receiver.on(path) if h.json.get("type") == "test"]
        return hits if len(hits) >= count else None
    return await wait_for(arrived, 10.0)


async def test_portal_adds_tests_rotates_and_deletes_an_endpoint(
        client: TestClient, receiver: Receiver) -> None:
    await _portal_as_new_subscriber(client)
    status, url, text = await _post(client, "/portal/webhooks", _endpoint_form(
        f"{receiver.base}/shop", "message.received", "message.status",
        description="orders <b>desk</b>"), page="/portal/webhooks")
    assert status == 200 and "notice=endpoint_created" in url, text
    page = url.split("?")[0]
    first = html.unescape(SECRET.search(text).group(1))  # type: ignore[union-attr]
    assert first.startswith("whsec_")
    assert "orders &lt;b&gt;desk&lt;/b&gt;" in text and "<b>desk</b>" not in text
    text = await (await client.get(page)).text()
    assert first not in text and 'id="secret"' not in text  # shown once
    listing = await (await client.get("/portal/webhooks")).text()
    assert f"{receiver.base}/shop" in listing and "message.received, message.status" in listing

    # A test event, signed with the secret shown.
    status, url, text = await _post(client, f"{page}/test", [], page=page)
    assert "notice=test_queued" in url
    [hit] = await _tests_on(receiver, "/shop", 1)
    verify(hit, first)

    # A new signing secret, the first signing on two hours: both sign.
    status, url, text = await _post(client, f"{page}/secret", [("overlap_hours", "2")],
                                    page=page)
    second = html.unescape(SECRET.search(text).group(1))  # type: ignore[union-attr]
    assert "notice=signing_secret_issued" in url and second != first
    assert "one signing until" in text
    await _post(client, f"{page}/test", [], page=page)
    hit = (await _tests_on(receiver, "/shop", 2))[-1]
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    for secret in (first, second):
        verify(hit, secret)

    # Changed: only what differs; switched off, a test is refused readably; on again.
    status, url, text = await _post(client, page, _endpoint_form(
        f"{receiver.base}/shop", "message.received", description=""), page=page)
    assert "notice=endpoint_saved" in url
    assert "message.received</dd>" in text and "desk" not in text
    status, url, text = await _post(client, page, [("enabled_shown", "1")], page=page)
    assert 'id="endpoint-enabled">no' in text
    status, url, text = await _post(client, f"{page}/test", [], page=page)
    assert "switched off" in text
    status, url, text = await _post(client, page, [("enabled_shown", "1"), ("enabled", "1")],
                                    page=page)
    assert 'id="endpoint-enabled">yes' in text

    # Delete, after a confirmation.
    confirm = await client.get(f"{page}/delete")
    assert confirm.status == 200 and "Delete it" in await confirm.text()
    status, url, text = await _post(client, f"{page}/delete", [], page=page)
    assert url.startswith("/portal/webhooks?notice=endpoint_deleted")
    row = re.search(r'<tr class="endpoint gone">\s*<td>([^<]+)</td>', text)
    assert row and row.group(1) == f"{receiver.base}/shop"  # its history stays, no link
    assert f'href="{page}"' not in text
    assert (await client.get(page)).status == 404


async def test_refused_forms_say_why_and_keep_what_was_typed(client: TestClient,
                                                              receiver: Receiver) -> None:
    await _portal_as_new_subscriber(client)
    for url, why in (("http://169.254.169.254/latest", "refused"),
                     ("http://10.1.2.3/hook", "refused"),
                     ("ftp://example.com/x", "ftp"),
                     ("not a url", "not a url")):
        status, _, text = await _post(client, "/portal/webhooks", _endpoint_form(
            url, "message.received", description="typed"), page="/portal/webhooks")
        assert status == 400, (url, text)
        assert why in html.unescape(text) and 'class="error"' in text, url
        assert f'value="{html.escape(url)}"' in text and 'value="typed"' in text
    status, _, text = await _post(client, "/portal/webhooks", _endpoint_form(
        f"{receiver.base}/shop"), page="/portal/webhooks")
    assert status == 400 and "events must be a non-empty list" in text
    resp = await client.post("/portal/webhooks", data=_endpoint_form(f"{receiver.base}/x",
                                                                    "message.received"))
    assert resp.status == 403  # no CSRF token
    assert "No webhook endpoint yet." in await (await client.get("/portal/webhooks")).text()


async def test_a_provisioned_subscriber_without_self_service_is_told_clearly(
        client: TestClient, receiver: Receiver) -> None:
    await login(client, "/portal/", ACME_LOGIN)
    text = await (await client.get("/portal/webhooks")).text()
    assert 'id="not-self-service"' in text and "self_service" in text
    assert "Ask the operator" in text and 'class="fields add-endpoint"' not in text
    assert f"{receiver.base}/acme" in text  # its file's endpoint, listed
    token = csrf_of(text)
    resp = await client.post("/portal/webhooks", data=[
        ("csrf", token), *_endpoint_form(f"{receiver.base}/x", "message.received")])
    assert resp.status == 403 and "self_service" in await resp.text()
    key = re.search(r'href="/portal/webhooks/([^"/]+)"', text)
    assert key
    page = f"/portal/webhooks/{key.group(1)}"
    text = await (await client.get(page)).text()
    assert "set in the config file" in text and 'class="fields edit-endpoint"' not in text
    resp = await client.post(page, data=[("csrf", token), ("enabled_shown", "1")])
    assert resp.status == 409 and "change it there" in await resp.text()  # the file's
    _, url, _ = await _post(client, f"{page}/test", [], page=page)
    assert "notice=test_queued" in url  # a test event it may always send
    await _tests_on(receiver, "/acme", 1)


async def test_the_admin_manages_a_subscribers_endpoints(client: TestClient,
                                                         receiver: Receiver) -> None:
    resp = await client.post("/admin/subscribers", headers=ADMIN,
                             json={"id": "shop-7", "plan": "enterprise"})
    assert resp.status == 201
    await login(client)
    base = "/ui/subscribers/shop-7/webhooks"
    assert 'href="/ui/subscribers/shop-7/webhooks"' in await (
        await client.get("/ui/subscribers/shop-7")).text()
    status, url, text = await _post(client, base, _endpoint_form(
        f"{receiver.base}/shop", "message.received", fmt="whatsmate"), page=base)
    assert status == 200 and "notice=endpoint_created" in url
    token = html.unescape(SECRET.search(text).group(1))  # type: ignore[union-attr]
    assert "The new token" in text
    page = url.split("?")[0]
    await _post(client, f"{page}/test", [], page=page)
    [hit] = await _tests_on(receiver, "/shop", 1)
    assert token in hit.body.decode()  # whatsmate's body carries the token
    text = await (await client.get("/ui/audit?target=shop-7")).text()
    assert "endpoint.created" in text and token not in text
    assert (await client.get("/ui/subscribers/nobody/webhooks")).status == 404
    assert (await client.get(f"{base}/ep_nothing")).status == 404


async def test_portal_adds_a_broker_destination_and_its_test_event_arrives_signed(
        client: TestClient) -> None:
    # A subscriber with its own Redis: the destination is added on the portal as
    # any endpoint is, its password never shown back, and what arrives in the
    # stream is signed with the secret shown once.
    require(REDIS, "the redis broker")
    broker = RedisBroker()
    await broker.create()
    try:
        await _portal_as_new_subscriber(client, "shop-redis")
        url = broker.url().replace("redis://", "redis://:pw-never-shown@")
        status, page, text = await _post(client, "/portal/webhooks", _endpoint_form(
            url, "message.received"), page="/portal/webhooks")
        assert status == 200 and "notice=endpoint_created" in page, text
        assert "pw-never-shown" not in text
        secret = html.unescape(SECRET.search(text).group(1))  # type: ignore[union-attr]
        await _post(client, f"{page.split('?')[0]}/test", [], page=page.split("?")[0])
        [got] = await broker.consume(1, timeout=10.0)
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "test"
        listing = await (await client.get("/portal/webhooks")).text()
        assert "pw-never-shown" not in listing and broker.stream in listing
    finally:
        await broker.close()
