"""The sandbox's sender: no network. Outbound messages stay in the store and
are listed by `GET /sandbox/outbox`; with `[sandbox] delivered_after` /
`read_after` it reports those statuses itself, as a provider's webhook would."""

from __future__ import annotations

import time
import uuid

from bot.config.types import InstanceConfig
from bot.events import StatusUpdate
from bot.kinds import Status
from bot.providers.base import Profile, ProfileResult, SenderContext, SendResult, TransportMessage
from bot.providers.sandbox.config import SandboxConfig


class SandboxSender:
    def __init__(self, ctx: SenderContext) -> None:
        self._ctx = ctx

    async def send(self, instance: InstanceConfig, message: TransportMessage) -> SendResult:
        provider_id = f"sandbox.{uuid.uuid4().hex}"
        section: SandboxConfig | None = self._ctx.section()
        if section is not None:
            for status, delay in ((Status.DELIVERED, section.delivered_after),
                                  (Status.READ, section.read_after)):
                if delay is not None:
                    self._ctx.report_later(StatusUpdate(
                        provider="sandbox", provider_message_id=provider_id,
                        instance_id=instance.id, status=status,
                        timestamp=time.time() + delay), delay)
        return SendResult(provider_message_id=provider_id)


class SandboxProfiler:
    """The sandbox has no profile to set: it takes every field, and the gateway
    records it (shown by `wagate status` and GET /admin/instances/{id}/profile)."""

    async def apply_profile(self, instance: InstanceConfig, profile: Profile) -> ProfileResult:
        return ProfileResult(applied=profile.fields())

    @classmethod
    def from_context(cls, ctx: SenderContext) -> SandboxProfiler:
        return cls()
