"""What a WAHA message carries: its kind, text, the fields each kind adds to a
`message.received` (docs/receiving.md), its file and its context.

WAHA's engines differ in what they fill: the common fields (`body`,
`hasMedia`, `media`, `location`, `vCards`, `replyTo`) are read first, then
the engine's own `_data.type` where they say nothing. Read defensively: a
field of the wrong type reads as absent.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from typing import Any

from bot.events import MediaRef
from bot.kinds import MessageKind
from bot.providers.content import Content, message_ref
from bot.providers.json_fields import as_dict, as_list, as_number, as_str, compact

NAME = "waha"
# WEBJS's `_data.type` words for what a user did not write: a notice in the chat.
_SYSTEM_TYPES = frozenset({"e2e_notification", "notification_template", "gp2", "call_log",
                           "notification", "protocol", "ciphertext"})
_VOICE_TYPES = frozenset({"ptt"})
# A vCard's lines we read: "FN:Name", "TEL;type=CELL;waid=3460...:+34 600 ...",
# "EMAIL:...", "ORG:...". Folded lines and other fields are left alone.
_VCARD_LINE = re.compile(r"^(FN|TEL|EMAIL|ORG|item\d+\.TEL|item\d+\.EMAIL)([;:].*)$",
                         re.IGNORECASE)




def _media(payload: Mapping[str, Any], msg_id: str) -> MediaRef | None:
    media = as_dict(payload.get("media"))
    # WAHA's older form: the file's address alone in `mediaUrl`.
    url = as_str(media.get("url")) or as_str(payload.get("mediaUrl"))
    mime = as_str(media.get("mimetype")) or as_str(payload.get("mimetype")) \
        or as_str(as_dict(payload.get("_data")).get("mimetype"))
    if mime is None and url:
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0]
    if url is None and mime is None and not payload.get("hasMedia"):
        return None
    filename = as_str(media.get("filename")) or as_str(
        as_dict(payload.get("_data")).get("filename"))
    return MediaRef(id=msg_id, mime_type=mime, filename=filename, source_url=url)


def _media_kind(media: MediaRef, data_type: str | None) -> MessageKind:
    if data_type in _VOICE_TYPES:
        return MessageKind.VOICE
    if data_type == "sticker":
        return MessageKind.STICKER
    top = (media.mime_type or "").split("/", 1)[0]
    if top in ("image", "video", "audio"):
        return MessageKind(top)
    return MessageKind.DOCUMENT


def vcard_contact(card: str) -> dict[str, Any]:
    """One vCard as a contact: its name, phones (with the WhatsApp id where the
    card names one), e-mails and organisation."""
    name, org = "", None
    phones: list[dict[str, Any]] = []
    emails: list[str] = []
    for line in card.replace("\r\n", "\n").split("\n"):
        found = _VCARD_LINE.match(line.strip())
        if not found:
            continue
        key = found.group(1).upper().split(".")[-1]
        params, _, value = found.group(2).lstrip(";").partition(":") \
            if not found.group(2).startswith(":") else ("", "", found.group(2)[1:])
        value = value.strip()
        if key == "FN":
            name = value
        elif key == "ORG":
            org = value.strip(";") or None
        elif key == "EMAIL" and value:
            emails.append(value)
        elif key == "TEL" and value:
            attrs = dict(p.partition("=")[::2] for p in params.split(";") if p)
            lowered = {k.lower(): v for k, v in attrs.items()}
            phones.append(compact({"phone": value, "wa_id": lowered.get("waid") or None,
                                   "type": lowered.get("type") or None}))
    return compact({"name": name, "phones": phones, "emails": emails or None, "org": org})


def content(payload: Mapping[str, Any], msg_id: str) -> Content:
    """The kind, text, details and file of a `message` event's payload."""
    data = as_dict(payload.get("_data"))
    data_type = as_str(data.get("type"))
    text = as_str(payload.get("body"))
    location = as_dict(payload.get("location"))
    lat = as_number(location.get("latitude", data.get("lat")))
    lng = as_number(location.get("longitude", data.get("lng")))
    if lat is not None and lng is not None:
        description = as_str(location.get("description")) or as_str(data.get("loc"))
        name, _, address = (description or "").partition("\n")
        return Content(kind=MessageKind.LOCATION, details={"location": compact({
            "latitude": lat, "longitude": lng, "name": name or None,
            "address": address or None, "url": as_str(location.get("url"))})})
    cards = [c for c in map(as_str, as_list(payload.get("vCards"))) if c]
    if cards:
        return Content(kind=MessageKind.CONTACTS,
                       details={"contacts": [vcard_contact(c) for c in cards]})
    media = _media(payload, msg_id)
    if media is not None:
        return Content(kind=_media_kind(media, data_type), text=text or None, media=media)
    if data_type == "revoked":
        return Content(kind=MessageKind.REVOKE, details={"revoke": {"message_id": None}})
    if data_type in _SYSTEM_TYPES:
        return Content(kind=MessageKind.SYSTEM, text=text or None,
                       details={"system": {"kind": "other"}})
    if text:
        return Content(kind=MessageKind.TEXT, text=text)
    return Content(kind=MessageKind.UNSUPPORTED,
                   details={"unsupported": compact({"reason": data_type})})


def context_of(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """A reply's or a forward's context, as forwarded."""
    reply = as_dict(payload.get("replyTo"))
    forwarded = as_dict(payload.get("_data")).get("isForwarded") is True
    found = compact({"message_id": message_ref(NAME, reply.get("id")),
                     "forwarded": True if forwarded else None})
    return found or None
