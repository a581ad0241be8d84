"""Webhook endpoints a subscriber manages itself, over HTTP on each backend: add
one, rotate its signing secret and receive real signed deliveries carrying
both signatures during the overlap (checked with the official Standard
Webhooks validator), then only the new one; change, disable and delete it;
the address rules refuse what no delivery could reach, saying why, and a
broker's password is never echoed; provisioned subscribers only with
self_service = true; the admin does the same for any subscriber; every change
is audited without a secret. On PostgreSQL, an endpoint added through one
service is used by another within a second."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import WebhookVerificationError

from bot.app import create_app
from bot.config import Config
from bot.web.keys import store_key
from bot.web.snapshot import holder_key
from tests.conftest import ADMIN, say, wait_for
from tests.webhook_helpers import Hit, Receiver, subscribers_toml, verify

AppClient = Callable[..., Awaitable[TestClient]]
U = "+34600000001"
shared_database = pytest.mark.parametrize("backend", ["postgres"], indirect=True)
SELF_SERVICE = """
        [[subscribers]]
        id = "selfco"
        client_id = "dev@selfco.example"
        secret = "selfco-api-secret"
        plan = "enterprise"
        since = 2026-01-01
        instances = [1]
        keyword = "SELFCO"
        self_service = true
"""
SELFCO = {"X-WM-CLIENT-ID": "dev@selfco.example", "X-WM-CLIENT-SECRET": "selfco-api-secret"}
ACME = {"X-WM-CLIENT-ID": "dev@acme.example", "X-WM-CLIENT-SECRET": "acme-api-secret"}


@pytest.fixture
def config(make_config: Callable[..., Config], receiver: Receiver) -> Config:
    return make_config(subscribers_toml(receiver.base) + SELF_SERVICE)


async def new_subscriber(client: TestClient, sub_id: str = "newco",
                         keyword: str = "NEWCO") -> dict[str, str]:
    resp = await client.post("/admin/subscribers", headers=ADMIN, json={
        "id": sub_id, "plan": "enterprise", "instances": [1], "keyword": keyword})
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    return {"X-WM-CLIENT-ID": created["client_id"], "X-WM-CLIENT-SECRET": created["secret"]}


async def call(client: TestClient, method: str, path: str, headers: dict[str, str],
               status: int = 200, **kwargs: Any) -> Any:
    resp = await client.request(method, path, headers=headers, **kwargs)
    assert resp.status == status, await resp.text()
    return await resp.json()


def registered(receiver: Receiver, path: str) -> list[Hit]:
    return [h for h in receiver.on(path) if h.json["type"] == "user.registered"]


def signatures(hit: Hit) -> int:
    return len(hit.headers["webhook-signature"].split(" "))


async def test_add_rotate_and_receive_both_signatures_during_the_overlap(
        aiohttp_client: AppClient, config: Config, receiver: Receiver) -> None:
    client = await aiohttp_client(create_app(config))
    newco = await new_subscriber(client)
    added = await call(client, "POST", "/v3/account/webhooks", newco, 201, json={
        "url": f"{receiver.base}/newco", "description": "orders service",
        "events": ["user.registered", "message.received"]})
    first = added["secret"]
    endpoint = added["endpoint"]
    assert first.startswith("whsec_") and added["token"] is None
    assert endpoint["managed_by"] == "store" and endpoint["enabled"] is True
    assert endpoint["description"] == "orders service" and endpoint["created_at"]
    assert [s["expires_at"] for s in endpoint["signing_keys"]] == [None]
    ep = endpoint["id"]

    rotated = await call(client, "POST", f"/v3/account/webhooks/{ep}/secret", newco,
                         json={"overlap_hours": 24})
    second = rotated["secret"]
    assert second != first and rotated["older_secrets_until"]
    shown = rotated["endpoint"]["signing_keys"]
    assert [s["expires_at"] is None for s in shown] == [False, True]
    assert first not in json.dumps(rotated["endpoint"]) and second not in json.dumps(
        rotated["endpoint"])

    # A real routed event: a user greets newco by its keyword.
    await say(client, "Hola NEWCO", sender=U)
    hit = (await wait_for(lambda: registered(receiver, "/newco")))[0]
    assert signatures(hit) == 2
    for secret in (first, second):  # a receiver holding either verifies it
        assert verify(hit, secret)["data"]["number"] == U

    # Overlap 0: every earlier secret stops at once.
    third = (await call(client, "POST", f"/v3/account/webhooks/{ep}/secret", newco,
                        json={"overlap_hours": 0}))["secret"]
    queued = await call(client, "POST", f"/v3/account/webhooks/{ep}/test", newco)
    assert queued["endpoint"]["key"] == ep
    test_hit = (await wait_for(lambda: [h for h in receiver.on("/newco")
                                        if h.json["type"] == "test"]))[0]
    assert signatures(test_hit) == 1 and verify(test_hit, third)
    for old in (first, second):
        with pytest.raises(WebhookVerificationError):
            verify(test_hit, old)


async def test_change_disable_and_delete_each_audited_without_a_secret(
        aiohttp_client: AppClient, config: Config, receiver: Receiver) -> None:
    client = await aiohttp_client(create_app(config))
    newco = await new_subscriber(client)
    added = await call(client, "POST", "/v3/account/webhooks", newco, 201,
                       json={"url": f"{receiver.base}/one"})
    ep = added["endpoint"]["id"]
    assert sorted(added["endpoint"]["events"]) == sorted(
        ["message.received", "user.registered", "user.unregistered", "message.status"])
    changed = await call(client, "PATCH", f"/v3/account/webhooks/{ep}", newco, json={
        "url": f"{receiver.base}/two", "events": ["user.registered"], "enabled": False,
        "description": "paused"})
    assert changed["secret"] is None and changed["token"] is None
    one = await call(client, "GET", f"/v3/account/webhooks/{ep}", newco)
    assert one == changed["endpoint"]
    assert one["url"] == f"{receiver.base}/two" and one["enabled"] is False
    assert one["events"] == ["user.registered"] and one["description"] == "paused"
    # Disabled: no event reaches it (nor its old URL).
    await say(client, "Hola NEWCO", sender=U)
    await asyncio.sleep(0.5)
    assert receiver.hits == []
    await call(client, "PATCH", f"/v3/account/webhooks/{ep}", newco, json={"enabled": True})
    await say(client, "Hola NEWCO", sender="+34600000002")
    await wait_for(lambda: receiver.on("/two"))
    listed = await call(client, "GET", "/v3/account/webhooks", newco)
    assert [e["id"] for e in listed["endpoints"]] == [ep]
    # A change of format issues the token the new format needs, shown once.
    token = (await call(client, "PATCH", f"/v3/account/webhooks/{ep}", newco,
                        json={"format": "whatsmate"}))["token"]
    assert token
    assert (await call(client, "DELETE", f"/v3/account/webhooks/{ep}", newco)) == {
        "status": "deleted", "id": ep}
    await call(client, "GET", f"/v3/account/webhooks/{ep}", newco, 404)
    await call(client, "PATCH", f"/v3/account/webhooks/{ep}", newco, 404, json={})
    audit = await call(client, "GET", "/admin/audit?target=newco", ADMIN)
    actions = [e["action"] for e in audit["entries"]]
    assert actions[:5] == ["endpoint.deleted", "endpoint.updated", "endpoint.updated",
                           "endpoint.updated", "endpoint.created"]
    assert {e["actor"] for e in audit["entries"][:5]} == {"subscriber:newco"}
    text = json.dumps(audit)
    assert added["secret"] not in text and token not in text


@pytest.mark.parametrize(("url", "says"), [
    ("http://10.0.0.7/hook", "private"),
    ("http://localhost:9/hook", "loopback"),  # a name, resolved when saved
    ("https://[::1]/hook", "loopback"),
    ("https://169.254.169.254/latest", "link-local"),
    ("ftp://files.example/hook", "is not an http(s), nats, amqp or redis URL"),
    ("nats://wagate:pw-Zq8v3-never@10.1.2.3:4222/events", "private"),
    ("redis://:pw-Zq8v3-never@192.168.1.9:6379/0?stream=s", "private"),
    ("http://no-such-host.invalid/hook", "does not resolve"),
])
async def test_a_refused_url_is_a_400_saying_why_without_its_password(
        aiohttp_client: AppClient, make_config: Callable[..., Config],
        url: str, says: str) -> None:
    strict = subscribers_toml("https://hooks.example").replace(
        'allow_private_networks = ["127.0.0.0/8"]', "allow_private_networks = []")
    client = await aiohttp_client(create_app(make_config(strict)))
    newco = await new_subscriber(client)
    resp = await client.post("/v3/account/webhooks", headers=newco, json={"url": url})
    text = await resp.text()
    assert resp.status == 400 and (await resp.json())["error"] == "refused_url", text
    assert says in text and "pw-Zq8v3-never" not in text


async def test_a_broker_endpoint_keeps_its_password_to_itself(
        aiohttp_client: AppClient, config: Config) -> None:
    client = await aiohttp_client(create_app(config))
    newco = await new_subscriber(client)
    added = await call(client, "POST", "/v3/account/webhooks", newco, 201, json={
        "url": "nats://wagate:pw-Zq8v3-never@127.0.0.1:4222/wagate.events"})
    assert added["endpoint"]["url"] == "nats://wagate@127.0.0.1:4222/wagate.events"
    for path in ("/v3/account/webhooks", f"/v3/account/webhooks/{added['endpoint']['id']}"):
        assert "pw-Zq8v3-never" not in await (await client.get(path, headers=newco)).text()
    for path in ("/admin/audit", "/admin/endpoints", "/admin/subscribers/newco/webhooks"):
        assert "pw-Zq8v3-never" not in await (await client.get(path, headers=ADMIN)).text()
    hook = client.app[holder_key].current.config.subscribers["newco"].webhooks[0]
    assert hook.password == "pw-Zq8v3-never"  # what the publisher logs in with


async def test_provisioned_subscribers_only_with_self_service(
        aiohttp_client: AppClient, config: Config, receiver: Receiver) -> None:
    client = await aiohttp_client(create_app(config))
    refused = await client.post("/v3/account/webhooks", headers=ACME,
                                json={"url": f"{receiver.base}/x"})
    assert refused.status == 403 and (await refused.json())["error"] == "not_self_service"
    # acme's file endpoint is listed, and read-only.
    listed = await call(client, "GET", "/v3/account/webhooks", ACME)
    file_ep = listed["endpoints"][0]
    assert file_ep["managed_by"] == "config" and file_ep["id"] == file_ep["key"]
    refused = await call(client, "PATCH", f"/v3/account/webhooks/{file_ep['id']}", ACME, 409,
                         json={"enabled": False})
    assert refused["error"] == "provisioned" and "change it there" in refused["error_message"]
    # selfco (self_service = true) adds its own beside the file's (it has none).
    added = await call(client, "POST", "/v3/account/webhooks", SELFCO, 201,
                       json={"url": f"{receiver.base}/selfco"})
    await say(client, "Hola SELFCO", sender=U)
    hit = (await wait_for(lambda: registered(receiver, "/selfco")))[0]
    assert verify(hit, added["secret"])["data"]["number"] == U


async def test_the_admin_manages_any_subscribers_endpoints(
        aiohttp_client: AppClient, config: Config, receiver: Receiver) -> None:
    client = await aiohttp_client(create_app(config))
    newco = await new_subscriber(client)
    added = await call(client, "POST", "/admin/subscribers/newco/webhooks", ADMIN, 201,
                       json={"url": f"{receiver.base}/by-admin"})
    ep = added["endpoint"]["id"]
    mine = await call(client, "GET", "/v3/account/webhooks", newco)
    assert [e["id"] for e in mine["endpoints"]] == [ep]
    await call(client, "POST", f"/admin/subscribers/newco/webhooks/{ep}/secret", ADMIN)
    await call(client, "POST", f"/admin/subscribers/newco/webhooks/{ep}/test", ADMIN)
    await wait_for(lambda: receiver.on("/by-admin"))
    audit = await call(client, "GET", "/admin/audit?target=newco&actor=admin", ADMIN)
    assert [e["action"] for e in audit["entries"]][:2] == ["endpoint.secret_rotated",
                                                           "endpoint.created"]
    await call(client, "POST", "/admin/subscribers/acme/webhooks", ADMIN, 403,
               json={"url": f"{receiver.base}/x"})
    await call(client, "GET", "/admin/subscribers/nobody/webhooks", ADMIN, 404)
    # Another subscriber's endpoint is not there for newco.
    other = await new_subscriber(client, "other", "OTHER")
    await call(client, "GET", f"/v3/account/webhooks/{ep}", other, 404)
    await call(client, "DELETE", f"/v3/account/webhooks/{ep}", other, 404)
    # A deleted subscriber's endpoints go with it, their secrets too.
    await call(client, "DELETE", "/admin/subscribers/newco", ADMIN)
    assert "newco" not in client.app[holder_key].current.config.subscribers
    rows = await client.app[store_key].load_managed(time.time())
    assert rows.endpoints == [] and rows.endpoint_secrets == []


@shared_database
async def test_an_endpoint_added_through_one_service_is_used_by_another_within_a_second(
        aiohttp_client: AppClient, config: Config, receiver: Receiver) -> None:
    first, second = await asyncio.gather(aiohttp_client(create_app(config)),
                                         aiohttp_client(create_app(config)))
    newco = await new_subscriber(first)
    added = await call(first, "POST", "/v3/account/webhooks", newco, 201,
                       json={"url": f"{receiver.base}/shared"})
    saved = time.monotonic()
    await wait_for(lambda: second.app[holder_key].current.config.subscribers.get("newco")
                   and second.app[holder_key].current.config.subscribers["newco"].webhooks,
                   timeout=1.0)
    assert time.monotonic() - saved < 1.0
    await say(second, "Hola NEWCO", sender=U)  # routed and delivered by the other service
    hit = (await wait_for(lambda: registered(receiver, "/shared")))[0]
    assert verify(hit, added["secret"])["data"]["number"] == U
