"""The words that travel as strings, as `StrEnum`s: message kinds and statuses.

A leaf module (it imports nothing of wagate), so events, handlers, providers
and the store can all name these values without an import circle. Members
compare equal to their strings and serialize as them (JSON, SQL, logs), so
code still holding plain strings keeps working beside code that uses these.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class MessageKind(StrEnum):
    """What a user sent (the `type` of a `message.received`). UNSUPPORTED is
    what the provider itself could not show, or a kind no parser knows yet:
    stored and forwarded, never answered."""

    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    VOICE = "voice"
    STICKER = "sticker"
    DOCUMENT = "document"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    ORDER = "order"
    EDIT = "edit"
    REVOKE = "revoke"
    SYSTEM = "system"
    REQUEST_WELCOME = "request_welcome"
    UNSUPPORTED = "unsupported"

    @classmethod
    def parse(cls, word: object) -> MessageKind:
        """A provider's kind word as ours; UNSUPPORTED for one we do not know."""
        try:
            return cls(word)
        except (ValueError, TypeError):
            return cls.UNSUPPORTED

    @property
    def has_media(self) -> bool:
        return self in MEDIA_KINDS

    @property
    def typed(self) -> bool:
        """What the user wrote or tapped: the kinds registration reads (their
        text, an interactive title, a button's text)."""
        return self in _TYPED

    @property
    def answerable(self) -> bool:
        """Whether an automatic reply (the "say Hi" hint) may answer it: never a
        reaction, an edit, a revoke, a system notice, an order or an unsupported
        message, which the user did not write to us."""
        return self not in _SILENT


MEDIA_KINDS = frozenset({MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.AUDIO,
                         MessageKind.VOICE, MessageKind.STICKER, MessageKind.DOCUMENT})
_TYPED = frozenset({MessageKind.TEXT, MessageKind.INTERACTIVE, MessageKind.BUTTON})
_SILENT = frozenset({MessageKind.REACTION, MessageKind.EDIT, MessageKind.REVOKE,
                     MessageKind.SYSTEM, MessageKind.ORDER, MessageKind.UNSUPPORTED})


class Status(StrEnum):
    """A provider's word on one of our sent messages, in the order a message moves.
    UNKNOWN is a word the provider's table does not hold (one it adds later): it
    is recorded in the message's history and changes nothing else."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"  # a voice message listened to: follows read
    FAILED = "failed"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, word: object, table: Mapping[str, Status | None]) -> Status | None:
        """`word` through a provider's table: a status, None for a step the table
        knows and ignores (Twilio's "queued"), UNKNOWN for a word it does not know."""
        if not isinstance(word, str) or word not in table:
            return cls.UNKNOWN
        return table[word]


# The words of the statuses a provider may report (UNKNOWN is never stored), as
# plain strings: argparse and error messages show them as they are typed.
STATUSES: tuple[str, ...] = tuple(s.value for s in Status if s is not Status.UNKNOWN)


class MessageStatus(StrEnum):
    """Where one of our outbound messages is: queued (or being sent) by us, then
    the provider's statuses. A message "sending" shows as "queued"."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"


class RegistrationStatus(StrEnum):
    """A user's registration on a gateway number."""

    ACTIVE = "active"
    OPTED_OUT = "opted_out"


class DeliveryStatus(StrEnum):
    """A webhook delivery to a subscriber's endpoint."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryOutcome(StrEnum):
    """One attempt at a webhook delivery. DISABLED: the endpoint answered 410."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    DISABLED = "disabled"
    REFUSED = "refused"
