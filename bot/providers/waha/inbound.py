"""WAHA's webhook at /webhooks/waha: HMAC-signed JSON events (`message`,
`message.any`, `message.reaction`, `message.edited`, `message.revoked`, `message.ack`,
`session.status`) parsed into normalized events; other events are acknowledged.

The signature is checked on the raw body before anything is parsed. Our own
messages echoed back (`fromMe`) are ignored; `message` and `message.any` both
carry an incoming message, and the store's dedup keeps one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from bot.config.types import InstanceConfig
from bot.events import GroupRef, InboundMessage, ProviderNotice, StatusUpdate
from bot.kinds import MessageKind, Status
from bot.numbers import to_e164
from bot.providers.content import Content, message_ref
from bot.providers.json_fields import as_dict, as_str, as_timestamp
from bot.providers.waha.caps import CAPS
from bot.providers.waha.config import WahaConfig
from bot.providers.waha.content import content, context_of
from bot.providers.waha.outbound import WahaSender
from bot.web.catalog import Error
from bot.web.errors import fail, loads, read_body
from bot.web.keys import pipeline_key, senders_key
from bot.web.operations import json_response
from bot.web.snapshot import snapshot_of

log = logging.getLogger("wagate.waha")

NAME = "waha"
# A webhook carries one event; media come as URLs, not inline, unless WAHA is
# told otherwise. 5 MB leaves room for an inline image.
WAHA_BODY_LIMIT = 5 * 1024 * 1024
MESSAGE_EVENTS = frozenset({"message", "message.any", "message.reaction", "message.edited",
                            "message.revoked"})


def verify_signature(hmac_key: str, raw_body: bytes, header: str | None,
                     algorithm: str | None) -> bool | None:
    """None when the header is missing, else whether it matches (constant time)."""
    if not header:
        return None
    if algorithm is not None and algorithm.strip().lower() != "sha512":
        return False
    expected = hmac.new(hmac_key.encode(), raw_body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected.encode(),
                               header.strip().lower().encode("utf-8", "surrogateescape"))


def _person(jid: str) -> tuple[str, str | None] | None:
    """(sender, user id) of a person's chat id: E.164 for `<digits>@c.us`, and
    the id itself for a `@lid` user id (WhatsApp hides the number)."""
    local, _, domain = jid.partition("@")
    if domain in ("c.us", "s.whatsapp.net"):
        number = to_e164(local.split(":")[0])  # "<digits>:<device>" on some engines
        return (number, None) if number else None
    if domain == "lid" and local:
        return jid, jid
    return None


def _sender(payload: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """(sender, user id, group id) of a message's payload."""
    chat = as_str(payload.get("from"))
    if not chat:
        raise ValueError("payload.from is missing")
    group_id = None
    who = chat
    if chat.endswith("@g.us"):
        group_id = chat
        who = as_str(payload.get("participant")) or as_str(payload.get("author")) or ""
    person = _person(who)
    if person is None:
        raise ValueError(f"not a person's or group's chat id: {who[:60]!r}")
    return person[0], person[1], group_id


def parse_message(payload: Mapping[str, Any], instance: InstanceConfig, event: str = "message"
                  ) -> tuple[InboundMessage, str | None]:
    """The message (a `message`, `message.reaction`, `message.edited` or
    `message.revoked` event's), and the group id whose name is still to be read."""
    if event == "message.revoked":
        # The message as it is after (WAHA's own id for the revoke), and the id
        # of the message that was revoked.
        revoked = as_str(payload.get("revokedMessageId")) or as_str(
            as_dict(payload.get("before")).get("id"))
        after = as_dict(payload.get("after"))
        payload = {**after, "id": as_str(after.get("id")) or (f"revoke_{revoked}" if revoked
                                                               else None)}
        found = Content(kind=MessageKind.REVOKE,
                        details={"revoke": {"message_id": message_ref(NAME, revoked)}})
    msg_id = as_str(payload.get("id"))
    if not msg_id:
        raise ValueError("payload.id is missing")
    sender, user_id, group_id = _sender(payload)
    if event == "message.reaction":
        reaction = as_dict(payload.get("reaction"))
        found = Content(kind=MessageKind.REACTION, details={"reaction": {
            "emoji": as_str(reaction.get("text")) or "",
            "message_id": message_ref(NAME, reaction.get("messageId"))}})
    elif event == "message.edited":
        found = Content(kind=MessageKind.EDIT, text=as_str(payload.get("body")), details={
            "edit": {"message_id": message_ref(NAME, payload.get("editedMessageId"))}})
    elif event != "message.revoked":
        found = content(payload, msg_id)
    data = as_dict(payload.get("_data"))
    name = as_str(data.get("notifyName")) or as_str(data.get("pushName"))
    return InboundMessage(provider=NAME, provider_message_id=msg_id, instance_id=instance.id,
                          sender=sender, user_id=user_id, profile_name=name, kind=found.kind,
                          text=found.text, details=found.details, media=found.media,
                          context=context_of(payload),
                          group=GroupRef(id=group_id) if group_id else None,
                          timestamp=as_timestamp(payload.get("timestamp", 0))), group_id


# A group message's acknowledgement per participant names the message and who
# read it: "<message id>_<participant>@lid"; the message is what moves.
_PARTICIPANT_ACK = re.compile(r"(.+@g\.us_[^_@]+)_[^_@]+@(?:lid|c\.us|s\.whatsapp\.net)")


def parse_ack(payload: Mapping[str, Any], instance: InstanceConfig) -> StatusUpdate | None:
    """A `message.ack` on one of our messages; None for one that moves nothing
    (a step we do not track, or an ack without an id)."""
    msg_id = as_str(payload.get("id"))
    word = payload.get("ackName")
    status = Status.parse(word, CAPS.statuses)
    if not msg_id or status is None:
        return None
    per_participant = _PARTICIPANT_ACK.fullmatch(msg_id)
    if per_participant:
        msg_id = per_participant.group(1)
    return StatusUpdate(provider=NAME, provider_message_id=msg_id, instance_id=instance.id,
                        status=status, error_title="WhatsApp reported an error"
                        if status is Status.FAILED else None,
                        word=str(word)[:40] if status is Status.UNKNOWN and word else None,
                        timestamp=as_timestamp(payload.get("timestamp", 0)))


async def receive(request: web.Request) -> web.Response:
    snap = snapshot_of(request)
    waha = snap.config.providers.get(NAME)
    if not isinstance(waha, WahaConfig):
        fail(Error.NOT_CONFIGURED, "the waha provider is not configured")
    raw = await read_body(request, WAHA_BODY_LIMIT)
    # The signature covers the raw bytes: check it before parsing anything.
    ok = verify_signature(waha.hmac_key, raw, request.headers.get("X-Webhook-Hmac"),
                          request.headers.get("X-Webhook-Hmac-Algorithm"))
    if ok is None:
        fail(Error.MISSING_SIGNATURE, "X-Webhook-Hmac header is required")
    if not ok:
        fail(Error.BAD_SIGNATURE, "X-Webhook-Hmac does not match the body "
             "(HMAC-SHA512 with the [waha] hmac_key)")
    body = loads(raw)
    if not isinstance(body, dict) or not isinstance(body.get("event"), str) \
            or not isinstance(body.get("payload"), dict):
        fail(Error.BAD_PAYLOAD, "expected a WAHA event: {\"event\", \"session\", \"payload\"}")
    event, payload, session = body["event"], body["payload"], body.get("session")
    instance = waha.instances_by_session.get(session) if isinstance(session, str) else None
    if instance is None:
        fail(Error.UNKNOWN_SESSION, f"no waha instance uses session {str(session)[:60]!r}")
    sender = request.config_dict[senders_key][NAME]
    assert isinstance(sender, WahaSender)
    pipeline = request.config_dict[pipeline_key]
    if event == "session.status":
        # Any state is taken (WAHA adds them: PASSKEY_REQUIRED, ...); only
        # WORKING sends, and every change is a notice.
        state = as_str(payload.get("status"))
        if not state:
            fail(Error.BAD_PAYLOAD, "session.status needs payload.status")
        state = state[:60]
        sender.session_state(session, state)
        log.info("waha session %s is %s", session, state)
        await pipeline.handle(ProviderNotice(
            provider=NAME, kind=event, instance_id=instance.id, event=state,
            detail=payload, timestamp=as_timestamp(body.get("timestamp", 0)) or time.time()))
        return json_response({"received": 1, "session": session, "status": state})
    if event == "message.ack":
        update = parse_ack(payload, instance)
        applied = await pipeline.handle(update) if update else False
        return json_response({"received": 1, "applied": applied})
    if event not in MESSAGE_EVENTS:
        return json_response({"received": 0, "ignored": event[:60]})
    inner = as_dict(payload.get("after")) if event == "message.revoked" else payload
    if inner.get("fromMe") is True or payload.get("fromMe") is True:
        return json_response({"received": 0, "ignored": "fromMe"})
    chat = as_str(inner.get("from")) or ""
    if chat.endswith("@broadcast") or chat.endswith("@newsletter"):
        return json_response({"received": 0, "ignored": "broadcast"})
    try:
        message, group_id = parse_message(payload, instance, event)
    except ValueError as exc:
        # WAHA's envelope, with a message we cannot place (no sender, no id):
        # acknowledged, or WAHA would retry it.
        log.warning("waha %s not used: %s", event, exc)
        return json_response({"received": 0, "ignored": str(exc)[:200]})
    if group_id is not None:
        name = await sender.group_name(instance, group_id)
        message = dataclasses.replace(message, group=GroupRef(id=group_id, name=name))
    fresh = await pipeline.handle(message, snap)
    return json_response({"received": 1, "new": int(fresh)})


def inbound_app() -> web.Application:
    """The sub-app mounted at /webhooks/waha."""
    app = web.Application()
    app.router.add_post("", receive)
    return app
