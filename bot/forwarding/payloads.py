"""Webhook bodies and signatures: Standard Webhooks and the WhatsMate format.

Bodies are built once, when the event is routed, and stored without any
secret or token; the signature (standard) or the token (whatsmate) is added
at each attempt from the config in force then.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from bot.config import InstanceConfig

# The largest body we send. Inbound texts are at most a few KB; a body over
# this has its text cut (and `"truncated": true` set) rather than being sent.
MAX_PAYLOAD_BYTES = 64 * 1024


def new_delivery_id() -> str:
    """A `webhook-id`: stable for a delivery across retries and replays."""
    return f"msg_{uuid.uuid4().hex}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _capped(build: Any, data: dict[str, Any], text_key: str) -> str:
    body = build(data)
    excess = len(body.encode()) - MAX_PAYLOAD_BYTES
    text = data.get(text_key)
    if excess <= 0 or not isinstance(text, str):
        return body
    raw = text.encode()
    cut = raw[:max(0, len(raw) - excess - 64)].decode(errors="ignore")
    return build({**data, text_key: cut, "truncated": True})


def standard_body(event_type: str, timestamp: str, data: dict[str, Any]) -> str:
    """`{"type", "timestamp", "data"}` as Standard Webhooks describes it."""
    return _capped(lambda d: _dumps({"type": event_type, "timestamp": timestamp, "data": d}),
                   data, "text")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: v1, base64 HMAC-SHA256 keyed with the base64-decoded
    part of `whsec_...`, over `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def standard_headers(keys: Sequence[str], msg_id: str, timestamp: int,
                     body: bytes) -> dict[str, str]:
    """The three `webhook-*` headers. During a signing secret's overlap every
    valid secret signs, space-separated (`v1,<a> v1,<b>`): a receiver holding
    either verifies, as Standard Webhooks specifies."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in keys)}


def new_signing_secret() -> str:
    """A fresh `whsec_` signing secret: 32 random bytes, base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_secret_error(secret: str) -> str | None:
    """Why `secret` cannot sign Standard Webhooks, or None."""
    if not secret.startswith("whsec_"):
        return "a standard webhook needs a `whsec_...` signing secret"
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    return None if key else "the part after `whsec_` must be non-empty base64"


def _digits(number: str | None) -> str:
    return (number or "").removeprefix("+")


def whatsmate_payload(instance: InstanceConfig, data: dict[str, Any]) -> str:
    """The WhatsMate Enterprise body of a `message.received`, without `token`
    (added at send time): every value a string, numbers without `+`."""
    group = data.get("group")
    body: dict[str, Any] = {
        "type": "group" if group else "individual",
        "instance_id": str(instance.id),
        "gateway_number": _digits(instance.number),
        "number": _digits(str(data.get("from") or "")),
        "message": str(data.get("text") or ""),
    }
    if group:
        body["group_name"] = str(group.get("name") or "")
        body["group_id"] = str(group.get("id") or "")
    return _capped(_dumps, body, "message")


def whatsmate_body(token: str, payload: str) -> bytes:
    """The stored body with the webhook's `token` first, as WhatsMate sends it."""
    return _dumps({"token": token, **json.loads(payload)}).encode()


def user_fields(*, user_id: str | None, window_open_until: float | None) -> dict[str, Any]:
    """What user.registered / user.unregistered add about the user: their
    business-scoped id when the provider gave one and, on a number with a
    24-hour customer-service window, when it closes (ISO 8601)."""
    fields: dict[str, Any] = {"user_id": user_id} if user_id else {}
    if window_open_until is not None:
        fields["window_open_until"] = dt.datetime.fromtimestamp(
            window_open_until, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return fields
