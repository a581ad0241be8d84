"""Who receives an event (docs/receiving.md), as pure functions over the config.

- A dedicated instance (owned by a subscriber): every event goes to its owner.
- A shared instance: a user's events go to the subscriber that most recently
  sent to that user on that instance, or that the user named with a
  registration keyword, whichever is more recent, within `reply_window_days`;
  a group's to the subscriber that most recently sent to that group.
- `message.status` goes to the subscriber that sent the message.
- An admin's opt-out raises `user.unregistered` as the user's STOP would.

Then, for that one subscriber: only while its plan in force has
`inbound_webhooks`, and to each of its webhooks whose `events` list the type
(`whatsmate` webhooks take `message.received` only).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from bot.config import Config, InstanceConfig
from bot.effects import DeliveryDraft, Effects, WebhookEvent
from bot.events import StatusUpdate
from bot.forwarding.payloads import new_delivery_id, standard_body, whatsmate_payload
from bot.store.models import InboundContext, OutboundRow
from bot.subscribers import may_use, subscription_on


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _pick(config: Config, instance: InstanceConfig, candidates: list[tuple[float, str]],
          now: float) -> str | None:
    """A dedicated instance's owner; on a shared one, the most recent candidate
    (when, subscriber) within the reply window."""
    if not instance.shared:
        return instance.owner
    window = config.defaults.reply_window_days * 86400
    # Only subscribers that may use this number now: a keyword of another
    # subscriber, or one whose access was removed on reload, routes nothing.
    recent = [c for c in candidates if now - c[0] <= window
              and c[1] in config.subscribers and may_use(config.subscribers[c[1]], instance)]
    return max(recent)[1] if recent else None


def _last_sent(state: InboundContext) -> list[tuple[float, str]]:
    """The subscriber that most recently sent to the chat, and when (if any did)."""
    if state.last_sender is None:
        return []
    subscriber, at = state.last_sender
    return [(at, subscriber)]


def _stored_keyword(state: InboundContext) -> list[tuple[float, str]]:
    """The subscriber the user's registration keyword named, and when (if it did)."""
    reg = state.registration
    if reg is not None and reg.keyword_subscriber and state.keyword_at is not None:
        return [(state.keyword_at, reg.keyword_subscriber)]
    return []


def inbound_target(config: Config, effects: Effects, state: InboundContext,
                   now: float) -> str | None:
    """The one subscriber an inbound message (and the events it raised) belongs to."""
    msg = effects.inbound
    instance = config.instances.get(msg.instance_id)
    if instance is None:
        return None
    candidates = _last_sent(state)
    if msg.group is None:
        reg = effects.registration
        if reg is not None and reg.keyword_subscriber:
            candidates.append((now, reg.keyword_subscriber))  # named by this very message
        else:
            candidates += _stored_keyword(state)
    return _pick(config, instance, candidates, now)


def user_target(config: Config, instance: InstanceConfig, state: InboundContext,
                now: float) -> str | None:
    """The subscriber a user's events on `instance` belong to when no message of
    theirs is in hand (an admin's act): as for a message from them naming no keyword.
    `state.last_sender` must be the last sender to the user, not to a group."""
    return _pick(config, instance, _last_sent(state) + _stored_keyword(state), now)


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
    if effects.media is not None:
        # A message.received carrying a file waits for it (the fetch releases it
        # sooner), then goes with its link or media.error (bot/workers/webhooks.py).
        hold = now + config.media.delivery_wait
        drafts = [dataclasses.replace(d, media_id=effects.media.id, not_before=hold)
                  if d.event_type == "message.received" and d.format == "standard" else d
                  for d in drafts]
    return drafts


def route_admin_opt_out(config: Config, state: InboundContext,
                        now: float) -> list[DeliveryDraft]:
    """`user.unregistered` for a registration an admin opted out, to whom the
    user's own STOP would have told; nothing unless it was active (as for a STOP).
    `state` is the user's context on that instance before the opt-out."""
    reg = state.registration
    instance = config.instances.get(reg.instance_id) if reg is not None else None
    if reg is None or not reg.active or instance is None:
        return []
    target = user_target(config, instance, state, now)
    if target is None:
        return []
    event = WebhookEvent(type="user.unregistered", instance_id=reg.instance_id,
                         data={"number": reg.number, "locale": reg.locale, "source": "admin"},
                         number=reg.number)
    return deliveries_for(config, target, instance, event, now)


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
