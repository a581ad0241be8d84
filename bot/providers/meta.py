"""The WhatsApp Business Cloud API (Meta).

Inbound: webhook payloads (signature checked by the HTTP layer on the raw
body first) become normalized events; one POST may batch many entries,
changes, messages and statuses, and one odd message never fails the batch.
Outbound: Graph API calls with the bearer token; media are uploaded first.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import phonenumbers

from bot.config import InstanceConfig, MetaConfig
from bot.events import GroupRef, InboundMessage, StatusUpdate
from bot.providers.base import SendResult
from bot.store.models import OutboundRow

log = logging.getLogger("wagate.meta")

# Meta's throttling and "try again" codes; everything else 4xx is permanent.
TRANSIENT_CODES = frozenset({4, 80007, 130429, 131000, 131016, 131056, 133004})
_CODE_PREFIX = re.compile(r"^\(#?\d+\)\s*")
_MEDIA_KINDS = {"image", "document", "audio", "video", "sticker"}


def verify_signature(app_secret: str, raw_body: bytes, header: str | None) -> bool | None:
    """None when the header is missing, else whether it matches (constant time)."""
    if not header:
        return None
    expected = "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    # A header that was not UTF-8 arrives surrogate-escaped: encode it back as is.
    return hmac.compare_digest(expected.encode(),
                               header.strip().encode("utf-8", "surrogateescape"))


@functools.lru_cache(maxsize=65536)  # phonenumbers parsing is slow; senders recur
def e164(digits: str | None) -> str | None:
    """Meta's wa_id ('34600000001') as E.164, or None when it is not a number."""
    if not digits or not isinstance(digits, str):
        return None
    try:
        parsed = phonenumbers.parse("+" + digits.lstrip("+"), None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(slots=True)
class ParsedBatch:
    events: list[InboundMessage | StatusUpdate] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why an item was not used


# Meta's timestamps are epoch seconds; anything else (NaN, infinities, years
# datetime cannot show) is no timestamp at all.
_MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins valid pairs


def _str(value: Any) -> str | None:
    """A string field as the store can keep it, else None: lone surrogates
    (which UTF-8 cannot carry) become U+FFFD, so the message is still kept."""
    if not isinstance(value, str):
        return None
    return _LONE_SURROGATE.sub("\ufffd", value)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _timestamp(value: Any) -> float:
    try:
        ts = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    return ts if 0 <= ts <= _MAX_TIMESTAMP else 0.0  # NaN fails both comparisons


def _message_event(m: Mapping[str, Any], instance: InstanceConfig,
                   contacts: Mapping[str, Mapping[str, Any]]) -> InboundMessage:
    msg_id = _str(m["id"])
    if not msg_id:
        raise ValueError("message without id")
    sender_raw = _str(m.get("from"))
    from_user_id = _str(m.get("from_user_id"))
    contact = contacts.get(sender_raw or "") or contacts.get(from_user_id or "") or {}
    user_id = from_user_id or _str(contact.get("user_id"))
    number = e164(sender_raw if sender_raw and sender_raw.isdigit()
                  else _str(contact.get("wa_id")))
    sender = number or user_id or sender_raw
    if not sender:
        raise ValueError("message without sender")
    kind = m.get("type", "other")
    kind = kind if isinstance(kind, str) else "other"
    text = None
    if kind == "text":
        text = _str(_dict(m.get("text")).get("body"))
        if text is None:
            raise ValueError("text message without body")
    elif kind == "button":
        kind, text = "text", _str(_dict(m.get("button")).get("text"))
    elif kind in _MEDIA_KINDS:
        text = _str(_dict(m.get(kind)).get("caption"))
    else:
        kind = "other"
    group_id = m.get("group_id") or _dict(m.get("context")).get("group_id")
    if group_id and (not isinstance(group_id, str | int) or isinstance(group_id, bool)):
        raise ValueError("group_id is not a string")
    name = _str(_dict(contact.get("profile")).get("name"))
    return InboundMessage(provider="meta", provider_message_id=msg_id, instance_id=instance.id,
                          sender=sender, user_id=user_id, profile_name=name, kind=kind,
                          text=text, group=GroupRef(id=_str(str(group_id)) or "")
                          if group_id else None, timestamp=_timestamp(m.get("timestamp", 0)))


def _status_event(s: Mapping[str, Any], instance: InstanceConfig) -> StatusUpdate:
    status = s["status"]
    if not isinstance(status, str) or status not in ("sent", "delivered", "read", "failed"):
        raise ValueError(f"unknown status {str(status)[:40]!r}")
    msg_id = _str(s["id"])
    if not msg_id:
        raise ValueError("status without id")
    errors = s.get("errors")
    first = _dict(errors[0]) if isinstance(errors, list) and errors else {}
    code = first.get("code")
    return StatusUpdate(provider="meta", provider_message_id=msg_id,
                        instance_id=instance.id, status=status,
                        error_code=code if isinstance(code, int) and not isinstance(code, bool)
                        else None,
                        error_title=_str(first.get("title")) or _str(first.get("message")),
                        timestamp=_timestamp(s.get("timestamp", 0)))


def _items(value: Mapping[str, Any], key: str, batch: ParsedBatch) -> list[Any]:
    """`value[key]` as a list: absent is empty, anything else is skipped with a reason."""
    items = value.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        batch.skipped.append(f"{key} is not a list")
        return []
    return items


def parse_payload(payload: Any, instances: Mapping[str, InstanceConfig]) -> ParsedBatch:
    """Normalize one webhook POST; items that cannot be used are skipped, with a reason."""
    batch = ParsedBatch()
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise ValueError("not a WhatsApp webhook payload (no entry list)")
    for entry in payload["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            batch.skipped.append("entry without changes")
            continue
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                batch.skipped.append("change without value")
                continue
            pnid = str(_dict(value.get("metadata")).get("phone_number_id", ""))
            instance = instances.get(pnid)
            if instance is None:
                batch.skipped.append(f"unknown phone_number_id {pnid[:40]!r}")
                continue
            contacts: dict[str, Mapping[str, Any]] = {}
            for c in _items(value, "contacts", batch):
                if isinstance(c, dict):
                    for key in (c.get("wa_id"), c.get("user_id")):
                        if key:
                            contacts[str(key)] = c
            for m in _items(value, "messages", batch):
                try:
                    batch.events.append(_message_event(m, instance, contacts))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    batch.skipped.append(f"message skipped: {str(exc)[:200]}")
            for s in _items(value, "statuses", batch):
                try:
                    batch.events.append(_status_event(s, instance))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    batch.skipped.append(f"status skipped: {str(exc)[:200]}")
    return batch


class MetaProvider:
    """Outbound through the Graph API, on the app's shared client session."""

    name = "meta"

    def __init__(self, config: Callable[[], MetaConfig | None],
                 session: aiohttp.ClientSession) -> None:
        self._config = config  # read per call, so a reload's new token applies at once
        self.session = session

    @property
    def config(self) -> MetaConfig:
        config = self._config()
        if config is None:
            raise RuntimeError("the [meta] section was removed from the config")
        return config

    def _url(self, instance: InstanceConfig, edge: str) -> str:
        c = self.config
        return f"{c.graph_base_url}/{c.api_version}/{instance.phone_number_id}/{edge}"

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.access_token}"}

    async def send(self, instance: InstanceConfig, message: OutboundRow,
                   media: bytes | None) -> SendResult:
        try:
            body: dict[str, Any] = {"messaging_product": "whatsapp"}
            if message.group_id:
                body.update(recipient_type="group", to=message.group_id)
            else:
                body.update(recipient_type="individual", to=(message.to or "").lstrip("+"))
            if message.type in ("text", "url"):
                body.update(type="text", text={"body": message.text or "",
                                               "preview_url": message.type == "url"})
            elif message.type in ("image", "document"):
                if media is None:
                    return SendResult(error_code=None, error_title="media is gone")
                uploaded = await self._upload(instance, message, media)
                if not uploaded.ok:
                    return uploaded
                part: dict[str, Any] = {"id": uploaded.provider_message_id}
                if message.caption:
                    part["caption"] = message.caption
                if message.type == "document" and message.filename:
                    part["filename"] = message.filename
                body.update(type=message.type, **{message.type: part})
            else:
                return SendResult(error_title=f"unsupported message type {message.type}")
            return await self._post_json(self._url(instance, "messages"), body, want="messages")
        except (TimeoutError, aiohttp.ClientError) as exc:
            return SendResult(error_title=f"network error: {type(exc).__name__}", transient=True)

    async def _upload(self, instance: InstanceConfig, message: OutboundRow,
                      media: bytes) -> SendResult:
        # Unquoted: aiohttp would percent-encode the file name ("Invoice%207.pdf"),
        # and Graph keeps it as given. Names are cleaned (no quotes, no folders).
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", message.mime or "application/octet-stream")
        form.add_field("file", media, filename=message.filename or message.type,
                       content_type=message.mime or "application/octet-stream")
        async with self.session.post(self._url(instance, "media"), data=form, headers=self._auth,
                                     timeout=aiohttp.ClientTimeout(total=self.config.timeout)
                                     ) as resp:
            return await self._result(resp, want="id")

    async def _post_json(self, url: str, body: dict[str, Any], want: str) -> SendResult:
        async with self.session.post(url, json=body, headers=self._auth,
                                     timeout=aiohttp.ClientTimeout(total=self.config.timeout)
                                     ) as resp:
            return await self._result(resp, want=want)

    @staticmethod
    async def _result(resp: aiohttp.ClientResponse, want: str) -> SendResult:
        try:
            data = await resp.json(content_type=None)
        except ValueError:
            data = None
        if resp.status < 300 and isinstance(data, dict):
            if want == "messages":
                messages = data.get("messages")
                if isinstance(messages, list) and messages and messages[0].get("id"):
                    return SendResult(provider_message_id=str(messages[0]["id"]))
            elif data.get("id"):
                return SendResult(provider_message_id=str(data["id"]))
            return SendResult(error_title="unexpected Graph API answer", transient=True)
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), int) else None
        # Graph messages read "(#131026) Message undeliverable."; keep the title part.
        title = error.get("error_user_title") or error.get("title") or _CODE_PREFIX.sub(
            "", str(error.get("message") or "")).rstrip(".") or f"HTTP {resp.status}"
        retry_after = None
        if "Retry-After" in resp.headers:
            try:
                retry_after = float(resp.headers["Retry-After"])
            except ValueError:
                retry_after = None
        transient = resp.status >= 500 or resp.status == 429 or code in TRANSIENT_CODES
        return SendResult(error_code=code, error_title=str(title)[:300], transient=transient,
                          retry_after=retry_after)
