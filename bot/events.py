"""Normalized inbound events: what every provider's payload becomes.

No dicts travel past the provider edge; each kind is a frozen, slotted type,
built by each provider package's inbound parsing (bot/providers/<name>/).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.kinds import STATUSES, MessageKind, Status

__all__ = ["STATUSES", "GroupRef", "InboundEvent", "InboundMessage", "MediaRef", "MessageKind",
           "Status", "StatusUpdate"]


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
    text: str | None = None  # the text, or a media caption
    group: GroupRef | None = None
    timestamp: float
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
    status: Status  # one of STATUSES, never UNKNOWN
    error_code: int | None = None
    error_title: str | None = None
    timestamp: float
    # What the provider charges for the message (Meta's `pricing`), when it says.
    pricing_category: str | None = None
    billable: bool | None = None


InboundEvent = InboundMessage | StatusUpdate
