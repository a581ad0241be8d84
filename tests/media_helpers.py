"""Inbound media tests' shared parts: a config with one Meta, one Twilio and one
WAHA number owned by a subscriber with a standard and a WhatsMate webhook, the
providers' payloads carrying a file, and the files themselves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import ACCESS_TOKEN, APP_SECRET, ROOT, VERIFY_TOKEN
from tests.waha import WAHA_API_KEY, WAHA_HMAC_KEY
from tests.webhook_helpers import ACME_SECRET

PUBLIC = "https://gw.example"  # [server] public_url: what the links are on
META, TWILIO, WAHA = 5, 6, 7
META_PNID = "555000555"
TWILIO_NUMBER = "+15550006666"
SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-0123456789"

# A file of each kind, as a user's phone sends it (real magic numbers).
FILES: dict[str, tuple[bytes, str, str | None]] = {
    "image": (b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 20, "image/jpeg", None),
    "audio": (b"OggS\x00\x02" + b"\x01voice" * 500, "audio/ogg; codecs=opus", None),
    "video": (b"\x00\x00\x00\x18ftypmp42" + b"\x00frame" * 900, "video/mp4", None),
    "document": (b"%PDF-1.4\n" + b"% a receipt\n" * 300, "application/pdf", "receipt.pdf"),
    "sticker": (b"RIFF\x00\x10\x00\x00WEBPVP8 " + b"\x7f" * 3000, "image/webp", None),
}


def media_config(db: Path | str, *, graph: str, twilio: str, waha: str, receiver: str,
                 media: str = "", port: int = 0, public_url: str = PUBLIC,
                 wait: float = 10) -> str:
    return f"""
[server]
host = "127.0.0.1"
port = {port}
public_url = "{public_url}"

[storage]
url = "{db if isinstance(db, str) else f'sqlite:///{db}'}"

[admin]
token = "admin-token-0123456789"

[locales]
dir = "{ROOT / 'locales'}"

[meta]
app_secret = "{APP_SECRET}"
verify_token = "{VERIFY_TOKEN}"
access_token = "{ACCESS_TOKEN}"
graph_base_url = "{graph}"

[twilio]
account_sid = "{SID}"
auth_token = "{TWILIO_TOKEN}"
api_base_url = "{twilio}"
public_url = "{PUBLIC}"

[waha]
base_url = "{waha}"
api_key = "{WAHA_API_KEY}"
hmac_key = "{WAHA_HMAC_KEY}"

[webhooks]
retry_schedule = [0, 0.2, 0.4]
allow_private_networks = ["127.0.0.0/8"]

[media]
delivery_wait = {wait}
{media}

[[instances]]
id = {META}
number = "+15550005555"
provider = "meta"
phone_number_id = "{META_PNID}"
owner = "acme"

[[instances]]
id = {TWILIO}
number = "{TWILIO_NUMBER}"
provider = "twilio"
owner = "acme"

[[instances]]
id = {WAHA}
number = "+15550007777"
provider = "waha"
session = "default"
owner = "acme"

[[subscribers]]
id = "acme"
client_id = "dev@acme.example"
secret = "acme-api-secret"
plan = "enterprise"
since = 2025-01-01
instances = [{META}, {TWILIO}, {WAHA}]

[[subscribers.webhooks]]
url = "{receiver}/acme"
format = "standard"
secret = "{ACME_SECRET}"
events = ["message.received"]

[[subscribers.webhooks]]
url = "{receiver}/acme-wm"
format = "whatsmate"
token = "acme-whatsmate-token"
"""


def meta_media(kind: str, media_id: str, *, caption: str | None = None,
               filename: str | None = None, mime: str = "image/jpeg",
               msg_id: str | None = None) -> dict[str, Any]:
    """Meta's webhook for one media message (`voice`: an audio with voice=true)."""
    body: dict[str, Any] = {"id": media_id, "mime_type": mime, "sha256": "ignored"}
    if caption is not None:
        body["caption"] = caption
    if filename is not None:
        body["filename"] = filename
    if kind == "sticker":
        body["animated"] = False
    message = {"from": "34600000001", "id": msg_id or f"wamid.{time.monotonic_ns()}",
               "timestamp": str(int(time.time())), "type": kind, kind: body}
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550005555",
                         "phone_number_id": META_PNID},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600000001"}],
            "messages": [message]}}]}]}


def local(url: str) -> str:
    """A link on public_url (a proxy in front of us) as the test reaches the app."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
