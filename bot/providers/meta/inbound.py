"""Meta's webhook at /webhooks/meta: the verification handshake, and signed
event POSTs parsed into normalized events.

The signature is checked on the raw body before anything is parsed; one POST
may batch many entries, changes, messages and statuses, and one odd message
never fails the batch.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from aiohttp import web

from bot.config.types import InstanceConfig
from bot.events import GroupRef, InboundMessage, ProviderNotice, StatusUpdate
from bot.kinds import Status
from bot.providers.json_fields import as_dict, as_str, as_timestamp
from bot.providers.meta.caps import CAPS, reason
from bot.providers.meta.config import MetaConfig
from bot.providers.meta.content import content, context_of
from bot.web.catalog import Error
from bot.web.errors import fail, read_body
from bot.web.keys import pipeline_key
from bot.web.operations import json_response
from bot.web.snapshot import snapshot_of

log = logging.getLogger("wagate.meta")

# Meta batches up to 1000 updates; 3 MB is well beyond what it sends.
META_BODY_LIMIT = 3 * 1024 * 1024


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
    events: list[InboundMessage | StatusUpdate | ProviderNotice] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # why an item was not used


# The change that carries messages and their statuses; every other field
# (account_update, message_template_status_update, calls, ...) is a notice.
MESSAGES_FIELD = "messages"


def _message_event(m: Mapping[str, Any], instance: InstanceConfig,
                   contacts: Mapping[str, Mapping[str, Any]]) -> InboundMessage:
    msg_id = as_str(m["id"])
    if not msg_id:
        raise ValueError("message without id")
    sender_raw = as_str(m.get("from"))
    from_user_id = as_str(m.get("from_user_id"))
    contact = contacts.get(sender_raw or "") or contacts.get(from_user_id or "") or {}
    user_id = from_user_id or as_str(contact.get("user_id"))
    number = e164(sender_raw if sender_raw and sender_raw.isdigit()
                  else as_str(contact.get("wa_id")))
    sender = number or user_id or sender_raw
    if not sender:
        raise ValueError("message without sender")
    found = content(m)
    group_id = m.get("group_id") or as_dict(m.get("context")).get("group_id")
    if group_id and (not isinstance(group_id, str | int) or isinstance(group_id, bool)):
        raise ValueError("group_id is not a string")
    name = as_str(as_dict(contact.get("profile")).get("name"))
    return InboundMessage(provider="meta", provider_message_id=msg_id, instance_id=instance.id,
                          sender=sender, user_id=user_id, profile_name=name, kind=found.kind,
                          text=found.text, details=found.details, media=found.media,
                          context=context_of(m),
                          group=GroupRef(id=as_str(str(group_id)) or "")
                          if group_id else None, timestamp=as_timestamp(m.get("timestamp", 0)))


def _status_event(s: Mapping[str, Any], instance: InstanceConfig) -> StatusUpdate:
    word = s["status"]
    status = Status.parse(word, CAPS.statuses)
    if status is None:
        raise ValueError(f"status {str(word)[:40]!r} is not one we record")
    msg_id = as_str(s["id"])
    if not msg_id:
        raise ValueError("status without id")
    errors = s.get("errors")
    first = as_dict(errors[0]) if isinstance(errors, list) and errors else {}
    code = first.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    # What Meta charges: `pricing.category` (utility, marketing, authentication,
    # service, ...) and whether it is billable.
    pricing = as_dict(s.get("pricing"))
    category = as_str(pricing.get("category"))
    billable = pricing.get("billable")
    return StatusUpdate(provider="meta", provider_message_id=msg_id,
                        instance_id=instance.id, status=status, error_code=code,
                        word=as_str(word)[:40] if status is Status.UNKNOWN and as_str(word)
                        else None,
                        error_title=reason(code, as_str(first.get("title"))
                                           or as_str(first.get("message"))),
                        timestamp=as_timestamp(s.get("timestamp", 0)),
                        pricing_category=category[:40].lower() if category else None,
                        billable=billable if isinstance(billable, bool) else None)


def _notice(kind: str, value: Mapping[str, Any], instance: InstanceConfig | None,
            entry: Mapping[str, Any]) -> ProviderNotice:
    """A change that is not about a message: what it says, kept as sent."""
    event = as_str(value.get("event"))
    if event is None and kind == "calls":
        first = as_dict((value.get("calls") or value.get("statuses") or [{}])[0]
                        if isinstance(value.get("calls") or value.get("statuses"), list) else {})
        event = as_str(first.get("event")) or as_str(first.get("status"))
    return ProviderNotice(provider="meta", kind=kind[:80],
                          instance_id=instance.id if instance else None,
                          event=event[:80] if event else None, detail=value,
                          timestamp=as_timestamp(entry.get("time", 0)) or time.time())


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
            pnid = str(as_dict(value.get("metadata")).get("phone_number_id", ""))
            instance = instances.get(pnid)
            kind = as_str(change.get("field")) or MESSAGES_FIELD
            if kind != MESSAGES_FIELD:
                batch.events.append(_notice(kind, value, instance, entry))
                continue
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


def _section(request: web.Request) -> MetaConfig | None:
    section = snapshot_of(request).config.providers.get("meta")
    return section if isinstance(section, MetaConfig) else None


async def verify(request: web.Request) -> web.Response:
    meta = _section(request)
    if meta is None:
        fail(Error.NOT_CONFIGURED, "the meta provider is not configured")
    q = request.query
    if q.get("hub.mode") != "subscribe" or "hub.challenge" not in q:
        fail(Error.BAD_HANDSHAKE, "expected hub.mode=subscribe with hub.challenge")
    token = q.get("hub.verify_token", "")
    if not hmac.compare_digest(token.encode("utf-8", "surrogateescape"),
                               meta.verify_token.encode()):
        fail(Error.BAD_VERIFY_TOKEN, "hub.verify_token does not match")
    return web.Response(text=q["hub.challenge"])


async def receive(request: web.Request) -> web.Response:
    snap = snapshot_of(request)
    meta = _section(request)
    if meta is None:
        fail(Error.NOT_CONFIGURED, "the meta provider is not configured")
    raw = await read_body(request, META_BODY_LIMIT)
    # The signature covers the raw bytes: check it before parsing anything.
    ok = verify_signature(meta.app_secret, raw, request.headers.get("X-Hub-Signature-256"))
    if ok is None:
        fail(Error.MISSING_SIGNATURE, "X-Hub-Signature-256 header is required")
    if not ok:
        fail(Error.BAD_SIGNATURE, "X-Hub-Signature-256 does not match the body")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        fail(Error.MALFORMED_JSON, "body is not valid JSON")
    except RecursionError:
        fail(Error.MALFORMED_JSON, "body is nested too deeply")
    try:
        batch = parse_payload(payload, meta.instances_by_phone_number_id)
    except ValueError as exc:
        fail(Error.BAD_PAYLOAD, str(exc))
    # What could not be used is logged, and still acknowledged: Meta would
    # retry it, and alert about (then stop) a webhook that keeps failing.
    for why in batch.skipped:
        log.warning("meta webhook: %s", why)
    pipeline = request.config_dict[pipeline_key]
    fresh = 0
    for event in batch.events:
        if await pipeline.handle(event, snap):
            fresh += 1
    return json_response({"received": len(batch.events), "new": fresh,
                              "skipped": len(batch.skipped)})


def inbound_app() -> web.Application:
    """The sub-app mounted at /webhooks/meta."""
    app = web.Application()
    app.router.add_get("", verify)
    app.router.add_post("", receive)
    return app
