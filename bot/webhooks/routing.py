"""Who receives an event: SPEC §5's routing, as pure functions over the config.

- A dedicated instance (owned by a subscriber): every event goes to its owner.
- A shared instance: a user's events go to the subscriber that most recently
  sent to that user on that instance, or that the user named with a
  registration keyword, whichever is more recent, within `reply_window_days`;
  a group's to the subscriber that most recently sent to that group.
- `message.status` goes to the subscriber that sent the message.

Then, for that one subscriber: only while its plan in force has
`inbound_webhooks`, and to each of its webhooks whose `events` list the type
(`whatsmate` webhooks take `message.received` only).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bot.config import Config, InstanceConfig
from bot.effects import DeliveryDraft, Effects, WebhookEvent
from bot.events import StatusUpdate
from bot.store.models import InboundContext, OutboundRow
from bot.subscribers import may_use, subscription_on
from bot.webhooks.payloads import new_delivery_id, standard_body, whatsmate_payload


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def inbound_target(config: Config, effects: Effects, state: InboundContext,
                   now: float) -> str | None:
    """The one subscriber an inbound message (and the events it raised) belongs to."""
    msg = effects.inbound
    instance = config.instances.get(msg.instance_id)
    if instance is None:
        return None
    if not instance.shared:
        return instance.owner
    candidates: list[tuple[float, str]] = []
    if state.last_sender is not None:
        subscriber, at = state.last_sender
        candidates.append((at, subscriber))
    if msg.group is None:
        reg = effects.registration
        if reg is not None and reg.keyword_subscriber:
            candidates.append((now, reg.keyword_subscriber))  # named by this very message
        elif (state.registration is not None and state.registration.keyword_subscriber
              and state.keyword_at is not None):
            candidates.append((state.keyword_at, state.registration.keyword_subscriber))
    window = config.defaults.reply_window_days * 86400
    # Only subscribers that may use this number now: a keyword of another
    # subscriber, or one whose access was removed on reload, routes nothing.
    recent = [c for c in candidates if now - c[0] <= window
              and c[1] in config.subscribers and may_use(config.subscribers[c[1]], instance)]
    return max(recent)[1] if recent else None


def route_inbound(config: Config, effects: Effects, state: InboundContext,
                  now: float) -> list[DeliveryDraft]:
    if not effects.events:
        return []
    target = inbound_target(config, effects, state, now)
    if target is None:
        return []
    instance = config.instances[effects.inbound.instance_id]
    drafts: list[DeliveryDraft] = []
    for event in effects.events:
        drafts += deliveries_for(config, target, instance, event, now)
    return drafts


def route_status(config: Config, update: StatusUpdate, row: OutboundRow,
                 now: float) -> list[DeliveryDraft]:
    """`message.status` for the subscriber that sent the message (none for auto-replies)."""
    instance = config.instances.get(row.instance_id)
    if row.subscriber_id is None or instance is None:
        return []
    data: dict[str, Any] = {
        "id": row.id, "instance_id": row.instance_id, "gateway_number": instance.number,
        "to": row.to, "status": update.status, "timestamp": update.timestamp}
    if row.group_id is not None:
        data["group"] = {"id": row.group_id, "name": row.group_name}
    if update.status == "failed":
        data["error"] = {"code": update.error_code, "title": update.error_title}
    event = WebhookEvent(type="message.status", instance_id=row.instance_id, data=data,
                         number=row.to, group_id=row.group_id)
    return deliveries_for(config, row.subscriber_id, instance, event, now)


def deliveries_for(config: Config, subscriber_id: str, instance: InstanceConfig,
                   event: WebhookEvent, now: float) -> list[DeliveryDraft]:
    """One delivery per webhook of the subscriber that wants this event."""
    sub = config.subscribers.get(subscriber_id)
    if sub is None or not sub.webhooks:
        return []
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    subscription = subscription_on(sub, config.plans, today)
    if not subscription.active or not subscription.plan.inbound_webhooks:
        return []
    data = {"instance_id": instance.id, "gateway_number": instance.number, **event.data}
    standard: str | None = None
    drafts = []
    for hook in sub.webhooks:
        if event.type not in hook.events:
            continue
        if hook.format == "whatsmate":
            if event.type != "message.received":
                continue
            payload = whatsmate_payload(instance, data)
        else:
            if standard is None:
                standard = standard_body(event.type, _iso(now), data)
            payload = standard
        drafts.append(DeliveryDraft(id=new_delivery_id(), subscriber_id=sub.id,
                                    endpoint_key=hook.key, url=hook.url, format=hook.format,
                                    event_type=event.type, payload=payload))
    return drafts
