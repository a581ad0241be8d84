"""The sandbox's sender: no network. Outbound messages stay in the store and
are listed by `GET /sandbox/outbox`."""

from __future__ import annotations

import uuid

from bot.config.types import InstanceConfig
from bot.providers.base import Profile, ProfileResult, SenderContext, SendResult, TransportMessage


class SandboxSender:
    async def send(self, instance: InstanceConfig, message: TransportMessage) -> SendResult:
        return SendResult(provider_message_id=f"sandbox.{uuid.uuid4().hex}")

    def __init__(self, ctx: SenderContext) -> None:
        pass  # no network, no config


class SandboxProfiler:
    """The sandbox has no profile to set: it takes every field, and the gateway
    records it (shown by `wagate status` and GET /admin/instances/{id}/profile)."""

    async def apply_profile(self, instance: InstanceConfig, profile: Profile) -> ProfileResult:
        return ProfileResult(applied=profile.fields())

    @classmethod
    def from_context(cls, ctx: SenderContext) -> SandboxProfiler:
        return cls()
