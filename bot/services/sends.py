"""Sending through the send API: what a plan and a provider allow, and
accepting a send into the queue (quota, recipients, registration and the
customer-service window decided in the store's one transaction).

The route (bot/web/send.py) reads and checks the request, WhatsMate's
leniencies included, and answers; this decides and writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.config import Config, PlanConfig
from bot.effects import OutboundDraft
from bot.providers.base import Capabilities
from bot.store import Store
from bot.store.models import SendLimits, SendOutcome
from bot.window import send_fit

QUOTA_PERIOD = 24 * 3600.0
MEDIA_KINDS = ("image", "document")


def missing_feature(plan: PlanConfig, features: Iterable[str]) -> str | None:
    """The first of `features` the plan does not include; None: all of them."""
    return next((f for f in features if f not in plan.features), None)


def provider_can_send(caps: Capabilities, *, group: bool, kind: str) -> bool:
    return not ((group and not caps.groups)
                or (kind in MEDIA_KINDS and kind not in caps.media_kinds))


@dataclass(frozen=True, slots=True)
class Sends:
    """Sends over one store (which wakes the outbound worker once a send it
    queued is committed)."""

    store: Store
    # Templates the provider will not send (name -> why), from its notices.
    unusable_templates: Mapping[str, str] = field(default_factory=dict)

    async def accept(self, config: Config, draft: OutboundDraft, *, plan: PlanConfig,
                     group_name: str | None, now: float) -> SendOutcome:
        """Queue `draft` within the plan's limits, or say why not (nothing is
        counted or queued then)."""
        limits = SendLimits(messages_per_period=plan.messages_per_day,
                            max_recipients=plan.max_recipients, period_seconds=QUOTA_PERIOD)
        outcome = await self.store.accept_send(draft, group_name=group_name, limits=limits,
                                               now=now, fit=send_fit(config, draft, now,
                                                                      self.unusable_templates))
        return outcome
