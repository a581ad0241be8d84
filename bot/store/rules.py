"""Decisions the store applies but does not make: pure functions over plain
values, tested without a database. A backend reads the inputs, calls the rule,
and writes what it returned, inside one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.events import ProviderNotice, StatusUpdate
from bot.store.models import SendLimits, SendOutcome, SendUsage

# A healthy endpoint's last_success_at is refreshed at most this often: its row
# is the hottest of a busy drain, and nothing needs it finer.
SUCCESS_REFRESH = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointHealth:
    """What the store knows of an endpoint before an attempt is recorded."""

    failing_since: float | None = None
    disabled_at: float | None = None
    last_success_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChange:
    """The writes one attempt causes. `success_at`: mark healthy at that time;
    `failing_since`: mark failing since then (the attempt's time is the last
    failure); `disable`: the reason the endpoint is disabled now; `outcome`: the
    attempt's final outcome (a retry against a disabled endpoint fails)."""

    outcome: str
    success_at: float | None = None
    failing_since: float | None = None
    disable: str | None = None


def endpoint_health(health: EndpointHealth, *, outcome: str, endpoint_failure: bool,
                    at: float, disable_after: float) -> HealthChange:
    """Endpoint health after one attempt: a delivery makes it healthy; a failure
    that is the endpoint's (not, say, a webhook removed from the config) makes it
    failing, and disabled on 410 or once it has failed for `disable_after` s."""
    if outcome == "delivered":
        stale = (health.failing_since is not None or health.last_success_at is None
                 or at - health.last_success_at >= SUCCESS_REFRESH)
        return HealthChange(outcome=outcome, success_at=at if stale else None)
    if not endpoint_failure:
        final = "failed" if outcome == "retry" and health.disabled_at is not None else outcome
        return HealthChange(outcome=final)
    since = health.failing_since if health.failing_since is not None else at
    disable = None
    if health.disabled_at is None:
        if outcome == "disabled":
            disable = "HTTP 410 Gone"
        elif at - since >= disable_after:
            disable = f"failing for {at - since:.0f}s (limit {disable_after:.0f}s)"
    disabled = health.disabled_at is not None or disable is not None
    final = "failed" if outcome == "retry" and disabled else outcome
    return HealthChange(outcome=final, failing_since=since, disable=disable)


def delivery_status(outcome: str) -> str:
    """A delivery's status after an attempt with this (final) outcome: delivered,
    pending again for a retry, else failed."""
    return {"delivered": "delivered", "retry": "pending"}.get(outcome, "failed")


# A delivery failed because its endpoint is disabled says so, with the reason
# the endpoint was disabled for (or just "disabled" when none was recorded).
DISABLED_PREFIX = "endpoint disabled: "
DISABLED_DEFAULT = "disabled"


def disabled_error(reason: str | None) -> str:
    """The last_error of a delivery failed because its endpoint is disabled."""
    return DISABLED_PREFIX + (reason or DISABLED_DEFAULT)


def disabled_error_sql(reason: str) -> str:
    """`disabled_error` as an SQL expression over the column `reason`."""
    return (f"'{DISABLED_PREFIX}' || COALESCE(NULLIF({reason}, ''), '{DISABLED_DEFAULT}')")


# ---- outbound statuses

# How far along a message is; a status never moves it back (a "delivered" that
# arrives after "read" changes nothing). "failed" outranks all: it is final.
STATUS_RANK = {"queued": 0, "sending": 0, "sent": 1, "delivered": 2, "read": 3, "played": 3.5,
               "failed": 4}


# "sending" is the outbound worker's own mark: to whoever asks, such a message
# is still queued (the API shows it so, a search for "queued" finds it).
QUEUED_STATUSES = ("queued", "sending")


def shown_status(status: str) -> str:
    """A message's status as the API and the views show it."""
    return "queued" if status == "sending" else status


def sql_list(values: tuple[str, ...]) -> str:
    """Constant strings as an SQL list, `('a', 'b')`, for a rule's values in a query."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def status_advances(current: str, new: str) -> bool:
    """Whether `new` moves a message (or a parked early status) past `current`."""
    return STATUS_RANK.get(new, 0) > STATUS_RANK.get(current, 0)


def notice_values(notice: ProviderNotice, now: float) -> tuple[Any, ...]:
    """A notice's row (provider, kind, instance_id, event, detail, at,
    received_at): its detail as the provider's JSON, capped like a webhook body."""
    detail = json.dumps(notice.detail, ensure_ascii=False, separators=(",", ":"))
    if len(detail) > NOTICE_DETAIL_MAX:
        detail = json.dumps({"truncated": True, "start": detail[:NOTICE_DETAIL_MAX // 2]})
    return (notice.provider, notice.kind, notice.instance_id, notice.event, detail,
            notice.timestamp or now, now)


# A notice's detail kept in full up to this size; the provider's own JSON is
# small (a few hundred bytes), so this only bounds a hostile one.
NOTICE_DETAIL_MAX = 16 * 1024


def unknown_word(update: StatusUpdate) -> str | None:
    """The history entry of a status word the provider added later (None for a
    known status): recorded as the provider wrote it, and changing nothing else."""
    if update.status != "unknown":
        return None
    return (update.word or "unknown").strip().lower()[:40] or "unknown"


def status_time(update: StatusUpdate, now: float) -> float:
    """When a provider status happened, for the message's history: the provider's
    own timestamp when it sent one (Meta, WAHA), else when we received it."""
    return update.timestamp if update.timestamp > 0 else now


def group_name_key(name: str) -> str:
    """Group names match case-insensitively and ignoring extra spaces."""
    return " ".join(name.casefold().split())


# ---- send API


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaPeriod:
    """A subscriber's running quota period as stored: when it started, how many
    messages it has counted."""

    start: float
    count: int


def send_decision(period: QuotaPeriod | None, *, known_recipient: bool, recipients: int,
                  limits: SendLimits, now: float) -> SendOutcome:
    """Whether one more send fits the plan. A new recipient must fit the total
    (`recipients` sent to so far); the quota period (started by this send when
    none runs, or the last one has ended) must have room. A "queued" outcome
    carries the period to write back: `period_start` and `count` after this send.
    The backend applies it in the transaction that read `period` with the
    subscriber's sends serialized, and writes nothing for a refusal."""
    if not known_recipient and recipients >= limits.max_recipients:
        return SendOutcome(status="recipient_limit", count=recipients,
                           limit=limits.max_recipients)
    if period is None or now >= period.start + limits.period_seconds:
        start, count = now, 0  # no period runs: this send starts one
    else:
        start, count = period.start, period.count
    reset_at = start + limits.period_seconds
    if count >= limits.messages_per_period:
        return SendOutcome(status="quota_exceeded", period_start=start, reset_at=reset_at,
                           count=count, limit=limits.messages_per_period)
    return SendOutcome(status="queued", period_start=start, reset_at=reset_at,
                       count=count + 1, limit=limits.messages_per_period)


def current_usage(period: QuotaPeriod | None, *, recipients: int, period_seconds: float,
                  now: float) -> SendUsage:
    """A subscriber's usage as of `now`: a period that has ended counts nothing."""
    if period is None or now >= period.start + period_seconds:
        return SendUsage(period_start=None, reset_at=None, count=0, recipients=recipients)
    return SendUsage(period_start=period.start, reset_at=period.start + period_seconds,
                     count=period.count, recipients=recipients)


def inbound_time(provider_timestamp: float, received_at: float) -> float:
    """When a user's message opened their customer-service window (bot/window.py):
    the provider's time, never later than we received it (a clock ahead must not
    stretch the window), and our time when the provider gave none."""
    return min(provider_timestamp, received_at) if provider_timestamp > 0 else received_at
