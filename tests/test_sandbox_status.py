"""`POST /sandbox/status`: a sandbox message moves as a provider's status would
move it, end to end: sent through the WhatsMate API, marked delivered, seen by
its sender on `GET /v3/whatsapp/messages/{id}` and on a standard webhook."""

from __future__ import annotations

import io
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.config import ConfigError
from bot.effects import OutboundDraft
from bot.web.keys import store_key
from tests.conftest import ADMIN, say, wait_for, wait_sent
from tests.send_helpers import send
from tests.test_hostile_input import HOSTILE_VALUES, refused, with_field
from tests.webhook_helpers import BETA_SECRET, Receiver, quiet, subscribers_toml, verify

U = "+34600000001"
BETA = {"X-WM-CLIENT-ID": "dev@beta.example", "X-WM-CLIENT-SECRET": "beta-api-secret"}


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


async def mark(client: TestClient, body: Any, status: int = 200) -> dict[str, Any]:
    resp = await client.post("/sandbox/status", headers=ADMIN, json=body)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def seen_by_sender(client: TestClient, message_id: str) -> dict[str, Any]:
    resp = await client.get(f"/v3/whatsapp/messages/{message_id}", headers=BETA)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def sent_message(client: TestClient) -> str:
    """Beta sends U a text through the WhatsMate API; the sandbox sends it."""
    await say(client, "Hola", sender=U)
    resp = await send(client, "single", "text", {"number": U, "message": "Tu pedido (y)"},
                      headers=BETA)
    assert resp.status == 200, await resp.text()
    message_id = (await resp.json())["id"]
    await wait_sent(client)
    assert (await seen_by_sender(client, message_id))["status"] == "sent"
    return message_id


async def test_sent_on_its_own_then_delivered_reach_the_senders_webhook(
        client: TestClient, receiver: Receiver) -> None:
    message_id = await sent_message(client)
    # The sandbox sent it: `sent` is told as a provider's acceptance is, unasked.
    hits = await wait_for(lambda: receiver.on("/beta"))
    body = verify(hits[0], BETA_SECRET)
    assert body["type"] == "message.status"
    assert body["data"]["id"] == message_id and body["data"]["status"] == "sent"
    assert body["data"]["to"] == U
    answer = await mark(client, {"id": message_id, "status": "delivered"})
    assert answer["applied"] is True and answer["message"]["status"] == "delivered"
    assert (await seen_by_sender(client, message_id))["status"] == "delivered"
    hits = await wait_for(lambda: len(receiver.on("/beta")) == 2 and receiver.on("/beta"))
    body = verify(hits[1], BETA_SECRET)
    assert body["type"] == "message.status"
    assert body["data"]["id"] == message_id and body["data"]["status"] == "delivered"

    # Backwards, as with Meta's statuses: ignored, the current status answered.
    back = await mark(client, {"id": message_id, "status": "sent"})
    assert back["applied"] is False and back["message"]["status"] == "delivered"
    again = await mark(client, {"id": message_id, "status": "delivered"})
    assert again["applied"] is False
    await quiet()
    assert len(receiver.on("/beta")) == 2

    read = await mark(client, {"id": message_id, "status": "read"})
    assert read["applied"] is True
    failed = await mark(client, {"id": message_id, "status": "failed",
                                 "error": {"code": 131026, "title": "Message undeliverable"}})
    assert failed["message"]["error"] == {"code": 131026, "title": "Message undeliverable"}
    shown = await seen_by_sender(client, message_id)
    assert shown["status"] == "failed" and shown["reason"] == "Message undeliverable"
    hits = await wait_for(lambda: len(receiver.on("/beta")) == 4 and receiver.on("/beta"))
    last = verify(hits[-1], BETA_SECRET)["data"]
    assert last["status"] == "failed"
    assert last["error"] == {"code": 131026, "title": "Message undeliverable"}


async def test_refusals_are_readable(client: TestClient) -> None:
    message_id = await sent_message(client)
    for body, status, slug in [
            ({"id": "no-such-message", "status": "delivered"}, 404, "message_not_found"),
            ({"id": message_id, "status": "seen"}, 400, "invalid_status"),
            ({"id": message_id, "status": ["delivered"]}, 400, "invalid_status"),
            ({"id": message_id}, 400, "invalid_status"),
            ({"status": "delivered"}, 400, "invalid_id"),
            ({"id": 7, "status": "delivered"}, 400, "invalid_id"),
            ({"id": "x" * 201, "status": "delivered"}, 400, "invalid_id"),
            ({"id": message_id, "status": "delivered", "error": {"code": 1}}, 400,
             "invalid_error"),
            ({"id": message_id, "status": "failed", "error": "broken"}, 400, "invalid_error"),
            ({"id": message_id, "status": "failed", "error": {"code": 2**63}}, 400,
             "invalid_error"),
            ({"id": message_id, "status": "failed", "error": {"code": True}}, 400,
             "invalid_error"),
            ({"id": message_id, "status": "failed", "error": {"title": "t" * 1001}}, 400,
             "invalid_error")]:
        answer = await mark(client, body, status)
        assert answer["error"] == slug, (body, answer)
        assert answer["error_message"]
    resp = await client.post("/sandbox/status", headers=ADMIN, data=b"{not json")
    assert resp.status == 400 and (await resp.json())["error"] == "malformed_json"
    resp = await client.post("/sandbox/status", json={"id": message_id, "status": "read"})
    assert resp.status == 401
    # None of it moved the message.
    assert (await seen_by_sender(client, message_id))["status"] == "sent"


async def test_only_sandbox_messages_and_only_once_sent(client: TestClient) -> None:
    store = client.app[store_key]
    on_meta = OutboundDraft(instance_id=2, to=U, text="hello", subscriber_id="beta")
    # Due in an hour: the sandbox has not sent it yet.
    later = OutboundDraft(instance_id=1, to=U, text="later", subscriber_id="beta")
    await store.enqueue([on_meta], time.time())
    await store.enqueue([later], time.time() + 3600)
    refused = await mark(client, {"id": on_meta.id, "status": "delivered"}, 400)
    assert refused["error"] == "not_sandbox" and "meta" in refused["error_message"]
    early = await mark(client, {"id": later.id, "status": "delivered"}, 409)
    assert early["error"] == "not_sent_yet"
    row = await store.get_outbound(later.id)
    assert row is not None and row.status == "queued"


@pytest.mark.parametrize("field", ["id", "status", "error", "error.code", "error.title"])
async def test_hostile_values_in_every_field(client: TestClient, field: str) -> None:
    message_id = await sent_message(client)
    valid = {"id": message_id, "status": "failed", "error": {"code": 1, "title": "t"}}
    for name, raw in HOSTILE_VALUES.items():
        if "." in field:
            outer, inner = field.split(".")
            body = with_field(valid, outer, with_field(valid["error"], inner, raw).decode())
        else:
            body = with_field(valid, field, raw)
        resp = await client.post("/sandbox/status", data=io.BytesIO(body), headers={
            **ADMIN, "Content-Type": "application/json"})
        if resp.status == 200:  # acceptable after all: an int code, a title, unknown keys
            assert field in ("error.code", "error.title") or (field, name) == ("error", "dict"), (
                name, await resp.text())
            continue
        answer = await refused(resp, 400)
        # (invalid_field: a lone surrogate, which is no text)
        assert answer["error"] in ("invalid_id", "invalid_status", "invalid_error",
                                   "invalid_text", "invalid_field", "malformed_json"), (
            name, answer)
    assert (await client.get("/healthz")).status == 200


async def test_configured_delays_bring_delivered_then_read_on_their_own(
        make_client: Callable[..., Awaitable[TestClient]], receiver: Receiver) -> None:
    # [sandbox] delivered_after / read_after: the sandbox reports them itself, as
    # a provider's webhooks would, without POST /sandbox/status.
    client = await make_client(subscribers_toml(receiver.base)
                               + "\n[sandbox]\ndelivered_after = 0.3\nread_after = 0.6\n")
    message_id = await sent_message(client)
    hits = await wait_for(lambda: len(receiver.on("/beta")) >= 3 and receiver.on("/beta"))
    statuses = [verify(hit, BETA_SECRET)["data"] for hit in hits]
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    assert all(s["id"] == message_id for s in statuses)
    assert (await seen_by_sender(client, message_id))["status"] == "read"
    await quiet()
    assert len(receiver.on("/beta")) == 3


async def test_without_delays_the_sandbox_stops_at_sent(
        client: TestClient, receiver: Receiver) -> None:
    message_id = await sent_message(client)
    await wait_for(lambda: receiver.on("/beta"))
    await quiet()
    assert [verify(hit, BETA_SECRET)["data"]["status"] for hit in receiver.on("/beta")] \
        == ["sent"]
    assert (await seen_by_sender(client, message_id))["status"] == "sent"


@pytest.mark.parametrize(("section", "says"), [
    ("delivered_after = -1", "delivered_after: must be positive"),
    ("delivered_after = 2\nread_after = 1", "must not be less than delivered_after"),
    ("read_after = 'soon'", "read_after"),
    ("deliverd_after = 1", "deliverd_after"),
])
def test_a_wrong_sandbox_section_is_refused_by_name(
        make_config: Callable[..., Any], section: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused_config:
        make_config(f"\n[sandbox]\n{section}\n")
    assert says in str(refused_config.value)
