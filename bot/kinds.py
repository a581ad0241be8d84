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
    """What a user sent. OTHER is what no provider parser knows (a location,
    a reaction, a kind a provider adds later): stored and forwarded, never
    answered as text."""

    TEXT = "text"
    IMAGE = "image"
    DOCUMENT = "document"
    AUDIO = "audio"
    VIDEO = "video"
    STICKER = "sticker"
    OTHER = "other"

    @classmethod
    def parse(cls, word: object) -> MessageKind:
        """A provider's kind word as ours; OTHER for one we do not know."""
        try:
            return cls(word)
        except (ValueError, TypeError):
            return cls.OTHER


class Status(StrEnum):
    """A provider's word on one of our sent messages, in the order a message moves.
    UNKNOWN is a word the provider's table does not hold (one it adds later)."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
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
