"""Webhook deliveries as the admin and a subscriber act on them: show, retry,
replay, send a test event, and each endpoint's health.

A subscriber's calls pass `subscriber_id`: another subscriber's delivery then
answers exactly as a missing one does, so nothing about it leaks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bot.config import Config, WebhookConfig
from bot.config.managed import ManagedEndpoint
from bot.effects import DeliveryDraft
from bot.forwarding.payloads import new_delivery_id, standard_body
from bot.store import Store
from bot.store.models import AttemptRow, DeliveryRow, EndpointRow

log = logging.getLogger("wagate.deliveries")

TEST_EVENT = "test"


class DeliveryNotFound(LookupError):
    """No such delivery (or, for a subscriber, not one of theirs)."""


class DeliveryInFlight(Exception):
    """The delivery is being sent right now: there is nothing to pull forward."""


class NoEndpoints(Exception):
    """The subscriber has no webhook endpoint to send a test event to."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointStatus:
    """A webhook endpoint as configured, with its delivery health (never a secret)."""

    subscriber_id: str
    key: str
    url: str | None
    format: str | None
    configured: bool
    health: EndpointRow | None
    hook: WebhookConfig | None = None  # as configured, in the file or the store
    stored: ManagedEndpoint | None = None  # kept in the store (/v3/account/webhooks)

    @property
    def status(self) -> str:
        if self.health and self.health.disabled_at:
            return "disabled"
        return "failing" if self.health and self.health.failing_since else "ok"


@dataclass(frozen=True, slots=True)
class Deliveries:
    """The delivery actions over one store (which wakes the deliverer once what
    they queue is committed)."""

    store: Store
    # The endpoints kept in the store, by subscriber (enabled or not).
    stored: Callable[[], Mapping[str, tuple[ManagedEndpoint, ...]]] = dict

    async def show(self, delivery_id: str, *, subscriber_id: str | None = None
                   ) -> tuple[DeliveryRow, list[AttemptRow]]:
        found = await self.store.get_delivery(delivery_id[:200])
        if found is None or (subscriber_id is not None and found[0].subscriber_id != subscriber_id):
            raise DeliveryNotFound(delivery_id)
        return found

    async def retry(self, delivery_id: str, now: float, *,
                    subscriber_id: str | None = None) -> tuple[bool, DeliveryRow]:
        """Send one delivery now, with the same webhook-id: one that failed (or
        was delivered) is queued again with a fresh schedule; a pending one is
        due now instead of at its next attempt (pulled forward, true first)."""
        if subscriber_id is not None:
            await self.show(delivery_id, subscriber_id=subscriber_id)
        state, row = await self.store.retry_delivery(delivery_id[:200], now)
        if row is None:
            raise DeliveryNotFound(delivery_id)
        if state == "in_flight":
            raise DeliveryInFlight(delivery_id)
        return state == "pulled", row

    async def replay(self, since: float, now: float, *, subscriber_id: str | None = None,
                     endpoint_key: str | None = None) -> tuple[int, int]:
        """Send now every delivery created at or after `since` that has not gone:
        (failed ones queued again, pending ones pulled forward)."""
        replayed, pulled = await self.store.replay_deliveries(
            since, now, subscriber_id=subscriber_id, endpoint_key=endpoint_key)
        log.info("replay since %s (subscriber %s): %d failed deliveries queued again, "
                 "%d pending pulled forward", dt.datetime.fromtimestamp(since, dt.UTC).isoformat(),
                 subscriber_id or "any", replayed, pulled)
        return replayed, pulled

    async def send_test(self, config: Config, subscriber_id: str, now: float,
                        endpoint_key: str | None = None) -> list[DeliveryDraft]:
        """A `test` event to each of the subscriber's endpoints (or the one of
        `endpoint_key`), queued and retried like any other delivery (whatever
        events the endpoint subscribes to)."""
        sub = config.subscribers.get(subscriber_id)
        hooks = [h for h in sub.webhooks if endpoint_key in (None, h.key)] if sub else []
        if not hooks:
            raise NoEndpoints(subscriber_id)
        at = dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="milliseconds")
        data = {"subscriber": sub.id, "message": "A test event from wagate: your endpoint "
                                                 "receives webhooks."}
        drafts = [DeliveryDraft(
            id=new_delivery_id(), subscriber_id=sub.id, endpoint_key=hook.key, url=hook.url,
            format=hook.format, event_type=TEST_EVENT,
            payload=standard_body(TEST_EVENT, at.replace("+00:00", "Z"), data)
            if hook.format == "standard"
            else json.dumps({"type": TEST_EVENT, "message": data["message"]}))
            for hook in hooks]
        await self.store.add_deliveries(drafts, now)
        return drafts

    async def endpoints(self, config: Config, *,
                        subscriber_id: str | None = None) -> list[EndpointStatus]:
        """Every configured endpoint, then those with a history but no longer
        configured; a subscriber's own only when `subscriber_id` is given."""
        health = {(h.subscriber_id, h.endpoint_key): h
                  for h in await self.store.list_endpoint_health()
                  if subscriber_id is None or h.subscriber_id == subscriber_id}
        stored = self.stored()
        out = []
        for sub in config.subscribers.values():
            if subscriber_id is not None and sub.id != subscriber_id:
                continue
            out += [EndpointStatus(subscriber_id=sub.id, key=hook.key, url=hook.url,
                                   format=hook.format, configured=True, hook=hook,
                                   health=health.pop((sub.id, hook.key), None))
                    for hook in sub.webhooks if hook.id is None]  # the file's
            out += [EndpointStatus(subscriber_id=sub.id, key=e.id, url=e.hook.url,
                                   format=e.hook.format, configured=e.enabled, hook=e.hook,
                                   stored=e, health=health.pop((sub.id, e.id), None))
                    for e in stored.get(sub.id, ())]
        out += [EndpointStatus(subscriber_id=sub_id, key=key, url=h.url, format=None,
                               configured=False, health=h)
                for (sub_id, key), h in sorted(health.items())]
        return out
