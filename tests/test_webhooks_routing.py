"""Routing and formats, end to end: a user's message reaches the right subscriber's
webhooks (and no one else's), signed as Standard Webhooks or in WhatsMate's shape."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from standardwebhooks.webhooks import WebhookVerificationError

from bot.effects import OutboundDraft
from bot.events import StatusUpdate
from bot.web.keys import pipeline_key, store_key
from tests.conftest import ADMIN, say, wait_for, wait_sent
from tests.webhook_helpers import (
    ACME_SECRET,
    BETA_SECRET,
    BETA_TOKEN,
    Receiver,
    deliveries,
    quiet,
    settled,
    subscribers_toml,
    verify,
)

U = "+34600000001"
V = "+34600000002"
W = "+34600000003"


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base, extra_webhooks=f"""
        [[subscribers.webhooks]]
        url = "{receiver.base}/acme-reg"
        format = "standard"
        secret = "{ACME_SECRET}"
        events = ["user.registered"]
    """))


async def sent_by(client: TestClient, subscriber: str, *, to: str | None = None,
                  group_id: str | None = None, instance: int = 1, ago: float = 0.0) -> str:
    """Record that `subscriber` sent to a user or group (as the send API would)."""
    draft = OutboundDraft(instance_id=instance, to=to, group_id=group_id, text="hello",
                          subscriber_id=subscriber)
    await client.app[store_key].enqueue([draft], time.time() - ago)
    return draft.id


def on(receiver: Receiver, path: str) -> list[Any]:
    """What reached `path` but the `message.status` of the sends these tests
    make only to set who last sent to whom (their routing is tested below)."""
    return [h for h in receiver.on(path) if h.json.get("type") != "message.status"]


def types(hits: list[Any]) -> list[str]:
    return [h.json["type"] for h in hits]


async def test_dedicated_instance_goes_to_its_owner(client: TestClient,
                                                    receiver: Receiver) -> None:
    await say(client, "where is my order?", sender=U, instance=3)
    hits = await wait_for(lambda: on(receiver, "/acme"))
    body = verify(hits[0], ACME_SECRET)  # a subscriber's own check passes
    assert body["type"] == "message.received"
    data = body["data"]
    assert data["from"] == U and data["text"] == "where is my order?"
    assert data["instance_id"] == 3 and data["gateway_number"] == "+15550003333"
    assert hits[0].webhook_id and hits[0].webhook_id.startswith("msg_")
    await quiet()
    assert not on(receiver, "/beta") and not on(receiver, "/beta-wm") and not on(receiver, "/gamma")
    # Signed with acme's secret, not anyone else's.
    with pytest.raises(WebhookVerificationError):
        verify(hits[0], BETA_SECRET)


async def test_shared_instance_with_no_sender_or_keyword_goes_nowhere(
        client: TestClient, receiver: Receiver) -> None:
    await say(client, "hello?", sender=U)
    await quiet()
    assert receiver.hits == []
    assert await deliveries(client) == []


async def test_most_recent_sender_wins(client: TestClient, receiver: Receiver) -> None:
    await sent_by(client, "beta", to=U, ago=60)
    await sent_by(client, "acme", to=U, ago=10)
    await sent_by(client, "beta", to=V, ago=5)  # another user: irrelevant to U
    await say(client, "yes please", sender=U)
    hits = await wait_for(lambda: on(receiver, "/acme"))
    assert verify(hits[0], ACME_SECRET)["data"]["text"] == "yes please"
    await quiet()
    assert not on(receiver, "/beta") and not on(receiver, "/beta-wm")
    # V's reply goes to beta, in both of beta's formats.
    await say(client, "and me", sender=V)
    std = await wait_for(lambda: on(receiver, "/beta"))
    wm = await wait_for(lambda: on(receiver, "/beta-wm"))
    assert verify(std[0], BETA_SECRET)["data"]["from"] == V
    assert wm[0].json == {"token": BETA_TOKEN, "type": "individual", "instance_id": "1",
                          "gateway_number": "15550001111", "number": "34600000002",
                          "message": "and me"}
    assert "webhook-signature" not in wm[0].headers


async def test_registration_keyword_routes_and_raises_user_registered(
        client: TestClient, receiver: Receiver) -> None:
    await sent_by(client, "acme", to=U, ago=10)
    await say(client, "Hi BETA", sender=U)  # named now: more recent than acme's send
    hits = await wait_for(lambda: len(on(receiver, "/beta")) >= 2 and on(receiver, "/beta"))
    assert sorted(types(hits)) == ["message.received", "user.registered"]
    reg = next(verify(h, BETA_SECRET) for h in hits if h.json["type"] == "user.registered")
    assert reg["data"]["number"] == U and reg["data"]["keyword_subscriber"] == "beta"
    wm = await wait_for(lambda: on(receiver, "/beta-wm"))
    assert [h.json["message"] for h in wm] == ["Hi BETA"]  # whatsmate: messages only
    await quiet()
    assert not on(receiver, "/acme") and not on(receiver, "/acme-reg")
    # acme sends later: U's next message is acme's.
    await sent_by(client, "acme", to=U)
    await say(client, "thanks acme", sender=U)
    acme = await wait_for(lambda: on(receiver, "/acme"))
    assert verify(acme[0], ACME_SECRET)["data"]["text"] == "thanks acme"
    assert len(on(receiver, "/beta")) == 2


async def test_event_filter_per_webhook(client: TestClient, receiver: Receiver) -> None:
    await say(client, "Hola ACME", sender=U)
    await wait_for(lambda: len(on(receiver, "/acme")) >= 2)
    reg = await wait_for(lambda: on(receiver, "/acme-reg"))
    await quiet()
    assert sorted(types(on(receiver, "/acme"))) == ["message.received", "user.registered"]
    assert types(on(receiver, "/acme-reg")) == ["user.registered"]
    assert verify(reg[0], ACME_SECRET)["data"]["locale"] == "es"


async def test_stop_is_forwarded_and_raises_user_unregistered(
        client: TestClient, receiver: Receiver) -> None:
    await say(client, "Hi ACME", sender=U)
    await wait_for(lambda: len(on(receiver, "/acme")) >= 2)
    await say(client, "STOP", sender=U)
    hits = await wait_for(lambda: len(on(receiver, "/acme")) >= 4 and on(receiver, "/acme"))
    events = [(verify(h, ACME_SECRET)["type"], verify(h, ACME_SECRET)["data"].get("text"))
              for h in hits]
    assert ("message.received", "STOP") in events
    assert ("user.unregistered", None) in events
    gone = next(verify(h, ACME_SECRET) for h in hits if h.json["type"] == "user.unregistered")
    assert gone["data"] == {"instance_id": 1, "gateway_number": "+15550001111", "number": U,
                            "locale": "en", "source": "user"}


async def test_reply_window(client: TestClient, receiver: Receiver) -> None:
    await sent_by(client, "acme", to=U, ago=31 * 86400)  # default window: 30 days
    await sent_by(client, "beta", to=V, ago=29 * 86400)
    await say(client, "late reply", sender=U)
    await say(client, "in time", sender=V)
    hits = await wait_for(lambda: on(receiver, "/beta"))
    assert verify(hits[0], BETA_SECRET)["data"]["text"] == "in time"
    await quiet()
    assert not on(receiver, "/acme")


async def test_group_goes_to_the_subscriber_that_last_sent_to_the_group(
        client: TestClient, receiver: Receiver) -> None:
    await sent_by(client, "acme", to=U, ago=5)  # to the user privately: not the group
    await sent_by(client, "beta", group_id="G1", ago=60)
    await say(client, "group hello", sender=U, group={"id": "G1", "name": "Book club"})
    std = await wait_for(lambda: on(receiver, "/beta"))
    wm = await wait_for(lambda: on(receiver, "/beta-wm"))
    data = verify(std[0], BETA_SECRET)["data"]
    assert data["group"] == {"id": "G1", "name": "Book club"} and data["from"] == U
    assert wm[0].json == {"token": BETA_TOKEN, "type": "group", "instance_id": "1",
                          "gateway_number": "15550001111", "number": "34600000001",
                          "message": "group hello", "group_name": "Book club",
                          "group_id": "G1"}
    await say(client, "other group", sender=U, group={"id": "G2", "name": "Other"})
    await quiet()
    assert not on(receiver, "/acme") and len(on(receiver, "/beta")) == 1


async def test_plan_without_inbound_webhooks_gets_nothing(
        client: TestClient, receiver: Receiver) -> None:
    await sent_by(client, "gamma", to=U)
    await say(client, "hi gamma?", sender=U)
    await say(client, "Hi GAMMA", sender=V)
    await quiet()
    assert receiver.hits == []


async def test_message_status_goes_to_the_sender(client: TestClient,
                                                 receiver: Receiver) -> None:
    message_id = await sent_by(client, "beta", to=U)
    await sent_by(client, "acme", to=V)
    await wait_sent(client)
    row = await client.app[store_key].get_outbound(message_id)
    assert row is not None and row.provider_message_id
    await client.app[pipeline_key].handle(StatusUpdate(
        provider="sandbox", provider_message_id=row.provider_message_id, instance_id=1,
        status="delivered", timestamp=time.time()))
    hits = await wait_for(lambda: len(receiver.on("/beta")) == 2 and receiver.on("/beta"))
    told = {verify(h, BETA_SECRET)["data"]["status"]: verify(h, BETA_SECRET) for h in hits}
    assert sorted(told) == ["delivered", "sent"]  # sent as the sandbox took it
    for body in told.values():
        assert body["type"] == "message.status"
        assert body["data"]["id"] == message_id and body["data"]["to"] == U
    await quiet()
    # acme hears of its own message only; whatsmate has no status shape
    assert not receiver.on("/beta-wm")
    assert [verify(h, ACME_SECRET)["data"]["status"] for h in receiver.on("/acme")] == ["sent"]
    rows = await settled(client, 3)
    assert sorted((d["subscriber"], d["type"], d["status"]) for d in rows) == [
        ("acme", "message.status", "delivered"), ("beta", "message.status", "delivered"),
        ("beta", "message.status", "delivered")]


async def test_same_url_two_subscribers_keep_their_own_secrets(
        make_client: Callable[..., Awaitable[TestClient]], receiver: Receiver) -> None:
    """Two subscribers with the same URL: each delivery carries its own secret/token."""
    toml = subscribers_toml(receiver.base).replace(f"{receiver.base}/beta\"",
                                                   f"{receiver.base}/acme\"")
    client = await make_client(toml)
    await sent_by(client, "beta", to=V)
    await say(client, "for acme", sender=U, instance=3)
    await say(client, "for beta", sender=V)
    hits = await wait_for(lambda: len(on(receiver, "/acme")) >= 2 and on(receiver, "/acme"))
    by_text = {h.json["data"]["text"]: h for h in hits}
    verify(by_text["for acme"], ACME_SECRET)
    verify(by_text["for beta"], BETA_SECRET)
    with pytest.raises(WebhookVerificationError):
        verify(by_text["for beta"], ACME_SECRET)
    with pytest.raises(WebhookVerificationError):
        verify(by_text["for acme"], BETA_SECRET)


# ------------------------------------------------- an admin's opt-out, told like a STOP


async def admin_opt_out(client: TestClient, number: str,
                        instance: int | None = None) -> dict[str, Any]:
    params = {"instance": str(instance)} if instance is not None else {}
    resp = await client.post(f"/admin/registrations/{number}/opt-out", headers=ADMIN,
                             params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def unregistered(hits: list[Any]) -> list[Any]:
    return [h for h in hits if h.json["type"] == "user.unregistered"]


async def test_admin_opt_out_raises_user_unregistered_for_the_owner(
        client: TestClient, receiver: Receiver) -> None:
    await say(client, "Hi", sender=U, instance=3)
    await wait_for(lambda: len(on(receiver, "/acme")) >= 2)
    assert (await admin_opt_out(client, U, instance=3))["changed"] == 1
    [hit] = await wait_for(lambda: unregistered(on(receiver, "/acme")))
    body = verify(hit, ACME_SECRET)  # signed as every other event
    assert body["data"] == {"instance_id": 3, "gateway_number": "+15550003333", "number": U,
                            "locale": "en", "source": "admin"}
    assert hit.webhook_id and hit.webhook_id.startswith("msg_")
    await quiet()
    # acme's other webhook lists only user.registered: it is not told, nor queued.
    assert types(on(receiver, "/acme-reg")) == ["user.registered"]
    assert not on(receiver, "/beta") and not on(receiver, "/beta-wm")
    rows = [d for d in await settled(client, 4) if d["type"] == "user.unregistered"]
    assert [(d["subscriber"], d["endpoint"]["url"], d["status"]) for d in rows] == [
        ("acme", f"{receiver.base}/acme", "delivered")]


async def test_admin_opt_out_of_an_opted_out_or_unknown_number_tells_nobody(
        client: TestClient, receiver: Receiver) -> None:
    await say(client, "Hi", sender=U, instance=3)
    await say(client, "STOP", sender=U, instance=3)
    [stop] = await wait_for(lambda: unregistered(on(receiver, "/acme")))
    assert verify(stop, ACME_SECRET)["data"]["source"] == "user"
    assert (await admin_opt_out(client, U, instance=3))["changed"] == 0
    # A number that never wrote is recorded opted-out everywhere: nothing to tell.
    assert (await admin_opt_out(client, V))["changed"] == 3
    await quiet()
    assert len(unregistered(on(receiver, "/acme"))) == 1
    assert not on(receiver, "/beta") and not on(receiver, "/gamma")
    assert [d["type"] for d in await deliveries(client)].count("user.unregistered") == 1


async def test_admin_opt_out_on_a_shared_instance_goes_to_the_routed_subscriber(
        client: TestClient, receiver: Receiver) -> None:
    await say(client, "Hi BETA", sender=U)
    await say(client, "Hi BETA", sender=V)
    await say(client, "Hi GAMMA", sender=W)  # gamma's plan has no inbound webhooks
    await wait_for(lambda: len(on(receiver, "/beta")) >= 4)
    await sent_by(client, "acme", to=U)  # after U named beta: U is acme's now
    assert (await admin_opt_out(client, U, instance=1))["changed"] == 1
    [hit] = await wait_for(lambda: unregistered(on(receiver, "/acme")))
    assert verify(hit, ACME_SECRET)["data"] == {
        "instance_id": 1, "gateway_number": "+15550001111", "number": U, "locale": "en",
        "source": "admin"}
    # V last named beta and nobody sent to it since: beta is told (standard only).
    assert (await admin_opt_out(client, V))["changed"] == 3
    [hit] = await wait_for(lambda: unregistered(on(receiver, "/beta")))
    assert verify(hit, BETA_SECRET)["data"]["number"] == V
    assert (await admin_opt_out(client, W, instance=1))["changed"] == 1
    await quiet()
    assert len(unregistered(on(receiver, "/acme"))) == 1
    assert len(unregistered(on(receiver, "/beta"))) == 1
    assert [h.json["message"] for h in on(receiver, "/beta-wm")] == ["Hi BETA", "Hi BETA"]
    assert not on(receiver, "/gamma") and not on(receiver, "/acme-reg")


async def test_a_stop_and_an_admin_opt_out_at_once_unregister_the_user_once(
        client: TestClient, receiver: Receiver) -> None:
    users = [f"+3460001{i:04d}" for i in range(12)]
    for user in users:
        await say(client, "Hi", sender=user, instance=3)
    await wait_for(lambda: len(on(receiver, "/acme-reg")) >= len(users))
    # Each user says STOP while an admin opts them out: whichever commits
    # second sees the first, so each subscriber hears it once per user.
    await asyncio.gather(*(coro for user in users for coro in (
        say(client, "STOP", sender=user, instance=3), admin_opt_out(client, user, instance=3))))
    await wait_for(lambda: len(unregistered(on(receiver, "/acme"))) >= len(users))
    await quiet()
    told = [verify(hit, ACME_SECRET)["data"]["number"]
            for hit in unregistered(on(receiver, "/acme"))]
    assert sorted(told) == sorted(users)


async def test_admin_opt_out_and_its_event_commit_together(client: TestClient) -> None:
    await say(client, "Hi", sender=U, instance=3)
    store = client.app[store_key]

    def broken_route(state: Any) -> list[Any]:
        raise RuntimeError("routing failed")

    with pytest.raises(RuntimeError):
        await store.opt_out(U, [3], "en", time.time(), broken_route)
    # Neither half is written: the user stays registered, no event is queued.
    [reg] = [r for r in await store.registrations_of(U) if r.instance_id == 3]
    assert reg.active
    assert "user.unregistered" not in [d["type"] for d in await deliveries(client)]
