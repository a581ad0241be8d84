"""The endpoints of the `Managed` port: webhook endpoints kept in the store
(a subscriber's own, or the admin's for it) and their signing secrets, over
the shared connector (SQL in sql/queries.sql).

Each change goes through `_change` (bot/store/managed.py): one transaction
with its audit row and a bump of the managed version, so every process
reloads its subscribers' webhooks (`load_managed` reads these rows too)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bot.store.managed import ManagedQueries
from bot.store.models import AuditEntry, NewEndpoint
from bot.store.queries import Step, step

# The columns of each row `load_managed` gives in `endpoints`.
ENDPOINT_COLUMNS = ("id", "subscriber_id", "url", "password", "format", "events", "enabled",
                    "description", "token", "created_at", "updated_at")
# What a change may set, as columns (`events` as its JSON).
ENDPOINT_EDITABLE = frozenset({"url", "password", "format", "events", "enabled",
                               "description", "token"})


def _guard(subscriber_id: str, managed: bool, now: float) -> list[Step]:
    """A managed subscriber's endpoints change only while it lives."""
    return [step("touch_subscriber", must_change=True, id=subscriber_id, now=now)] \
        if managed else []


class EndpointQueries(ManagedQueries):
    """The `Managed` port with the endpoints' changes, over the backend's connector."""

    async def create_endpoint(self, endpoint: NewEndpoint, secret: str, audit: AuditEntry,
                              now: float, *, managed: bool) -> bool:
        """A new endpoint with its first signing secret; False when its
        subscriber is managed and no longer lives."""
        return await self._change([
            *_guard(endpoint.subscriber_id, managed, now),
            step("create_endpoint", id=endpoint.id, subscriber_id=endpoint.subscriber_id,
                 url=endpoint.url, password=endpoint.password, format=endpoint.format,
                 events=json.dumps(list(endpoint.events)), enabled=int(endpoint.enabled),
                 description=endpoint.description, token=endpoint.token, now=now),
            step("add_endpoint_secret", endpoint_id=endpoint.id, secret=secret, now=now),
        ], audit, now)

    async def update_endpoint(self, subscriber_id: str, endpoint_id: str,
                              changes: Mapping[str, Any], audit: AuditEntry, now: float, *,
                              managed: bool) -> bool:
        """Set the ENDPOINT_EDITABLE `changes` (None clears); False when there is
        no such endpoint of this subscriber."""
        if unknown := set(changes) - ENDPOINT_EDITABLE:
            raise ValueError(f"not editable: {sorted(unknown)}")
        values = dict(changes)
        if "events" in values:
            values["events"] = json.dumps(list(values["events"]))
        if "enabled" in values:
            values["enabled"] = int(values["enabled"])
        change = (step("update_endpoint", ", ".join(f"{c} = :{c}" for c in values),
                       must_change=True, id=endpoint_id, subscriber_id=subscriber_id, now=now,
                       **values) if values else
                  step("touch_endpoint", must_change=True, id=endpoint_id,
                       subscriber_id=subscriber_id, now=now))
        return await self._change([*_guard(subscriber_id, managed, now), change], audit, now)

    async def delete_endpoint(self, subscriber_id: str, endpoint_id: str, audit: AuditEntry,
                              now: float) -> bool:
        return await self._change([
            step("delete_endpoint", must_change=True, id=endpoint_id,
                 subscriber_id=subscriber_id),
            step("delete_endpoint_secrets", endpoint_id=endpoint_id)], audit, now)

    async def rotate_endpoint_secret(self, subscriber_id: str, endpoint_id: str, secret: str,
                                     until: float, audit: AuditEntry, now: float, *,
                                     managed: bool) -> bool:
        """A new signing secret; every earlier one stops signing at `until` at
        the latest (`now`: at once)."""
        return await self._change([
            *_guard(subscriber_id, managed, now),
            step("touch_endpoint", must_change=True, id=endpoint_id,
                 subscriber_id=subscriber_id, now=now),
            step("end_endpoint_secrets", endpoint_id=endpoint_id, until=until),
            step("forget_endpoint_secrets", endpoint_id=endpoint_id, now=now),
            step("add_endpoint_secret", endpoint_id=endpoint_id, secret=secret, now=now),
        ], audit, now)
