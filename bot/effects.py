"""What a handler decides: the effects of one inbound event.

Handlers fill an `Effects`; the store commits all of it, with the inbound
message itself, in one transaction before the provider gets its 200.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.events import InboundMessage
from bot.kinds import RegistrationStatus


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundDraft:
    """A message to queue for a gateway number's worker."""

    instance_id: int
    to: str | None = None  # E.164 number (or a provider user id) for a single chat
    group_id: str | None = None  # provider group id for a group chat
    type: str = "text"  # text | image | document | url
    text: str | None = None
    caption: str | None = None
    filename: str | None = None
    media: bytes | None = None
    mime: str | None = None
    subscriber_id: str | None = None  # None for the gateway's own auto-replies
    template: str | None = None  # JSON: sent as this template (bot/templates.py)
    id: str = field(default_factory=new_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationWrite:
    instance_id: int
    number: str
    locale: str
    status: RegistrationStatus
    keyword_subscriber: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupWrite:
    instance_id: int
    group_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEvent:
    """An event for subscriber webhooks (message.received, user.registered, ...)."""

    type: str
    instance_id: int
    data: dict[str, Any]
    number: str | None = None
    group_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryDraft:
    """A webhook delivery to queue with the event that caused it (bot/forwarding routes them).

    `payload` is the body to send, without any secret or token: those are read
    from the config in force at send time. `id` is the stable `webhook-id`."""

    id: str
    subscriber_id: str
    endpoint_key: str
    url: str
    format: str  # standard | whatsmate
    event_type: str
    payload: str
    # A message.received that carries a file: the file's id, and until when the
    # delivery waits for it (the fetch releases it sooner: docs/receiving.md).
    media_id: str | None = None
    not_before: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaDraft:
    """A file a user sent, to fetch from the provider (bot/workers/media.py)."""

    id: str  # ours (bot/media_links.py)
    provider: str
    instance_id: int
    kind: str  # the message's kind: its size limit
    provider_media_id: str
    source_url: str | None
    mime_type: str | None
    filename: str | None
    expires_at: float  # kept until then ([media] retention_days)


@dataclass(slots=True)
class Effects:
    inbound: InboundMessage
    registration: RegistrationWrite | None = None
    group: GroupWrite | None = None
    replies: list[OutboundDraft] = field(default_factory=list)
    auto_reply_marks: list[str] = field(default_factory=list)  # 'any', 'hint'
    events: list[WebhookEvent] = field(default_factory=list)
    deliveries: list[DeliveryDraft] = field(default_factory=list)  # routed from `events`
    media: MediaDraft | None = None  # the file the message carries, to fetch
