"""The 24-hour customer-service window, provider-neutral.

A provider opts in through its capabilities (`service_window`, `templates`,
`window_codes`). A user's window on an instance is open for 24 hours after
their last own message there (the provider's timestamp); our messages never
open it. Inside it a send goes out as sent; outside it, as the configured
notification template filled from the message, or it is refused (475) when
there is none. A provider that still answers "outside the window" (Meta
131047, Twilio 63016: the window closed meanwhile, or clocks differ) gets the
message once more, as the template.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from bot.config import Config
from bot.effects import OutboundDraft
from bot.events import StatusUpdate
from bot.providers.base import Capabilities
from bot.store.models import Fit, OutboundRow, Registration, SendOutcome
from bot.templates import TemplateUse, header_for, notification_use

if TYPE_CHECKING:
    from bot.metrics import Metrics
    from bot.store.protocol import OutboundQueue

WINDOW_SECONDS = 24 * 3600.0

def open_until(last_inbound_at: float | None) -> float | None:
    """When the window of a user whose last message was at `last_inbound_at` closes."""
    return None if last_inbound_at is None else last_inbound_at + WINDOW_SECONDS


def is_open(last_inbound_at: float | None, now: float) -> bool:
    until = open_until(last_inbound_at)
    return until is not None and now < until


def send_fit(config: Config, draft: OutboundDraft, now: float,
             unusable: Mapping[str, str] | None = None) -> Fit | None:
    """For a send to a person on a window-bound instance: keep it (window open),
    turn it into the notification template, or refuse it with `outside_window`.
    A template send only has its language chosen by the user's locale. A
    template in `unusable` (name -> why: the provider paused it) is as none."""
    if draft.instance_id not in config.window_instances or draft.group_id is not None:
        return None

    def fit(draft: OutboundDraft, reg: Registration) -> OutboundDraft | SendOutcome:
        if draft.template is not None:
            use = TemplateUse.from_json(draft.template)
            if use.language is not None:
                return draft
            template = config.templates.named(draft.instance_id, draft.subscriber_id, use.name)
            language = template.language_for(reg.locale) if template else None
            return dataclasses.replace(draft, template=dataclasses.replace(
                use, language=language).to_json())
        if is_open(reg.last_inbound_at, now):
            return draft
        template = config.templates.notification(draft.instance_id, draft.subscriber_id,
                                                 header_for(draft.type))
        why = (unusable or {}).get(template.name) if template is not None else None
        if template is None or why is not None:
            return SendOutcome(status="outside_window",
                               window_closed_at=open_until(reg.last_inbound_at),
                               template_problem=f"the notification template {template.name} "
                               f"is {why}" if template is not None and why else None)
        return dataclasses.replace(draft, template=notification_use(
            template, kind=draft.type, text=draft.text, caption=draft.caption,
            filename=draft.filename, locale=reg.locale).to_json())
    return fit


def resend_template(config: Config) -> Callable[[OutboundRow, str | None, bool], str | None]:
    """What a message the provider refused as outside the window goes out as
    again: its notification template (JSON), given the user's locale and
    whether its media are still at hand; None when it cannot go again (a
    template already, a group, an auto-reply, no template, media gone)."""
    def build(row: OutboundRow, locale: str | None, has_media: bool) -> str | None:
        if (row.template is not None or row.group_id is not None or row.subscriber_id is None
                or row.instance_id not in config.window_instances):
            return None
        header = header_for(row.type)
        if header != "none" and not has_media:
            return None
        template = config.templates.notification(row.instance_id, row.subscriber_id, header)
        if template is None:
            return None
        return notification_use(template, kind=row.type, text=row.text, caption=row.caption,
                                filename=row.filename, locale=locale).to_json()
    return build


class WindowFallback:
    """Sends again, once, as its notification template a message the provider
    refused as outside the window: at once when the send's answer says so,
    queued again when a status tells it later."""

    def __init__(self, store: OutboundQueue, config: Callable[[], Config],
                 caps: Mapping[str, Capabilities], metrics: Metrics | None = None) -> None:
        self.store = store
        self.config = config
        self.caps = caps
        self.metrics = metrics

    def _closed(self, instance_id: int, code: int | None) -> str | None:
        """The provider's name when `code` is its "outside the window" on this instance."""
        instance = self.config().instances.get(instance_id)
        caps = self.caps.get(instance.provider) if instance else None
        if caps is None or code is None or code not in caps.window_codes:
            return None
        return instance.provider if instance else None

    async def after_send(self, row: OutboundRow, code: int | None) -> OutboundRow | None:
        """The row to send once more (as the template, under the same claim), or None."""
        provider = self._closed(row.instance_id, code)
        if provider is None:
            return None
        again = await self.store.resend_as_template(resend_template(self.config()),
                                                    time.time(), message_id=row.id,
                                                    requeue=False)
        self._count(provider, "send", again is not None)
        return again

    async def after_status(self, update: StatusUpdate) -> bool:
        """Whether a failed status was taken as "send it again as the template"."""
        if update.status != "failed":
            return False
        provider = self._closed(update.instance_id, update.error_code)
        if provider is None:
            return False
        again = await self.store.resend_as_template(
            resend_template(self.config()), time.time(),
            provider_message_id=update.provider_message_id)
        self._count(provider, "status", again is not None)
        return again is not None

    def _count(self, provider: str, told_by: str, resent: bool) -> None:
        if self.metrics is not None:
            self.metrics.window_resends.labels(provider, told_by,
                                               "template" if resent else "failed").inc()
