"""The built-in sandbox provider: no network. Outbound messages stay in the
store and are listed by `GET /sandbox/outbox`; inbound ones are injected with
`POST /sandbox/inbound`."""

from __future__ import annotations

import uuid

from bot.config import InstanceConfig
from bot.providers.base import SendResult
from bot.store.models import OutboundRow


class SandboxProvider:
    name = "sandbox"

    async def send(self, instance: InstanceConfig, message: OutboundRow,
                   media: bytes | None) -> SendResult:
        return SendResult(provider_message_id=f"sandbox.{uuid.uuid4().hex}")
