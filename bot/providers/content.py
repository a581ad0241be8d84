"""What a provider's message carries, as its parser reads it: the kind, the
text, the fields the kind adds to a `message.received` and the file. Shared
by the providers' content readers (meta/content.py, waha/content.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.events import MediaRef
from bot.kinds import MessageKind
from bot.providers.json_fields import as_str


@dataclass(slots=True)
class Content:
    kind: MessageKind
    text: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    media: MediaRef | None = None


def message_ref(provider: str, value: Any) -> str | None:
    """A provider's message id as a subscriber reads it: with the provider's prefix."""
    msg_id = as_str(value)
    return f"{provider}:{msg_id}" if msg_id else None
