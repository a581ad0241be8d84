"""The `Managed` port, written once over the shared connector: subscribers
managed at runtime, their client secrets and the audit log (SQL in
sql/queries.sql).

Every change is one transaction with its audit row and a bump of the managed
version, which (on PostgreSQL) NOTIFYs every process on commit: each reloads
the managed state (`load_managed`) into its config snapshot. A later table of
managed state (a subscriber's own endpoints, say) joins in the same way: its
rows read in `load_managed`, its changes through `_change`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bot.store.models import AuditEntry, AuditRow, ManagedRows, NewSubscriber
from bot.store.protocol import Unchanged
from bot.store.queries import Connector, Step, filters, step

# The columns of each row `load_managed` gives in `subscribers`.
MANAGED_COLUMNS = ("id", "client_id", "plan", "since", "expires", "instances", "keyword",
                   "email", "name", "suspended_at")
# What PATCH may change, as columns (`instances` as its JSON, the keyword with its key).
EDITABLE = frozenset({"plan", "since", "expires", "instances", "keyword", "email", "name"})


def keyword_key(keyword: str | None) -> str | None:
    return keyword.casefold() if keyword else None


class ManagedQueries:
    """The `Managed` port over the backend's connector."""

    connector: Connector

    async def _change(self, steps: Sequence[Step], audit: AuditEntry, now: float) -> bool:
        """Run `steps`, the audit row and the version's bump as one transaction;
        False (nothing written) when a guarded step found nothing to change."""
        try:
            await self.connector.write([
                *steps, step("audit", now=now, actor=audit.actor, address=audit.address,
                             action=audit.action, target=audit.target,
                             details=json.dumps(dict(audit.details), sort_keys=True)),
                step("bump_managed_version")], wakes="managed")
        except Unchanged:
            return False
        return True

    async def load_managed(self, now: float) -> ManagedRows:
        # The version first: rows read after it are at least as new, so a change
        # in between is loaded again at the next check, never missed.
        version, subscribers, secrets, endpoints, signing = await self.connector.read([
            step("managed_version"), step("managed_subscribers"), step("live_secrets", now=now),
            step("managed_endpoints"), step("live_endpoint_secrets", now=now)])
        return ManagedRows(int(version.rows[0][0]), subscribers.rows, secrets.rows,
                           endpoints.rows, signing.rows)

    async def managed_version(self) -> int:
        (version,) = await self.connector.read([step("managed_version")])
        return int(version.rows[0][0])

    async def create_subscriber(self, sub: NewSubscriber, secret_sha256: bytes,
                                audit: AuditEntry, now: float) -> bool:
        """False when the id is or was in use; `Conflict` for a keyword or client
        id another change took meanwhile."""
        return await self._change([
            step("create_subscriber", must_change=True, id=sub.id, client_id=sub.client_id,
                 plan=sub.plan, since=sub.since, expires=sub.expires,
                 instances=json.dumps(list(sub.instances)), keyword=sub.keyword,
                 keyword_key=keyword_key(sub.keyword), email=sub.email, name=sub.name, now=now),
            step("add_secret", subscriber_id=sub.id, secret_sha256=secret_sha256, now=now),
        ], audit, now)

    async def update_subscriber(self, subscriber_id: str, changes: Mapping[str, Any],
                                audit: AuditEntry, now: float) -> bool:
        """Set the EDITABLE `changes` (None clears); False when there is no such
        live managed subscriber."""
        if unknown := set(changes) - EDITABLE:
            raise ValueError(f"not editable: {sorted(unknown)}")
        values = dict(changes)
        if "instances" in values:
            values["instances"] = json.dumps(list(values["instances"]))
        if "keyword" in values:
            values["keyword_key"] = keyword_key(values["keyword"])
        if not values:
            return await self._change([step("touch_subscriber", must_change=True,
                                            id=subscriber_id, now=now)], audit, now)
        sets = ", ".join(f"{column} = :{column}" for column in values)
        return await self._change([step("update_subscriber", sets, must_change=True,
                                        id=subscriber_id, now=now, **values)], audit, now)

    async def suspend_subscriber(self, subscriber_id: str, suspended: bool,
                                 audit: AuditEntry, now: float) -> bool:
        name = "suspend_subscriber" if suspended else "resume_subscriber"
        return await self._change([step(name, must_change=True, id=subscriber_id, now=now)],
                                  audit, now)

    async def delete_subscriber(self, subscriber_id: str, audit: AuditEntry,
                                now: float) -> bool:
        """Its row stays (the id is never reused), its secrets and its webhook
        endpoints (with their signing secrets) go."""
        return await self._change([
            step("delete_subscriber", must_change=True, id=subscriber_id, now=now),
            step("delete_secrets", subscriber_id=subscriber_id),
            step("delete_subscriber_endpoint_secrets", subscriber_id=subscriber_id),
            step("delete_subscriber_endpoints", subscriber_id=subscriber_id)], audit, now)

    async def add_secret(self, subscriber_id: str, secret_sha256: bytes, overlap_until: float,
                         audit: AuditEntry, now: float, *,
                         previous: bytes | None = None) -> bool:
        """A new secret; every earlier one ends at `overlap_until` at the latest
        (`now`: at once). `previous`: a provisioned subscriber's file digest
        (its secrets in the store override the file's), kept for the overlap
        when the store holds none of its secrets yet; such a subscriber has no
        row. Otherwise False when there is no live managed subscriber."""
        first = (step("carry_secret", subscriber_id=subscriber_id, previous=previous, now=now,
                      until=overlap_until) if previous is not None else
                 step("touch_subscriber", must_change=True, id=subscriber_id, now=now))
        return await self._change([
            first,
            step("end_secrets", subscriber_id=subscriber_id, until=overlap_until),
            step("forget_secrets", subscriber_id=subscriber_id, now=now),
            step("add_secret", subscriber_id=subscriber_id, secret_sha256=secret_sha256,
                 now=now)], audit, now)

    async def record_audit(self, audit: AuditEntry, now: float) -> None:
        """An audit row on its own (a config reload): nothing managed changed."""
        await self.connector.write([step(
            "audit", now=now, actor=audit.actor, address=audit.address, action=audit.action,
            target=audit.target, details=json.dumps(dict(audit.details), sort_keys=True))])

    async def list_audit(self, *, since: float | None = None, actor: str | None = None,
                         target: str | None = None, before: int | None = None,
                         limit: int = 100) -> list[AuditRow]:
        """Newest first; `before` (a seq) pages back."""
        where, params = filters(actor=actor, target=target)
        if since is not None:
            where += " AND at >= :since"
            params["since"] = since
        if before is not None:
            where += " AND seq < :before"
            params["before"] = before
        (found,) = await self.connector.read([step("list_audit", where, **params, limit=limit)])
        return [AuditRow(seq=r[0], at=r[1], actor=r[2], address=r[3], action=r[4], target=r[5],
                         details=json.loads(r[6])) for r in found.rows]
