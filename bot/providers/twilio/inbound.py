"""Twilio's webhook at /webhooks/twilio: incoming WhatsApp messages and the
status callbacks of ours, form-encoded, signed with X-Twilio-Signature.

The signature is base64 HMAC-SHA1 (auth token) over the URL Twilio called
(`public_url` + the path and query, since behind a proxy our own idea of the
URL differs) followed by every POST parameter sorted by name, as name+value.
It is checked before any field is interpreted; a good request is answered
with empty TwiML. Twilio adds fields without notice: unknown ones are ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from aiohttp import web

from bot.events import InboundMessage, MediaRef, StatusUpdate
from bot.kinds import MessageKind, Status
from bot.numbers import to_e164
from bot.providers.json_fields import as_number, compact
from bot.providers.twilio.caps import CAPS
from bot.providers.twilio.config import TwilioConfig
from bot.providers.twilio.media import url_signature
from bot.web.catalog import Error
from bot.web.errors import fail, parse_form_pairs, read_body
from bot.web.keys import pipeline_key, store_key
from bot.web.snapshot import snapshot_of

log = logging.getLogger("wagate.twilio")

NAME = "twilio"
# Twilio's callbacks are a few dozen short fields; media come as URLs.
BODY_LIMIT = 256 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_FIELD = 4096  # longer than any Body WhatsApp carries
_MEDIA_KINDS = (MessageKind.IMAGE, MessageKind.AUDIO, MessageKind.VIDEO)


def signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """Twilio's X-Twilio-Signature of a form POST to `url`. A name given twice
    contributes each of its distinct values, sorted (as Twilio's own helpers do)."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(values)
                         for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _with_and_without_port(url: str) -> tuple[str, str]:
    """Twilio signs some URLs with the scheme's default port written and some
    without; its helpers accept both, and so do we."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return (urlunsplit(parts._replace(netloc=f"{host}:{port}")),
            urlunsplit(parts._replace(netloc=host)))


def verify(auth_token: str, url: str, params: Sequence[tuple[str, str]],
           header: str) -> bool:
    given = header.strip().encode("utf-8", "surrogateescape")
    # Both forms are always computed: how long this takes says nothing of which matched.
    matches = [hmac.compare_digest(signature(auth_token, u, params).encode(), given)
               for u in _with_and_without_port(url)]
    return any(matches)


def _field(fields: Mapping[str, str], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_FIELD:
        fail(Error.FIELD_TOO_LONG, f"{name} is over {MAX_FIELD} characters")
    return value


def _whatsapp_number(fields: Mapping[str, str], name: str) -> str:
    raw = _field(fields, name) or ""
    number = to_e164(raw.removeprefix("whatsapp:")) if raw.startswith("whatsapp:") else None
    if number is None:
        fail(Error.INVALID_NUMBER, f"{name} must be whatsapp:+<number with country code>")
    return number


def _message_sid(fields: Mapping[str, str]) -> str:
    sid = _field(fields, "MessageSid") or _field(fields, "SmsSid")
    if sid is None or len(sid) > 200:
        fail(Error.MISSING_FIELD, "MessageSid is required (at most 200 characters)")
    return sid


def parse_status(fields: Mapping[str, str], twilio: TwilioConfig) -> StatusUpdate | None:
    """A status callback as a StatusUpdate; None for a word that moves nothing (queued)."""
    word = (_field(fields, "MessageStatus") or "").lower()
    status = Status.parse(word, CAPS.statuses)
    if status is None:
        return None
    sid = _message_sid(fields)
    ours = twilio.instances_by_number.get(_whatsapp_number(fields, "From"))
    if ours is None:
        fail(Error.UNKNOWN_PROVIDER_NUMBER, "From is not a twilio number configured here")
    code = None
    raw_code = _field(fields, "ErrorCode")
    if raw_code is not None:
        if not (raw_code.isascii() and raw_code.isdigit() and len(raw_code) <= 9):
            fail(Error.INVALID_FIELD, "ErrorCode must be a number")
        code = int(raw_code)
    title = _field(fields, "ErrorMessage") or (f"Twilio error {code}" if code else None)
    return StatusUpdate(provider=NAME, provider_message_id=sid, instance_id=ours.id,
                        status=status, error_code=code, error_title=title,
                        word=word[:40] if status is Status.UNKNOWN else None,
                        timestamp=time.time())


def _media(fields: Mapping[str, str]) -> MediaRef | None:
    """The first file (WhatsApp carries one per message): the id is the last
    segment of its URL (ME...), which the account's credentials fetch."""
    url = _field(fields, "MediaUrl0")
    if url is None:
        return None
    return MediaRef(id=url.rstrip("/").rsplit("/", 1)[-1][:80] or "0",
                    mime_type=_field(fields, "MediaContentType0"), source_url=url)


def _media_kind(mime: str | None, word: str | None) -> MessageKind:
    kind = MessageKind.parse(word)
    if kind.has_media:
        return kind
    top = (mime or "").lower().split("/", 1)[0]
    return MessageKind(top) if top in _MEDIA_KINDS else MessageKind.DOCUMENT


def _context(fields: Mapping[str, str]) -> dict[str, Any] | None:
    replied = _field(fields, "OriginalRepliedMessageSid")
    forwarded = _field(fields, "Forwarded") == "true" or \
        _field(fields, "FrequentlyForwarded") == "true"
    found = compact({
        "message_id": f"{NAME}:{replied}" if replied else None,
        "forwarded": True if forwarded else None,
        "referral": compact({
            "source_url": _field(fields, "ReferralSourceUrl"),
            "source_type": _field(fields, "ReferralSourceType"),
            "source_id": _field(fields, "ReferralSourceId"),
            "headline": _field(fields, "ReferralHeadline"),
            "body": _field(fields, "ReferralBody")}) or None})
    return found or None


def _content(fields: Mapping[str, str]) -> tuple[MessageKind, str | None, dict[str, Any]]:
    """The kind, text and details of a message, from Twilio's fields."""
    text = _field(fields, "Body")
    word = (_field(fields, "MessageType") or "").lower() or None
    button = _field(fields, "ButtonText")
    if button is not None or word == "button":  # a template's quick reply
        return MessageKind.BUTTON, button or text, {"button": {
            "text": button or text, "payload": _field(fields, "ButtonPayload")}}
    list_id = _field(fields, "ListId")
    if list_id is not None or word == "interactive":  # a list row picked
        title = _field(fields, "ListTitle") or text
        return MessageKind.INTERACTIVE, title, {"interactive": compact({
            "kind": "list_reply", "id": list_id, "title": title})}
    lat, lng = as_number(_field(fields, "Latitude")), as_number(_field(fields, "Longitude"))
    if lat is not None and lng is not None:
        return MessageKind.LOCATION, None, {"location": compact({
            "latitude": lat, "longitude": lng, "name": _field(fields, "Label"),
            "address": _field(fields, "Address")})}
    if (_field(fields, "NumMedia") or "0") not in ("0", ""):
        return _media_kind(_field(fields, "MediaContentType0"), word), text, {}
    if text is not None and word in (None, "text"):
        return MessageKind.TEXT, text, {}
    kind = MessageKind.parse(word)  # a kind Twilio names that carries nothing above
    if kind in (MessageKind.TEXT, MessageKind.UNSUPPORTED) or kind.has_media:
        return MessageKind.UNSUPPORTED, None, {"unsupported": compact({"reason": word})}
    return kind, text, {}


def parse_message(fields: Mapping[str, str], twilio: TwilioConfig) -> InboundMessage:
    sid = _message_sid(fields)
    ours = twilio.instances_by_number.get(_whatsapp_number(fields, "To"))
    if ours is None:
        fail(Error.UNKNOWN_PROVIDER_NUMBER, "To is not a twilio number configured here")
    sender = _whatsapp_number(fields, "From")
    kind, text, details = _content(fields)
    wa_id = _field(fields, "WaId")
    return InboundMessage(provider=NAME, provider_message_id=sid, instance_id=ours.id,
                          sender=sender, user_id=wa_id, profile_name=_field(fields, "ProfileName"),
                          kind=kind, text=text, details=details,
                          media=_media(fields) if kind.has_media else None,
                          context=_context(fields), timestamp=time.time())


async def receive(request: web.Request) -> web.Response:
    section = snapshot_of(request).config.providers.get(NAME)
    if not isinstance(section, TwilioConfig):
        fail(Error.NOT_CONFIGURED, "the twilio provider is not configured")
    header = request.headers.get("X-Twilio-Signature")
    if not header:
        fail(Error.MISSING_SIGNATURE, "X-Twilio-Signature header is required")
    ctype = request.content_type
    if ctype != "application/x-www-form-urlencoded":
        fail(Error.UNSUPPORTED_MEDIA_TYPE,
             "Twilio's callbacks are application/x-www-form-urlencoded")
    raw = await read_body(request, BODY_LIMIT)
    pairs = parse_form_pairs(raw)
    if not verify(section.auth_token, section.public_url + request.raw_path, pairs, header):
        fail(Error.BAD_SIGNATURE, "X-Twilio-Signature does not match the request")
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)  # Twilio sends each field once; a repeat changes nothing
    event: InboundMessage | StatusUpdate | None
    if "MessageStatus" in fields:
        event = parse_status(fields, section)
    else:
        event = parse_message(fields, section)
    if event is not None:
        await request.config_dict[pipeline_key].handle(event, snapshot_of(request))
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


def inbound_app() -> web.Application:
    """The sub-app mounted at /webhooks/twilio."""
    app = web.Application()
    app.router.add_post("", receive)
    return app


# ---- /media/{id}: Twilio fetching a message's media by its signed URL (media.py);
# bot/web/media.py's route hands it the ids that are not a user's file.

async def serve_media(request: web.Request) -> web.Response:
    section = snapshot_of(request).config.providers.get("twilio")
    if not isinstance(section, TwilioConfig):
        fail(Error.NOT_CONFIGURED, "no provider serves media by URL here")
    message_id = request.match_info["id"][:200]
    exp, sig = request.query.get("exp", ""), request.query.get("sig", "")
    expected = url_signature(section.media_key, message_id, int(exp)) if (
        exp.isascii() and exp.isdigit() and len(exp) <= 12) else ""
    if not expected or not hmac.compare_digest(expected.encode(),
                                               sig.encode("utf-8", "surrogateescape")):
        fail(Error.BAD_SIGNATURE, "this media URL is not one wagate signed")
    if int(exp) < time.time():
        fail(Error.URL_EXPIRED, "this media URL has expired")
    store = request.config_dict[store_key]
    row = await store.get_outbound(message_id)
    media = await store.outbound_media(message_id) if row is not None else None
    if row is None or media is None:
        fail(Error.MEDIA_GONE, "the message's media are no longer kept")
    headers = {"Cache-Control": "private, no-store"}
    if row.filename:
        headers["Content-Disposition"] = (
            "inline; filename*=UTF-8''" + quote(row.filename, safe=""))
    return web.Response(body=media, content_type=row.mime or "application/octet-stream",
                        headers=headers)
