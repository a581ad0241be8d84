"""The interface every provider implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.config import InstanceConfig
from bot.store.models import OutboundRow


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    provider_message_id: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    transient: bool = False
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.provider_message_id is not None


class Provider(Protocol):
    name: str

    async def send(self, instance: InstanceConfig, message: OutboundRow,
                   media: bytes | None) -> SendResult:
        """Send one message; never raises for provider or network errors."""
        ...
