"""Opting a user out by hand, shared by the admin API and the dashboard."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot.config import Config
from bot.effects import DeliveryDraft
from bot.forwarding.routing import route_admin_opt_out
from bot.metrics import Metrics
from bot.pipeline import Pipeline
from bot.store import Store
from bot.store.models import InboundContext, Registration

log = logging.getLogger("wagate.admin")


@dataclass(frozen=True, slots=True)
class Registrations:
    store: Store
    pipeline: Pipeline
    metrics: Metrics

    async def opt_out(self, config: Config, number: str, instance_ids: Sequence[int],
                      now: float) -> list[tuple[Registration, str | None]]:
        """Opt `number` out on each instance: sends to it are refused from then on,
        no message goes to the user, and each active registration ended raises
        `user.unregistered` (`source: admin`), routed as the user's STOP would be.
        Each registration after, with its status before (None: there was none)."""
        def route(state: InboundContext) -> list[DeliveryDraft]:
            return route_admin_opt_out(config, state, now)

        # Held like a message from this number: a STOP being handled meanwhile
        # commits first or sees the opt-out, so the user is not unregistered twice.
        async with self.pipeline.chats([(i, number) for i in instance_ids]):
            results = await self.store.opt_out(number, instance_ids, config.defaults.locale,
                                               now, route)
        changed = 0
        for reg, before in results:
            changed += before != "opted_out"
            if before == "active":
                self.metrics.registrations.labels(reg.locale, "opted_out").inc()
        log.info("admin opted %s out on instance(s) %s (%d changed)", number,
                 ", ".join(str(i) for i in instance_ids), changed)
        return results
