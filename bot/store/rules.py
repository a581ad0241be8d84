"""Decisions the store applies but does not make: pure functions over plain
values, tested without a database. A backend reads the inputs, calls the rule,
and writes what it returned, inside one transaction."""

from __future__ import annotations

from dataclasses import dataclass

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


def inbound_time(provider_timestamp: float, received_at: float) -> float:
    """When a user's message opened their customer-service window (bot/window.py):
    the provider's time, never later than we received it (a clock ahead must not
    stretch the window), and our time when the provider gave none."""
    return min(provider_timestamp, received_at) if provider_timestamp > 0 else received_at
