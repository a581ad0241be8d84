"""The store's pure rules, without a database."""

from __future__ import annotations

import pytest

from bot.store.rules import EndpointHealth, HealthChange, endpoint_health

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
