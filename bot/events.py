"""Normalized inbound events: what every provider's payload becomes.

No dicts travel past the provider edge; each kind is a frozen, slotted type,
built by each provider package's inbound parsing (bot/providers/<name>/).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.kinds import STATUSES, MessageKind, Status

__all__ = ["STATUSES", "GroupRef", "InboundEvent", "InboundMessage", "MediaRef", "MessageKind",
           "ProviderNotice", "Status", "StatusUpdate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupRef:
    id: str
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaRef:
    """A file the user sent, as the provider names it."""

    id: str  # the provider's media id (Meta), else its message id and index
    mime_type: str | None = None
    filename: str | None = None
    # Where the provider serves it (Twilio's MediaUrlN, WAHA's media.url);
    # None where it is fetched by id (Meta, through Graph). Never forwarded.
    source_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMessage:
    """A message a user sent to a gateway number (text, media or other)."""

    provider: str
    provider_message_id: str
    instance_id: int
    sender: str  # E.164 where the provider gives a number, else the provider's user id
    user_id: str | None = None
    profile_name: str | None = None
    kind: MessageKind = MessageKind.TEXT
    text: str | None = None  # the text, a media caption, the title tapped, the new text
    group: GroupRef | None = None
    timestamp: float
    # What the kind adds to a `message.received`'s data, JSON-ready and keyed as
    # forwarded ({"location": {...}}, {"reaction": {...}}, ...). A message id in
    # it is the provider's, prefixed ("meta:wamid...").
    details: Mapping[str, Any] = field(default_factory=dict)
    # {"message_id"?, "forwarded"?, "referral"?}: a reply, a forward, an ad's click.
    context: Mapping[str, Any] | None = None
    media: MediaRef | None = None

    @property
    def chat(self) -> str:
        """Who a reply goes to: the group, else the sender (auto-reply limits key on it)."""
        return f"group:{self.group.id}" if self.group else self.sender


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusUpdate:
    """A provider's word on one of our outbound messages."""

    provider: str
    provider_message_id: str
    instance_id: int
    status: Status  # UNKNOWN: a word the provider added later, recorded and nothing else
    word: str | None = None  # the provider's own word, kept for an UNKNOWN status
    error_code: int | None = None
    error_title: str | None = None
    timestamp: float
    # What the provider charges for the message (Meta's `pricing`), when it says.
    pricing_category: str | None = None
    billable: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderNotice:
    """Something a provider tells about the account rather than a message: Meta's
    account_update, template status and quality changes, calls, any field it adds;
    WAHA's session states. Acknowledged, stored and counted; never forwarded."""

    provider: str
    kind: str  # Meta's field ("account_update"), "session.status" for WAHA
    instance_id: int | None  # None when it is about the whole account
    event: str | None = None  # what happened, in the provider's word ("ACCOUNT_RESTRICTION")
    detail: Mapping[str, Any] = field(default_factory=dict)  # the provider's value, as sent
    timestamp: float


InboundEvent = InboundMessage | StatusUpdate | ProviderNotice
