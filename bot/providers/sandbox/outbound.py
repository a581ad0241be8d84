"""The sandbox's sender: no network. Outbound messages stay in the store and
are listed by `GET /sandbox/outbox`."""

from __future__ import annotations

import uuid

from bot.config import InstanceConfig
from bot.providers.base import SenderContext, SendResult, TransportMessage


class SandboxSender:
    async def send(self, instance: InstanceConfig, message: TransportMessage) -> SendResult:
        return SendResult(provider_message_id=f"sandbox.{uuid.uuid4().hex}")

    @classmethod
    def from_context(cls, ctx: SenderContext) -> SandboxSender:
        return cls()
