"""The 24-hour customer-service window, templates, costs and users known only
by a user id, end to end against the Graph-shaped server, which enforces the
window by its own clock and checks template payloads as Meta would."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN, PNID, meta_text, post_signed, wait_for
from tests.graph import GraphState, GraphTemplate
from tests.send_helpers import ACME, DEFAULT, PDF, b64, send, usage
from tests.webhook_helpers import Receiver, subscribers_toml

MakeClient = Callable[..., Awaitable[TestClient]]
HOUR = 3600.0
USER_ID = "US.13491208655302741918"

NOTIFICATION = """
[[templates]]
name = "wagate_notification"
category = "utility"
use = "notification"
parameters = 1
languages = { en = "en_US", es = "es", pt_BR = "pt_BR", "*" = "en_US" }

[[templates]]
name = "wagate_document"
category = "utility"
use = "notification"
parameters = 1
header = "document"
languages = { "*" = "en_US" }

[[templates]]
name = "order_ready"
category = "utility"
parameters = ["order", "pickup"]
languages = { es = "es_MX", "*" = "en_US" }
"""

APPROVED = {
    "wagate_notification": GraphTemplate(languages=frozenset({"en_US", "es", "pt_BR"}),
                                         parameters=1),
    "wagate_document": GraphTemplate(languages=frozenset({"en_US"}), parameters=1,
                                     header="document"),
    "order_ready": GraphTemplate(languages=frozenset({"en_US", "es_MX"}),
                                 parameter_names=("order", "pickup")),
}


async def _user_writes(client: TestClient, graph_state: GraphState, text: str, *,
                       sender: str = "34600000001", ago: float = 0.0) -> None:
    """The user writes, `ago` seconds ago by Meta's timestamp (and the Graph
    server's clock)."""
    at = time.time() - ago
    resp = await post_signed(client, meta_text(text, sender=sender, timestamp=str(int(at))))
    assert resp.status == 200, await resp.text()
    graph_state.window.user_wrote(sender, at)


async def _meta_api(make_client: MakeClient, graph_state: GraphState,
                    templates: str = NOTIFICATION) -> TestClient:
    graph_state.window.enforce = True
    graph_state.window.templates.update(APPROVED)
    return await make_client(DEFAULT + templates)


async def _registered(make_client: MakeClient, graph_state: GraphState, *, greeting: str,
                      ago: float, templates: str = NOTIFICATION) -> TestClient:
    """A meta client whose user said `greeting` `ago` seconds ago (confirmation sent)."""
    client = await _meta_api(make_client, graph_state, templates)
    graph_state.window.user_wrote("34600000001")  # the confirmation went out in its window
    await _user_writes(client, graph_state, greeting, ago=ago)
    await wait_for(lambda: len(graph_state.messages) == 1)
    graph_state.requests.clear()
    return client


async def _status_of(client: TestClient, msg_id: str, want: str) -> dict[str, Any]:
    async def check() -> dict[str, Any]:
        body = await (await client.get(f"/v3/whatsapp/messages/{msg_id}", headers=ACME)).json()
        return body if body["status"] == want else {}
    return await wait_for(check)


async def _registration(client: TestClient, user: str) -> dict[str, Any]:
    resp = await client.get(f"/admin/registrations/{user}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    (reg,) = (await resp.json())["registrations"]
    return reg


def _status_payload(wamid: str, status: str, *, errors: list[dict[str, Any]] | None = None,
                    pricing: dict[str, Any] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                            "recipient_id": "34600000001"}
    if errors:
        item["errors"] = errors
    if pricing:
        item["pricing"] = pricing
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": "15550002222", "phone_number_id": PNID},
            "statuses": [item]}}]}]}


async def test_inside_the_window_a_send_goes_free_form(make_client: MakeClient,
                                                       graph_state: GraphState) -> None:
    client = await _registered(make_client, graph_state, greeting="Hola", ago=HOUR)
    reg = await _registration(client, "+34600000001")
    assert reg["window_open_until"] is not None and reg["user_id"] is None
    resp = await send(client, "single", "text", {"number": "34600000001", "message": "Hi"},
                      instance=2)
    assert resp.status == 200, await resp.text()
    await _status_of(client, (await resp.json())["id"], "sent")
    (message,) = graph_state.messages
    assert message.json["type"] == "text" and message.json["text"]["body"] == "Hi"


async def test_outside_the_window_the_template_goes_in_the_users_language(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _registered(make_client, graph_state, greeting="Hola", ago=25 * HOUR)
    resp = await send(client, "single", "text",
                      {"number": "34600000001", "message": "Tu pedido\nestá listo (y)"},
                      instance=2)
    assert resp.status == 200, await resp.text()
    await _status_of(client, (await resp.json())["id"], "sent")
    (message,) = graph_state.messages
    assert message.json["type"] == "template"
    assert message.json["template"] == {
        "name": "wagate_notification", "language": {"code": "es"},
        "components": [{"type": "body", "parameters": [
            {"type": "text", "text": "Tu pedido está listo 👍"}]}]}


async def test_outside_the_window_a_document_goes_as_the_document_template(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _registered(make_client, graph_state, greeting="Hi", ago=30 * HOUR)
    resp = await send(client, "single", "document", {
        "number": "34600000001", "document": b64(PDF), "filename": "invoice.pdf",
        "caption": "Your invoice"}, instance=2)
    assert resp.status == 200, await resp.text()
    await _status_of(client, (await resp.json())["id"], "sent")
    (message,) = graph_state.messages
    (upload,) = graph_state.uploads
    assert upload.form is not None and upload.form["file"]["bytes"] == PDF
    template = message.json["template"]
    assert template["name"] == "wagate_document"
    assert template["components"][0]["parameters"][0]["document"]["filename"] == "invoice.pdf"
    assert template["components"][1]["parameters"] == [{"type": "text",
                                                        "text": "Your invoice"}]


async def test_outside_the_window_without_a_template_is_refused_475(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _registered(make_client, graph_state, greeting="Hi", ago=25 * HOUR,
                               templates="")
    before = await usage(client)
    resp = await send(client, "single", "text", {"number": "34600000001", "message": "Hi"},
                      instance=2)
    assert resp.status == 475
    body = await resp.json()
    assert body["error"] == "outside_window"
    assert body["window_closed_at"] is not None
    assert "[[templates]]" in body["error_message"]
    assert await usage(client) == before  # not counted, nothing queued
    resp = await client.get("/sandbox/outbox", headers=ADMIN, params={"instance": "2"})
    assert all(m["subscriber"] is None for m in (await resp.json())["messages"])
    assert graph_state.messages == []


async def _closed_meanwhile(make_client: MakeClient, graph_state: GraphState,
                            templates: str = NOTIFICATION) -> TestClient:
    """The user wrote an hour ago by our clock; by Meta's, 25 hours ago."""
    client = await _registered(make_client, graph_state, greeting="Hi", ago=HOUR,
                               templates=templates)
    graph_state.window.user_wrote("34600000001", time.time() - 25 * HOUR)
    return client


async def test_an_asynchronous_131047_sends_it_again_as_the_template(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _closed_meanwhile(make_client, graph_state)
    graph_state.window.asynchronous = True
    resp = await send(client, "single", "text", {"number": "34600000001", "message": "Later"},
                      instance=2)
    msg_id = (await resp.json())["id"]
    await wait_for(lambda: graph_state.window.refused)
    (wamid,) = graph_state.window.refused
    await _status_of(client, msg_id, "sent")
    failed = _status_payload(wamid, "failed", errors=[{"code": 131047,
                                                       "title": "Re-engagement message"}])
    assert (await post_signed(client, failed)).status == 200
    await wait_for(lambda: len(graph_state.messages) == 2)
    again = graph_state.messages[1].json
    assert again["type"] == "template" and again["template"]["language"] == {"code": "en_US"}
    assert again["template"]["components"][0]["parameters"][0]["text"] == "Later"
    status = await _status_of(client, msg_id, "sent")
    assert status["error"] is None
    metrics = await (await client.get("/metrics", headers=ADMIN)).text()
    assert 'wagate_outbound_errors_total{code="131047",provider="meta"} 1.0' in metrics
    assert ('wagate_window_resends_total{provider="meta",result="template",told_by="status"}'
            ' 1.0') in metrics


async def test_an_asynchronous_131047_sends_a_document_again_with_its_media(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _closed_meanwhile(make_client, graph_state)
    graph_state.window.asynchronous = True
    resp = await send(client, "single", "document", {
        "number": "34600000001", "document": b64(PDF), "filename": "invoice.pdf"}, instance=2)
    msg_id = (await resp.json())["id"]
    (wamid,) = await wait_for(lambda: graph_state.window.refused)
    await _status_of(client, msg_id, "sent")
    failed = _status_payload(wamid, "failed", errors=[{"code": 131047,
                                                       "title": "Re-engagement message"}])
    assert (await post_signed(client, failed)).status == 200
    await wait_for(lambda: len(graph_state.messages) == 2)
    again = graph_state.messages[1].json["template"]
    assert again["name"] == "wagate_document"
    assert again["components"][1]["parameters"] == [{"type": "text", "text": "invoice.pdf"}]
    first, second = graph_state.uploads
    assert first.form is not None and second.form is not None
    assert first.form["file"]["bytes"] == second.form["file"]["bytes"] == PDF


async def test_a_131047_in_the_answer_sends_it_as_the_template_at_once(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _closed_meanwhile(make_client, graph_state)
    resp = await send(client, "single", "text", {"number": "34600000001", "message": "Now"},
                      instance=2)
    await _status_of(client, (await resp.json())["id"], "sent")
    first, second = graph_state.messages
    assert first.json["type"] == "text" and second.json["type"] == "template"


async def test_131047_with_no_template_fails_with_metas_code(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _closed_meanwhile(make_client, graph_state, templates="")
    resp = await send(client, "single", "text", {"number": "34600000001", "message": "x"},
                      instance=2)
    failed = await _status_of(client, (await resp.json())["id"], "failed")
    assert failed["error"]["code"] == 131047
    assert "24-hour customer-service window" in failed["reason"]
    assert "Re-engagement message" in failed["reason"]


async def test_template_and_marketing_errors_fail_with_a_clear_reason(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _registered(make_client, graph_state, greeting="Hi", ago=HOUR)
    for code, words in ((132000, "parameter count"), (132001, "not approved"),
                        (132015, "paused"), (132016, "disabled"),
                        (131049, "marketing limit"), (131050, "stopped marketing")):
        graph_state.fail_next(code, "Meta says no")
        resp = await send(client, "single", "text", {"number": "34600000001", "message": "x"},
                          instance=2)
        failed = await _status_of(client, (await resp.json())["id"], "failed")
        assert failed["error"]["code"] == code
        assert words in failed["reason"] and "Meta says no" in failed["reason"]
    metrics = await (await client.get("/metrics", headers=ADMIN)).text()
    for code in (132000, 132001, 132015, 132016, 131049, 131050):
        assert f'wagate_outbound_errors_total{{code="{code}",provider="meta"}} 1.0' in metrics


async def test_the_template_endpoint(make_client: MakeClient,
                                     graph_state: GraphState) -> None:
    client = await _registered(make_client, graph_state, greeting="Hola", ago=40 * HOUR)
    path = "/v3/whatsapp/single/template/message/2"
    resp = await client.post(path, headers=ACME, json={
        "number": "+34600000001", "template": "nope", "parameters": []})
    assert resp.status == 400 and (await resp.json())["error"] == "unknown_template"
    resp = await client.post(path, headers=ACME, json={
        "number": "+34600000001", "template": "order_ready", "parameters": {"order": "7"}})
    assert resp.status == 400 and (await resp.json())["error"] == "parameter_count"
    resp = await client.post(path, headers=ACME, json={
        "number": "+34600000001", "template": "wagate_notification", "parameters": ["a", "b"]})
    assert resp.status == 400 and (await resp.json())["error"] == "parameter_count"
    before, _ = await usage(client)
    resp = await client.post(path, headers=ACME, json={
        "number": "+34600000001", "template": "order_ready",
        "parameters": {"order": "A-7", "pickup": "Calle Mayor 1"}})
    assert resp.status == 200, await resp.text()
    assert (await usage(client))[0] == before + 1  # counted like any send
    await _status_of(client, (await resp.json())["id"], "sent")
    (message,) = graph_state.messages
    assert message.json["template"]["name"] == "order_ready"
    assert message.json["template"]["language"] == {"code": "es_MX"}  # the user's locale
    assert message.json["template"]["components"] == [{"type": "body", "parameters": [
        {"type": "text", "parameter_name": "order", "text": "A-7"},
        {"type": "text", "parameter_name": "pickup", "text": "Calle Mayor 1"}]}]
    # An explicit language, and a user who is not registered.
    resp = await client.post(path, headers=ACME, json={
        "number": "+34600000001", "template": "order_ready", "language": "en_US",
        "parameters": {"order": "1", "pickup": "2"}})
    assert resp.status == 200
    await wait_for(lambda: len(graph_state.messages) == 2)
    assert graph_state.messages[1].json["template"]["language"] == {"code": "en_US"}
    resp = await client.post(path, headers=ACME, json={
        "number": "+34600000099", "template": "wagate_notification", "parameters": ["x"]})
    assert resp.status == 472
    # The sandbox sends no templates.
    resp = await client.post("/v3/whatsapp/single/template/message/1", headers=ACME, json={
        "number": "+34600000001", "template": "wagate_notification", "parameters": ["x"]})
    assert resp.status == 400 and (await resp.json())["error"] == "templates_not_supported"


def _by_user_id(text: str, *, number: str | None = None) -> dict[str, Any]:
    """A message from a user Meta names by user id, with or without a number."""
    message: dict[str, Any] = {"from_user_id": USER_ID, "id": f"wamid.{time.monotonic_ns()}",
                               "timestamp": str(int(time.time())), "type": "text",
                               "text": {"body": text}}
    contact: dict[str, Any] = {"profile": {"name": "Ana"}, "user_id": USER_ID}
    if number is not None:
        message["from"] = contact["wa_id"] = number
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": "15550002222", "phone_number_id": PNID},
            "contacts": [contact], "messages": [message]}}]}]}


async def test_a_user_known_only_by_user_id_registers_receives_and_opts_out(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _meta_api(make_client, graph_state)
    graph_state.window.user_wrote(USER_ID)
    assert (await post_signed(client, _by_user_id("Hi"))).status == 200
    await wait_for(lambda: len(graph_state.messages) == 1)
    confirmation = graph_state.messages[0].json
    assert confirmation["recipient"] == USER_ID and "to" not in confirmation
    reg = await _registration(client, USER_ID)
    assert reg["number"] == USER_ID and reg["user_id"] == USER_ID and reg["status"] == "active"
    resp = await send(client, "single", "text", {"number": USER_ID, "message": "Hello"},
                      instance=2)
    assert resp.status == 200, await resp.text()
    await wait_for(lambda: len(graph_state.messages) == 2)
    assert graph_state.messages[1].json["recipient"] == USER_ID
    assert graph_state.messages[1].json["text"]["body"] == "Hello"
    assert (await post_signed(client, _by_user_id("STOP"))).status == 200
    assert (await _registration(client, USER_ID))["status"] == "opted_out"
    resp = await send(client, "single", "text", {"number": USER_ID, "message": "x"},
                      instance=2)
    assert resp.status == 472


async def test_a_message_with_number_and_user_id_links_them(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await make_client(DEFAULT)
    assert (await post_signed(client, _by_user_id("Hi"))).status == 200
    assert (await post_signed(client, _by_user_id("thanks", number="34600000001"))).status == 200
    resp = await client.get("/admin/registrations", headers=ADMIN, params={"instance": "2"})
    (reg,) = (await resp.json())["registrations"]
    assert reg["number"] == "+34600000001" and reg["user_id"] == USER_ID
    assert reg["status"] == "active"
    # Either name reaches the one registration.
    assert (await _registration(client, USER_ID))["number"] == "+34600000001"
    resp = await send(client, "single", "text", {"number": USER_ID, "message": "Hi"},
                      instance=2)
    assert resp.status == 200, await resp.text()
    (sent,) = await wait_for(lambda: [m.json for m in graph_state.messages
                                      if m.json.get("text", {}).get("body") == "Hi"])
    assert sent["to"] == "34600000001" and "recipient" not in sent
    assert await usage(client) == (1, 1)


async def test_pricing_is_recorded_per_message_and_counted(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await _registered(make_client, graph_state, greeting="Hi", ago=HOUR)
    resp = await send(client, "single", "text", {"number": "34600000001", "message": "x"},
                      instance=2)
    msg_id = (await resp.json())["id"]
    await _status_of(client, msg_id, "sent")
    wamid = "wamid.TEST2"
    for status in ("sent", "delivered"):
        payload = _status_payload(wamid, status, pricing={
            "billable": True, "pricing_model": "PMP", "category": "utility"})
        assert (await post_signed(client, payload)).status == 200
    resp = await client.get("/sandbox/outbox", headers=ADMIN, params={"instance": "2"})
    (sent,) = [m for m in (await resp.json())["messages"] if m["id"] == msg_id]
    assert sent["pricing"] == {"category": "utility", "billable": True}
    resp = await client.get("/admin/costs", headers=ADMIN)
    assert (await resp.json())["costs"] == [
        {"subscriber": "acme", "category": "utility", "billable": True, "messages": 1}]
    metrics = await (await client.get("/metrics", headers=ADMIN)).text()
    assert ('wagate_message_costs{billable="true",category="utility",subscriber="acme"} 1.0'
            in metrics)


async def test_registration_webhook_carries_window_and_user_id(
        make_client: MakeClient, graph_state: GraphState, receiver: Receiver) -> None:
    client = await make_client(subscribers_toml(receiver.base).replace(
        'instances = [1]\nkeyword = "ACME"', 'instances = [1, 2]\nkeyword = "ACME"', 1))
    assert (await post_signed(client, _by_user_id("Hi ACME"))).status == 200
    (event,) = await wait_for(lambda: [h.json for h in receiver.on("/acme")
                                       if h.json["type"] == "user.registered"])
    data = event["data"]
    assert data["user_id"] == USER_ID and data["number"] == USER_ID
    assert data["window_open_until"].endswith("Z")


@pytest.mark.parametrize("body", [
    {"number": "+34600000001", "template": 7},
    {"number": "+34600000001", "template": "order_ready", "parameters": "A-7"},
    {"number": "+34600000001", "template": "order_ready", "parameters": ["A-7", "x"]},
    {"number": "+34600000001", "template": "order_ready",
     "parameters": {"order": {"x": 1}, "pickup": "y"}},
    {"number": "+34600000001", "template": "order_ready",
     "parameters": {"order": " ", "pickup": "y"}},
    {"number": "+34600000001", "template": "order_ready", "language": "xx",
     "parameters": {"order": "1", "pickup": "y"}},
    {"number": "+34600000001", "template": "order_ready", "header": {"image": "AAAA"},
     "parameters": {"order": "1", "pickup": "y"}},
    {"number": "+34600000001", "template": "wagate_document", "parameters": ["x"]},
    {"number": "+34600000001", "template": "wagate_document", "parameters": ["x"],
     "header": {"document": "not base64!", "filename": "a.pdf"}},
    {"number": "US.", "template": "wagate_notification", "parameters": ["x"]},
])
async def test_the_template_endpoint_refuses_bad_bodies(
        make_client: MakeClient, graph_state: GraphState, body: dict[str, Any]) -> None:
    client = await _registered(make_client, graph_state, greeting="Hi", ago=HOUR)
    before = await usage(client)
    resp = await client.post("/v3/whatsapp/single/template/message/2", headers=ACME,
                             json=body)
    assert 400 <= resp.status < 500, await resp.text()
    answer = await resp.json()
    assert answer["error"] and answer["error_message"]
    assert await usage(client) == before
