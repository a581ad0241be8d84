"""The Meta (WhatsApp Cloud API) provider over HTTP: a signed webhook in, the
reply out to a local Graph-shaped server, statuses back."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from tests.conftest import (
    ADMIN,
    PNID,
    VERIFY_TOKEN,
    meta_text,
    post_signed,
    sign,
    wait_for,
)
from tests.graph import GraphState
from tests.send_helpers import send
from tests.test_registration import REGISTERED, expected, registration
from tests.webhook_helpers import BETA_SECRET, Receiver, quiet, subscribers_toml, verify


async def test_verification_handshake(client: TestClient) -> None:
    ok = await client.get("/webhooks/meta", params={"hub.mode": "subscribe",
                                                    "hub.verify_token": VERIFY_TOKEN,
                                                    "hub.challenge": "1158201444"})
    assert ok.status == 200 and await ok.text() == "1158201444"
    bad = await client.get("/webhooks/meta", params={"hub.mode": "subscribe",
                                                     "hub.verify_token": "nope",
                                                     "hub.challenge": "x"})
    assert bad.status == 403
    assert (await bad.json())["error"] == "bad_verify_token"


async def test_greeting_through_meta_reaches_graph(client: TestClient,
                                                   graph_state: GraphState) -> None:
    resp = await post_signed(client, meta_text("Hola", msg_id="wamid.IN1"))
    assert resp.status == 200
    sent = await wait_for(lambda: graph_state.messages)
    call = sent[0]
    assert call.path == f"/v21.0/{PNID}/messages"
    assert call.headers["Authorization"] == "Bearer test-access-token"
    assert call.json == {"messaging_product": "whatsapp", "recipient_type": "individual",
                         "to": "34600000001", "type": "text",
                         "text": {"body": expected("es", REGISTERED), "preview_url": False}}
    regs = await registration(client, "+34600000001")
    assert regs[0]["instance"] == 2 and regs[0]["locale"] == "es"


async def test_status_updates_the_message(client: TestClient, graph_state: GraphState) -> None:
    await post_signed(client, meta_text("Hola"))
    await wait_for(lambda: graph_state.messages)

    async def status_of() -> str:
        resp = await client.get("/admin/messages", headers=ADMIN, params={"direction": "out"})
        return (await resp.json())["messages"][-1]["status"]

    await wait_for(lambda: _eq(status_of(), "sent"))
    for status in ("delivered", "read", "delivered"):  # out of order: never goes back
        payload = {"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{
            "field": "messages", "value": {"metadata": {"phone_number_id": PNID},
                                           "statuses": [{"id": "wamid.TEST1", "status": status,
                                                         "timestamp": str(int(time.time())),
                                                         "recipient_id": "34600000001"}]}}]}]}
        assert (await post_signed(client, payload)).status == 200
    assert await status_of() == "read"


async def _eq(coro, value) -> bool:  # type: ignore[no-untyped-def]
    return (await coro) == value


async def test_batched_payload_with_one_bad_message(client: TestClient,
                                                    graph_state: GraphState) -> None:
    good1 = meta_text("Hola", sender="34600000001", msg_id="wamid.B1")
    good2 = meta_text("Hallo", sender="4915112345678", msg_id="wamid.B2")
    value1 = good1["entry"][0]["changes"][0]["value"]
    value1["messages"].append({"from": "34600000003", "type": "text"})  # no id: skipped
    value1["messages"].append({"from": "34600000004", "id": "wamid.B4", "type": "reaction",
                               "reaction": {"emoji": "👍", "message_id": "x"}})
    payload = {"object": "whatsapp_business_account",
               "entry": [good1["entry"][0], good2["entry"][0]]}
    resp = await post_signed(client, payload)
    assert resp.status == 200
    body = await resp.json()
    assert body == {"received": 3, "new": 3, "skipped": 1}
    assert (await registration(client, "+4915112345678"))[0]["locale"] == "de"
    assert (await registration(client, "+34600000001"))[0]["locale"] == "es"


async def test_user_id_beside_and_instead_of_wa_id(client: TestClient) -> None:
    beside = meta_text("Hola", sender="34600000005", msg_id="wamid.U1")
    beside["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = "ES.123456"
    assert (await post_signed(client, beside)).status == 200
    assert (await registration(client, "+34600000005"))[0]["status"] == "active"
    only = {"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{
        "field": "messages", "value": {
            "metadata": {"phone_number_id": PNID},
            "contacts": [{"profile": {"name": "Anon"}, "user_id": "US.98765"}],
            "messages": [{"from_user_id": "US.98765", "id": "wamid.U2", "type": "text",
                          "timestamp": "1", "text": {"body": "Hi"}}]}}]}]}
    resp = await post_signed(client, only)
    assert resp.status == 200
    msgs = await (await client.get("/admin/messages", headers=ADMIN,
                                   params={"direction": "in"})).json()
    assert msgs["messages"][-1]["number"] == "US.98765"


async def test_redelivered_meta_event_changes_nothing(client: TestClient,
                                                      graph_state: GraphState) -> None:
    payload = meta_text("Hola", msg_id="wamid.SAME")
    assert (await post_signed(client, payload)).status == 200
    await wait_for(lambda: graph_state.messages)
    again = await post_signed(client, payload)
    assert again.status == 200 and (await again.json())["new"] == 0
    await post_signed(client, payload)
    await asyncio.sleep(0.2)
    assert len(graph_state.messages) == 1


async def test_signature_missing_wrong_and_nothing_stored(client: TestClient) -> None:
    body = json.dumps(meta_text("Hola", msg_id="wamid.SIG")).encode()
    missing = await client.post("/webhooks/meta", data=body,
                                headers={"Content-Type": "application/json"})
    assert missing.status == 401
    assert (await missing.json())["error"] == "missing_signature"
    wrong = await client.post("/webhooks/meta", data=body, headers={
        "X-Hub-Signature-256": sign(body, "another-secret")})
    assert wrong.status == 403
    tampered = await client.post("/webhooks/meta", data=body.replace(b"Hola", b"Hallo"),
                                 headers={"X-Hub-Signature-256": sign(body)})
    assert tampered.status == 403
    assert await registration(client, "+34600000001") == []


async def test_unknown_phone_number_id_and_bad_payloads(client: TestClient) -> None:
    # Meta's envelope for a number not configured here: acknowledged (Meta would
    # retry a refusal, and stop a webhook that keeps failing), and not used.
    resp = await post_signed(client, meta_text("Hola", pnid="000"))
    assert resp.status == 200 and (await resp.json())["skipped"] == 1
    resp = await post_signed(client, b"{not json")
    assert resp.status == 400 and (await resp.json())["error"] == "malformed_json"
    resp = await post_signed(client, [1, 2, 3])
    assert resp.status == 400
    big = b"x" * (3 * 1024 * 1024 + 10)
    resp = await client.post("/webhooks/meta", data=io.BytesIO(big),
                             headers={"X-Hub-Signature-256": sign(big)})
    assert resp.status == 413
    assert await registration(client, "+34600000001") == []


async def test_transient_errors_retried_permanent_kept(client: TestClient,
                                                       graph_state: GraphState) -> None:
    graph_state.fail_next(130429, "Rate limit hit")
    graph_state.fail_next(0, "Service unavailable", status=503)
    await post_signed(client, meta_text("Hola", sender="34600000001"))
    ok = await wait_for(lambda: [m for m in graph_state.messages if m.json["to"] == "34600000001"]
                        if len(graph_state.messages) >= 3 else None)
    assert len(ok) == 3  # two failures, then success

    graph_state.fail_next(131026, "Message undeliverable")
    await post_signed(client, meta_text("Hallo", sender="4915112345678"))

    async def failed() -> dict | None:
        resp = await client.get("/sandbox/outbox", headers=ADMIN,
                                params={"to": "+4915112345678"})
        rows = (await resp.json())["messages"]
        return rows[0] if rows and rows[0]["status"] == "failed" else None

    row = await wait_for(failed)
    assert row["error"] == {"code": 131026, "title": "Message undeliverable"}


async def test_a_send_refused_for_good_raises_message_status_failed(
        make_client: Callable[..., Awaitable[TestClient]], graph_state: GraphState,
        receiver: Receiver) -> None:
    # The subscriber hears of a refusal as of an acceptance: `message.status`
    # failed with Meta's code and title, queued with the mark itself.
    client = await make_client(subscribers_toml(receiver.base) + f"""
[[subscribers]]
id = "delta"
client_id = "dev@delta.example"
secret = "delta-api-secret"
plan = "enterprise"
since = 2025-01-01
instances = [2]

[[subscribers.webhooks]]
url = "{receiver.base}/delta"
format = "standard"
secret = "{BETA_SECRET}"
""")
    await post_signed(client, meta_text("Hola", sender="34600000001"))
    await wait_for(lambda: graph_state.messages)  # the greeting's confirmation
    graph_state.fail_next(131026, "Message undeliverable")
    resp = await send(client, "single", "text", {"number": "+34600000001", "message": "Hi"},
                      instance=2, headers={"X-WM-CLIENT-ID": "dev@delta.example",
                                           "X-WM-CLIENT-SECRET": "delta-api-secret"})
    assert resp.status == 200, await resp.text()
    message_id = (await resp.json())["id"]
    hits = await wait_for(lambda: [h for h in receiver.on("/delta")
                                   if h.json["type"] == "message.status"])
    data = verify(hits[0], BETA_SECRET)["data"]
    assert data["id"] == message_id and data["status"] == "failed"
    assert data["error"] == {"code": 131026, "title": "Message undeliverable"}
    await quiet()
    assert len([h for h in receiver.on("/delta") if h.json["type"] == "message.status"]) == 1
