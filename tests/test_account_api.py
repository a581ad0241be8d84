"""The self-service API /v3/account (send-API credentials): own plan, quota,
messages, deliveries, retry, replay, endpoints and a test event; never
another subscriber's. And /docs, served with no asset from elsewhere."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import say, wait_for
from tests.ui_helpers import ACME_API, ACME_LOGIN, BETA_API, login, page_csrf
from tests.webhook_helpers import (
    ACME_SECRET,
    BETA_SECRET,
    BETA_TOKEN,
    Receiver,
    settled,
    subscribers_toml,
    verify,
)

U = "+34600000001"


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


async def _get(client: TestClient, path: str, headers: dict[str, str] = ACME_API,
               status: int = 200) -> dict:  # type: ignore[type-arg]
    resp = await client.get(path, headers=headers)
    assert resp.status == status, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_account_shows_plan_quota_and_recipients(client: TestClient) -> None:
    account = await _get(client, "/v3/account")
    assert account == {"subscriber": "acme", "plan": "enterprise", "state": "active",
                       "expires": None,
                       "quota": {"limit": 1000, "used": 0, "period_started_at": None,
                                 "resets_at": None},
                       "recipients": {"limit": 1000, "used": 0}}
    await say(client, "Hola", sender=U)
    resp = await client.post("/v3/whatsapp/single/text/message/1", headers=ACME_API,
                             json={"number": U, "message": "hi"})
    assert resp.status == 200
    account = await _get(client, "/v3/account")
    assert account["quota"]["used"] == 1 and account["recipients"]["used"] == 1
    assert account["quota"]["period_started_at"] < account["quota"]["resets_at"]
    assert (await _get(client, "/v3/account", BETA_API))["quota"]["used"] == 0


async def test_credentials_are_required(client: TestClient) -> None:
    for method, path in [("GET", "/v3/account"), ("GET", "/v3/account/messages"),
                         ("GET", "/v3/account/deliveries"), ("GET", "/v3/account/deliveries/x"),
                         ("POST", "/v3/account/deliveries/x/retry"),
                         ("POST", "/v3/account/deliveries/replay?since=0"),
                         ("GET", "/v3/account/webhooks"), ("POST", "/v3/account/webhooks/test")]:
        resp = await client.request(method, path)
        assert resp.status == 401 and (await resp.json())["error"] == "missing_credentials"
        resp = await client.request(method, path, headers={**ACME_API,
                                                           "X-WM-CLIENT-SECRET": "wrong"})
        assert resp.status == 474 and (await resp.json())["error"] == "invalid_credentials"


async def test_messages_and_deliveries_are_ones_own(client: TestClient,
                                                    receiver: Receiver) -> None:
    receiver.script("/acme", *[(500, {}, 0.0)] * 3)
    await say(client, "order 66", sender=U, instance=3)  # acme's number: a failed delivery
    await say(client, "Hi BETA", sender="+34600000002")  # beta's delivery
    await settled(client, 2)
    resp = await client.post("/v3/whatsapp/single/text/message/1", headers=BETA_API,
                             json={"number": "+34600000002", "message": "beta's"})
    beta_message = (await resp.json())["id"]
    assert await _get(client, "/v3/account/messages") == {"messages": []}
    beta_messages = (await _get(client, "/v3/account/messages", BETA_API))["messages"]
    assert [m["id"] for m in beta_messages] == [beta_message]
    assert beta_messages[0]["status"] in ("queued", "sent")

    own = (await _get(client, "/v3/account/deliveries"))["deliveries"]
    assert [(d["subscriber"], d["status"]) for d in own] == [("acme", "failed")]
    beta = (await _get(client, "/v3/account/deliveries", BETA_API))["deliveries"]
    assert beta and {d["subscriber"] for d in beta} == {"beta"}
    # another's delivery by id: exactly as a missing one
    for path in (f"/v3/account/deliveries/{beta[0]['id']}", "/v3/account/deliveries/nope"):
        body = await _get(client, path, status=404)
        assert body["error"] == "unknown_delivery"
    resp = await client.post(f"/v3/account/deliveries/{beta[0]['id']}/retry", headers=ACME_API)
    assert resp.status == 404
    detail = (await _get(client, f"/v3/account/deliveries/{own[0]['id']}"))["delivery"]
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 500, 500]
    # retry one's own: queued again, then delivered
    resp = await client.post(f"/v3/account/deliveries/{own[0]['id']}/retry", headers=ACME_API)
    assert resp.status == 200, await resp.text()
    rows = await settled(client, 1, subscriber="acme")
    assert rows[0]["status"] == "delivered"
    assert (await _get(client, "/v3/account/deliveries?status=failed"))["deliveries"] == []
    assert (await client.get("/v3/account/deliveries?status=x", headers=ACME_API)).status == 400
    assert (await client.get("/v3/account/messages?error_code=x",
                             headers=ACME_API)).status == 400


async def test_replay_is_limited_to_ones_own(client: TestClient, receiver: Receiver) -> None:
    receiver.script("/acme", *[(500, {}, 0.0)] * 3)
    receiver.script("/beta", *[(500, {}, 0.0)] * 30)
    await say(client, "order 66", sender=U, instance=3)
    await say(client, "Hi BETA", sender="+34600000002")
    await settled(client, 1, subscriber="acme")
    beta = {r["id"]: r["status"] for r in await settled(client, 1, subscriber="beta")}
    assert "failed" in beta.values()
    resp = await client.post("/v3/account/deliveries/replay?since=0", headers=ACME_API)
    assert resp.status == 200 and (await resp.json())["replayed"] == 1
    assert [r["status"] for r in await settled(client, 1, subscriber="acme")] == ["delivered"]
    after = await settled(client, len(beta), subscriber="beta")
    assert {r["id"]: r["status"] for r in after} == beta  # beta's failures stay failed
    resp = await client.post("/v3/account/deliveries/replay", headers=ACME_API)
    assert resp.status == 400 and (await resp.json())["error"] == "missing_since"


async def test_webhook_test_event_reaches_every_endpoint(client: TestClient,
                                                         receiver: Receiver) -> None:
    resp = await client.post("/v3/account/webhooks/test", headers=BETA_API)
    assert resp.status == 200, await resp.text()
    queued = (await resp.json())["queued"]
    assert sorted(q["endpoint"]["url"].rsplit("/", 1)[1] for q in queued) == ["beta",
                                                                              "beta-wm"]
    std = await wait_for(lambda: receiver.on("/beta"))
    wm = await wait_for(lambda: receiver.on("/beta-wm"))
    body = verify(std[0], BETA_SECRET)  # signed as any delivery is
    assert body["type"] == "test" and body["data"]["subscriber"] == "beta"
    assert wm[0].json["token"] == BETA_TOKEN and wm[0].json["type"] == "test"
    rows = await settled(client, 2, subscriber="beta")
    assert {(r["type"], r["status"]) for r in rows} == {("test", "delivered")}
    endpoints = (await _get(client, "/v3/account/webhooks", BETA_API))["endpoints"]
    assert len(endpoints) == 2 and {e["status"] for e in endpoints} == {"ok"}
    assert all(e["subscriber"] == "beta" for e in endpoints)
    assert "secret" not in str(endpoints).lower().replace("subscriber", "")


async def test_portal_test_event_button(client: TestClient, receiver: Receiver) -> None:
    await login(client, "/portal/", ACME_LOGIN)
    token = await page_csrf(client, "/portal/")
    resp = await client.post("/portal/webhooks/test", data={"csrf": token})
    assert resp.status == 200 and "A test event is queued for 1 endpoint(s)." in await resp.text()
    hits = await wait_for(lambda: receiver.on("/acme"))
    assert verify(hits[0], ACME_SECRET)["type"] == "test"


async def test_test_event_without_endpoints_is_a_conflict(
        make_client: Callable[..., Awaitable[TestClient]]) -> None:
    client = await make_client('\n[[subscribers]]\nid = "solo"\nclient_id = "solo"\n'
                               'secret = "solo-secret"\nplan = "enterprise"\n'
                               'since = 2025-01-01\ninstances = [1]\n')
    solo = {"X-WM-CLIENT-ID": "solo", "X-WM-CLIENT-SECRET": "solo-secret"}
    resp = await client.post("/v3/account/webhooks/test", headers=solo)
    assert resp.status == 409 and (await resp.json())["error"] == "no_webhooks"


async def test_docs_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    resp = await client.get("/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith("/docs/") for a in assets), assets
    for asset in assets:
        got = await client.get(asset)
        assert got.status == 200, asset
        assert len(await got.read()) > 100, asset
    script = await (await client.get("/docs/docs.js")).text()
    assert '"/openapi.json"' in script
    for path in ("/docs/../pyproject.toml", "/docs/index.html", "/docs/%2e%2e"):
        resp = await client.get(path)
        # The client resolves the dots first: "/docs/%2e%2e" asks for "/", the front door.
        assert resp.status == 404 or (resp.url.path == "/" and "front-door" in
                                      await resp.text()), path
