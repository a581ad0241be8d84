"""The store's pure rules, without a database."""

from __future__ import annotations

import pytest

from bot.store.models import SendLimits, SendOutcome, SendUsage
from bot.store.rules import (
    EndpointHealth,
    HealthChange,
    QuotaPeriod,
    current_usage,
    endpoint_health,
    group_name_key,
    send_decision,
    status_advances,
)

DAY = 86400.0
healthy = EndpointHealth(last_success_at=100.0)
failing = EndpointHealth(failing_since=50.0, last_success_at=40.0)
disabled = EndpointHealth(failing_since=50.0, disabled_at=90.0)


@pytest.mark.parametrize(("before", "outcome", "endpoint_failure", "at", "after"), [
    # A success within the refresh interval writes nothing, and never counts as a failure.
    (healthy, "delivered", True, 100.5, HealthChange(outcome="delivered")),
    (healthy, "delivered", True, 101.0, HealthChange(outcome="delivered", success_at=101.0)),
    (EndpointHealth(), "delivered", True, 1.0, HealthChange(outcome="delivered", success_at=1.0)),
    (failing, "delivered", True, 60.0, HealthChange(outcome="delivered", success_at=60.0)),
    # Failures: failing since the first one; disabled on 410 or after disable_after.
    (healthy, "retry", True, 200.0, HealthChange(outcome="retry", failing_since=200.0)),
    (failing, "retry", True, 60.0, HealthChange(outcome="retry", failing_since=50.0)),
    (failing, "retry", True, 50.0 + 5 * DAY, HealthChange(
        outcome="failed", failing_since=50.0, disable="failing for 432000s (limit 432000s)")),
    (healthy, "disabled", True, 200.0, HealthChange(
        outcome="disabled", failing_since=200.0, disable="HTTP 410 Gone")),
    (disabled, "retry", True, 95.0, HealthChange(outcome="failed", failing_since=50.0)),
    # Not the endpoint's fault (its webhook left the config): health unchanged.
    (healthy, "retry", False, 200.0, HealthChange(outcome="retry")),
    (disabled, "retry", False, 200.0, HealthChange(outcome="failed")),
])
def test_endpoint_health(before: EndpointHealth, outcome: str, endpoint_failure: bool,
                         at: float, after: HealthChange) -> None:
    assert endpoint_health(before, outcome=outcome, endpoint_failure=endpoint_failure, at=at,
                           disable_after=5 * DAY) == after


@pytest.mark.parametrize(("current", "new", "advances"), [
    ("queued", "sent", True), ("sent", "delivered", True), ("delivered", "read", True),
    ("read", "failed", True), ("sending", "sent", True),
    # Out of order or repeated: nothing moves back, nothing moves twice.
    ("read", "delivered", False), ("delivered", "sent", False), ("read", "read", False),
    ("failed", "read", False), ("sent", "queued", False),
    # A status nobody knows counts as the lowest.
    ("queued", "deleted", False), ("deleted", "sent", True),
])
def test_status_advances(current: str, new: str, advances: bool) -> None:
    assert status_advances(current, new) is advances


def test_group_names_match_whatever_their_case_and_spaces() -> None:
    assert group_name_key("  Family\tChat ") == group_name_key("family chat") == "family chat"
    assert group_name_key("STRASSE") == group_name_key("straße")


LIMITS = SendLimits(messages_per_period=3, max_recipients=2, period_seconds=100.0)


@pytest.mark.parametrize(("period", "known", "recipients", "now", "outcome"), [
    # No period runs: this send starts one.
    (None, False, 0, 50.0, SendOutcome(status="queued", period_start=50.0, reset_at=150.0,
                                       count=1, limit=3)),
    (QuotaPeriod(start=10.0, count=2), True, 2, 50.0,
     SendOutcome(status="queued", period_start=10.0, reset_at=110.0, count=3, limit=3)),
    (QuotaPeriod(start=10.0, count=3), True, 2, 109.0,
     SendOutcome(status="quota_exceeded", period_start=10.0, reset_at=110.0, count=3, limit=3)),
    # The period has ended: a new one starts with this send.
    (QuotaPeriod(start=10.0, count=3), True, 2, 110.0,
     SendOutcome(status="queued", period_start=110.0, reset_at=210.0, count=1, limit=3)),
    # A new recipient must fit the total, checked before the quota; a known one always fits.
    (QuotaPeriod(start=10.0, count=3), False, 2, 50.0,
     SendOutcome(status="recipient_limit", count=2, limit=2)),
    (QuotaPeriod(start=10.0, count=0), False, 1, 50.0,
     SendOutcome(status="queued", period_start=10.0, reset_at=110.0, count=1, limit=3)),
])
def test_send_decision(period: QuotaPeriod | None, known: bool, recipients: int, now: float,
                       outcome: SendOutcome) -> None:
    assert send_decision(period, known_recipient=known, recipients=recipients, limits=LIMITS,
                         now=now) == outcome


def test_usage_counts_only_a_running_period() -> None:
    running = QuotaPeriod(start=10.0, count=2)
    assert current_usage(running, recipients=4, period_seconds=100.0, now=109.0) == SendUsage(
        period_start=10.0, reset_at=110.0, count=2, recipients=4)
    assert current_usage(running, recipients=4, period_seconds=100.0, now=110.0) == SendUsage(
        period_start=None, reset_at=None, count=0, recipients=4)
    assert current_usage(None, recipients=0, period_seconds=100.0, now=0.0).count == 0
