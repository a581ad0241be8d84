"""Subscribers and their plans: who is calling, and what they may send today.

Pure functions over the config snapshot; the send API calls them once per
request with the clock's `today`, so a reload or a date change applies to the
next request without any state to refresh.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import Config, InstanceConfig, PlanConfig, SubscriberConfig

# Compared against when the client id is unknown, so an unknown id costs the
# same hash and compare as a known one: the timing tells a guesser nothing.
_DUMMY_DIGEST = hashlib.sha256(b"wagate: no such client id").digest()


def authenticate(config: Config, client_id: str, secret: str,
                 now: float) -> SubscriberConfig | None:
    """The subscriber these credentials belong to, or None (constant-time
    compare): its newest secret, or an earlier one still in its overlap."""
    sub = config.subscribers_by_client_id.get(client_id)
    given = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()
    expected = sub.secret_sha256 if sub is not None else _DUMMY_DIGEST
    matches = hmac.compare_digest(given, expected)
    if sub is not None and sub.older_secrets:
        for older in sub.older_secrets:  # each compared, whichever matches
            matches |= hmac.compare_digest(given, older.sha256) and older.expires_at > now
    return sub if matches and sub is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """A subscriber's standing on one day: the plan in force and when it ends."""

    subscriber: SubscriberConfig
    plan: PlanConfig
    plan_since: dt.date  # the day the plan in force began (trial end for forever_green)
    ends: dt.date | None  # the first day it no longer works; None: open-ended
    state: str  # active | expired | not_started | suspended

    @property
    def active(self) -> bool:
        return self.state == "active"


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` plus whole months, clamped to the month's end (Jan 31 + 1 -> Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month,
                       day=min(day.day, calendar.monthrange(year, month)[1]))


def subscription_on(sub: SubscriberConfig, plans: Mapping[str, PlanConfig],
                    today: dt.date) -> Subscription:
    """The plan in force on `today`.

    A plan with `expires_after_days` turns into its `then` plan that many days
    after it began (trial -> forever_green after 14 days); one without `then`
    simply ends. `expires` ends the subscription (it is the first day that no
    longer works), and is capped at `max_months` after the plan in force began.
    Without `expires` a plan is open-ended: the admin ends it by setting one.
    """
    plan, start = plans[sub.plan], sub.since
    ends: dt.date | None = None
    seen: set[str] = set()
    while plan.expires_after_days is not None:
        end = start + dt.timedelta(days=plan.expires_after_days)
        if today < end:
            ends = end if plan.then is None else None
            break
        if plan.then is None or plan.name in seen:  # ends, or `then` loops back: over
            ends = end
            break
        seen.add(plan.name)
        start, plan = end, plans[plan.then]
    if sub.expires is not None:
        capped = min(sub.expires, add_months(start, plan.max_months))
        ends = capped if ends is None else min(ends, capped)
    if sub.suspended:
        state = "suspended"
    elif today < sub.since:
        state = "not_started"
    elif ends is not None and today >= ends:
        state = "expired"
    else:
        state = "active"
    return Subscription(subscriber=sub, plan=plan, plan_since=start, ends=ends, state=state)


def may_use(sub: SubscriberConfig, instance: InstanceConfig) -> bool:
    """A dedicated number serves its owner only (listed or not); a shared one
    serves the subscribers that list it in `instances`."""
    if not instance.shared:
        return instance.owner == sub.id
    return instance.id in sub.instances
