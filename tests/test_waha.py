"""The WAHA provider over HTTP: signed webhooks in, sends out to a local
WAHA-shaped server, group names read from WAHA, the session's state in
/readyz. (The promises every provider keeps are in tests/providers/.)"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config import ConfigError
from bot.config.load import load_config
from tests.conftest import ADMIN, base_config, wait_for, wait_sent
from tests.send_helpers import ACME, JPEG, b64, send, subscriber
from tests.test_registration import REGISTERED, expected, registration
from tests.waha import (
    WAHA_API_KEY,
    WahaState,
    post_waha,
    waha_app,
    waha_config,
    waha_message,
    waha_sign,
    waha_state_key,
)

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def waha(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    return await aiohttp_server(waha_app())


@pytest.fixture
def waha_state(waha: TestServer) -> WahaState:
    return waha.app[waha_state_key]


@pytest.fixture
async def wclient(make_client: MakeClient, waha: TestServer) -> TestClient:
    url = str(waha.make_url("")).rstrip("/")
    return await make_client(waha_config(url) + subscriber("acme", "dev@acme.example",
                                                           "acme-secret", instances=(3,)))


async def test_greeting_is_answered_through_waha(wclient: TestClient,
                                                 waha_state: WahaState) -> None:
    resp = await post_waha(wclient, waha_message("Hola"))
    assert resp.status == 200, await resp.text()
    sent = await wait_for(lambda: waha_state.of("/api/sendText"))
    assert sent[0].headers["X-Api-Key"] == WAHA_API_KEY
    assert sent[0].json == {"session": "default", "chatId": "34600000001@c.us",
                            "text": expected("es", REGISTERED)}
    regs = await registration(wclient, "+34600000001")
    assert regs[0]["instance"] == 3 and regs[0]["locale"] == "es"


async def test_our_own_echoed_messages_are_ignored(wclient: TestClient,
                                                   waha_state: WahaState) -> None:
    resp = await post_waha(wclient, waha_message("Hi", event="message.any", fromMe=True))
    assert resp.status == 200
    assert (await resp.json())["ignored"] == "fromMe"
    await wait_sent(wclient)
    assert waha_state.sends == []
    assert await registration(wclient, "+34600000001") == []


async def test_message_and_message_any_of_one_message_count_once(
        wclient: TestClient, waha_state: WahaState) -> None:
    for event in ("message", "message.any"):
        resp = await post_waha(wclient, waha_message("Hi", msg_id="false_x_1", event=event))
        assert resp.status == 200
    await wait_sent(wclient)
    assert len(waha_state.sends) == 1


async def test_group_name_is_read_from_waha_and_group_sends_use_its_id(
        wclient: TestClient, waha_state: WahaState) -> None:
    waha_state.groups["120363000000000001@g.us"] = "Team Rocket"
    resp = await post_waha(wclient, waha_message("Hi", sender="120363000000000001@g.us",
                                                 participant="34600000001@c.us"))
    assert resp.status == 200, await resp.text()
    reply = await wait_for(lambda: waha_state.of("/api/sendText"))
    assert reply[0].json["chatId"] == "120363000000000001@g.us"
    assert "Team Rocket" in reply[0].json["text"]
    assert waha_state.of("/api/default/groups/120363000000000001@g.us")
    ok = await send(wclient, "group", "text", {"group_name": "team rocket", "message": "Hello"},
                    instance=3, headers=ACME)
    assert ok.status == 200, await ok.text()
    await wait_for(lambda: len(waha_state.of("/api/sendText")) == 2)
    assert waha_state.of("/api/sendText")[1].json == {
        "session": "default", "chatId": "120363000000000001@g.us", "text": "Hello"}


async def test_a_lid_sender_without_number_is_a_user_id(wclient: TestClient,
                                                        waha_state: WahaState) -> None:
    resp = await post_waha(wclient, waha_message("Hi", sender="123456789012345@lid"))
    assert resp.status == 200, await resp.text()
    sent = await wait_for(lambda: waha_state.of("/api/sendText"))
    assert sent[0].json["chatId"] == "123456789012345@lid"
    resp = await wclient.get("/admin/messages", headers=ADMIN, params={"direction": "in"})
    assert (await resp.json())["messages"][-1]["number"] == "123456789012345@lid"


async def test_an_image_goes_as_base64_file_with_caption(wclient: TestClient,
                                                         waha_state: WahaState) -> None:
    await post_waha(wclient, waha_message("Hi"))
    await wait_for(lambda: waha_state.sends)
    resp = await send(wclient, "single", "image", {"number": "+34600000001", "image": b64(JPEG),
                                                   "caption": "Look"}, instance=3, headers=ACME)
    assert resp.status == 200, await resp.text()
    sent = await wait_for(lambda: waha_state.of("/api/sendImage"))
    body = sent[0].json
    assert body["session"] == "default" and body["chatId"] == "34600000001@c.us"
    assert body["caption"] == "Look" and body["file"]["mimetype"] == "image/jpeg"
    assert base64.b64decode(body["file"]["data"]) == JPEG


async def test_an_unlinked_session_holds_messages_and_shows_in_readyz(
        wclient: TestClient, waha_state: WahaState) -> None:
    waha_state.sessions["default"] = "SCAN_QR_CODE"
    event = {"event": "session.status", "session": "default",
             "payload": {"status": "SCAN_QR_CODE"}}
    assert (await post_waha(wclient, event)).status == 200
    ready = await wclient.get("/readyz")
    assert ready.status == 503
    reasons = (await ready.json())["reasons"]
    assert any("not connected (SCAN_QR_CODE)" in r and "scan the QR code" in r for r in reasons)
    # A send while unlinked is answered 422 by WAHA: the message waits, not fails.
    await post_waha(wclient, waha_message("Hi"))
    await wait_for(lambda: waha_state.sends)
    waha_state.sessions["default"] = "WORKING"
    assert (await post_waha(wclient, {"event": "session.status", "session": "default",
                                      "payload": {"status": "WORKING"}})).status == 200
    await wait_sent(wclient)
    resp = await wclient.get("/admin/messages", headers=ADMIN, params={"direction": "out"})
    assert (await resp.json())["messages"][-1]["status"] == "sent"
    assert (await wclient.get("/readyz")).status == 200


async def test_readyz_asks_waha_for_the_session_state(wclient: TestClient,
                                                      waha_state: WahaState) -> None:
    waha_state.sessions["default"] = "STOPPED"
    ready = await wclient.get("/readyz")
    assert ready.status == 503
    assert any("not connected (STOPPED)" in r for r in (await ready.json())["reasons"])
    assert waha_state.of("/api/sessions/default")


async def test_signature_algorithm_other_than_sha512_is_refused(wclient: TestClient) -> None:
    resp = await post_waha(wclient, waha_message("Hi"),
                           headers={"X-Webhook-Hmac-Algorithm": "sha256"})
    assert resp.status == 403 and (await resp.json())["error"] == "bad_signature"


@pytest.mark.parametrize("payload, slug", [
    ({"event": "message", "session": "nope", "payload": {}}, "unknown_session"),
    ({"event": "session.status", "session": "default", "payload": {"status": 7}},
     "bad_payload"),
    ({"event": "session.status", "session": "default", "payload": {"status": ["WORKING"]}},
     "bad_payload"),
    ({"event": "message", "session": ["default"], "payload": {}}, "unknown_session"),
    ({"event": "message", "session": "default", "payload": []}, "bad_payload"),
])
async def test_unusable_events_are_400(wclient: TestClient, payload: object, slug: str) -> None:
    resp = await post_waha(wclient, payload)
    assert resp.status == 400
    assert (await resp.json())["error"] == slug


@pytest.mark.parametrize("payload", [
    {"event": "message", "session": "default", "payload": {"from": "x@c.us"}},
    {"event": "message", "session": "default",
     "payload": {"id": "a", "from": "oops@c.us", "body": "Hi"}},
    {"event": "message.ack", "session": "default", "payload": {"id": "a"}},
    {"event": "message.ack", "session": "default", "payload": {"id": "a", "ackName": []}},
])
async def test_odd_items_in_waha_envelopes_are_acknowledged(wclient: TestClient,
                                                            payload: object) -> None:
    """WAHA's envelope with an item we cannot use: 200 (WAHA would retry a
    refusal), and nothing recorded."""
    resp = await post_waha(wclient, payload)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["received"] == 0 or answer["applied"] is False, answer


async def test_signature_is_over_raw_bytes(wclient: TestClient) -> None:
    body = b'{"event": "message", "session": "default", "payload": {}}'
    resp = await wclient.post("/webhooks/waha", data=body, headers={
        "X-Webhook-Hmac": waha_sign(body + b" ")})
    assert resp.status == 403


@pytest.mark.parametrize("section, error", [
    ('[waha]\nbase_url = "http://127.0.0.1:3000"\napi_key = "k"\n', "waha.hmac_key"),
    ('[waha]\nbase_url = "ftp://x"\napi_key = "k"\nhmac_key = "h"\n', "waha.base_url"),
    ('[waha]\nbase_url = "http://127.0.0.1:3000"\napi_key = "k"\nhmac_key = "h"\nx = 1\n',
     "waha.x"),
])
def test_check_config_validates_the_waha_section(tmp_path: Path, section: str,
                                                 error: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(base_config(tmp_path / "db") + "\n" + section)
    with pytest.raises(ConfigError, match=error):
        load_config(path)


@pytest.mark.parametrize("instances, error", [
    ('[[instances]]\nid = 3\nnumber = "+15550003333"\nprovider = "waha"\nsession = "a/b"\n',
     "session: must be"),
    ('[[instances]]\nid = 3\nnumber = "+15550003333"\nprovider = "waha"\n'
     '[[instances]]\nid = 4\nnumber = "+15550004444"\nprovider = "waha"\n',
     "already used by instance 3"),
    ('[[instances]]\nid = 3\nnumber = "+15550003333"\nprovider = "sandbox"\nsession = "x"\n',
     'not a key of provider "sandbox"'),
])
def test_check_config_validates_waha_instances(tmp_path: Path, instances: str,
                                               error: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(base_config(tmp_path / "db") + '\n[waha]\nbase_url = "http://127.0.0.1:3"\n'
                    'api_key = "k"\nhmac_key = "h"\n' + instances)
    with pytest.raises(ConfigError, match=error):
        load_config(path)


async def test_a_media_message_keeps_its_kind_and_caption(wclient: TestClient) -> None:
    resp = await post_waha(wclient, waha_message("A photo", hasMedia=True, media={
        "url": "http://127.0.0.1:3000/api/files/x.jpeg", "mimetype": "image/jpeg"}))
    assert resp.status == 200, await resp.text()
    resp = await wclient.get("/admin/messages", headers=ADMIN, params={"direction": "in"})
    (logged,) = (await resp.json())["messages"]
    assert (logged["type"], logged["text"]) == ("image", "A photo")
