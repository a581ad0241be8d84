"""Real provider payloads, replayed end to end (tests/fixtures/providers/).

Every envelope is posted signed as its provider signs, on the provider's own
inbound route, to the real app with a real webhook receiver; each is answered
2xx, and what the subscriber receives is checked against what the payload
itself says (read here, independently of the gateway's parsers). Each envelope
runs on a fresh store: the fixtures reuse message ids between examples.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from bot.numbers import to_e164
from tests.conftest import APP_SECRET, ROOT, sign, wait_for
from tests.graph import GraphState
from tests.waha import waha_app, waha_config, waha_sign
from tests.webhook_helpers import Receiver, quiet, subscribers_toml

FIXTURES = ROOT / "tests" / "fixtures" / "providers"
MakeClient = Callable[..., Awaitable[TestClient]]

# Meta's phone_number_ids in the fixtures, each an instance owned by acme.
META_NUMBERS = {"1122334455667": 21, "5483758353": 22, "106540352242922": 23,
                "37489742": 24, "743897493242": 25}
WAHA_INSTANCE = 26
TWILIO_INSTANCE = 27
TWILIO_NUMBER = "+15550007777"
TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-replay-auth-token"
TWILIO_PUBLIC = "https://gw.example"
WM_TOKEN = "acme-whatsmate-token"


@dataclass(frozen=True)
class Envelope:
    provider: str
    source: str  # file and name in it
    body: Any

    def __str__(self) -> str:
        return f"{self.provider}/{self.source}"


def envelopes() -> Iterator[Envelope]:
    for folder in sorted(FIXTURES.iterdir()):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            for name, body in json.loads(path.read_text()).items():
                yield Envelope(folder.name, f"{path.stem}:{name}", body)


ENVELOPES = list(envelopes())


def test_the_fixture_set_is_there() -> None:
    counts = {p: sum(e.provider == p for e in ENVELOPES) for p in ("meta", "waha", "twilio")}
    assert counts["meta"] >= 70 and counts["waha"] >= 20 and counts["twilio"] >= 9, counts


def _instances() -> str:
    meta = "".join(f'\n[[instances]]\nid = {i}\nnumber = "+1555002{i:04d}"\nprovider = "meta"\n'
                   f'phone_number_id = "{pnid}"\nowner = "acme"\n'
                   for pnid, i in META_NUMBERS.items())
    twilio = (f'\n[twilio]\naccount_sid = "{TWILIO_SID}"\nauth_token = "{TWILIO_TOKEN}"\n'
              f'api_base_url = "http://127.0.0.1:9"\npublic_url = "{TWILIO_PUBLIC}/"\n'
              f'\n[[instances]]\nid = {TWILIO_INSTANCE}\nnumber = "{TWILIO_NUMBER}"\n'
              'provider = "twilio"\nowner = "acme"\n')
    # A file the provider's test server does not hold (Twilio's fixtures name
    # api.twilio.com) is forwarded with media.error once this wait is over.
    return meta + twilio + "\n[media]\ndelivery_wait = 1\n"


@pytest.fixture
async def replay_client(make_client: MakeClient, receiver: Receiver,
                        aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestClient:
    waha = await aiohttp_server(waha_app())
    wm = (f'[[subscribers.webhooks]]\nurl = "{receiver.base}/acme-wm"\nformat = "whatsmate"\n'
          f'token = "{WM_TOKEN}"\n')
    return await make_client(subscribers_toml(receiver.base, extra_webhooks=wm) + _instances()
                             + waha_config(str(waha.make_url("")).rstrip("/"),
                                           instance=WAHA_INSTANCE,
                                           extra_instance='owner = "acme"\n'))


async def post(client: TestClient, envelope: Envelope) -> ClientResponse:
    """The envelope as its provider posts it: its bytes, signed its way."""
    if envelope.provider == "meta":
        raw = json.dumps(envelope.body).encode()
        return await client.post("/webhooks/meta", data=raw, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, APP_SECRET)})
    if envelope.provider == "waha":
        raw = json.dumps(envelope.body).encode()
        return await client.post("/webhooks/waha", data=raw, headers={
            "Content-Type": "application/json", "X-Webhook-Hmac": waha_sign(raw),
            "X-Webhook-Hmac-Algorithm": "sha512"})
    fields = envelope.body
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        TWILIO_PUBLIC + "/webhooks/twilio", fields)
    return await client.post("/webhooks/twilio", data=urlencode(fields), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})


# ---- what each payload says, read from the payload itself


MEDIA = {"image", "video", "audio", "sticker", "document"}
SILENT = {"reaction", "edit", "revoke", "system", "order", "unsupported"}


def _meta_message(m: dict[str, Any]) -> dict[str, Any]:
    word = m.get("type")
    kind = "voice" if word == "audio" and m["audio"].get("voice") else word
    data: dict[str, Any] = {"id": f"meta:{m['id']}"}
    sub = m.get("interactive", {}).get("type")
    if word == "interactive" and sub not in ("button_reply", "list_reply", "nfm_reply"):
        kind = "unsupported"
    if kind not in MEDIA | SILENT | {"voice", "text", "location", "contacts", "interactive",
                                     "button", "request_welcome"}:
        kind = "unsupported"
    data["type"] = kind
    if word in MEDIA:
        part = m[word]
        data["text"] = part.get("caption")
        # The file as the provider names it; its id, link and digest are the
        # gateway's own (tests/test_media.py).
        data["media.mime_type"] = part["mime_type"]
        data["media.filename"] = part.get("filename")
    elif word == "text":
        data["text"] = m["text"]["body"]
    elif word == "location":
        loc = m["location"]
        data["location"] = {k: loc[k] for k in ("latitude", "longitude", "name", "address",
                                                 "url") if k in loc}
    elif word == "contacts":
        data["contacts"] = [c["name"]["formatted_name"] for c in m["contacts"]]
    elif word == "reaction":
        data["reaction"] = {"emoji": m["reaction"].get("emoji") or "",
                            "message_id": f"meta:{m['reaction']['message_id']}"}
    elif kind == "interactive":
        reply = m["interactive"][sub]
        data["text"] = reply.get("title", reply.get("body"))
        data["interactive"] = {"button_reply": "button_reply", "list_reply": "list_reply",
                               "nfm_reply": "flow_reply"}[sub]
    elif word == "button":
        data["text"] = m["button"]["text"]
        data["button"] = {"text": m["button"]["text"], "payload": m["button"]["payload"]}
    elif word == "order":
        data["order"] = {"catalog_id": m["order"]["catalog_id"],
                         "items": len(m["order"]["product_items"])}
    elif word == "edit":
        new = m["edit"]["message"]
        data["text"] = new.get("text", {}).get("body") or new.get(new["type"], {}).get("caption")
        data["edit"] = {"message_id": f"meta:{m['edit']['original_message_id']}"}
    elif word == "revoke":
        data["revoke"] = {"message_id": f"meta:{m['revoke']['original_message_id']}"}
    elif word == "system":
        data["text"] = m["system"]["body"]
    context = m.get("context", {})
    if "id" in context:
        data["context.message_id"] = f"meta:{context['id']}"
    if context.get("forwarded") or context.get("frequently_forwarded"):
        data["context.forwarded"] = True
    if "referral" in m:
        data["context.referral.source_url"] = m["referral"]["source_url"]
    return data


def meta_expected(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages acme receives, and the notices (Meta's fields) counted."""
    messages, notices = [], []
    for entry in body["entry"]:
        for change in entry["changes"]:
            value = change["value"]
            if change.get("field", "messages") != "messages":
                notices.append(change["field"])
                continue
            if value.get("metadata", {}).get("phone_number_id") not in META_NUMBERS:
                continue
            messages += [_meta_message(m) for m in value.get("messages", [])]
    return messages, notices


def _waha_number(jid: str) -> str | None:
    local, _, domain = jid.partition("@")
    return to_e164(local) if domain == "c.us" else jid if domain == "lid" else None


def waha_expected(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    event, payload = body["event"], body["payload"]
    if event == "session.status":
        return [], ["session.status"]
    if event == "message.revoked":
        payload = payload.get("after") or {}
    if event not in ("message", "message.any", "message.reaction", "message.edited",
                     "message.revoked") or payload.get("fromMe") \
            or not payload.get("id") or not _waha_number(payload.get("from", "")):
        return [], []
    data: dict[str, Any] = {"id": f"waha:{payload['id']}"}
    media = payload.get("media") or {}
    url = media.get("url") or payload.get("mediaUrl")
    if event == "message.reaction":
        data["type"] = "reaction"
        data["reaction"] = {"emoji": payload["reaction"]["text"],
                            "message_id": f"waha:{payload['reaction']['messageId']}"}
    elif event == "message.revoked":
        data["type"] = "revoke"
    elif url:
        mime = media.get("mimetype") or {"jpg": "image/jpeg", "pdf": "application/pdf"}[
            url.rsplit(".", 1)[-1]]
        data["type"] = {"image": "image", "video": "video", "audio": "audio"}.get(
            mime.split("/")[0], "document")
        data["text"] = payload.get("body") or None
        data["media.mime_type"] = mime
        data["media.filename"] = media.get("filename") or None
    elif payload.get("body"):
        data["type"], data["text"] = "text", payload["body"]
    else:
        data["type"] = "unsupported"
    return [data], []


def twilio_expected(fields: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    if "MessageStatus" in fields:
        return [], []
    data: dict[str, Any] = {"id": f"twilio:{fields['MessageSid']}"}
    if fields.get("ButtonText"):
        data.update(type="button", text=fields["ButtonText"],
                    button={"text": fields["ButtonText"], "payload": fields["ButtonPayload"]})
    elif fields.get("Latitude"):
        data.update(type="location", location={
            "latitude": float(fields["Latitude"]), "longitude": float(fields["Longitude"]),
            "name": fields["Label"], "address": fields["Address"]})
    elif fields.get("NumMedia", "0") != "0":
        mime = fields["MediaContentType0"]
        data.update(type={"image": "image", "audio": "audio", "video": "video"}.get(
            mime.split("/")[0], "document"), text=fields["Body"] or None,
            **{"media.mime_type": mime})
    else:
        data.update(type="text", text=fields["Body"])
    if fields.get("OriginalRepliedMessageSid"):
        data["context.message_id"] = f"twilio:{fields['OriginalRepliedMessageSid']}"
    if fields.get("ReferralSourceUrl"):
        data["context.referral.source_url"] = fields["ReferralSourceUrl"]
    return [data], []


EXPECTED = {"meta": meta_expected, "waha": waha_expected, "twilio": twilio_expected}


def _unique(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One per message id: a batch that repeats an id is stored (and forwarded) once."""
    seen: dict[str, dict[str, Any]] = {}
    for m in messages:
        seen.setdefault(m["id"], m)
    return list(seen.values())


def _read(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None  # type: ignore[assignment]
    return data


def check(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        if key == "contacts":
            assert [c["name"] for c in got["contacts"]] == value, got
        elif key == "order":
            assert got["order"]["catalog_id"] == value["catalog_id"], got
            assert len(got["order"]["items"]) == value["items"], got
        elif key == "interactive":
            assert got["interactive"]["kind"] == value, got
        else:
            assert _read(got, key) == value, (key, got)


@pytest.mark.parametrize("envelope", ENVELOPES, ids=str)
async def test_every_envelope_is_acknowledged_and_forwarded_as_it_says(
        replay_client: TestClient, receiver: Receiver, graph_state: GraphState,
        envelope: Envelope) -> None:
    resp = await post(replay_client, envelope)
    assert 200 <= resp.status < 300, await resp.text()
    messages, notices = EXPECTED[envelope.provider](envelope.body)
    messages = _unique(messages)
    received: list[dict[str, Any]] = []
    for _ in range(50):
        received = [h.json["data"] for h in receiver.on("/acme")
                    if h.json["type"] == "message.received"]
        if len(received) >= len(messages):
            break
        await quiet(0.1)
    await quiet(0.3)  # nothing more arrives
    received = [h.json["data"] for h in receiver.on("/acme")
                if h.json["type"] == "message.received"]
    assert len(received) == len(messages), (received, messages)
    by_id = {d["id"]: d for d in received}
    for want in messages:
        check(by_id[want["id"]], want)
    # The whatsmate format keeps its shape: the text, or "".
    whatsmate = [h.json for h in receiver.on("/acme-wm")]
    assert sorted(w["message"] for w in whatsmate) == sorted(
        d.get("text") or "" for d in received)
    assert all(w["token"] == WM_TOKEN for w in whatsmate)
    if notices:
        metrics = await (await replay_client.get("/metrics")).text()
        for kind in set(notices):
            line = re.search(rf'wagate_provider_notices_total{{kind="{re.escape(kind)}",'
                             rf'provider="{envelope.provider}"}} (\d+)', metrics) or re.search(
                rf'wagate_provider_notices_total{{provider="{envelope.provider}",'
                rf'kind="{re.escape(kind)}"}} (\d+)', metrics)
            assert line and int(line.group(1)) == notices.count(kind), (kind, metrics[-2000:])
    if envelope.provider == "meta" and messages:
        # The "say Hi" hint answers what a user wrote or tapped, and nothing else.
        if all(m["type"] in SILENT for m in messages):
            assert not graph_state.messages, messages
        else:
            assert await wait_for(lambda: graph_state.messages), messages


def test_fixtures_keep_their_origin() -> None:
    for folder in (FIXTURES / "meta", FIXTURES / "waha", FIXTURES / "twilio"):
        origin = (folder / "ORIGIN.md").read_text()
        assert "licence" in origin.lower()
        if folder.name != "twilio":
            assert re.search(r"[0-9a-f]{40}", origin), folder
            assert list(folder.glob("LICENSE.*")), folder
