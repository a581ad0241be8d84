"""Our own payloads for the edges of SPEC 5b the public fixtures do not show:
WAHA locations, vCards, edits, revokes, the older `mediaUrl` form and group
acks per participant; Twilio list picks; Meta's `played` after `read` and a
status word added later; a tapped "Hola" registering and a tapped "STOP"
opting out, and no hint to a reaction (tests/test_provider_replay.py replays
the public ones)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.web.keys import store_key
from tests.conftest import meta_text, post_signed, wait_for
from tests.graph import GraphState
from tests.send_helpers import ACME, DEFAULT, plan, send, subscriber
from tests.test_registration import registration
from tests.ui_helpers import ACME_API
from tests.waha import waha_app, waha_config, waha_message, waha_sign, waha_state_key
from tests.webhook_helpers import ACME_SECRET, Receiver, quiet, subscribers_toml

MakeClient = Callable[..., Awaitable[TestClient]]
USER = "34600000001"


async def _provider_id(client: TestClient, msg_id: str) -> str:
    """The provider's id of one of our messages, once the send recorded it."""
    store = client.app[store_key]
    for _ in range(100):
        row = await store.get_outbound(msg_id)
        if row is not None and row.provider_message_id:
            return str(row.provider_message_id)
        await quiet(0.05)
    raise AssertionError(f"{msg_id} was not sent")


async def _received(receiver: Receiver, count: int) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        got = [h.json["data"] for h in receiver.on("/acme")
               if h.json["type"] == "message.received"]
        return got if len(got) >= count else None
    return await wait_for(found)


@pytest.fixture
async def waha_server(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    return await aiohttp_server(waha_app())


@pytest.fixture
async def wclient(make_client: MakeClient, receiver: Receiver,
                  waha_server: TestServer) -> TestClient:
    return await make_client(subscribers_toml(receiver.base) + waha_config(
        str(waha_server.make_url("")).rstrip("/"), instance=6, extra_instance='owner = "acme"\n'))


async def post_waha(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    resp = await client.post("/webhooks/waha", data=raw, headers={
        "Content-Type": "application/json", "X-Webhook-Hmac": waha_sign(raw)})
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


VCARD = ("BEGIN:VCARD\nVERSION:3.0\nN:Bing;Chandler;;;\nFN:Chandler Bing\nORG:Acme;\n"
         "TEL;type=CELL;waid=15555555555:+1 555-555-5555\nEMAIL:chandler@acme.example\n"
         "END:VCARD")


async def test_waha_kinds_reach_the_subscriber_with_their_fields(
        wclient: TestClient, receiver: Receiver) -> None:
    chat = f"{USER}@c.us"
    sent = [
        waha_message("", sender=chat, msg_id="false_loc", location={
            "latitude": 40.4168, "longitude": -3.7038, "description": "Sol\nPuerta del Sol"}),
        waha_message("", sender=chat, msg_id="false_card", vCards=[VCARD]),
        waha_message("the receipt", sender=chat, msg_id="false_old_media", hasMedia=True,
                     mediaUrl="http://127.0.0.1:3000/api/files/false_old_media.jpg"),
        waha_message("", sender=chat, msg_id="false_voice", hasMedia=True,
                     media={"url": "http://127.0.0.1:3000/api/files/v.oga",
                            "mimetype": "audio/ogg; codecs=opus", "filename": None},
                     _data={"type": "ptt"}),
        {"event": "message.reaction", "session": "default", "payload": {
            "id": "false_react", "from": chat, "fromMe": False, "timestamp": 1764590001,
            "reaction": {"text": "👍", "messageId": "true_x_ABC"}}},
        {"event": "message.edited", "session": "default", "payload": {
            "id": "false_edit", "from": chat, "fromMe": False, "timestamp": 1764590002,
            "body": "fixed text", "editedMessageId": "false_orig"}},
        {"event": "message.revoked", "session": "default", "payload": {
            "after": {"id": "false_rev", "from": chat, "timestamp": 1764590003, "body": ""},
            "before": None, "revokedMessageId": "false_gone"}},
    ]
    for body in sent:
        assert (await post_waha(wclient, body))["received"] == 1, body
    got = {d["id"]: d for d in await _received(receiver, len(sent))}
    assert got["waha:false_loc"]["type"] == "location"
    assert got["waha:false_loc"]["location"] == {
        "latitude": 40.4168, "longitude": -3.7038, "name": "Sol", "address": "Puerta del Sol"}
    assert got["waha:false_card"]["contacts"] == [{
        "name": "Chandler Bing", "org": "Acme", "emails": ["chandler@acme.example"],
        "phones": [{"phone": "+1 555-555-5555", "wa_id": "15555555555", "type": "CELL"}]}]
    old = got["waha:false_old_media"]
    assert (old["type"], old["text"]) == ("image", "the receipt")
    assert old["media"]["mime_type"] == "image/jpeg" and "filename" not in old["media"]
    assert got["waha:false_voice"]["type"] == "voice"
    assert got["waha:false_react"]["reaction"] == {"emoji": "👍", "message_id": "waha:true_x_ABC"}
    assert got["waha:false_edit"]["text"] == "fixed text"
    assert got["waha:false_edit"]["edit"] == {"message_id": "waha:false_orig"}
    assert got["waha:false_rev"]["revoke"] == {"message_id": "waha:false_gone"}


async def test_a_waha_group_ack_per_participant_moves_the_group_message(
        wclient: TestClient, waha_server: TestServer) -> None:
    group = "120363000000000042@g.us"
    state = waha_server.app[waha_state_key]
    state.groups[group] = "Team"
    await post_waha(wclient, waha_message("Hi", sender=group, participant=f"{USER}@c.us"))
    await wait_for(lambda: state.sends)
    resp = await send(wclient, "group", "text", {"group_name": "Team", "message": "news",
                                                 "group_admin": f"+{USER}"}, instance=6,
                      headers=ACME_API)
    assert resp.status == 200, await resp.text()
    msg_id = (await resp.json())["id"]
    provider_id = await _provider_id(wclient, msg_id)

    async def status() -> str:
        answer = await wclient.get(f"/v3/whatsapp/messages/{msg_id}", headers=ACME_API)
        return str((await answer.json())["status"])
    ack = await post_waha(wclient, {"event": "message.ack", "session": "default", "payload": {
        "id": f"{provider_id}_123456789012345@lid", "from": group, "fromMe": True,
        "participant": "123456789012345@lid", "ack": 3, "ackName": "READ"}})
    assert ack["applied"] is True
    assert await status() == "read"


async def test_a_tapped_hola_registers_and_a_tapped_stop_opts_out(
        client: TestClient, graph_state: GraphState) -> None:
    tap = {"type": "interactive", "interactive": {
        "type": "button_reply", "button_reply": {"id": "hi", "title": "Hola"}}}
    assert (await post_signed(client, meta_text("", sender=USER, **tap))).status == 200
    assert [r["status"] for r in await registration(client, f"+{USER}")] == ["active"]
    stop = {"type": "button", "button": {"text": "STOP", "payload": "unsubscribe"}}
    assert (await post_signed(client, meta_text("", sender=USER, **stop))).status == 200
    assert [r["status"] for r in await registration(client, f"+{USER}")] == ["opted_out"]


async def test_an_edit_saying_hola_does_not_register_and_a_reaction_gets_no_hint(
        client: TestClient, graph_state: GraphState) -> None:
    edit = {"type": "edit", "edit": {"original_message_id": "wamid.A", "message": {
        "type": "text", "text": {"body": "Hola"}}}}
    react = {"type": "reaction", "reaction": {"message_id": "wamid.A", "emoji": "👍"}}
    for extra in (edit, react):
        assert (await post_signed(client, meta_text("", sender=USER, **extra))).status == 200
    await quiet(0.5)
    assert await registration(client, f"+{USER}") == []
    assert graph_state.messages == []  # no confirmation, no "say Hi"
    assert (await post_signed(client, meta_text("what is this?", sender=USER))).status == 200
    await wait_for(lambda: graph_state.messages)  # a user's text does get the hint


async def test_played_follows_read_and_a_later_word_is_history_only(
        make_client: MakeClient, graph_state: GraphState) -> None:
    client = await make_client(DEFAULT)
    assert (await post_signed(client, meta_text("Hola", sender=USER))).status == 200
    await wait_for(lambda: graph_state.messages)
    resp = await send(client, "single", "text", {"number": USER, "message": "hi"}, instance=2)
    msg_id = (await resp.json())["id"]
    wamid = await _provider_id(client, msg_id)
    for word in ("delivered", "read", "played", "deleted_by_user"):
        status = {"id": wamid, "status": word, "timestamp": "1764590000",
                  "recipient_id": USER}
        body = {"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{
            "field": "messages", "value": {"metadata": {"phone_number_id": "109876543210"},
                                           "statuses": [status]}}]}]}
        assert (await post_signed(client, body)).status == 200
    answer = await (await client.get(f"/v3/whatsapp/messages/{msg_id}", headers=ACME)).json()
    assert answer["status"] == "played"
    assert [e["status"] for e in answer["history"]][-3:] == ["read", "played",
                                                             "deleted_by_user"]


async def test_a_reply_or_reaction_to_our_message_names_it_by_the_send_api_id(
        make_client: MakeClient, graph_state: GraphState, receiver: Receiver) -> None:
    webhook = ('\n[webhooks]\nallow_private_networks = ["127.0.0.0/8"]\n'
               + plan("small", messages=3, recipients=2)
               + subscriber("acme", "dev@acme.example", "acme-secret")
               + f'\n[[subscribers.webhooks]]\nurl = "{receiver.base}/acme"\n'
                 f'format = "standard"\nsecret = "{ACME_SECRET}"\n')
    client = await make_client(webhook)
    assert (await post_signed(client, meta_text("Hola", sender=USER))).status == 200
    resp = await send(client, "single", "text", {"number": USER, "message": "hi"}, instance=2)
    msg_id = (await resp.json())["id"]
    wamid = await _provider_id(client, msg_id)
    reply = meta_text("thanks", sender=USER, msg_id="wamid.R1", context={"from": "x",
                                                                         "id": wamid})
    react = meta_text("", sender=USER, msg_id="wamid.R2", type="reaction",
                      reaction={"message_id": wamid, "emoji": "❤"})
    other = meta_text("and that?", sender=USER, msg_id="wamid.R3",
                      context={"id": "wamid.NOT_OURS"})
    for body in (reply, react, other):
        assert (await post_signed(client, body)).status == 200
    got = {d["id"]: d for d in await _received(receiver, 3)}
    assert got["meta:wamid.R1"]["context"] == {"message_id": msg_id}
    assert got["meta:wamid.R2"]["reaction"] == {"emoji": "❤", "message_id": msg_id}
    assert got["meta:wamid.R3"]["context"] == {"message_id": "meta:wamid.NOT_OURS"}
