"""What a Meta message carries, by its `type`: the text, the media, and the
fields each kind adds to a `message.received` (docs/receiving.md).

Read defensively: a field of the wrong type reads as absent, so one odd message
still arrives with what could be read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.events import MediaRef
from bot.kinds import MEDIA_KINDS, MessageKind
from bot.numbers import to_e164
from bot.providers.content import Content, message_ref
from bot.providers.json_fields import as_dict, as_list, as_number, as_str, compact

PROVIDER = "meta"




def _media(kind: MessageKind, m: Mapping[str, Any]) -> Content:
    body = as_dict(m.get(kind if kind is not MessageKind.VOICE else "audio"))
    media_id = as_str(body.get("id"))
    media = MediaRef(id=media_id, mime_type=as_str(body.get("mime_type")),
                     filename=as_str(body.get("filename"))) if media_id else None
    return Content(kind=kind, text=as_str(body.get("caption")), media=media)


def _contacts(m: Mapping[str, Any]) -> list[dict[str, Any]]:
    cards = []
    for card in as_list(m.get("contacts")):
        card = as_dict(card)
        name = as_dict(card.get("name"))
        phones = [compact({"phone": as_str(p.get("phone")), "wa_id": as_str(p.get("wa_id")),
                           "type": as_str(p.get("type"))})
                  for p in map(as_dict, as_list(card.get("phones")))]
        emails = [e for e in (as_str(as_dict(e).get("email"))
                              for e in as_list(card.get("emails"))) if e]
        org = as_str(as_dict(card.get("org")).get("company"))
        cards.append(compact({
            "name": as_str(name.get("formatted_name")) or " ".join(
                n for n in (as_str(name.get("first_name")), as_str(name.get("last_name"))) if n),
            "phones": phones, "emails": emails or None, "org": org}))
    return cards


def _interactive(m: Mapping[str, Any]) -> Content:
    body = as_dict(m.get("interactive"))
    word = as_str(body.get("type"))
    if word == "nfm_reply":  # a WhatsApp Flow completed: its answers, as sent
        reply = as_dict(body.get("nfm_reply"))
        raw = as_str(reply.get("response_json"))
        try:
            response = json.loads(raw) if raw else None
        except ValueError:
            response = raw
        return Content(kind=MessageKind.INTERACTIVE, text=as_str(reply.get("body")),
                       details={"interactive": compact({
                           "kind": "flow_reply", "id": as_str(reply.get("name")),
                           "response": response})})
    if word in ("button_reply", "list_reply"):
        reply = as_dict(body.get(word))
        title = as_str(reply.get("title"))
        return Content(kind=MessageKind.INTERACTIVE, text=title, details={"interactive": compact({
            "kind": word, "id": as_str(reply.get("id")), "title": title,
            "description": as_str(reply.get("description"))})})
    return _unsupported(m, f"interactive {word or 'without a type'}")


def _unsupported(m: Mapping[str, Any], why: str | None = None) -> Content:
    errors = [as_dict(e) for e in as_list(m.get("errors"))]
    first = errors[0] if errors else {}
    reason = why or as_str(as_dict(m.get("unsupported")).get("type")) \
        or as_str(as_dict(first.get("error_data")).get("details")) or as_str(first.get("title"))
    return Content(kind=MessageKind.UNSUPPORTED,
                   details={"unsupported": compact({"reason": reason})})


_SYSTEM_KINDS = {"user_changed_number": "number_changed",
                 "customer_changed_number": "number_changed",
                 "customer_identity_changed": "identity_changed",
                 "user_changed_user_id": "identity_changed"}


def content(m: Mapping[str, Any]) -> Content:
    """The kind, text, details and media of one message object."""
    word = as_str(m.get("type")) or ""
    kind = MessageKind.parse(word)
    if kind is MessageKind.AUDIO and as_dict(m.get("audio")).get("voice") is True:
        kind = MessageKind.VOICE
    if kind in MEDIA_KINDS:
        return _media(kind, m)
    match kind:
        case MessageKind.TEXT:
            text = as_str(as_dict(m.get("text")).get("body"))
            if text is None:  # not Meta's shape: skipped, the rest of the batch kept
                raise ValueError("text message without body")
            return Content(kind=kind, text=text)
        case MessageKind.LOCATION:
            loc = as_dict(m.get("location"))
            lat, lng = as_number(loc.get("latitude")), as_number(loc.get("longitude"))
            if lat is None or lng is None:
                return _unsupported(m, "location without coordinates")
            return Content(kind=kind, details={"location": compact({
                "latitude": lat, "longitude": lng, "name": as_str(loc.get("name")),
                "address": as_str(loc.get("address")), "url": as_str(loc.get("url"))})})
        case MessageKind.CONTACTS:
            return Content(kind=kind, details={"contacts": _contacts(m)})
        case MessageKind.REACTION:
            reaction = as_dict(m.get("reaction"))
            return Content(kind=kind, details={"reaction": {
                "emoji": as_str(reaction.get("emoji")) or "",
                "message_id": message_ref(PROVIDER, reaction.get("message_id"))}})
        case MessageKind.INTERACTIVE:
            return _interactive(m)
        case MessageKind.BUTTON:
            button = as_dict(m.get("button"))
            text = as_str(button.get("text"))
            return Content(kind=kind, text=text, details={"button": {
                "text": text, "payload": as_str(button.get("payload"))}})
        case MessageKind.ORDER:
            order = as_dict(m.get("order"))
            items = [{"product_retailer_id": as_str(i.get("product_retailer_id")),
                      "quantity": as_number(i.get("quantity")),
                      "item_price": as_number(i.get("item_price")),
                      "currency": as_str(i.get("currency"))}
                     for i in map(as_dict, as_list(order.get("product_items")))]
            return Content(kind=kind, text=as_str(order.get("text")) or None, details={
                "order": {"catalog_id": as_str(order.get("catalog_id")), "items": items}})
        case MessageKind.EDIT:
            edit = as_dict(m.get("edit"))
            new = content(as_dict(edit.get("message")))  # the message as it now reads
            return Content(kind=kind, text=new.text, media=new.media, details={
                "edit": {"message_id": message_ref(PROVIDER, edit.get("original_message_id"))}})
        case MessageKind.REVOKE:
            revoke = as_dict(m.get("revoke"))
            return Content(kind=kind, details={
                "revoke": {"message_id": message_ref(PROVIDER, revoke.get("original_message_id"))}})
        case MessageKind.SYSTEM:
            system = as_dict(m.get("system"))
            return Content(kind=kind, text=as_str(system.get("body")), details={
                "system": compact({
                    "kind": _SYSTEM_KINDS.get(as_str(system.get("type")) or "", "other"),
                    "new_number": to_e164(as_str(system.get("wa_id") or system.get("new_wa_id"))),
                    "new_user_id": as_str(system.get("user_id"))})})
        case MessageKind.REQUEST_WELCOME:
            return Content(kind=kind)
    return _unsupported(m, None if word == "unsupported" else f"type {word[:40]!r}")


def context_of(m: Mapping[str, Any]) -> dict[str, Any] | None:
    """A reply's, a forward's or an ad click's context, as forwarded."""
    ctx = as_dict(m.get("context"))
    referral = as_dict(m.get("referral"))
    forwarded = ctx.get("forwarded") is True or ctx.get("frequently_forwarded") is True
    found = compact({
        "message_id": message_ref(PROVIDER, ctx.get("id")),
        "forwarded": True if forwarded else None,
        "referral": compact({
            "source_url": as_str(referral.get("source_url")),
            "source_type": as_str(referral.get("source_type")),
            "source_id": as_str(referral.get("source_id")),
            "headline": as_str(referral.get("headline")),
            "body": as_str(referral.get("body"))}) or None})
    return found or None
