"""The twilio provider end to end, against a local Twilio-shaped server: signed
form callbacks in (messages and statuses), the Messages API out (text, and
media Twilio fetches from a signed, expiring URL), checked against the
official `twilio` package's RequestValidator."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from bot.config import ConfigError
from bot.config.load import parse_config
from bot.providers.twilio.config import TwilioConfig
from bot.providers.twilio.inbound import signature, verify
from bot.providers.twilio.media import url_signature
from bot.web.snapshot import holder_key
from tests.conftest import ADMIN, base_config, wait_for
from tests.send_helpers import ACME, GIF, JPEG, PDF, b64, send
from tests.test_registration import REGISTERED, expected, registration
from tests.twilio_server import TwilioState, twilio_app
from tests.webhook_helpers import ACME_SECRET, Receiver
from tests.webhook_helpers import verify as verify_webhook

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-0123456789"
PUBLIC = "https://gw.example"  # what Twilio is told; never contacted (see TwilioState)
NUMBER = "+15550004444"
INSTANCE = 4
U = "+34600000001"
V = "+34600000002"


def twilio_toml(api_base_url: str, receiver: str) -> str:
    return f"""
[twilio]
account_sid = "{SID}"
auth_token = "{TOKEN}"
api_base_url = "{api_base_url}"
public_url = "{PUBLIC}/"

[webhooks]
retry_schedule = [0, 0.2]
allow_private_networks = ["127.0.0.0/8"]

[[instances]]
id = {INSTANCE}
number = "{NUMBER}"
provider = "twilio"
owner = "acme"

[[subscribers]]
id = "acme"
client_id = "dev@acme.example"
secret = "acme-secret"
plan = "enterprise"
since = 2025-01-01
instances = [{INSTANCE}]

[[subscribers.webhooks]]
url = "{receiver}/acme"
format = "standard"
secret = "{ACME_SECRET}"
events = ["message.received"]
"""


@pytest.fixture
async def twilio(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TwilioState:
    state = TwilioState(account_sid=SID, auth_token=TOKEN, public_url=PUBLIC)
    server = await aiohttp_server(twilio_app(state))
    state.api_url = str(server.make_url("")).rstrip("/")
    return state


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]], twilio: TwilioState,
                 receiver: Receiver) -> TestClient:
    client = await make_client(twilio_toml(twilio.api_url, receiver.base))
    twilio.fetch_base = str(client.make_url("")).rstrip("/")
    return client


def incoming(text: str | None, sender: str = U, sid: str | None = None,
             **extra: str) -> dict[str, str]:
    """The form Twilio posts for a WhatsApp message to our number."""
    sid = sid or f"SM{time.monotonic_ns():032x}"
    return {"SmsMessageSid": sid, "NumMedia": "0", "ProfileName": "Ana", "MessageType": "text",
            "SmsSid": sid, "WaId": sender.lstrip("+"), "SmsStatus": "received",
            **({"Body": text} if text is not None else {}), "To": f"whatsapp:{NUMBER}",
            "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid, "AccountSid": SID,
            "From": f"whatsapp:{sender}", "ApiVersion": "2010-04-01", **extra}


def status_callback(sid: str, status: str, to: str = U, **extra: str) -> dict[str, str]:
    return {"SmsSid": sid, "SmsStatus": status, "MessageStatus": status,
            "ChannelToAddress": to, "To": f"whatsapp:{to}", "ChannelPrefix": "whatsapp",
            "MessageSid": sid, "AccountSid": SID, "From": f"whatsapp:{NUMBER}",
            "ApiVersion": "2010-04-01", **extra}


async def post_twilio(client: TestClient, fields: dict[str, str], *, token: str = TOKEN,
                      url: str = PUBLIC + "/webhooks/twilio",
                      sig: str | None = None) -> ClientResponse:
    """POST as Twilio does: signed by the official helper over the public URL."""
    if sig is None:
        sig = RequestValidator(token).compute_signature(url, fields)
    return await client.post("/webhooks/twilio", data=fields,
                             headers={"X-Twilio-Signature": sig})


async def twiml_ok(resp: ClientResponse) -> None:
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/xml"
    assert (await resp.text()).endswith("<Response/>")


async def register(client: TestClient, twilio: TwilioState, sender: str = U) -> None:
    await twiml_ok(await post_twilio(client, incoming("Hola", sender=sender)))
    await wait_for(lambda: any(m.one("To") == f"whatsapp:{sender}" for m in twilio.messages))


async def message(client: TestClient, msg_id: str) -> dict[str, Any]:
    resp = await client.get(f"/v3/whatsapp/messages/{msg_id}", headers=ACME)
    assert resp.status == 200, await resp.text()
    return await resp.json()


# ---- the signature, against Twilio's own helper


@pytest.mark.parametrize("url,params", [
    ("https://gw.example/webhooks/twilio", {"Body": "Hola", "From": "whatsapp:+34600000001",
                                            "To": "whatsapp:+15550004444", "NumMedia": "0"}),
    ("https://gw.example:8443/webhooks/twilio?x=1&y=%20", {"Body": "ñ €😀 \"<&>\"",
                                                            "a": "", "B": "z", "_": "1"}),
    ("http://gw.example/webhooks/twilio", {}),
])
def test_signature_matches_the_official_validator(url: str, params: dict[str, str]) -> None:
    official = RequestValidator(TOKEN)
    ours = signature(TOKEN, url, list(params.items()))
    assert ours == official.compute_signature(url, params)
    assert official.validate(url, params, ours)
    assert verify(TOKEN, url, list(params.items()), ours)
    assert not verify("another-token", url, list(params.items()), ours)
    assert not verify(TOKEN, url + "x", list(params.items()), ours)


def test_default_port_written_or_not_is_the_same_url() -> None:
    # Twilio signs some URLs with :443 written; its helper accepts both forms.
    params = [("Body", "Hi")]
    with_port = RequestValidator(TOKEN).compute_signature(
        "https://gw.example:443/webhooks/twilio", dict(params))
    assert verify(TOKEN, "https://gw.example/webhooks/twilio", params, with_port)


# ---- end to end


async def test_greeting_gets_the_localized_confirmation_through_the_messages_api(
        client: TestClient, twilio: TwilioState) -> None:
    await register(client, twilio)
    sent = twilio.messages[0]
    assert sent.form["From"] == [f"whatsapp:{NUMBER}"] and sent.form["To"] == [f"whatsapp:{U}"]
    assert sent.form["Body"] == [expected("es", REGISTERED)]
    assert sent.form["StatusCallback"] == [PUBLIC + "/webhooks/twilio"]
    regs = await registration(client, U)
    assert regs[0]["instance"] == INSTANCE and regs[0]["locale"] == "es"


async def test_send_text_image_and_document(client: TestClient, twilio: TwilioState) -> None:
    await register(client, twilio)
    ids = {}
    for kind, body in (("text", {"number": U, "message": "Your order shipped"}),
                       ("image", {"number": U, "image": b64(JPEG), "caption": "Look"}),
                       ("document", {"number": U, "document": b64(PDF),
                                     "filename": "Factura nº 7.pdf"})):
        resp = await send(client, "single", kind, body, instance=INSTANCE)
        assert resp.status == 200, await resp.text()
        ids[kind] = (await resp.json())["id"]
    await wait_for(lambda: len(twilio.messages) == 4 and all(
        len(m.media) == len(m.form.get("MediaUrl", [])) for m in twilio.messages))
    # Sent concurrently: told apart by what they carry, not by the order they arrived.
    [text] = [m for m in twilio.messages[1:] if "MediaUrl" not in m.form]
    [image] = [m for m in twilio.messages if m.media and m.media[0][1] == "image/jpeg"]
    [document] = [m for m in twilio.messages if m.media and m.media[0][1] == "application/pdf"]
    assert text.form["Body"] == ["Your order shipped"] and "MediaUrl" not in text.form
    assert image.form["Body"] == ["Look"]
    # Twilio fetched the bytes from wagate's signed URL, after its answer.
    assert image.media == [(200, "image/jpeg", JPEG)]
    assert document.media == [(200, "application/pdf", PDF)] and "Body" not in document.form
    for kind in ("text", "image", "document"):
        got = await message(client, ids[kind])
        assert got["status"] == "sent" and got["instance"] == INSTANCE, got

    # The URL is a credential: forged or expired ones are refused.
    url = urlsplit(image.form["MediaUrl"][0])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == f"/media/{ids['image']}"
    resp = await client.get(url.path, params={**query, "sig": "0" * 64})
    assert resp.status == 403 and (await resp.json())["error"] == "bad_signature"
    resp = await client.get(f"/media/{ids['document']}", params=query)  # another id's sig
    assert resp.status == 403 and (await resp.json())["error"] == "bad_signature"
    resp = await client.get(url.path, params={**query, "exp": str(int(query["exp"]) + 1)})
    assert resp.status == 403
    resp = await client.get(url.path)
    assert resp.status == 403
    # Once Twilio reports a status the media are dropped.
    await twiml_ok(await post_twilio(client, status_callback(image.sid, "sent")))
    resp = await client.get(url.path, params=query)
    assert resp.status == 404 and (await resp.json())["error"] == "media_gone"


async def test_expired_media_url_is_refused(client: TestClient, twilio: TwilioState) -> None:
    section = client.app[holder_key].current.config.providers["twilio"]
    assert isinstance(section, TwilioConfig)
    past = int(time.time()) - 1
    resp = await client.get("/media/x", params={
        "exp": str(past), "sig": url_signature(section.media_key, "x", past)})
    assert resp.status == 403 and (await resp.json())["error"] == "url_expired"


async def test_statuses_update_the_message(client: TestClient, twilio: TwilioState) -> None:
    await register(client, twilio)
    await register(client, twilio, V)
    resp = await send(client, "single", "text", {"number": U, "message": "one"},
                      instance=INSTANCE)
    ok_id = (await resp.json())["id"]
    resp = await send(client, "single", "text", {"number": V, "message": "two"},
                      instance=INSTANCE)
    bad_id = (await resp.json())["id"]
    await wait_for(lambda: len(twilio.messages) == 4)
    # Sent concurrently: each known by its recipient, not by the order it arrived.
    [ok_sid] = [m.sid for m in twilio.messages if m.one("Body") == "one"]
    [bad_sid] = [m.sid for m in twilio.messages if m.one("Body") == "two"]
    for word in ("queued", "sent", "delivered", "read"):
        await twiml_ok(await post_twilio(client, status_callback(ok_sid, word)))
    assert (await message(client, ok_id))["status"] == "read"
    # A late "delivered" never moves it back.
    await twiml_ok(await post_twilio(client, status_callback(ok_sid, "delivered")))
    assert (await message(client, ok_id))["status"] == "read"
    await twiml_ok(await post_twilio(client, status_callback(
        bad_sid, "undelivered", to=V, ErrorCode="63016")))
    got = await message(client, bad_id)
    assert got["status"] == "failed" and got["error"]["code"] == 63016


async def test_inbound_reaches_the_subscriber_webhook_once(
        client: TestClient, twilio: TwilioState, receiver: Receiver) -> None:
    await register(client, twilio)
    fields = incoming("where is my order?", sid="SM" + "7" * 32)
    await twiml_ok(await post_twilio(client, fields))
    await twiml_ok(await post_twilio(client, fields))  # Twilio's retry: same MessageSid
    hits = await wait_for(lambda: [h for h in receiver.on("/acme")
                                   if h.json["data"].get("text") == "where is my order?"])
    body = verify_webhook(hits[0], ACME_SECRET)
    assert body["data"]["from"] == U and body["data"]["instance_id"] == INSTANCE
    await asyncio.sleep(0.3)  # time for a second delivery, were there one
    assert len([h for h in receiver.on("/acme")
                if h.json["data"].get("text") == "where is my order?"]) == 1
    resp = await client.get("/admin/messages", headers=ADMIN, params={"direction": "in"})
    ids = [m["id"] for m in (await resp.json())["messages"]]
    assert ids.count("twilio:SM" + "7" * 32) == 1


async def test_bad_signatures_are_refused(client: TestClient, twilio: TwilioState) -> None:
    fields = incoming("Hola")
    resp = await client.post("/webhooks/twilio", data=fields)
    assert resp.status == 401 and (await resp.json())["error"] == "missing_signature"
    for resp in (
            await post_twilio(client, fields, token="not-the-token"),
            # Signed for the address we listen on, not the public URL Twilio calls.
            await post_twilio(client, fields, url=str(client.make_url("/webhooks/twilio"))),
            await post_twilio(client, fields, sig="bm90IGEgc2lnbmF0dXJl"),
            await post_twilio(client, fields, sig="\u00e9")):
        assert resp.status == 403 and (await resp.json())["error"] == "bad_signature"
    # A field changed after signing.
    sig = RequestValidator(TOKEN).compute_signature(PUBLIC + "/webhooks/twilio", fields)
    resp = await client.post("/webhooks/twilio", data={**fields, "Body": "Hola!"},
                             headers={"X-Twilio-Signature": sig})
    assert resp.status == 403
    await asyncio.sleep(0.1)
    assert twilio.messages == [] and await registration(client, U) == []


async def test_malformed_bodies_are_4xx(client: TestClient, twilio: TwilioState) -> None:
    def signed(fields: dict[str, str]) -> dict[str, str]:
        return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(
            PUBLIC + "/webhooks/twilio", fields)}

    cases: list[tuple[dict[str, str], str]] = [
        ({k: v for k, v in incoming("Hi").items() if k not in ("MessageSid", "SmsSid")},
         "missing_field"),
        (incoming("Hi", From="+34600000001"), "invalid_number"),
        (incoming("Hi", From="whatsapp:not-a-number"), "invalid_number"),
        (incoming("Hi", To="whatsapp:+15550009999"), "unknown_number"),
        (incoming("x" * 5000), "field_too_long"),
        (status_callback("SMx", "failed", ErrorCode="12a"), "invalid_field"),
        (status_callback("SMx", "delivered", From="whatsapp:+15550009999"), "unknown_number"),
    ]
    for fields, slug in cases:
        resp = await client.post("/webhooks/twilio", data=fields, headers=signed(fields))
        assert resp.status == 400, (slug, await resp.text())
        assert (await resp.json())["error"] == slug
    sig = signed({})
    for body, ctype in ((b"\xff\xfe=1", "application/x-www-form-urlencoded"),
                        (b'{"Body": "Hi"}', "application/json"),
                        (b"a=1&" * 200, "application/x-www-form-urlencoded"),
                        (b"Body=%00", "application/x-www-form-urlencoded")):
        resp = await client.post("/webhooks/twilio", data=body,
                                 headers={**sig, "Content-Type": ctype})
        assert 400 <= resp.status < 500, (body[:20], resp.status)
        assert "error" in await resp.json()
    resp = await client.post("/webhooks/twilio", data=io.BytesIO(b"Body=" + b"x" * 300_000),
                             headers={**sig, "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 413 and (await resp.json())["error"] == "payload_too_large"


async def test_other_message_kinds_are_kept(client: TestClient, twilio: TwilioState) -> None:
    await register(client, twilio)
    await twiml_ok(await post_twilio(client, incoming(
        "", NumMedia="1", MediaContentType0="image/jpeg",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/x/Messages/y/Media/z")))
    await twiml_ok(await post_twilio(client, incoming(None, ButtonText="Yes, confirm")))
    resp = await client.get("/admin/messages", headers=ADMIN, params={"direction": "in"})
    texts = [m["text"] for m in (await resp.json())["messages"]]
    assert "Yes, confirm" in texts


async def test_groups_and_gifs_are_refused_before_queueing(client: TestClient,
                                                           twilio: TwilioState) -> None:
    await register(client, twilio)
    resp = await send(client, "group", "text", {"group_name": "Team", "message": "hi"},
                      instance=INSTANCE)
    assert resp.status == 403 and (await resp.json())["error"] == "not_supported_by_provider"
    resp = await send(client, "single", "image", {"number": U, "image": b64(GIF)},
                      instance=INSTANCE)
    assert resp.status == 400 and (await resp.json())["error"] == "unsupported_image"


async def test_throttling_is_retried_and_permanent_errors_fail(
        client: TestClient, twilio: TwilioState) -> None:
    await register(client, twilio)
    twilio.fail_next(429, 20429, "Too Many Requests")
    twilio.fail_next(429, 20429, "Too Many Requests")
    resp = await send(client, "single", "text", {"number": U, "message": "later"},
                      instance=INSTANCE)
    retried = (await resp.json())["id"]
    await wait_for(lambda: len(twilio.messages) == 2)
    assert len(twilio.refused) == 2 and twilio.messages[1].form["Body"] == ["later"]
    assert (await message(client, retried))["status"] == "sent"
    twilio.fail_next(400, 63016, "Failed to send freeform message because you are outside "
                                 "the allowed window.")
    resp = await send(client, "single", "text", {"number": U, "message": "too late"},
                      instance=INSTANCE)
    failed = (await resp.json())["id"]

    async def final() -> dict[str, Any] | None:
        got = await message(client, failed)
        return got if got["status"] == "failed" else None
    got = await wait_for(final)
    assert got["error"]["code"] == 63016 and "outside" in got["error"]["title"]
    assert len(twilio.messages) == 2


# ---- config


def test_config_validates_the_twilio_section(tmp_path: Any) -> None:
    base = base_config(tmp_path / "x.db")
    instance = f'\n[[instances]]\nid = 9\nnumber = "{NUMBER}"\nprovider = "twilio"\n'
    section = (f'\n[twilio]\naccount_sid = "{SID}"\nauth_token = "t"\n'
               f'public_url = "{PUBLIC}"\n')
    config = parse_config(base + section + instance, env={})
    assert config.instances[9].provider == "twilio"
    for text, words in (
            (base + instance, "needs a [twilio] section"),
            (base + section.replace(SID, "ACnope") + instance, "twilio.account_sid"),
            (base + section.replace(f'public_url = "{PUBLIC}"\n', "") + instance,
             "twilio.public_url: is required"),
            (base + section.replace(PUBLIC, "gw.example") + instance, "not an http(s) URL"),
            (base + section.replace(PUBLIC, PUBLIC + "/?a=1") + instance, "without ?query"),
            (base + section.replace(PUBLIC, PUBLIC + ":99999") + instance, "invalid port"),
            (base + section.replace('auth_token = "t"', 'auth_token_env = "NOPE"') + instance,
             "environment variable NOPE is not set"),
            (base + section + instance + 'phone_number_id = "1"\n',
             'is not a key of provider "twilio"'),
            (base + section + instance + instance.replace("id = 9", "id = 10"),
             "two twilio instances use")):
        with pytest.raises(ConfigError) as err:
            parse_config(text, env={})
        assert words in str(err.value), str(err.value)


# ---- the 24-hour window: Content templates outside it

CONTENT = """
[[templates]]
name = "HX0123456789abcdef0123456789abcdef"
category = "utility"
use = "notification"
parameters = 1
languages = { "*" = "en" }
"""


def _wrote_long_ago(db: Path, user: str, hours: float = 25.0) -> None:
    """The user's last message was `hours` ago (Twilio's form carries no time:
    the window runs from when wagate received it)."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE registrations SET last_inbound_at = ? WHERE number = ?",
                     (time.time() - hours * 3600, user))


@pytest.fixture
async def templated(make_client: Callable[..., Awaitable[TestClient]], twilio: TwilioState,
                    receiver: Receiver) -> TestClient:
    client = await make_client(twilio_toml(twilio.api_url, receiver.base) + CONTENT)
    twilio.fetch_base = str(client.make_url("")).rstrip("/")
    return client


async def test_outside_the_window_a_send_goes_as_the_content_template(
        templated: TestClient, twilio: TwilioState, tmp_path: Path) -> None:
    await register(templated, twilio)
    _wrote_long_ago(tmp_path / "wagate.db", U)
    resp = await send(templated, "single", "text", {"number": U, "message": "Order shipped"},
                      instance=INSTANCE)
    assert resp.status == 200, await resp.text()
    await wait_for(lambda: len(twilio.messages) == 2)
    sent = twilio.messages[1]
    assert sent.one("ContentSid") == "HX0123456789abcdef0123456789abcdef"
    assert json.loads(sent.one("ContentVariables") or "") == {"1": "Order shipped"}
    assert sent.one("Body") is None


async def test_an_asynchronous_63016_sends_it_again_as_the_content_template(
        templated: TestClient, twilio: TwilioState) -> None:
    # Inside the window by our clock, but Twilio says the window had closed.
    await register(templated, twilio)
    resp = await send(templated, "single", "text", {"number": U, "message": "Ready"},
                      instance=INSTANCE)
    msg_id = (await resp.json())["id"]
    await wait_for(lambda: len(twilio.messages) == 2)
    assert twilio.messages[1].one("Body") == "Ready"
    await twiml_ok(await post_twilio(templated, status_callback(
        twilio.messages[1].sid, "undelivered", ErrorCode="63016")))
    await wait_for(lambda: len(twilio.messages) == 3)
    again = twilio.messages[2]
    assert again.one("ContentSid") == "HX0123456789abcdef0123456789abcdef"
    assert json.loads(again.one("ContentVariables") or "") == {"1": "Ready"}
    assert (await message(templated, msg_id))["status"] in ("queued", "sent")


async def test_outside_the_window_without_a_template_is_refused_475(
        client: TestClient, twilio: TwilioState, tmp_path: Path) -> None:
    await register(client, twilio)
    _wrote_long_ago(tmp_path / "wagate.db", U)
    resp = await send(client, "single", "text", {"number": U, "message": "x"},
                      instance=INSTANCE)
    assert resp.status == 475 and (await resp.json())["error"] == "outside_window"
    assert len(twilio.messages) == 1  # the confirmation only: nothing queued
