"""The send API over HTTP, as WhatsMate clients call it: through the worker to
the sandbox outbox, each client quirk, and the status of a sent message."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import outbox, say, wait_for, wait_sent
from tests.send_helpers import (
    ACME,
    BETA,
    DEFAULT,
    GIF,
    JPEG,
    PDF,
    PNG,
    b64,
    path,
    send,
    sent_by,
    usage,
)

ES = "+34600000001"
DE = "+4915112345678"
GROUP = {"id": "120363000000000001@g.us", "name": "Team Rocket"}

MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def api(make_client: MakeClient) -> TestClient:
    client = await make_client(DEFAULT)
    await say(client, "Hola", sender=ES)
    await say(client, "Hallo", sender=DE)
    await say(client, "Hi", sender=ES, group=GROUP)
    await wait_sent(client)
    return client


async def queued(resp) -> str:  # type: ignore[no-untyped-def]
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "queued"
    return str(uuid.UUID(body["id"]))


# ---- each message kind, API -> worker -> sandbox outbox


async def test_text_reaches_the_outbox_with_emoji(api: TestClient) -> None:
    msg_id = await queued(await send(api, "single", "text", {
        "number": ES, "message": "Done (y) :-) see https://x.example/a:-)b <3"}))
    await wait_sent(api)
    [msg] = await sent_by(api)
    assert msg["id"] == msg_id and msg["to"] == ES and msg["type"] == "text"
    assert msg["text"] == "Done 👍 🙂 see https://x.example/a:-)b ❤️"
    assert msg["status"] == "sent" and msg["group"] is None


async def test_image_document_url_and_groups_in_the_outbox(api: TestClient) -> None:
    await queued(await send(api, "single", "image", {"number": ES, "image": b64(PNG),
                                                     "caption": "Your ticket :-)"}))
    await queued(await send(api, "single", "document", {
        "number": ES, "document": b64(PDF), "filename": "../../tmp/Invoice 42.pdf"}))
    await queued(await send(api, "single", "url", {"number": ES,
                                                   "url": "https://acme.example/track?id=7"}))
    await queued(await send(api, "group", "text", {"group_name": "team rocket ",
                                                   "group_admin": "+34600000009",
                                                   "message": "Hello team"}))
    await queued(await send(api, "group", "image", {"group_name": "Team Rocket",
                                                    "image": b64(JPEG)}))
    await queued(await send(api, "group", "document", {"group_name": "TEAM  ROCKET",
                                                       "document": b64(PDF),
                                                       "filename": "plan", "caption": None}))
    await queued(await send(api, "group", "url", {"group_name": "Team Rocket",
                                                  "group_admin": "34600000009",
                                                  "url": "http://acme.example/"}))
    await wait_sent(api)
    msgs = await sent_by(api)
    shape = [(m["type"], m["to"], m["group"]["name"] if m["group"] else None, m["text"],
              m["caption"], m["filename"], m["status"]) for m in msgs]
    assert shape == [
        ("image", ES, None, None, "Your ticket 🙂", None, "sent"),
        ("document", ES, None, None, None, "Invoice 42.pdf", "sent"),
        ("url", ES, None, "https://acme.example/track?id=7", None, None, "sent"),
        ("text", None, "Team Rocket", "Hello team", None, None, "sent"),
        ("image", None, "Team Rocket", None, None, None, "sent"),
        ("document", None, "Team Rocket", None, None, "plan.pdf", "sent"),
        ("url", None, "Team Rocket", "http://acme.example/", None, None, "sent"),
    ]
    assert all(m["group"]["id"] == GROUP["id"] for m in msgs if m["group"])
    # A group is one recipient, however many of its messages were sent.
    assert await usage(api) == (7, 2)


# ---- what real WhatsMate clients send


@pytest.mark.parametrize("number", [
    "+34600000001", "34600000001", "+34 600 000 001", "34-600-000-001", "0034600000001",
    "+34 (600) 00-00-01", 34600000001])
async def test_number_forms(api: TestClient, number: str | int) -> None:
    await queued(await send(api, "single", "text", {"number": number, "message": "hi"}))
    assert (await sent_by(api))[0]["to"] == ES


@pytest.mark.parametrize("content_type", [
    None, "text/plain", "application/json; charset=utf-8", "application/x-www-form-urlencoded",
    "text/html; charset=ISO-8859-1"])
async def test_json_whatever_the_content_type(api: TestClient, content_type: str | None) -> None:
    body = json.dumps({"number": ES, "message": "Olá, ¿qué tal? 你好"}).encode()
    headers = dict(ACME)
    if content_type:
        headers["Content-Type"] = content_type
    resp = await api.post(path("single", "text"), data=body, headers=headers)
    await queued(resp)
    assert (await sent_by(api))[0]["text"] == "Olá, ¿qué tal? 你好"


async def test_keys_with_stray_white_space_and_caption_null(api: TestClient) -> None:
    await queued(await send(api, "single", "image", {" number": ES, "image ": b64(PNG),
                                                     "caption": None}))
    await queued(await send(api, "group", "text", {"group_name ": "Team Rocket",
                                                   " group_admin ": "+34600000009",
                                                   "\tmessage\n": "hey"}))
    # group_admin absent on group media
    await queued(await send(api, "group", "document", {"group_name": "Team Rocket",
                                                       "document": b64(PDF),
                                                       "filename": "a.pdf", "caption": None}))
    await wait_sent(api)
    first, second, third = await sent_by(api)
    assert first["caption"] is None and first["type"] == "image"
    assert second["text"] == "hey" and second["group"]["name"] == "Team Rocket"
    assert third["filename"] == "a.pdf"


async def test_base64_as_clients_encode_it(api: TestClient) -> None:
    wrapped = base64.encodebytes(PNG).decode()  # MIME style: lines of 76 characters
    urlsafe = base64.urlsafe_b64encode(GIF).decode().rstrip("=")
    for image in (f"data:image/png;base64,{b64(PNG)}", wrapped, urlsafe,
                  wrapped.replace("\n", "\r\n")):
        await queued(await send(api, "single", "image", {"number": ES, "image": image}))
    await queued(await send(api, "single", "document", {
        "number": ES, "document": f"data:application/pdf;base64,{b64(PDF)}",
        "filename": "C:\\Users\\ana\\report.PDF"}))
    await wait_sent(api)
    msgs = await sent_by(api)
    assert [m["type"] for m in msgs] == ["image"] * 4 + ["document"]
    assert msgs[-1]["filename"] == "report.PDF"


async def test_media_kept_byte_for_byte_until_sent(api: TestClient) -> None:
    # The worker reads the stored media; the sandbox keeps nothing after sending.
    from bot.web.keys import outbound_worker_key, store_key

    worker = api.app[outbound_worker_key]
    worker.stop()  # hold the queue still to look at it
    await wait_for(lambda: not worker.running)
    msg_id = await queued(await send(api, "single", "document", {
        "number": ES, "document": b64(PDF), "filename": "x.pdf"}))
    assert await api.app[store_key].outbound_media(msg_id) == PDF


# ---- the status of a sent message


async def test_message_status_only_for_its_sender(api: TestClient) -> None:
    msg_id = await queued(await send(api, "single", "text", {"number": ES, "message": "x"}))
    await wait_sent(api)
    resp = await api.get(f"/v3/whatsapp/messages/{msg_id}", headers=ACME)
    assert resp.status == 200
    body = await resp.json()
    assert body["id"] == msg_id and body["status"] == "sent" and body["to"] == ES
    assert body["type"] == "text" and body["reason"] is None and body["created_at"]
    for headers, status, slug in ((BETA, 404, "message_not_found"),
                                  ({}, 401, "missing_credentials"),
                                  ({**ACME, "X-WM-CLIENT-SECRET": "nope"}, 474,
                                   "invalid_credentials")):
        resp = await api.get(f"/v3/whatsapp/messages/{msg_id}", headers=headers)
        assert resp.status == status and (await resp.json())["error"] == slug
    resp = await api.get(f"/v3/whatsapp/messages/{uuid.uuid4()}", headers=ACME)
    assert resp.status == 404
    # an auto-reply (no subscriber) is nobody's to see
    [reply] = [m for m in await outbox(api, ES) if m["subscriber"] is None][:1]
    resp = await api.get(f"/v3/whatsapp/messages/{reply['id']}", headers=ACME)
    assert resp.status == 404


async def test_sha256_secret_and_metrics(api: TestClient) -> None:
    await queued(await send(api, "single", "text", {"number": ES, "message": "x"},
                            headers=BETA))
    await send(api, "single", "text", {"number": ES, "message": "x"},
               headers={**BETA, "X-WM-CLIENT-SECRET": "wrong"})
    await send(api, "single", "text", {"number": "123", "message": "x"})
    text = await (await api.get("/metrics")).text()
    assert 'wagate_sends_total{outcome="queued",subscriber="beta"} 1.0' in text
    assert 'wagate_sends_total{outcome="474",subscriber="unknown"} 1.0' in text
    assert 'wagate_sends_total{outcome="471",subscriber="acme"} 1.0' in text


async def test_image_types_by_magic_bytes(api: TestClient) -> None:
    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(64)
    for data in (PNG, JPEG, GIF, webp):
        await queued(await send(api, "single", "image", {"number": ES, "image": b64(data)}))
    await wait_sent(api)
    from bot.web.keys import store_key

    rows = [await api.app[store_key].get_outbound(m["id"]) for m in await sent_by(api)]
    assert [r.mime for r in rows if r] == ["image/png", "image/jpeg", "image/gif", "image/webp"]
